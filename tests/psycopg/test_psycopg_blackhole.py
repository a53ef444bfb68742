"""A PostgreSQL server that stops answering (black-holed in a network namespace): no hang."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import sockwise
from sockwise.psycopg import AsyncConnectionPool, ConnectionPool, PoolTimeout
from sockwise.testing import NetnsPair, PostgresServer, pg_unavailable_reason, require_or_skip

pytestmark = [pytest.mark.postgres, pytest.mark.netns, pytest.mark.slow]

# Dead peer declared after 1 s idle + probes 1 s apart, aborted at user_timeout=3 s.
POLICY = sockwise.Policy(
    keepalive_idle=1, keepalive_interval=1, keepalive_count=2, user_timeout=3, connect_timeout=2
)
CHECKOUT_TIMEOUT = 2.0
MARGIN = 6.0  # generous: the machine is shared


@pytest.fixture
def server_in_ns(netns_pair: NetnsPair) -> Iterator[tuple[NetnsPair, PostgresServer]]:
    require_or_skip(pg_unavailable_reason())
    server = PostgresServer.start(netns=netns_pair.server_ns, host=netns_pair.server_addr)
    try:
        yield netns_pair, server
    finally:
        server.close()


def _sync_scenario(dsn: str, blackhole: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sockwise.ConfigurationWarning)
        pool: ConnectionPool = ConnectionPool(
            dsn, min_size=2, open=False, policy=POLICY, timeout=CHECKOUT_TIMEOUT, name="bh"
        )
    with pool:
        pool.wait(timeout=20)
        start = 0.0
        try:
            with pool.connection() as held:
                held.execute("SELECT 1")
                blackhole()
                start = time.monotonic()
                held.execute("SELECT 1")
        except psycopg.OperationalError as ex:
            out["inflight"] = (time.monotonic() - start, ex)
        time.sleep(0.6)  # the idle member is past the alive-bypass window: it gets a ping
        start = time.monotonic()
        try:
            pool.getconn()
        except PoolTimeout as ex:
            out["checkout"] = (time.monotonic() - start, ex)
    return out


def test_blackholed_server_fails_fast_and_explained(
    server_in_ns: tuple[NetnsPair, PostgresServer],
) -> None:
    """In-flight query fails within user_timeout; checkout raises PoolTimeout within its bound."""
    pair, server = server_in_ns
    out = pair.run_in_client(_sync_scenario, server.dsn, pair.blackhole, timeout=60)
    elapsed, err = out["inflight"]
    assert elapsed < 3 + MARGIN
    assert "timed out" in str(err).lower()
    notes = " ".join(getattr(err, "__notes__", []))
    assert f"{server.host}:{server.port}" in notes and "user_timeout=3 s" in notes
    elapsed, timeout_err = out["checkout"]
    # check="auto" fails fast once a connection attempt failed (issue 8): never later than the
    # checkout timeout, earlier when the pool's reconnection attempt to the black hole failed.
    assert elapsed < CHECKOUT_TIMEOUT + MARGIN
    assert "pool 'bh'" in str(timeout_err) and "size" in str(timeout_err)
    notes = " ".join(timeout_err.__notes__)
    assert "sockwise: last connection failure" in notes, notes


async def _async_scenario(dsn: str, blackhole: Any) -> tuple[float, PoolTimeout, dict[str, int]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sockwise.ConfigurationWarning)
        pool: AsyncConnectionPool = AsyncConnectionPool(
            dsn, min_size=1, open=False, policy=POLICY, timeout=CHECKOUT_TIMEOUT, name="abh"
        )
    async with pool:
        await pool.wait(timeout=20)
        blackhole()
        await asyncio.sleep(0.6)
        start = time.monotonic()
        with pytest.raises(PoolTimeout) as info:
            await pool.getconn()
        return time.monotonic() - start, info.value, pool.get_stats()


def test_async_checkout_from_blackholed_server_is_bounded(
    server_in_ns: tuple[NetnsPair, PostgresServer],
) -> None:
    """The asyncio pool's checkout raises PoolTimeout within its bound, never hangs."""
    pair, server = server_in_ns
    elapsed, err, stats = pair.run_in_client(
        lambda: asyncio.run(_async_scenario(server.dsn, pair.blackhole)), timeout=60
    )
    assert CHECKOUT_TIMEOUT - 0.1 <= elapsed < CHECKOUT_TIMEOUT + MARGIN
    assert "pool 'abh'" in str(err)
    assert stats["connections_dead_ping"] == 1  # the ping was cut off, not waited out
    assert "did not answer a health check" in " ".join(err.__notes__)
