"""Ephemeral-port churn and accept-queue overflow, produced for real on loopback."""

from __future__ import annotations

import socket
import time
import warnings
from pathlib import Path

import psycopg
import pytest

import sockwise
from sockwise.guard import AcceptQueueWarning, Guard, GuardEvent, PortChurnWarning
from sockwise.testing import PostgresServer


def _churn(listener: socket.socket, count: int) -> None:
    """Open and close *count* connections; the client closes first, so it holds TIME_WAIT."""
    for _ in range(count):
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        client.close()
        conn.close()


def test_connect_close_loop_is_reported_as_churn(listener: socket.socket) -> None:
    """A connect-and-close loop gives a PortChurnWarning naming the destination and the fix."""
    guard = Guard(interval=60, churn_rate=20.0, churn_samples=2).start()
    events: list[GuardEvent] = []
    try:
        deadline = time.monotonic() + 20
        while not events and time.monotonic() < deadline:
            _churn(listener, 60)
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                report = guard.check()
            events.extend(e for e in report.events if e.kind == "port_churn")
            assert [w.category for w in record] == [e.category for e in report.events]
    finally:
        guard.stop()
    assert events, "no churn warning"
    (event,) = events
    host, port = listener.getsockname()
    assert event.remote == (host, port)
    assert f"{host}:{port}" in event.message
    assert "sockwise.urllib3.PoolManager" in event.message
    assert "EADDRNOTAVAIL" in event.message
    assert event.origin is not None and event.origin.function == "_churn"
    assert f"{__file__}:{event.origin.lineno} in _churn() (x" in event.message
    assert "create_connection" in event.message  # the source line itself
    assert event.details["rate"] >= 20.0
    assert 0 < event.details["fill"] < 1


def test_time_wait_share_is_reported(listener: socket.socket) -> None:
    """A destination holding more than time_wait_fraction of the port range is reported."""
    guard = Guard(interval=60, churn_rate=1e6, time_wait_fraction=0.001).start()  # ~29 ports
    try:
        _churn(listener, 60)
        with pytest.warns(PortChurnWarning, match="TIME_WAIT") as record:
            report = guard.check()
        assert len(record) == 1
        (event,) = report.events
        assert event.details["time_wait"] >= 29
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert guard.check().events == ()  # not again within report_every
    finally:
        guard.stop()


def test_full_accept_queue_names_the_port() -> None:
    """A listener that never accepts, hit by many clients, gives an AcceptQueueWarning."""
    guard = Guard(interval=60).start()
    srv = socket.socket()
    clients: list[socket.socket] = []
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(2)
        port = srv.getsockname()[1]
        for _ in range(12):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            clients.append(c)
        time.sleep(0.2)
        with pytest.warns(AcceptQueueWarning, match=f"127.0.0.1:{port}") as record:
            report = guard.check()
        (event,) = [e for e in report.events if e.kind == "accept_queue"]
        assert event.details["backlog"] == 2
        assert event.details["queue"] >= 2
        assert "as requested" in event.message
        assert event.details["TcpExt.ListenOverflows"] > 0  # the first report is not "+0"
        assert "ListenOverflows +0" not in event.message
        assert event.origin is not None and event.origin.function == (
            "test_full_accept_queue_names_the_port"
        )
        assert record[0].filename == __file__
        (listed,) = [r for r in report.listeners if r.local[1] == port]
        assert listed.fd == srv.fileno()
    finally:
        for c in clients:
            c.close()
        srv.close()
        guard.stop()


def test_somaxconn_truncation_is_named() -> None:
    """A backlog above net.core.somaxconn is reported as truncated."""
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    guard = Guard(interval=60, accept_queue_ratio=1e-6).start()  # "full" at one waiting client
    srv = socket.socket()
    client = socket.socket()
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(somaxconn * 4)
        client.connect(srv.getsockname())
        time.sleep(0.05)
        with pytest.warns(AcceptQueueWarning, match="truncated to net.core.somaxconn"):
            report = guard.check()
        (event,) = report.events
        assert event.details["backlog"] == somaxconn
        assert event.details["requested_backlog"] == somaxconn * 4
    finally:
        client.close()
        srv.close()
        guard.stop()


def test_a_burst_between_two_samples_is_not_lost(listener: socket.socket) -> None:
    """A burst shorter than churn_samples samples is reported from the connects counted."""
    guard = Guard(interval=60, churn_rate=20.0, churn_samples=3).start()
    try:
        assert guard.check().events == ()
        _churn(listener, 150)  # one burst, then quiet
        with pytest.warns(PortChurnWarning, match="churn toward") as record:
            report = guard.check()
        assert len(record) == 1
        (event,) = report.events
        assert event.details["rate"] >= 20.0
        assert event.origin is not None and event.origin.function == "_churn"
    finally:
        guard.stop()


def test_psycopg_connect_per_query_churn_names_the_line(postgres: PostgresServer) -> None:
    """libpq's connects are counted (not seen by the socket hooks) and the line is named."""
    hardening = sockwise.harden(guard=False)
    guard = Guard(interval=60, churn_rate=10.0, churn_samples=2).start()
    try:
        assert guard.check().events == ()
        deadline = time.monotonic() + 30
        events: list[GuardEvent] = []
        while not events and time.monotonic() < deadline:
            for _ in range(40):
                with psycopg.connect(postgres.dsn) as conn:  # CHURN:psycopg
                    conn.execute("SELECT 1")
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                events = [e for e in guard.check().events if e.kind == "port_churn"]
    finally:
        guard.stop()
        hardening.__exit__(None, None, None)
    assert events, "psycopg churn not reported"
    (event,) = events
    line = next(
        i
        for i, text in enumerate(Path(__file__).read_text().splitlines(), 1)
        if text.endswith("# CHURN:psycopg")
    )
    assert event.origin is not None
    assert (event.origin.filename, event.origin.lineno) == (__file__, line)
    assert "sockwise.psycopg.ConnectionPool" in event.message


def test_transient_overflow_is_reported_from_the_kernel_counter() -> None:
    """An overflow that drained below full before the sample is found through ListenOverflows."""
    guard = Guard(interval=60).start()
    srv = socket.socket()
    clients: list[socket.socket] = []
    accepted: list[socket.socket] = []
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(2)
        port = srv.getsockname()[1]
        for _ in range(12):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            clients.append(c)
        time.sleep(0.2)
        accepted = [srv.accept()[0] for _ in range(2)]  # the queue is no longer full
        with pytest.warns(AcceptQueueWarning, match="dropped connections") as record:
            report = guard.check()
        (event,) = [e for e in report.events if e.kind == "accept_queue"]
        assert 0 < event.details["queue"] < 3
        assert event.details["TcpExt.ListenOverflows"] > 0
        assert record[0].filename == __file__
    finally:
        for c in clients + accepted:
            c.close()
        srv.close()
        guard.stop()
