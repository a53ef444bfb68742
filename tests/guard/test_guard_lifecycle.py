"""The guard never harms its host: thread, errors, fork, interpreter exit, bad arguments."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

from sockwise import _hooks
from sockwise.guard import CloseWaitLeakWarning, Guard, GuardEvent, _source, running_guards


def _guard_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sockwise-guard"]


def test_thread_is_a_named_daemon_and_stops() -> None:
    """start() runs one daemon thread named sockwise-guard; stop() ends it and the patch."""
    was_patched = _hooks.is_patched()
    guard = Guard(interval=0.05)
    assert repr(guard).startswith("<Guard stopped")
    with guard:
        assert guard.running and guard.start() is guard  # idempotent
        (thread,) = _guard_threads()
        assert thread.daemon
        assert _hooks.is_patched()
    assert not guard.running
    assert _guard_threads() == []
    assert _hooks.is_patched() == was_patched


def test_second_guard_is_harmless(listener: socket.socket) -> None:
    """Two running guards report a leak once between them, and stopping one keeps recording."""
    events: list[GuardEvent] = []
    first = Guard(interval=60, close_wait_after=0, callback=events.append).start()
    second = Guard(interval=60, close_wait_after=0, callback=events.append).start()
    client = socket.create_connection(listener.getsockname())
    listener.accept()[0].close()
    try:
        time.sleep(0.05)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CloseWaitLeakWarning)
            first.check()
            second.check()
        assert len([e for e in events if e.kind == "close_wait"]) == 1
        first.stop()
        assert _hooks.is_patched() and len(running_guards()) == 1
    finally:
        client.close()
        second.stop()


def test_sampling_errors_are_logged_once_and_survived(caplog: pytest.LogCaptureFixture) -> None:
    """A failing source is logged once; the thread keeps sampling and recovers."""

    class Broken:
        name = "netlink"
        calls = 0

        def dump(self, mask: int) -> list[object]:
            Broken.calls += 1
            raise OSError(5, "injected")

        def probe(self) -> None:
            pass

    _source.set_reader(Broken())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="sockwise"), Guard(interval=0.02) as guard:
        deadline = time.monotonic() + 5
        while Broken.calls < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert guard.running
    assert Broken.calls >= 5
    failures = [r for r in caplog.records if "sample failed" in r.getMessage()]
    assert len(failures) == 1


def test_failing_callback_does_not_stop_reports(
    listener: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in the user's callback is logged and the warning is still emitted."""

    def callback(event: GuardEvent) -> None:
        raise RuntimeError("user bug")

    guard = Guard(interval=60, close_wait_after=0, callback=callback).start()
    client = socket.create_connection(listener.getsockname())
    listener.accept()[0].close()
    try:
        time.sleep(0.05)
        with pytest.warns(CloseWaitLeakWarning), caplog.at_level(logging.ERROR):
            guard.check()
        assert any("callback" in r.getMessage() for r in caplog.records)
    finally:
        client.close()
        guard.stop()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": 0}, "interval"),
        ({"interval": float("nan")}, "interval"),
        ({"close_wait_after": -1}, "close_wait_after"),
        ({"churn_rate": 0}, "churn_rate"),
        ({"churn_samples": 0}, "churn_samples"),
        ({"time_wait_fraction": 2}, "time_wait_fraction"),
        ({"accept_queue_ratio": 0}, "accept_queue_ratio"),
        ({"max_reports": 0}, "max_reports"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs: dict[str, object], match: str) -> None:
    """Out-of-range settings raise ValueError naming the parameter and the allowed range."""
    with pytest.raises(ValueError, match=match):
        Guard(**kwargs)  # type: ignore[arg-type]


def test_bad_types_raise_type_error() -> None:
    """Wrong types raise TypeError naming the parameter."""
    with pytest.raises(TypeError, match="interval"):
        Guard(interval="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callback"):
        Guard(callback=3)  # type: ignore[arg-type]


def _run_child(code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_exit_without_stop_is_clean() -> None:
    """A process that starts the guard and exits without stopping it exits 0, silently."""
    proc = _run_child(
        """
        import socket, time
        from sockwise.guard import Guard
        Guard(interval=0.01, close_wait_after=0).start()
        with socket.create_server(("127.0.0.1", 0)) as srv:
            socket.create_connection(srv.getsockname()).close()
        time.sleep(0.1)
        """
    )
    assert (proc.returncode, proc.stderr) == (0, "")


def test_fork_restarts_the_guard_in_the_child() -> None:
    """After fork() the child runs its own guard thread (or none with restart_after_fork=False)."""
    proc = _run_child(
        """
        import os, threading, time
        from sockwise.guard import Guard
        restarting = Guard(interval=0.01).start()
        stopping = Guard(interval=0.01, restart_after_fork=False).start()
        time.sleep(0.05)
        pid = os.fork()
        if pid == 0:
            names = [t.name for t in threading.enumerate()]
            ok = restarting.running and not stopping.running
            ok = ok and names.count("sockwise-guard") == 1
            restarting.check()
            restarting.stop()
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert restarting.running and stopping.running
        """
    )
    assert (proc.returncode, proc.stderr) == (0, "")
