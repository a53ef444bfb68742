"""CLOSE_WAIT leaks: real sockets whose peer closed while this process keeps them open."""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from pathlib import Path

import pytest

from sockwise.guard import (
    CloseWaitLeakWarning,
    Guard,
    GuardEvent,
    register_pooled,
    unregister_pooled,
)


def _leak(listener: socket.socket) -> socket.socket:
    """Connect to *listener*, have the server side close at once; return the client socket."""
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    conn.close()
    return client


def _wait_for(events: list[GuardEvent], kind: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if any(e.kind == kind for e in events):
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"no {kind} event within {timeout} s: {events}")


def test_leak_is_reported_with_the_opening_function(listener: socket.socket) -> None:
    """A socket left in CLOSE_WAIT is reported once, naming this test as its opener."""
    events: list[GuardEvent] = []
    interval, after = 0.2, 0.6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CloseWaitLeakWarning)  # raised in the guard's thread
        with Guard(interval=interval, close_wait_after=after, callback=events.append):
            client = socket.create_connection(listener.getsockname())  # the origin
            listener.accept()[0].close()
            try:
                elapsed = _wait_for(events, "close_wait", timeout=interval + after + 5.0)
                assert elapsed >= after * 0.9
                time.sleep(3 * interval)
            finally:
                client.close()
    leaks = [e for e in events if e.kind == "close_wait"]
    assert len(leaks) == 1, "one report per socket"
    event = leaks[0]
    assert event.category is CloseWaitLeakWarning
    assert event.origin is not None
    assert event.origin.function == "test_leak_is_reported_with_the_opening_function"
    assert event.origin.filename == __file__
    assert event.origin.module == __name__
    assert event.fd is not None
    assert event.remote == listener.getsockname()
    assert "test_leak_is_reported_with_the_opening_function()" in event.message
    assert f"127.0.0.1:{listener.getsockname()[1]}" in event.message


def test_warning_points_at_the_opening_line(listener: socket.socket) -> None:
    """check() warns with the warning's filename and line set to the socket's origin."""
    guard = Guard(interval=60, close_wait_after=0).start()
    client = _leak(listener)
    try:
        time.sleep(0.05)
        with pytest.warns(CloseWaitLeakWarning, match="CLOSE_WAIT leak") as record:
            report = guard.check()
        assert record[0].filename == __file__
        assert "create_connection" in Path(__file__).read_text().splitlines()[record[0].lineno - 1]
        assert [r.fd for r, _ in report.close_wait] == [client.fileno()]
    finally:
        client.close()
        guard.stop()


def test_no_report_after_close(listener: socket.socket) -> None:
    """A socket closed before the threshold is never reported, and its state is dropped."""
    guard = Guard(interval=60, close_wait_after=0.3)
    guard.start()
    client = _leak(listener)
    inode = os.fstat(client.fileno()).st_ino
    try:
        time.sleep(0.05)
        report = guard.check()
        assert len(report.close_wait) == 1 and not report.events
    finally:
        client.close()
    time.sleep(0.4)
    report = guard.check()
    assert report.close_wait == () and report.events == ()
    # (other processes of this uid may have CLOSE_WAIT sockets of their own)
    assert (
        inode not in guard._detector.close_wait.cw_first
        and inode not in guard._detector.close_wait.reset
    )
    guard.stop()


def test_pooled_idle_member_is_not_a_leak(listener: socket.socket) -> None:
    """A socket registered by a pool is not reported; once unregistered it is."""
    guard = Guard(interval=60, close_wait_after=0).start()
    client = _leak(listener)
    try:
        register_pooled(client)
        time.sleep(0.05)
        assert guard.check().events == ()
        unregister_pooled(client.fileno())
        with pytest.warns(CloseWaitLeakWarning):
            assert len(guard.check().events) == 1
    finally:
        client.close()
        guard.stop()


def test_register_pooled_rejects_bad_input_and_ignores_closed() -> None:
    """Bad types raise TypeError naming the parameter; a closed socket is ignored."""
    with pytest.raises(TypeError, match="sock_or_fd"):
        register_pooled("3")  # type: ignore[arg-type]
    sock = socket.socket()
    sock.close()
    register_pooled(sock)  # fileno -1: nothing to do, no error
    unregister_pooled(sock)


def test_socket_opened_before_start_is_found_without_origin(listener: socket.socket) -> None:
    """Sockets the hooks never saw are matched through /proc/self/fd and reported unattributed."""
    client = _leak(listener)
    guard = Guard(interval=60, close_wait_after=0)
    try:
        time.sleep(0.05)
        with pytest.warns(CloseWaitLeakWarning, match="origin not recorded"):
            report = guard.check()
        (event,) = [e for e in report.events if e.fd == client.fileno()]
        assert event.origin is None
    finally:
        client.close()


def test_many_leaks_are_summarised(listener: socket.socket) -> None:
    """Beyond max_reports per sample, leaks are folded into one summary event."""
    guard = Guard(interval=60, close_wait_after=0, max_reports=2).start()
    clients = [_leak(listener) for _ in range(5)]
    try:
        time.sleep(0.05)
        with pytest.warns(CloseWaitLeakWarning):
            report = guard.check()
        kinds = [e.kind for e in report.events]
        assert kinds.count("close_wait") == 2
        (summary,) = [e for e in report.events if e.kind == "summary"]
        assert summary.details["count"] == 3
        assert "test_guard_closewait.py" in summary.message
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert guard.check().events == ()  # each socket once
    finally:
        for c in clients:
            c.close()
        guard.stop()


def test_threads_do_not_block_on_the_guard(listener: socket.socket) -> None:
    """Connects from several threads while the guard samples all complete (no shared lock)."""
    stop = threading.Event()
    with Guard(interval=0.01, close_wait_after=3600):
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(50):
                    socket.create_connection(listener.getsockname()).close()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def acceptor() -> None:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    listener.accept()[0].close()
                except TimeoutError:
                    continue

        acc = threading.Thread(target=acceptor)
        acc.start()
        workers = [threading.Thread(target=worker) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(20)
        stop.set()
        acc.join(5)
    assert not errors
    assert not any(w.is_alive() for w in workers)


def test_reset_after_close_wait_is_still_a_leak(listener: socket.socket) -> None:
    """A socket that left CLOSE_WAIT by a reset while its descriptor stays open is reported."""
    guard = Guard(interval=60, close_wait_after=0.5).start()
    client = _leak(listener)
    try:
        time.sleep(0.05)
        assert [r.state for r, _ in guard.check().close_wait] == ["CLOSE_WAIT"]
        client.send(b"x")  # the peer's socket is gone: its kernel answers with a RST
        time.sleep(0.1)
        with pytest.raises(OSError):
            client.send(b"y")  # the reset reached us: the socket is CLOSE now
        time.sleep(0.5)
        with pytest.warns(CloseWaitLeakWarning, match="has since reset it") as record:
            report = guard.check()
        (event,) = report.events
        assert event.details["state"] == "CLOSE" and event.fd == client.fileno()
        assert record[0].filename == __file__
    finally:
        client.close()
    assert guard.check().close_wait == ()
    guard.stop()


def test_socket_not_seen_opened_is_matched_within_two_intervals(listener: socket.socket) -> None:
    """A leaked socket the hooks never saw is reported within close_wait_after + 2 intervals."""
    client = _leak(listener)  # opened before the guard: no origin recorded
    events: list[GuardEvent] = []
    interval, after = 0.3, 0.5
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CloseWaitLeakWarning)
            with Guard(interval=interval, close_wait_after=after, callback=events.append):
                elapsed = _wait_for(events, "close_wait", timeout=10)
        bound = after + 2 * interval
        assert elapsed <= bound + max(0.5, 0.1 * bound)
        (event,) = [e for e in events if e.fd == client.fileno()]
        assert event.origin is None and "origin not recorded" in event.message
    finally:
        client.close()
