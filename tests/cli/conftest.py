"""Fixtures for end-to-end CLI tests: run ``python -m sockwise`` as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from cli_support import RunCli, child_holding

# A child process holding known sockets: a listener with two connections waiting in its accept
# queue (never accepted), and a client socket in CLOSE_WAIT (its peer was accepted and closed).
HOLDER = textwrap.dedent(
    """
    import socket, sys
    lst = socket.create_server(("127.0.0.1", 0), backlog=7)
    queued = [socket.create_connection(lst.getsockname()) for _ in range(2)]
    closer = socket.create_server(("127.0.0.1", 0))
    cw = socket.create_connection(closer.getsockname())
    peer, _ = closer.accept()
    peer.close()
    closer.close()
    print(lst.getsockname()[1], cw.getsockname()[1], flush=True)
    sys.stdin.read()
    """
)


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKWISE_")}
    env.update(extra or {})
    return env


@pytest.fixture
def run_cli() -> RunCli:
    """Run ``python -m sockwise ARGS`` and return the completed process (text mode)."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sockwise", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(env),
            cwd=cwd,
            check=False,
        )

    return run


@pytest.fixture
def socket_holder() -> Iterator[tuple[int, int, int]]:
    """A child holding a listener (2 queued) and a CLOSE_WAIT socket: (pid, lport, cwport)."""
    with child_holding(HOLDER) as (pid, (lport, cwport)):
        yield pid, lport, cwport
