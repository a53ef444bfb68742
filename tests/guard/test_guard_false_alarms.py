"""What is not a leak stays silent under plain ``sockwise.harden()`` with the guard's defaults.

All cases run concurrently for longer than the detection bound, against peers in other
processes: idle pooled connections that the server closed (requests, urllib3, httpx, sockwise's
httpx client and urllib3 pool, psycopg_pool and sockwise's psycopg pool), a server in this
process answering a client that half-closed its request and computing longer than the
threshold, our own half-close, a long-poll, and 30 s of pooled traffic with idle gaps the server
closes connections in. No CloseWaitLeakWarning may be emitted; idle members the server closed
are mentioned at most once per pool, as an INFO notice that says it is no leak.
"""

from __future__ import annotations

import logging
import random
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
import sockwise.httpx
import sockwise.urllib3
from sockwise.guard import DETECTION_BOUND, CloseWaitLeakWarning, GuardEvent, running_guards
from sockwise.psycopg import ConnectionPool
from sockwise.testing import PostgresServer

PEER = Path(__file__).with_name("peer_server.py")
TRAFFIC_SECONDS = 30.0

_HALF_CLOSING_CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"COMPUTE please")
s.shutdown(socket.SHUT_WR)
s.settimeout(60)
data = b""
while True:
    chunk = s.recv(100)
    if not chunk:
        break
    data += chunk
print(data.decode(), flush=True)
s.close()
"""


@pytest.fixture
def peer() -> Iterator[tuple[str, int]]:
    """An HTTP/1.1 server in another process closing idle connections after 1 s."""
    proc = subprocess.Popen(
        [sys.executable, str(PEER), "1.0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield "127.0.0.1", int(proc.stdout.readline())
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


def _computing_server(srv: socket.socket, compute: float, answered: list[bytes]) -> None:
    """Accept one client, read its request to EOF, compute for *compute* s, answer, close."""
    srv.settimeout(30)
    conn, _ = srv.accept()
    with conn:
        conn.settimeout(30)
        request = b""
        while chunk := conn.recv(100):
            request += chunk
        time.sleep(compute)  # our socket sits in CLOSE_WAIT meanwhile: not a leak
        conn.sendall(b"done: " + request)
        answered.append(request)


def _traffic(url: str, stop: float, errors: list[BaseException]) -> None:
    """Pooled requests in bursts, with idle gaps long enough for the server to close members."""
    rng = random.Random(7)
    try:
        with requests.Session() as session:
            for _ in range(100_000):
                if time.monotonic() > stop:
                    return
                for _ in range(rng.randint(20, 60)):
                    assert session.get(url, timeout=10).content
                time.sleep(rng.choice((0.0, 0.3, 1.3)))
    except BaseException as exc:  # pragma: no cover - reported by the test
        errors.append(exc)


@pytest.mark.slow
def test_idle_pools_half_close_long_poll_and_traffic_are_silent(
    peer: tuple[str, int], postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No CloseWaitLeakWarning for pools, half-closes, long-polls or healthy traffic."""
    caplog.set_level(logging.INFO)
    host, port = peer
    url = f"http://{host}:{port}/"
    events: list[GuardEvent] = []
    closers: list[Any] = []
    errors: list[BaseException] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sockwise.harden()
        try:
            (guard,) = running_guards()
            guard.callback = events.append
            # idle members of stock and sockwise pools; the server closes them after 1 s
            session = requests.Session()
            closers.append(session)
            assert session.get(url).content
            manager = urllib3.PoolManager()
            closers.append(manager)
            assert manager.request("GET", url).data
            sw_manager = sockwise.urllib3.PoolManager()
            closers.append(sw_manager)
            assert sw_manager.request("GET", url).data
            client = httpx.Client()
            closers.append(client)
            client.get(url).read()
            sw_client = sockwise.httpx.Client()
            closers.append(sw_client)
            sw_client.get(url).read()
            # idle PostgreSQL connections whose backends are killed
            pg_stock: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
                postgres.dsn, min_size=2, max_size=2, open=True
            )
            closers.append(pg_stock)
            pg_stock.wait(10)
            pg_sw: ConnectionPool[Any] = ConnectionPool(
                postgres.dsn, min_size=2, max_size=2, open=True
            )
            closers.append(pg_sw)
            pg_sw.wait(10)
            with pg_stock.connection() as c1, pg_sw.connection() as c2:
                pids = [c1.info.backend_pid, c2.info.backend_pid]
            killed = postgres.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE pid IN ({', '.join(map(str, pids))})"
            )
            assert len(killed) == 2
            # a client in another process half-closes; our server computes past the threshold
            srv = socket.create_server(("127.0.0.1", 0))
            closers.append(srv)
            answered: list[bytes] = []
            compute = DETECTION_BOUND + 1.0
            server = threading.Thread(target=_computing_server, args=(srv, compute, answered))
            server.start()
            half = subprocess.Popen(
                [sys.executable, "-c", _HALF_CLOSING_CLIENT, str(srv.getsockname()[1])],
                stdout=subprocess.PIPE,
                text=True,
            )
            # our own half-close: the request is sent, we shut down writing and wait
            ours = socket.create_connection(peer)
            closers.append(ours)
            ours.sendall(b"POST /compute?s=9 HTTP/1.1\r\nHost: x\r\n\r\n")
            ours.shutdown(socket.SHUT_WR)
            # a long-poll answered after 9 s
            poll = threading.Thread(
                target=lambda: requests.get(url + "poll?s=9", timeout=30).content
            )
            poll.start()
            # heavy healthy pooled traffic with idle gaps, for TRAFFIC_SECONDS
            stop = time.monotonic() + TRAFFIC_SECONDS
            workers = [
                threading.Thread(target=_traffic, args=(url, stop, errors)) for _ in range(2)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join(TRAFFIC_SECONDS + 30)
            server.join(30)
            poll.join(30)
            out, _ = half.communicate(timeout=30)
            assert out.startswith("done: COMPUTE please"), out
            assert answered == [b"COMPUTE please"]
            assert ours.recv(100).endswith(b"done")
            time.sleep(guard.interval)
        finally:
            sockwise.unharden()
            for item in closers:
                (item.clear if isinstance(item, urllib3.PoolManager) else item.close)()
    assert not errors, errors
    assert [e.message for e in events if e.category is CloseWaitLeakWarning] == []
    assert [w for w in caught if w.category is CloseWaitLeakWarning] == []
    notices = [r.getMessage() for r in caplog.records]
    notices = [n for n in notices if "closed idle connections" in n]
    assert len(notices) == len(set(notices)), "at most once per pool"
    assert any("psycopg_pool ConnectionPool" in n for n in notices), notices
    assert any("urllib3 pool for" in n for n in notices), notices
    assert all("Not a leak" in n and "use a pool" not in n for n in notices)
