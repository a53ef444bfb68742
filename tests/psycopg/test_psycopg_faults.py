"""sockwise.psycopg.ConnectionPool against a real PostgreSQL: killed backends, restarts, expiry."""

from __future__ import annotations

import logging
import socket
import time
import warnings
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg_pool
import pytest
from sw_psycopg_helpers import socket_states, terminate, wait_for

import sockwise
from sockwise.psycopg import ConnectionPool, PoolTimeout
from sockwise.testing import PostgresServer, require_or_skip

pytestmark = pytest.mark.postgres


def _pool(server: PostgresServer, app_name: str, **kw: Any) -> ConnectionPool:
    kw.setdefault("min_size", 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sockwise.ConfigurationWarning)  # short test timings
        pool: ConnectionPool = ConnectionPool(
            server.dsn, kwargs={"application_name": app_name}, open=False, **kw
        )
    return pool


@pytest.fixture
def pool(postgres: PostgresServer, app_name: str) -> Iterator[ConnectionPool]:
    with _pool(postgres, app_name, name="faults") as p:
        p.wait(timeout=20)
        yield p


def _pids(pool: ConnectionPool, n: int) -> set[int]:
    return {_pid(pool) for _ in range(n)}


def _pid(pool: ConnectionPool) -> int:
    with pool.connection(timeout=10) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        return int(row[0])


def test_policy_keywords_reach_libpq_and_caller_wins(postgres: PostgresServer) -> None:
    """Every connection carries the policy's keywords; explicit ones in kwargs/conninfo win."""
    policy = sockwise.Policy(keepalive_idle=30, keepalive_interval=5, keepalive_count=4)
    dsn = postgres.dsn + " keepalives_count=9"
    with (
        ConnectionPool(
            dsn, min_size=1, open=True, policy=policy, kwargs={"keepalives_interval": 7}
        ) as pool,
        pool.connection() as conn,
    ):
        opts = {i.keyword.decode(): (i.val or b"").decode() for i in conn.pgconn.info}
    assert opts["keepalives"] == "1"
    assert opts["keepalives_idle"] == "30"
    assert opts["tcp_user_timeout"] == "50000"
    assert opts["keepalives_interval"] == "7"  # kwargs win
    assert opts["keepalives_count"] == "9"  # the conninfo string wins


def test_terminated_backends_never_reach_the_caller(
    postgres: PostgresServer, app_name: str, pool: ConnectionPool
) -> None:
    """After pg_terminate_backend the idle sockets go CLOSE_WAIT; checkouts still succeed."""
    old = _pids(pool, 3)
    assert terminate(postgres, app_name) == 3
    wait_for(lambda: socket_states(postgres.port).count("CLOSE_WAIT") == 3, what="CLOSE_WAIT")
    new = _pids(pool, 6)  # no error reaches us
    assert not new & old
    stats = pool.get_stats()
    assert stats["connections_dead_poll"] == 3
    assert stats["connections_dead_ping"] == 0  # seen for free, without a round trip
    assert "CLOSE_WAIT" not in socket_states(postgres.port)


def test_plain_psycopg_pool_hands_out_the_dead_connection(
    postgres: PostgresServer, app_name: str
) -> None:
    """The fault is real: psycopg_pool without a check gives the caller a killed connection."""
    with psycopg_pool.ConnectionPool(
        postgres.dsn, min_size=1, kwargs={"application_name": app_name}, open=True
    ) as plain:
        plain.wait()
        assert terminate(postgres, app_name) == 1
        wait_for(lambda: "CLOSE_WAIT" in socket_states(postgres.port), what="CLOSE_WAIT")
        with pytest.raises(psycopg.OperationalError), plain.connection() as conn:
            conn.execute("SELECT 1")


def test_background_sweep_closes_close_wait_without_checkouts(
    postgres: PostgresServer, app_name: str
) -> None:
    """Dead idle members are closed and replaced by the sweep, with no checkout at all."""
    pool = _pool(postgres, app_name, min_size=2)
    pool.sweep_interval = 0.2
    with pool:
        pool.wait(timeout=20)
        assert terminate(postgres, app_name) == 2
        wait_for(lambda: pool.get_stats()["connections_swept"] == 2, what="the sweep")
        wait_for(lambda: len(socket_states(postgres.port)) == 2, what="replacements")
        assert "CLOSE_WAIT" not in socket_states(postgres.port)
        assert pool.get_stats().get("requests_num", 0) == 0


def test_older_siblings_of_a_dead_connection_are_checked(
    postgres: PostgresServer, app_name: str
) -> None:
    """When one connection is found dead, the older ones get a round trip before hand-out."""
    pool = _pool(postgres, app_name, min_size=3)
    pool.alive_bypass = 3600.0  # no round trips unless suspect
    pool.sweep_interval = 0.2  # the sweep finds the dead one, before any checkout
    with pool:
        pool.wait(timeout=20)
        newest = max(pool._pool, key=lambda c: c._created_at).info.backend_pid
        postgres.execute(f"SELECT pg_terminate_backend({newest})")
        wait_for(lambda: pool.get_stats()["connections_swept"] == 1, what="the sweep")
        pids = _pids(pool, 4)
        assert newest not in pids
        stats = pool.get_stats()
        assert stats["connections_dead_poll"] == 1
        assert stats["connections_suspect_checked"] == 2  # the two older ones, once each
        assert stats["checkouts_pinged"] == 2


def test_idle_expiry_below_min_size_at_checkout(postgres: PostgresServer, app_name: str) -> None:
    """max_idle replaces connections below min_size at checkout (psycopg_pool never does)."""
    pool = _pool(postgres, app_name, min_size=1, max_idle=0.5)
    pool.sweep_interval = 3600.0  # prove the checkout path, not the sweep
    with pool:
        pool.wait(timeout=20)
        first = _pid(pool)
        time.sleep(0.7)
        second = _pid(pool)
    assert first != second
    assert pool.get_stats()["connections_expired_idle"] >= 1


def test_lifetime_expiry_at_checkout(postgres: PostgresServer, app_name: str) -> None:
    """max_lifetime is enforced when a connection is handed out, not only when returned."""
    pool = _pool(postgres, app_name, min_size=1, max_lifetime=0.5, max_idle=0.4)
    pool.sweep_interval = 3600.0
    with pool:
        pool.wait(timeout=20)
        first = _pid(pool)
        time.sleep(0.3)
        assert _pid(pool) == first  # used recently, young: reused
        time.sleep(0.3)
        assert _pid(pool) != first
    assert pool.get_stats()["connections_expired_lifetime"] >= 1


def test_exhaustion_names_the_pool_and_its_size(postgres: PostgresServer, app_name: str) -> None:
    """An exhausted pool raises sockwise's PoolTimeout naming the pool and its size."""
    with _pool(postgres, app_name, min_size=1, name="tiny") as pool:
        held = pool.getconn()
        try:
            start = time.monotonic()
            with pytest.raises(PoolTimeout) as info:
                pool.getconn(timeout=0.3)
            assert time.monotonic() - start < 5
        finally:
            pool.putconn(held)
        assert isinstance(info.value, psycopg_pool.PoolTimeout)
        msg = str(info.value)
        assert "pool 'tiny'" in msg and "size 1/1" in msg and "1 in use" in msg
        assert "0.30 s" in msg and "0 other clients waiting" in msg
        assert "'tiny' 0 in use, 1 idle, 0 waiting, size 1/1" in repr(pool)


@pytest.mark.slow
def test_fast_restart_heals_without_manual_action(
    fresh_postgres: PostgresServer, app_name: str
) -> None:
    """After a fast restart, checkouts succeed again once the server is back."""
    with _pool(fresh_postgres, app_name, min_size=2, reconnect_timeout=60) as pool:
        pool.wait(timeout=20)
        before = _pids(pool, 2)
        fresh_postgres.restart("fast")
        after = _pids(pool, 4)
        assert not before & after
        stats = pool.get_stats()
        assert stats["connections_dead_poll"] + stats["connections_dead_ping"] >= 2


def test_check_callable_runs_on_every_checkout(postgres: PostgresServer, app_name: str) -> None:
    """A check callable keeps psycopg_pool's meaning: it runs on every checkout."""
    calls: list[int] = []
    with _pool(postgres, app_name, min_size=1, check=lambda c: calls.append(1)) as pool:
        for _ in range(3):
            _pid(pool)
    assert len(calls) == 3


def test_check_none_never_pays_a_round_trip(postgres: PostgresServer, app_name: str) -> None:
    """check=None keeps the free poll but never pings, even after the bypass window."""
    pool = _pool(postgres, app_name, min_size=1, check=None)
    pool.alive_bypass = 0.0
    with pool:
        pool.wait(timeout=20)
        time.sleep(0.05)
        _pid(pool)
        assert pool.get_stats()["checkouts_pinged"] == 0


def test_idle_members_are_registered_with_the_guard(
    postgres: PostgresServer, app_name: str
) -> None:
    """With a guard running, idle members are marked pooled and unmarked when handed out."""
    import os

    from sockwise import guard
    from sockwise.guard._origin import is_pooled

    with guard.Guard(), _pool(postgres, app_name, min_size=1) as pool:
        pool.wait(timeout=20)
        with pool.connection() as conn:
            inode = os.fstat(conn.pgconn.socket).st_ino
            assert not is_pooled(inode)
        assert is_pooled(inode)
        guard.unregister_pooled(conn.pgconn.socket)


def test_concurrent_checkouts_after_kill_all_succeed(
    postgres: PostgresServer, app_name: str
) -> None:
    """Threads checking out while every backend was just killed all get working connections."""
    from concurrent.futures import ThreadPoolExecutor

    with _pool(postgres, app_name, min_size=4) as pool:
        pool.wait(timeout=20)
        assert terminate(postgres, app_name) == 4
        wait_for(lambda: socket_states(postgres.port).count("CLOSE_WAIT") == 4, what="CLOSE_WAIT")
        with ThreadPoolExecutor(4) as ex:
            pids = list(ex.map(lambda _: _pid(pool), range(40)))
        assert len(pids) == 40
        assert pool.get_stats()["connections_dead_poll"] == 4


def test_dead_connection_report_names_an_ipv6_server_in_brackets(
    app_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A server on ``::1``: the pool's report of a dead connection says ``[::1]:port``."""
    require_or_skip(None if socket.has_ipv6 else "no IPv6 on this machine")
    with PostgresServer.start(host="::1") as server:
        pool = ConnectionPool(
            server.dsn,
            min_size=1,
            kwargs={"application_name": app_name},
            open=False,
        )
        with pool, caplog.at_level(logging.INFO, logger="sockwise"):
            pool.wait(timeout=20)
            assert terminate(server, app_name) == 1
            wait_for(lambda: "CLOSE_WAIT" in socket_states(server.port), what="CLOSE_WAIT")
            with pool.connection() as conn:
                conn.execute("SELECT 1")
    found = [r.getMessage() for r in caplog.records if "found dead" in r.getMessage()]
    assert found, caplog.text
    assert f"connection to [::1]:{server.port} found dead" in found[0]
