"""sockwise.psycopg.AsyncConnectionPool against a real PostgreSQL (pytest-asyncio)."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import psycopg_pool
import pytest
from sw_psycopg_helpers import socket_states, terminate, wait_for

import sockwise
from sockwise.psycopg import AsyncConnectionPool, PoolTimeout
from sockwise.testing import PostgresServer

pytestmark = pytest.mark.postgres


def _pool(server: PostgresServer, app_name: str, **kw: Any) -> AsyncConnectionPool:
    kw.setdefault("min_size", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sockwise.ConfigurationWarning)
        pool: AsyncConnectionPool = AsyncConnectionPool(
            server.dsn, kwargs={"application_name": app_name}, open=False, **kw
        )
    return pool


async def _pid(pool: AsyncConnectionPool) -> int:
    async with pool.connection(timeout=10) as conn:
        cur = await conn.execute("SELECT pg_backend_pid()")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.asyncio
async def test_async_policy_keywords_reach_libpq(postgres: PostgresServer, app_name: str) -> None:
    """Async connections carry the policy's keywords too."""
    async with _pool(postgres, app_name, policy=sockwise.Policy.interactive()) as pool:
        async with pool.connection() as conn:
            opts = {i.keyword.decode(): (i.val or b"").decode() for i in conn.pgconn.info}
    assert (opts["keepalives_idle"], opts["tcp_user_timeout"]) == ("10", "20000")
    assert opts["connect_timeout"] == "3"


@pytest.mark.asyncio
async def test_async_terminated_backends_never_reach_the_caller(
    postgres: PostgresServer, app_name: str
) -> None:
    """Killed backends (CLOSE_WAIT) are replaced; every checkout succeeds."""
    async with _pool(postgres, app_name, min_size=3) as pool:
        await pool.wait(timeout=20)
        old = {await _pid(pool) for _ in range(3)}
        assert terminate(postgres, app_name) == 3
        await asyncio.to_thread(
            wait_for, lambda: socket_states(postgres.port).count("CLOSE_WAIT") == 3
        )
        new = {await _pid(pool) for _ in range(6)}
        assert not old & new
        assert pool.get_stats()["connections_dead_poll"] == 3
        assert "CLOSE_WAIT" not in socket_states(postgres.port)


@pytest.mark.asyncio
async def test_async_idle_member_is_pinged_after_the_bypass_window(
    postgres: PostgresServer, app_name: str
) -> None:
    """A connection idle past alive_bypass gets a round trip; a busy one does not."""
    pool = _pool(postgres, app_name, min_size=1)
    pool.alive_bypass = 0.2
    async with pool:
        await pool.wait(timeout=20)
        await asyncio.sleep(0.3)
        first = await _pid(pool)
        assert await _pid(pool) == first
        stats = pool.get_stats()
        assert (stats["checkouts_pinged"], stats["checkouts_fast"]) == (1, 1)


@pytest.mark.asyncio
async def test_async_exhaustion_names_the_pool(postgres: PostgresServer, app_name: str) -> None:
    """An exhausted async pool raises PoolTimeout naming the pool and its size."""
    async with _pool(postgres, app_name, min_size=1, name="atiny") as pool:
        held = await pool.getconn()
        try:
            start = time.monotonic()
            with pytest.raises(psycopg_pool.PoolTimeout) as info:
                await pool.getconn(timeout=0.3)
            assert time.monotonic() - start < 5
        finally:
            await pool.putconn(held)
    assert isinstance(info.value, PoolTimeout)
    assert "pool 'atiny'" in str(info.value) and "size 1/1" in str(info.value)


@pytest.mark.asyncio
@pytest.mark.slow
async def test_async_fast_restart_heals(fresh_postgres: PostgresServer, app_name: str) -> None:
    """After a fast restart the async pool serves checkouts again by itself."""
    async with _pool(fresh_postgres, app_name, reconnect_timeout=60) as pool:
        await pool.wait(timeout=20)
        before = {await _pid(pool) for _ in range(2)}
        await asyncio.to_thread(fresh_postgres.restart, "fast")
        after = {await _pid(pool) for _ in range(4)}
        assert not before & after
