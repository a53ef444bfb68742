"""register_pool / pool_stats: validation, weak references, broken pools."""

from __future__ import annotations

import gc

import pytest

from sockwise.metrics import pool_stats, register_pool, unregister_pool


class DictPool:
    """A pool in the psycopg_pool style: get_stats() returns a mapping."""

    def __init__(self, name: str, **stats: int) -> None:
        self.name = name
        self.stats_ = stats

    def get_stats(self) -> dict[str, object]:
        return {**self.stats_, "label": "not a number", "flag": True}


class BrokenPool:
    def get_stats(self) -> dict[str, int]:
        raise RuntimeError("closed")


def test_register_pool_publishes_numbers_only() -> None:
    """Numbers are published under the pool's name; strings and bools are left out."""
    pool = DictPool("db", pool_size=4, requests_num=10)
    name = register_pool(pool)
    try:
        kind, stats = pool_stats()["db"]
        assert stats == {"pool_size": 4.0, "requests_num": 10.0}
        assert kind.endswith("DictPool")
    finally:
        unregister_pool(name)
    assert "db" not in pool_stats()


def test_register_pool_is_weak() -> None:
    """A registered pool that is garbage-collected disappears from the stats."""
    register_pool(DictPool("temp", size=1))
    gc.collect()
    assert "temp" not in pool_stats()


def test_register_pool_rejects_bad_input() -> None:
    """Objects without stats and duplicate names are refused with a clear message."""
    with pytest.raises(TypeError, match=r"register_pool\(pool=42\): expected an object"):
        register_pool(42)
    first = DictPool("dup")
    register_pool(first)
    try:
        with pytest.raises(ValueError, match=r"name='dup'\): a different pool has this name"):
            register_pool(DictPool("dup"))
        assert register_pool(first) == "dup"  # the same pool again is fine
    finally:
        unregister_pool("dup")


def test_broken_pool_is_skipped() -> None:
    """A pool whose stats raise is left out; the others are still published."""
    broken, good = BrokenPool(), DictPool("good", n=1)
    register_pool(broken, "broken")
    register_pool(good)
    try:
        found = pool_stats()
        assert "broken" not in found
        assert found["good"][1] == {"n": 1.0}
    finally:
        unregister_pool("broken")
        unregister_pool("good")


def test_sockwise_http_pools_are_published_without_registration(http_origin) -> None:
    """A live sockwise urllib3 pool appears under scheme://host:port, and not once closed."""
    from sockwise.urllib3 import HTTPConnectionPool, PoolManager

    port = int(http_origin.rsplit(":", 1)[1])
    label = f"http://127.0.0.1:{port}"
    with HTTPConnectionPool("127.0.0.1", port) as pool:
        for _ in range(2):
            assert pool.request("GET", "/").status == 200
        kind, stats = pool_stats()[label]
        assert kind == "sockwise.HTTPConnectionPool"
        assert stats["created"] == 1
        assert stats["reused"] == 1
        # A manager registered by hand publishes its pools summed, never twice.
        with PoolManager() as pm:
            pm.request("GET", http_origin + "/")
            name = register_pool(pm, "manager")
            try:
                found = pool_stats()
                assert found["manager"][1]["created"] == 1
                assert [k for k in found if k.startswith(label)] == [label]
            finally:
                unregister_pool(name)
    assert label not in pool_stats()


@pytest.mark.postgres
def test_sockwise_psycopg_pools_are_published_without_registration(postgres) -> None:
    """A live sockwise psycopg pool appears under its name with psycopg_pool's counters."""
    from sockwise.psycopg import ConnectionPool

    with ConnectionPool(postgres.dsn, min_size=1, max_size=2, name="metrics-db") as pool:
        with pool.connection(timeout=10) as conn:
            conn.execute("select 1")
        _, stats = pool_stats()["metrics-db"]
        assert stats["requests_num"] >= 1
        assert stats["pool_max"] == 2
    assert "metrics-db" not in pool_stats()
