"""PostgreSQL pools that stay healthy: psycopg_pool's pools with a :class:`sockwise.Policy`.

``sockwise.psycopg.ConnectionPool`` and ``AsyncConnectionPool`` take every psycopg_pool argument
plus ``policy=``; switching is a one-line import change. Needs the ``psycopg`` extra
(``psycopg`` and ``psycopg-pool``).
"""

from sockwise.psycopg._common import (
    ALIVE_BYPASS,
    DEFAULT_MAX_IDLE,
    DEFAULT_MAX_LIFETIME,
    MIDDLEBOX_MIN,
    PING_TIMEOUT,
    SWEEP_INTERVAL,
)
from sockwise.psycopg._errors import PoolTimeout
from sockwise.psycopg._pool import ConnectionPool
from sockwise.psycopg._pool_async import AsyncConnectionPool

__all__ = [
    "ALIVE_BYPASS",
    "DEFAULT_MAX_IDLE",
    "DEFAULT_MAX_LIFETIME",
    "MIDDLEBOX_MIN",
    "PING_TIMEOUT",
    "SWEEP_INTERVAL",
    "AsyncConnectionPool",
    "ConnectionPool",
    "PoolTimeout",
]
