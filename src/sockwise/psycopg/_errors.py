"""Errors of the psycopg integration, catchable with the ``except`` clauses written for psycopg."""

from __future__ import annotations

import psycopg_pool

from sockwise._errors import SockwiseError


class PoolTimeout(psycopg_pool.PoolTimeout, SockwiseError):
    """No connection could be handed out in time; the message names the pool and its size.

    Subclasses :class:`psycopg_pool.PoolTimeout` (itself a ``psycopg.OperationalError``), so
    existing handlers keep catching it.

    Attributes:
        pool_name: The name of the pool.
        timeout: The checkout timeout that expired, in seconds.
        size: Connections the pool holds (in use, idle or being opened).
        max_size: The most connections the pool may hold.

    """

    __module__ = "sockwise.psycopg"

    def __init__(self, msg: str, *, pool_name: str, timeout: float, size: int, max_size: int):
        super().__init__(msg)
        self.pool_name = pool_name
        self.timeout = timeout
        self.size = size
        self.max_size = max_size

    def __reduce__(self) -> tuple[object, ...]:  # pickling keeps the structured attributes
        return (_rebuild, (str(self), self.pool_name, self.timeout, self.size, self.max_size))


def _rebuild(msg: str, pool_name: str, timeout: float, size: int, max_size: int) -> PoolTimeout:
    return PoolTimeout(msg, pool_name=pool_name, timeout=timeout, size=size, max_size=max_size)
