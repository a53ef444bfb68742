"""Helpers for the ``sockwise run`` tests (imported by name: tests/run is on sys.path)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment without any ``SOCKWISE_*`` variable or ``PYTHONPATH``, plus *extra*."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SOCKWISE_") and k != "PYTHONPATH"
    }
    env.update(extra or {})
    return env


class Launcher:
    """Start ``python -m sockwise run ARGS`` in its own session; kill what is left at the end."""

    def __init__(self, tmp: Path) -> None:
        self.out = tmp / "probes.jsonl"
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``sockwise run ARGS`` with probes recorded to :attr:`out`, from tests/run."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "sockwise", "run", *args],
            env=clean_env({"RUN_PROBE_OUT": str(self.out), **(env or {})}),
            cwd=HERE,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def probes(self) -> list[dict[str, Any]]:
        """Every probe recorded so far."""
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]

    def wait_for(
        self,
        done: Callable[[list[dict[str, Any]]], bool],
        proc: subprocess.Popen[str],
        timeout: float,
    ) -> list[dict[str, Any]]:
        """Poll the probes until *done* says so; fail after *timeout* s or if *proc* exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probes = self.probes()
            if done(probes):
                return probes
            if proc.poll() is not None:
                _, err = proc.communicate(timeout=10)
                pytest.fail(f"exited {proc.returncode} early; probes={probes}; stderr:\n{err}")
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout} s; probes={self.probes()}")

    def stop(self, proc: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
        """SIGTERM the command (a server's graceful stop) and return its output."""
        proc.send_signal(signal.SIGTERM)
        return proc.communicate(timeout=timeout)

    def close(self) -> None:
        """Kill the sessions still running (and every PID a probe reported)."""
        pids = {p["pid"] for p in self.probes()}
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            proc.communicate()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
