"""psycopg_pool's semantics, kept: a failing ``check``, lost connections, outages (issue 8).

psycopg's own pool tests are not on the package index; these are their equivalents for each
behaviour sockwise changes or must keep, run side by side against psycopg_pool itself where the
two must agree, on the suite's real PostgreSQL, for the sync and the asyncio pool.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

import psycopg
import psycopg_pool
import pytest
from psycopg.conninfo import conninfo_to_dict
from sw_psycopg_helpers import socket_states, wait_for

from sockwise.psycopg import PROBE_INTERVAL, AsyncConnectionPool, ConnectionPool, PoolTimeout
from sockwise.testing import PostgresServer

pytestmark = pytest.mark.postgres

CHECKOUT = 2.5  # seconds: psycopg_pool's backoff tries at ~0, ~0, ~1 and ~2.5 s within it
SYNC_POOLS = [ConnectionPool, psycopg_pool.ConnectionPool]
ASYNC_POOLS = [AsyncConnectionPool, psycopg_pool.AsyncConnectionPool]


def _backends(server: PostgresServer, app_name: str) -> int:
    rows = server.execute(
        f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app_name}'"
    )
    return int(str(rows[0][0]))


def _assert_backed_off(calls: list[float], elapsed: float, stats: dict[str, int]) -> None:
    """psycopg_pool's AttemptWithBackoff: once at once, then ~1 s, ~2 s ... no storm."""
    assert 3 <= len(calls) <= 4, calls
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] < 0.5  # the first retry comes at once
    assert 0.9 - 0.5 <= gaps[1] <= 1.1 + 0.5  # then 1 s +- 10 % jitter (tolerance 0.5 s)
    assert CHECKOUT - 0.1 <= elapsed <= CHECKOUT + 0.5
    assert stats["connections_num"] == 1  # the same connection, returned and tried again
    assert stats.get("connections_lost", 0) == 0


@pytest.mark.parametrize("cls", SYNC_POOLS)
def test_failing_check_backs_off_and_keeps_the_connection(
    postgres: PostgresServer, app_name: str, cls: type[Any]
) -> None:
    """A check that always fails: one connection, tried with backoff, then PoolTimeout."""
    calls: list[float] = []

    def check(conn: psycopg.Connection[Any]) -> None:
        calls.append(time.monotonic())
        raise RuntimeError("rejected by the application")

    kwargs = {"application_name": app_name}
    with cls(postgres.dsn, min_size=1, kwargs=kwargs, check=check, open=False) as pool:
        pool.wait(timeout=20)
        start = time.monotonic()
        with pytest.raises(psycopg_pool.PoolTimeout):
            pool.getconn(timeout=CHECKOUT)
        elapsed = time.monotonic() - start
        backends = _backends(postgres, app_name)
        stats = pool.get_stats()
    _assert_backed_off(calls, elapsed, stats)
    assert backends == 1


@pytest.mark.parametrize("cls", ASYNC_POOLS)
@pytest.mark.asyncio
async def test_async_failing_check_backs_off_and_keeps_the_connection(
    postgres: PostgresServer, app_name: str, cls: type[Any]
) -> None:
    """The asyncio pools back off the same way on a check that always fails."""
    calls: list[float] = []

    async def check(conn: psycopg.AsyncConnection[Any]) -> None:
        calls.append(time.monotonic())
        raise RuntimeError("rejected by the application")

    kwargs = {"application_name": app_name}
    async with cls(postgres.dsn, min_size=1, kwargs=kwargs, check=check, open=False) as pool:
        await pool.wait(timeout=20)
        start = time.monotonic()
        with pytest.raises(psycopg_pool.PoolTimeout):
            await pool.getconn(timeout=CHECKOUT)
        elapsed = time.monotonic() - start
        backends = await asyncio.to_thread(_backends, postgres, app_name)
        stats = pool.get_stats()
    _assert_backed_off(calls, elapsed, stats)
    assert backends == 1


_KILL_SELF = "SELECT pg_terminate_backend(pg_backend_pid())"


@pytest.mark.parametrize("cls", SYNC_POOLS)
def test_connection_broken_by_the_check_counts_as_lost(
    postgres: PostgresServer, app_name: str, cls: type[Any]
) -> None:
    """A check that breaks its connection: replaced, counted in connections_lost, then served."""
    killed: list[int] = []

    def check(conn: psycopg.Connection[Any]) -> None:
        if not killed:
            killed.append(conn.info.backend_pid)
            conn.execute(_KILL_SELF)

    kwargs = {"application_name": app_name}
    with cls(postgres.dsn, min_size=1, kwargs=kwargs, check=check, open=False) as pool:
        pool.wait(timeout=20)
        with pool.connection(timeout=10) as conn:
            assert conn.info.backend_pid != killed[0]
        stats = pool.get_stats()
    assert stats["connections_lost"] == 1
    assert stats["connections_num"] == 2


@pytest.mark.parametrize("cls", ASYNC_POOLS)
@pytest.mark.asyncio
async def test_async_connection_broken_by_the_check_counts_as_lost(
    postgres: PostgresServer, app_name: str, cls: type[Any]
) -> None:
    """The asyncio pools count a connection the check broke in connections_lost too."""
    killed: list[int] = []

    async def check(conn: psycopg.AsyncConnection[Any]) -> None:
        if not killed:
            killed.append(conn.info.backend_pid)
            await conn.execute(_KILL_SELF)

    kwargs = {"application_name": app_name}
    async with cls(postgres.dsn, min_size=1, kwargs=kwargs, check=check, open=False) as pool:
        await pool.wait(timeout=20)
        async with pool.connection(timeout=10) as conn:
            assert conn.info.backend_pid != killed[0]
        stats = pool.get_stats()
    assert stats["connections_lost"] == 1
    assert stats["connections_num"] == 2


def test_every_dead_connection_counts_as_lost(postgres: PostgresServer, app_name: str) -> None:
    """Dead idle members found by the poll count in psycopg_pool's connections_lost."""
    kwargs = {"application_name": app_name}
    with ConnectionPool(postgres.dsn, min_size=2, kwargs=kwargs, open=False) as pool:
        pool.wait(timeout=20)
        postgres.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE application_name = '{app_name}'"
        )
        wait_for(lambda: socket_states(postgres.port).count("CLOSE_WAIT") == 2, what="FIN")
        deadline = time.monotonic() + 10
        while pool.get_stats().get("connections_lost", 0) < 2 and time.monotonic() < deadline:
            with pool.connection(timeout=10) as conn:
                conn.execute("SELECT 1")
            time.sleep(0.05)
        stats = pool.get_stats()
    assert stats["connections_lost"] == 2 == stats["connections_dead_poll"]


# -- outages ---------------------------------------------------------------------------------

FAST = 0.5  # "fails fast": within max(0.5 s, 10 %) of a refused connection attempt (~1 ms)


def _sync_outage(server: PostgresServer, app_name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kwargs = {"application_name": app_name}
    with ConnectionPool(server.dsn, min_size=2, kwargs=kwargs, timeout=10, open=False) as pool:
        pool.wait(timeout=20)
        server.stop("fast")
        for key in ("first", "second"):  # the first finds the dead members; the second: at once
            start = time.monotonic()
            with pytest.raises(PoolTimeout) as info:
                pool.getconn()
            out[key] = (time.monotonic() - start, info.value)
        before = pool.get_stats()["connections_num"]
        start = time.monotonic()
        failed = 0
        while time.monotonic() - start < 2.0:  # a busy application during the outage
            with pytest.raises(PoolTimeout):
                pool.getconn()
            failed += 1
            time.sleep(0.01)
        out["attempts"] = pool.get_stats()["connections_num"] - before
        out["failed"] = failed
        server.start_again()
        time.sleep(PROBE_INTERVAL)  # the last failed attempt is stale: a checkout tries again
        start = time.monotonic()
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        out["back"] = time.monotonic() - start
        out["stats"] = pool.get_stats()
    return out


def _assert_outage(out: dict[str, Any]) -> None:
    for key in ("first", "second"):
        elapsed, err = out[key]
        assert elapsed < FAST, (key, elapsed)
        assert "the server is unreachable" in str(err)
        assert "last connection failure: connecting failed" in " ".join(err.__notes__)
    # At most one attempt of ours per PROBE_INTERVAL, plus psycopg_pool's backed-off ones.
    assert out["failed"] > 50
    assert out["attempts"] <= 2.0 / PROBE_INTERVAL + 4, out["attempts"]
    assert out["back"] < FAST + 1.0  # one connection (scram) once the server answers again
    assert out["stats"]["requests_failed_fast"] >= out["failed"]


@pytest.mark.slow
def test_outage_fails_fast_without_a_storm_and_heals(
    fresh_postgres: PostgresServer, app_name: str
) -> None:
    """Server down: checkouts fail at once (not after timeout=10), ~1 attempt/s; back: served."""
    _assert_outage(_sync_outage(fresh_postgres, app_name))


@pytest.mark.slow
@pytest.mark.asyncio
async def test_async_outage_fails_fast_without_a_storm_and_heals(
    fresh_postgres: PostgresServer, app_name: str
) -> None:
    """The asyncio pool fails fast during an outage and heals the same way."""
    out: dict[str, Any] = {}
    kwargs = {"application_name": app_name}
    pool = AsyncConnectionPool(
        fresh_postgres.dsn, min_size=2, kwargs=kwargs, timeout=10, open=False
    )
    async with pool:
        await pool.wait(timeout=20)
        await asyncio.to_thread(fresh_postgres.stop, "fast")
        for key in ("first", "second"):
            start = time.monotonic()
            with pytest.raises(PoolTimeout) as info:
                await pool.getconn()
            out[key] = (time.monotonic() - start, info.value)
        before = pool.get_stats()["connections_num"]
        start = time.monotonic()
        failed = 0
        while time.monotonic() - start < 2.0:
            with pytest.raises(PoolTimeout):
                await pool.getconn()
            failed += 1
            await asyncio.sleep(0.01)
        out["attempts"] = pool.get_stats()["connections_num"] - before
        out["failed"] = failed
        await asyncio.to_thread(fresh_postgres.start_again)
        await asyncio.sleep(PROBE_INTERVAL)
        start = time.monotonic()
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        out["back"] = time.monotonic() - start
        out["stats"] = pool.get_stats()
    _assert_outage(out)


@pytest.mark.slow
def test_psycopg_pool_with_a_check_waits_the_whole_timeout(
    fresh_postgres: PostgresServer, app_name: str
) -> None:
    """The contrast (documented): psycopg_pool with a check waits its timeout when down."""
    kwargs = {"application_name": app_name}
    check = psycopg_pool.ConnectionPool.check_connection
    with psycopg_pool.ConnectionPool(
        fresh_postgres.dsn, min_size=1, kwargs=kwargs, timeout=1.5, check=check, open=False
    ) as pool:
        pool.wait(timeout=20)
        fresh_postgres.stop("fast")
        start = time.monotonic()
        with pytest.raises(psycopg_pool.PoolTimeout):
            pool.getconn()
        assert 1.5 - 0.1 <= time.monotonic() - start <= 1.5 + 0.5


@pytest.mark.parametrize("check", [None, psycopg_pool.ConnectionPool.check_connection])
def test_outage_with_another_check_waits_as_psycopg_pool(
    fresh_postgres: PostgresServer, app_name: str, check: Any
) -> None:
    """check=None or a callable keeps psycopg_pool's wait for the whole checkout timeout."""
    kwargs = {"application_name": app_name}
    with ConnectionPool(
        fresh_postgres.dsn, min_size=1, kwargs=kwargs, timeout=1.0, check=check, open=False
    ) as pool:
        pool.wait(timeout=20)
        fresh_postgres.stop("fast")
        time.sleep(0.2)  # the FIN arrives
        start = time.monotonic()
        with pytest.raises(PoolTimeout) as info:
            pool.getconn()
        assert 1.0 - 0.1 <= time.monotonic() - start <= 1.0 + 0.5
        assert "couldn't hand out a connection within 1.00 s" in str(info.value)


@pytest.mark.parametrize("cls", [ConnectionPool, AsyncConnectionPool])
def test_full_server_is_a_wait_not_an_outage(
    fresh_postgres: PostgresServer, app_name: str, cls: type[Any]
) -> None:
    """Growth refused (too many clients) while a member is lent out: checkouts wait for it."""
    password = conninfo_to_dict(fresh_postgres.dsn).get("password", "")
    fresh_postgres.execute(f"CREATE ROLE sockwise_app LOGIN PASSWORD '{password}'")
    fresh_postgres.execute("ALTER SYSTEM SET max_connections = 6")
    fresh_postgres.restart("fast")
    # 3 slots are reserved for superusers (superuser_reserved_connections): 3 for the role; the
    # test takes 2 with plain connections, the pool gets the third and cannot grow.
    hogs = [psycopg.connect(fresh_postgres.dsn, user="sockwise_app") for _ in range(2)]
    try:
        if cls is ConnectionPool:
            _full_server_sync(fresh_postgres, app_name)
        else:
            asyncio.run(_full_server_async(fresh_postgres, app_name))
    finally:
        for hog in hogs:
            hog.close()


def _full_server_sync(server: PostgresServer, app_name: str) -> None:
    kwargs = {"application_name": app_name, "user": "sockwise_app"}
    kw: dict[str, Any] = {"kwargs": kwargs, "min_size": 1, "max_size": 2, "open": False}
    with ConnectionPool(server.dsn, timeout=3, **kw) as pool:
        pool.wait(timeout=20)
        held = pool.getconn()
        try:
            with pytest.raises(PoolTimeout) as info:
                pool.getconn(timeout=1.0)  # growth fails: "too many clients"
        finally:
            pool.putconn(held)
        assert "within 1.00 s" in str(info.value)  # waited: not failed fast
        with pool.connection(timeout=5) as conn:
            conn.execute("SELECT 1")


async def _full_server_async(server: PostgresServer, app_name: str) -> None:
    kwargs = {"application_name": app_name, "user": "sockwise_app"}
    kw: dict[str, Any] = {"kwargs": kwargs, "min_size": 1, "max_size": 2, "open": False}
    async with AsyncConnectionPool(server.dsn, timeout=3, **kw) as pool:
        await pool.wait(timeout=20)
        held = await pool.getconn()
        try:
            with pytest.raises(PoolTimeout) as info:
                await pool.getconn(timeout=1.0)
        finally:
            await pool.putconn(held)
        assert "within 1.00 s" in str(info.value)
        async with pool.connection(timeout=5) as conn:
            await conn.execute("SELECT 1")


def _pool_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The ``psycopg.pool`` INFO lines captured, with pool names made alike."""
    return [
        r.getMessage().replace("'sw'", "'p'").replace("'bare'", "'p'")
        for r in caplog.records
        if r.name == "psycopg.pool" and r.levelno == logging.INFO
    ]


@pytest.mark.parametrize("failing_check", [False, True])
def test_checkouts_log_what_psycopg_pool_logs(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture, failing_check: bool
) -> None:
    """psycopg_pool's INFO lines of a checkout and return, in the same order (logging set up
    for psycopg_pool sees the same lines from a sockwise pool)."""
    seen: dict[str, list[str]] = {}
    checks = {"n": 0}

    def check(conn: psycopg.Connection[Any]) -> None:
        checks["n"] += 1
        if checks["n"] == 1:
            raise RuntimeError("rejected once")

    for name, cls in (("sw", ConnectionPool), ("bare", psycopg_pool.ConnectionPool)):
        checks["n"] = 0
        extra = {"check": check} if failing_check else {}
        with cls(postgres.dsn, min_size=1, name=name, open=False, **extra) as pool:
            pool.wait(timeout=20)
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="psycopg.pool"):
                with pool.connection(timeout=5) as conn:
                    conn.execute("SELECT 1")
                seen[name] = _pool_log(caplog)
    assert seen["sw"] == seen["bare"]
    assert "connection requested from 'p'" in seen["sw"]
    assert "connection given by 'p'" in seen["sw"]
    assert ("connection failed check: rejected once" in seen["sw"]) is failing_check


@pytest.mark.asyncio
async def test_async_checkouts_log_what_psycopg_pool_logs(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: dict[str, list[str]] = {}
    for name, cls in (("sw", AsyncConnectionPool), ("bare", psycopg_pool.AsyncConnectionPool)):
        async with cls(postgres.dsn, min_size=1, name=name, open=False) as pool:
            await pool.wait(timeout=20)
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="psycopg.pool"):
                async with pool.connection(timeout=5) as conn:
                    await conn.execute("SELECT 1")
                seen[name] = _pool_log(caplog)
    assert seen["sw"] == seen["bare"]
    assert "connection given by 'p'" in seen["sw"]


@pytest.mark.parametrize("cls", SYNC_POOLS)
def test_connection_block_commits_rolls_back_and_returns_as_psycopg_pool(
    postgres: PostgresServer, cls: type[Any]
) -> None:
    """``with pool.connection()``: commit on success, rollback on an error (the same exception
    object goes on), the connection back in the pool either way, ``usage_ms`` counted."""
    table = f"sw_cm_{cls.__module__.replace('.', '_')}"
    postgres.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (x int)")
    with cls(postgres.dsn, min_size=1, max_size=1, open=False) as pool:
        pool.wait(timeout=20)
        with pool.connection(timeout=5) as conn:
            conn.execute(f"INSERT INTO {table} VALUES (1)")
        boom = ValueError("application error")
        caught: BaseException | None = None
        try:
            with pool.connection(timeout=5) as conn:
                conn.execute(f"INSERT INTO {table} VALUES (2)")
                raise boom
        except ValueError as exc:
            caught = exc
        assert caught is boom
        with pool.connection(timeout=5) as again:
            assert again is conn  # returned, and the only member
            rows = again.execute(f"SELECT x FROM {table} ORDER BY x").fetchall()
        stats = pool.get_stats()
    assert rows == [(1,)]
    assert stats["requests_num"] == 3
    assert "usage_ms" in stats
    assert stats.get("connections_lost", 0) == 0


@pytest.mark.parametrize("cls", ASYNC_POOLS)
@pytest.mark.asyncio
async def test_async_connection_block_commits_rolls_back_and_returns_as_psycopg_pool(
    postgres: PostgresServer, cls: type[Any]
) -> None:
    table = f"sw_acm_{cls.__module__.replace('.', '_')}"
    postgres.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (x int)")
    async with cls(postgres.dsn, min_size=1, max_size=1, open=False) as pool:
        await pool.wait(timeout=20)
        async with pool.connection(timeout=5) as conn:
            await conn.execute(f"INSERT INTO {table} VALUES (1)")
        boom = ValueError("application error")
        caught: BaseException | None = None
        try:
            async with pool.connection(timeout=5) as conn:
                await conn.execute(f"INSERT INTO {table} VALUES (2)")
                raise boom
        except ValueError as exc:
            caught = exc
        assert caught is boom
        async with pool.connection(timeout=5) as again:
            assert again is conn
            cur = await again.execute(f"SELECT x FROM {table} ORDER BY x")
            rows = await cur.fetchall()
        stats = pool.get_stats()
    assert rows == [(1,)]
    assert stats["requests_num"] == 3
    assert stats.get("connections_lost", 0) == 0
