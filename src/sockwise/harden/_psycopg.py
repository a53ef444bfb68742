"""The psycopg 3 part of :func:`sockwise.harden`.

libpq opens its sockets in C, out of reach of the ``socket`` hooks, so the policy travels as
libpq keywords instead. ``psycopg.connect`` is a bound method captured at import, so patching
``psycopg.connect`` would miss code that imported it earlier; every path (``psycopg.connect``,
``Connection.connect``, psycopg_pool) goes through the ``_get_connection_params`` class method,
which is patched on ``Connection`` and ``AsyncConnection`` to add the policy's keywords that
the caller did not set -- in keyword arguments, in the conninfo string, or through
``PGCONNECT_TIMEOUT``.

``tcp_user_timeout`` exists from libpq 12 on; an older libpq rejects the whole connection
string for an unknown keyword, so it is only added where ``psycopg.pq.version()`` is 12 or newer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from types import ModuleType
from typing import Any

from sockwise.policy import Policy

_saved: list[tuple[type, Any]] = []  # (class, original classmethod object)
_saved_gen: list[tuple[type, Any]] = []  # (class, its own _connect_gen or None if inherited)
_policy_params: dict[str, int] = {}

#: libpq keywords that also come from an environment variable (libpq-envars).
_ENV_FOR_KEYWORD = {"connect_timeout": "PGCONNECT_TIMEOUT"}
#: The first libpq version (``PQlibVersion()``) that knows each keyword newer than libpq 10.
LIBPQ_MIN_VERSION = {"tcp_user_timeout": 120000}


def supported(params: dict[str, int], version: int | None = None) -> dict[str, int]:
    """*params* without the keywords the libpq in use (or libpq *version*) does not know."""
    if version is None:
        import psycopg

        version = psycopg.pq.version()
    return {k: v for k, v in params.items() if version >= LIBPQ_MIN_VERSION.get(k, 0)}


def merge(params: dict[str, Any], extra: dict[str, int]) -> dict[str, Any]:
    """Add *extra* keywords to libpq *params*, never overriding what the caller set."""
    for key, value in extra.items():
        if key in params or os.environ.get(_ENV_FOR_KEYWORD.get(key, "")):
            continue
        params[key] = value
    return params


def install(module: ModuleType, policy: Policy) -> list[str]:
    """Patch psycopg's connection classes (the ``psycopg`` package, once imported)."""
    import psycopg

    _policy_params.clear()
    _policy_params.update(supported(policy.libpq_params()))
    if _saved:
        return [f"psycopg.{cls.__name__}._get_connection_params" for cls, _ in _saved]

    sync_original = psycopg.Connection.__dict__["_get_connection_params"].__func__
    async_original = psycopg.AsyncConnection.__dict__["_get_connection_params"].__func__

    def _get_connection_params(cls: Any, conninfo: str, **kwargs: Any) -> Any:
        return merge(sync_original(cls, conninfo, **kwargs), _policy_params)

    async def _aget_connection_params(cls: Any, conninfo: str, **kwargs: Any) -> Any:
        return merge(await async_original(cls, conninfo, **kwargs), _policy_params)

    replacements: tuple[tuple[type, Callable[..., Any]], ...] = (
        (psycopg.Connection, _get_connection_params),
        (psycopg.AsyncConnection, _aget_connection_params),
    )
    for cls, func in replacements:
        _saved.append((cls, cls.__dict__["_get_connection_params"]))
        func.__doc__ = "Connection parameters with the sockwise policy's libpq keywords merged in."
        setattr(cls, "_get_connection_params", classmethod(func))  # noqa: B010
    _note_connects(psycopg)
    return [f"psycopg.{cls.__name__}._get_connection_params" for cls, _ in _saved]


def _note_connects(psycopg: ModuleType) -> None:
    """Tell the guard which application line opened each libpq socket (the hooks cannot see it).

    ``_connect_gen`` (inherited from psycopg's base connection, sync and async alike) builds the
    connection object once libpq has connected; the guard walks the stack from there to the
    caller of ``connect`` (nothing happens when no guard runs).
    """
    from sockwise.guard import note_origin

    original = psycopg.Connection._connect_gen.__func__

    def _connect_gen(cls: Any, conninfo: str = "") -> Any:
        conn = yield from original(cls, conninfo)
        with suppress(Exception):  # the guard's bookkeeping never fails a connect
            note_origin(conn.pgconn.socket, owner=conn)
        return conn

    for cls in (psycopg.Connection, psycopg.AsyncConnection):
        _saved_gen.append((cls, cls.__dict__.get("_connect_gen")))
        setattr(cls, "_connect_gen", classmethod(_connect_gen))  # noqa: B010


def uninstall() -> None:
    """Restore psycopg's own ``_get_connection_params`` and ``_connect_gen``."""
    while _saved:
        cls, original = _saved.pop()
        setattr(cls, "_get_connection_params", original)  # noqa: B010
    while _saved_gen:
        cls, gen = _saved_gen.pop()
        if gen is None:
            delattr(cls, "_connect_gen")
        else:
            setattr(cls, "_connect_gen", gen)  # noqa: B010
    _policy_params.clear()
