"""Name the line that checked a connection out of a stock psycopg_pool pool.

psycopg_pool opens its connections in worker threads, where no application frame is on the
stack; a connection checked out and never returned is the application's leak, and the line to
name is the one that called ``getconn()``. While a guard runs, the public ``getconn`` of
``psycopg_pool.ConnectionPool`` and ``AsyncConnectionPool`` is wrapped to tell
:func:`~sockwise.guard.note_origin` (``kind="checkout"``) about the connection handed out -- one
stack walk and one ``fstat`` per checkout, only while a guard runs. The wrappers are installed on
top of whatever is there and removed only if they are still the attribute (chaining discipline);
subclasses that define their own ``getconn`` (sockwise's pools, which tell the guard themselves)
are not affected. psycopg_pool is looked up in :data:`sys.modules`, never imported.
"""

from __future__ import annotations

import sys
import threading
from contextlib import suppress
from typing import Any

from sockwise.guard import _origin

_lock = threading.Lock()
_installed: list[tuple[type, Any, Any]] = []  # (class, previous attribute or None, wrapper)


def _note(conn: Any) -> None:
    if _origin.recording():
        with suppress(Exception):  # the guard's bookkeeping never fails a checkout
            _origin.note_origin(conn.pgconn.socket, kind="checkout", owner=conn, depth=3)


def install() -> None:
    """Wrap psycopg_pool's ``getconn`` methods if psycopg_pool is imported (once)."""
    module = sys.modules.get("psycopg_pool")
    if module is None or _installed:
        return
    with _lock:
        if _installed:
            return
        sync_cls = getattr(module, "ConnectionPool", None)
        async_cls = getattr(module, "AsyncConnectionPool", None)
        if sync_cls is not None and callable(sync_cls.__dict__.get("getconn")):
            sync_original = sync_cls.__dict__["getconn"]

            def getconn(self: Any, timeout: float | None = None) -> Any:
                conn = sync_original(self, timeout)
                _note(conn)
                return conn

            getconn.__doc__ = sync_original.__doc__
            setattr(sync_cls, "getconn", getconn)  # noqa: B010
            _installed.append((sync_cls, sync_original, getconn))
        if async_cls is not None and callable(async_cls.__dict__.get("getconn")):
            async_original = async_cls.__dict__["getconn"]

            async def agetconn(self: Any, timeout: float | None = None) -> Any:
                conn = await async_original(self, timeout)
                _note(conn)
                return conn

            agetconn.__doc__ = async_original.__doc__
            setattr(async_cls, "getconn", agetconn)  # noqa: B010
            _installed.append((async_cls, async_original, agetconn))


def uninstall() -> None:
    """Put the original ``getconn`` back where the wrapper is still in place."""
    with _lock:
        while _installed:
            cls, original, wrapper = _installed.pop()
            if cls.__dict__.get("getconn") is wrapper:
                setattr(cls, "getconn", original)  # noqa: B010


def after_fork_in_child() -> None:
    """A fresh lock: another thread of the parent may have held it at fork time."""
    global _lock
    _lock = threading.Lock()
