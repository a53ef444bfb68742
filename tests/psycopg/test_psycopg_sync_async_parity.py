"""The sync and async sockwise pools cannot drift apart: same methods, by name.

Every piece of logic that needs no ``await`` lives in ``SockwiseMixin`` (``_common.py``); the two
pool classes hold only their I/O-bound twins. A public method, an override of psycopg_pool, or
a sockwise hook (``_sw_*``) defined in one class and not in the other fails here.
"""

from __future__ import annotations

import inspect

import psycopg_pool

from sockwise.psycopg import AsyncConnectionPool, ConnectionPool
from sockwise.psycopg._common import SockwiseMixin


def _own_methods(cls: type, base: type) -> set[str]:
    """Methods *cls* defines itself that are public, override *base*, or are sockwise hooks."""
    inherited = {name for klass in base.__mro__ for name in vars(klass)}
    names = set()
    for name, value in vars(cls).items():
        if not (inspect.isroutine(value) or isinstance(value, property)):
            continue
        if not name.startswith("_") or name in inherited or name.startswith("_sw_"):
            names.add(name)
    return names


def _mismatch(sync: type, sync_base: type, aio: type, aio_base: type) -> tuple[set[str], ...]:
    a, b = _own_methods(sync, sync_base), _own_methods(aio, aio_base)
    return a - b, b - a


def test_pools_define_the_same_methods() -> None:
    only_sync, only_async = _mismatch(
        ConnectionPool,
        psycopg_pool.ConnectionPool,
        AsyncConnectionPool,
        psycopg_pool.AsyncConnectionPool,
    )
    assert (only_sync, only_async) == (set(), set())
    # The comparison covers the I/O-bound twins (a vacuous set would pass anything).
    assert {"__init__", "getconn", "connection", "_connect", "_sw_vet", "_sw_sweep"} <= (
        _own_methods(ConnectionPool, psycopg_pool.ConnectionPool)
    )


def test_async_twins_are_coroutines_where_psycopg_pool_awaits() -> None:
    for name in _own_methods(ConnectionPool, psycopg_pool.ConnectionPool):
        base = getattr(psycopg_pool.AsyncConnectionPool, name, None)
        if base is None:
            continue
        ours = inspect.iscoroutinefunction(vars(AsyncConnectionPool)[name])
        assert ours == inspect.iscoroutinefunction(base), name


def test_shared_logic_is_not_redefined_in_either_pool() -> None:
    shared = {name for name in vars(SockwiseMixin) if name.startswith("_sw_")}
    assert "_sw_vet_free" in shared
    assert shared.isdisjoint(vars(ConnectionPool))
    assert shared.isdisjoint(vars(AsyncConnectionPool))


def test_the_check_sees_a_method_only_one_side_has() -> None:
    class Sync(ConnectionPool):  # type: ignore[type-arg]
        def drain(self) -> None:
            pass

        def _sw_extra(self) -> None:
            pass

    class Async(AsyncConnectionPool):  # type: ignore[type-arg]
        def _check_open_getconn(self) -> None:  # an override of psycopg_pool
            pass

    only_sync, only_async = _mismatch(Sync, ConnectionPool, Async, AsyncConnectionPool)
    assert only_sync == {"drain", "_sw_extra"}
    assert only_async == {"_check_open_getconn"}
