"""Real leak patterns under plain ``sockwise.harden()``: each reported within the stated bound.

The peer runs in another process (``peer_server.py``, closing idle keep-alive connections after
1 s) or is a real PostgreSQL backend; the guard runs with its DEFAULT settings. The patterns run
concurrently, so the whole scenario takes one detection bound plus set-up. For each leak the
test asserts: a CloseWaitLeakWarning is emitted, it names the user's line (the warning's file and
line, and the message), and the delay from the moment the socket entered CLOSE_WAIT (polled
every 20 ms) to the report lies between ``DEFAULT_CLOSE_WAIT_AFTER`` and
``DETECTION_BOUND`` + max(0.5 s, 10 %).
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg_pool
import pytest
import requests
import urllib3

import sockwise
from sockwise.guard import (
    DEFAULT_CLOSE_WAIT_AFTER,
    DETECTION_BOUND,
    CloseWaitLeakWarning,
    GuardEvent,
    process_sockets,
    running_guards,
)
from sockwise.psycopg import ConnectionPool
from sockwise.testing import PostgresServer

PEER = Path(__file__).with_name("peer_server.py")
KEEPALIVE = 1.0
TOLERANCE = max(0.5, 0.1 * DETECTION_BOUND)
SOURCE = Path(__file__).read_text().splitlines()


def _line(marker: str) -> int:
    """The line number of the line ending with ``# <marker>``."""
    return next(i for i, text in enumerate(SOURCE, 1) if text.endswith(f"# {marker}"))


@pytest.fixture
def peer() -> Iterator[tuple[str, int]]:
    """An HTTP/1.1 server in another process closing idle connections after 1 s."""
    proc = subprocess.Popen(
        [sys.executable, str(PEER), str(KEEPALIVE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield "127.0.0.1", port
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def _httpx_fd(response: httpx.Response) -> int:
    """The descriptor under a streamed httpx response (httpcore's network stream)."""
    stream = response.extensions["network_stream"]
    sock = stream.get_extra_info("socket")
    assert isinstance(sock, socket.socket)
    return sock.fileno()


class CloseWaitClock:
    """Polls this process's CLOSE_WAIT sockets; remembers when each descriptor entered it."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cw-clock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 120
        while not self._stop.wait(0.02) and time.monotonic() < deadline:
            now = time.monotonic()
            for rec in process_sockets(states=["CLOSE_WAIT"]):
                assert rec.fd is not None
                self.first.setdefault(rec.fd, now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _wait(cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_every_leak_pattern_is_reported_within_the_bound(
    peer: tuple[str, int], postgres: PostgresServer
) -> None:
    """Seven real leaks under plain harden() are each reported once, in time, at the user's line."""
    host, port = peer
    url = f"http://{host}:{port}/"
    events: list[tuple[float, GuardEvent]] = []
    clock = CloseWaitClock()
    kept: list[Any] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CloseWaitLeakWarning)
        hardening = sockwise.harden()
        try:
            (guard,) = running_guards()
            guard.callback = lambda e: events.append((time.monotonic(), e))
            # 1. requests, streamed and never closed
            streamed = requests.get(url, stream=True)  # LEAK:requests
            kept.append(streamed)
            # 2. urllib3, preload_content=False, never released
            manager = urllib3.PoolManager()
            kept.append(manager.request("GET", url, preload_content=False))  # LEAK:urllib3
            # 3. http.client connection cached past the server's keep-alive
            cached = http.client.HTTPConnection(host, port)
            cached.request("GET", "/")  # LEAK:http
            cached.getresponse().read()
            # 4. a raw socket kept in a list
            kept.append(socket.create_connection(peer))  # LEAK:raw
            # 5. an httpx streamed response never closed
            client = httpx.Client()
            streamed_x = client.send(client.build_request("GET", url), stream=True)  # LEAK:httpx
            # 6. a pooled PostgreSQL connection never returned, its backend killed
            pool: ConnectionPool[Any] = ConnectionPool(
                postgres.dsn, min_size=1, max_size=2, open=True
            )
            conn = pool.getconn()  # LEAK:psycopg
            # 7. the same with psycopg_pool's own pool
            stock: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
                postgres.dsn, min_size=1, max_size=2, open=True
            )
            stock_conn = stock.getconn()  # LEAK:psycopg_pool
            pids = (conn.info.backend_pid, stock_conn.info.backend_pid)
            # in a later sample than the HTTP leaks: at most max_reports (5) leaks are reported
            # one by one per sample, more are folded into a summary
            _wait(lambda: len(clock.first) >= 5, 10)
            time.sleep(guard.interval + 0.1)
            postgres.execute(f"SELECT pg_terminate_backend(pid) FROM unnest(ARRAY{list(pids)}) pid")
            assert streamed.raw.connection is not None
            expected = {
                "requests": streamed.raw.connection.sock.fileno(),
                "urllib3": kept[1].connection.sock.fileno(),
                "http": cached.sock.fileno() if cached.sock else -1,
                "raw": kept[2].fileno(),
                "httpx": _httpx_fd(streamed_x),
                "psycopg": conn.pgconn.socket,
                "psycopg_pool": stock_conn.pgconn.socket,
            }
            _wait(lambda: len({e.fd for _, e in events}) >= 7, DETECTION_BOUND + 15)
            time.sleep(2 * guard.interval)  # no second report for the same socket
        finally:
            clock.stop()
            sockwise.unharden()
            for item in kept:
                item.close()
            cached.close()
            manager.clear()
            streamed_x.close()
            client.close()
            pool.putconn(conn)
            pool.close()
            stock.putconn(stock_conn)
            stock.close()
    assert hardening.policy is not None
    leaks = [(t, e) for t, e in events if e.kind == "close_wait"]
    by_fd = {e.fd: (t, e) for t, e in leaks}
    assert len(by_fd) == len(leaks), "one report per socket"
    table = []
    for name, fd in expected.items():
        assert fd in by_fd, f"{name}: not reported: {[e.message for _, e in events]}"
        when, event = by_fd[fd]
        delay = when - clock.first[fd]
        table.append((name, round(delay, 2)))
        assert DEFAULT_CLOSE_WAIT_AFTER - 0.1 <= delay <= DETECTION_BOUND + TOLERANCE, (name, delay)
        assert event.origin is not None and event.origin.filename == __file__, name
        assert event.origin.lineno == _line(f"LEAK:{name}"), (name, event.message)
        assert f"{Path(__file__).name}:{event.origin.lineno}" in event.message
        assert "use a pool" not in event.message
        warned = [
            w
            for w in caught
            if w.category is CloseWaitLeakWarning and f"fd {fd} " in str(w.message)
        ]
        assert len(warned) == 1, name
        assert (warned[0].filename, warned[0].lineno) == (__file__, event.origin.lineno)
    print("detection delays (s):", table)
    messages = {name: by_fd[fd][1].message for name, fd in expected.items()}
    assert "stream=True" in messages["requests"]
    assert "release_conn" in messages["urllib3"]
    assert "conn.close()" in messages["http"]
    assert "with-block" in messages["raw"]
    assert "client.stream" in messages["httpx"]
    for name in ("psycopg", "psycopg_pool"):
        assert "putconn" in messages[name] and "checked out" in messages[name]
