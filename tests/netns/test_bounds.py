"""Every bound sockwise states, measured on this kernel with a tolerance of max(0.5 s, 10 %).

Each case (bounds_cases.CASES) runs in a process of its own that calls plain
``sockwise.harden()`` with the policy in its ``SOCKWISE_*`` variables, inside a network
namespace; all cases run at once, in three namespace pairs:

* SYNs dropped: the server's link is down before the probes start (connect bounds);
* an established connection's peer vanishes: the probes connect to a sink that never answers,
  report ready, the link goes down, and they wait (idle) or send (in flight);
* a live peer stops reading: a client sending to a sink that never reads, and a hardened server
  streaming to a client (this process) that pauses reading for three user timeouts.

So the module costs one observation window (about 20 s, the interactive preset's dead-peer and
asyncio bounds). ``SOCKWISE_UPDATE_BOUNDS=1`` saves the measurements to docs/_data/bounds.json,
which the docs' bounds table is rendered from (test_bounds_data.py checks the saved file).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from bounds_cases import BY_NAME, CASES, DATA, UPDATE_VAR, Case, row, tolerance, within

from sockwise.testing import NetnsPair, netns_unavailable_reason, require_or_skip

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PROBE = str(Path(__file__).with_name("bounds_probe.py"))
SINK_PORT = 7100
SLOW_PORT = 7200
DEAD_PORT = 9  # nothing listens: with SYNs dropped it never matters


class Sink:
    """A listener in a server namespace that accepts and holds connections, never reading."""

    def __init__(self, pair: NetnsPair, port: int) -> None:
        def listen() -> socket.socket:
            return socket.create_server((pair.server_addr, port), backlog=64)

        self.listener = pair.run_in_server(listen)
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True, name="bounds-sink")
        self.thread.start()

    def _serve(self) -> None:
        for _ in range(100):  # bounded: far more connections than the cases open
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.accepted.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)
        for conn in self.accepted:
            conn.close()


def _env(case: Case) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKWISE_")}
    env.update(case.env)
    return env


def _start(pair: NetnsPair, case: Case, where: str, host: str, port: int) -> subprocess.Popen[str]:
    argv = [sys.executable, PROBE, case.mode, host, str(port)]
    if case.app_timeout is not None:
        argv.append(str(case.app_timeout))
    start = pair.popen_server if where == "server" else pair.popen_client
    return start(
        argv,
        env=_env(case),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_json(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The next JSON line of *proc*'s output (bounded in time)."""
    assert proc.stdout is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"probe {proc.args} gave no output within {timeout} s: {err}")
    return dict(json.loads(box[0]))


def _finish(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    result = _read_json(proc, timeout)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return result


def _slow_client(pair: NetnsPair, port: int, pause: float) -> dict[str, Any]:
    """Connect to the streaming server, read nothing for *pause* s, then read to the end."""

    def run() -> dict[str, Any]:
        with socket.create_connection((pair.server_addr, port), timeout=10) as sock:
            time.sleep(pause)
            total, error = 0, None
            sock.settimeout(10)
            try:
                for _ in range(100_000):  # bounded: 64 MiB in 64 KiB reads is 1,024
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    total += len(chunk)
            except OSError as exc:
                error = repr(exc)
            return {"received": total, "error": error}

    return pair.run_in_client(run, timeout=pause + 60)


def _measure_all() -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        syn = stack.enter_context(NetnsPair.create())
        dead = stack.enter_context(NetnsPair.create())
        live = stack.enter_context(NetnsPair.create())
        dead_sink = Sink(dead, SINK_PORT)
        stack.callback(dead_sink.close)
        live_sink = Sink(live, SINK_PORT)
        stack.callback(live_sink.close)

        # SYNs dropped from the start.
        syn.blackhole()
        procs: dict[str, subprocess.Popen[str]] = {}
        for case in CASES:
            if case.fault == "blackhole-first":
                procs[case.name] = _start(syn, case, "client", syn.server_addr, DEAD_PORT)

        # Established first, then the peer vanishes.
        later = [c for c in CASES if c.fault == "blackhole-later"]
        for case in later:
            procs[case.name] = _start(dead, case, "client", dead.server_addr, SINK_PORT)
        for case in later:
            assert _read_json(procs[case.name], 60) == {"ready": True}

        # A live peer that stops reading.
        servers: dict[str, subprocess.Popen[str]] = {}
        clients: dict[str, dict[str, Any]] = {}
        threads: list[threading.Thread] = []
        for case in CASES:
            if case.mode == "stuck-reader":
                procs[case.name] = _start(live, case, "client", live.server_addr, SINK_PORT)
            elif case.mode == "serve-slow-reader":
                port = SLOW_PORT + len(servers)
                servers[case.name] = _start(live, case, "server", live.server_addr, port)
                assert _read_json(servers[case.name], 60) == {"ready": True}

                def client(name: str = case.name, port: int = port, pause: float = 0) -> None:
                    clients[name] = _slow_client(live, port, pause)

                threads.append(
                    threading.Thread(target=client, kwargs={"pause": case.pause()}, daemon=True)
                )
        for thread in threads:
            thread.start()

        dead.blackhole()
        for case in later:
            stdin = procs[case.name].stdin
            assert stdin is not None
            stdin.write("go\n")
            stdin.flush()

        for name, proc in procs.items():
            results[name] = _finish(proc, 90)
        for name, proc in servers.items():
            results[name] = {**_finish(proc, 90), "client": None}
        for thread in threads:
            thread.join(90)
        for name, outcome in clients.items():
            results[name]["client"] = outcome
    return results


def _save(results: dict[str, dict[str, Any]]) -> None:
    data = {
        "generated_by": f"{UPDATE_VAR}=1 pytest tests/netns/test_bounds.py",
        "kernel": platform.release(),
        "tcp_syn_linear_timeouts": _sysctl("net/ipv4/tcp_syn_linear_timeouts"),
        "tcp_syn_retries": _sysctl("net/ipv4/tcp_syn_retries"),
        "rows": [row(case, results[case.name]) for case in CASES],
    }
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _sysctl(name: str) -> int | None:
    try:
        return int(Path("/proc/sys", name).read_text().strip())
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="module")
def measured() -> dict[str, dict[str, Any]]:
    require_or_skip(netns_unavailable_reason())
    results = _measure_all()
    for case in CASES:  # shown with -s, and in the failure report
        print(f"{case.name}: stated={case.stated()} measured={results[case.name]}")
    if os.environ.get(UPDATE_VAR) == "1":
        _save(results)
    return results


@pytest.mark.parametrize("name", [c.name for c in CASES if c.stated() is not None])
def test_stated_bound_holds(measured: dict[str, dict[str, Any]], name: str) -> None:
    case = BY_NAME[name]
    stated = case.stated()
    assert stated is not None
    outcome = measured[name]
    assert outcome["error"] is not None, f"{name}: no failure within the bound: {outcome}"
    assert "TimeoutError" in outcome["error"], outcome  # a timeout, never refused/unreachable
    elapsed = outcome["elapsed"]
    assert within(stated, elapsed), (
        f"{name}: stated {stated} s, measured {elapsed:.2f} s "
        f"(tolerance {tolerance(stated):.2f} s): {outcome}"
    )


def test_app_timeouts_win_both_ways(measured: dict[str, dict[str, Any]]) -> None:
    """An application's own timeout ends the connect, not TCP_SYNCNT or connect_timeout."""
    for name in ("connect-default-app-13", "connect-interactive-app-9"):
        assert measured[name]["errno"] is None, measured[name]  # Python's timeout, not ETIMEDOUT
    assert measured["connect-default-app-13"]["elapsed"] > 10 + tolerance(10)
    assert measured["connect-interactive-app-9"]["elapsed"] > 7.1 + tolerance(7.1)  # old: 7.1


def test_slow_reader_survives_by_default(measured: dict[str, dict[str, Any]]) -> None:
    """Default: a hardened server keeps streaming to a client that pauses for 3 user timeouts."""
    case = BY_NAME["slow-reader-server-default"]
    assert case.stated() is None
    outcome = measured[case.name]
    assert outcome["error"] is None, outcome
    assert outcome["elapsed"] >= case.pause() - tolerance(case.pause()), outcome
    assert outcome["client"] == {"received": outcome["sent"], "error": None}


def test_slow_reader_is_cut_with_accepted_user_timeout_same(
    measured: dict[str, dict[str, Any]],
) -> None:
    """accepted_user_timeout='same': the server gives up on the paused client (ETIMEDOUT)."""
    outcome = measured["slow-reader-server-same"]
    assert outcome["errno"] == 110, outcome
    client = outcome["client"]
    assert client is not None and client["received"] < 64 * 1024 * 1024
    assert client["error"] is not None and "ConnectionResetError" in client["error"], client
