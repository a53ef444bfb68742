"""PostgreSQL pools that stay healthy: psycopg_pool's pools with a :class:`sockwise.Policy`.

``sockwise.psycopg.ConnectionPool`` and ``AsyncConnectionPool`` take every psycopg_pool argument
plus ``policy=``; switching is a one-line import change. Needs the ``psycopg`` extra
(``psycopg`` and ``psycopg-pool``).
"""

try:
    import psycopg as _psycopg  # noqa: F401
    import psycopg_pool as _psycopg_pool  # noqa: F401
except ModuleNotFoundError as _exc:  # pragma: no cover - exercised in a subprocess test
    raise ModuleNotFoundError(
        f"sockwise.psycopg needs {_exc.name}: pip install sockwise[psycopg]", name=_exc.name
    ) from _exc

from sockwise.psycopg._common import (
    ALIVE_BYPASS,
    DEFAULT_MAX_IDLE,
    DEFAULT_MAX_LIFETIME,
    MIDDLEBOX_MIN,
    PING_TIMEOUT,
    PROBE_INTERVAL,
    SWEEP_INTERVAL,
    live_pools,
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
    "PROBE_INTERVAL",
    "SWEEP_INTERVAL",
    "AsyncConnectionPool",
    "ConnectionPool",
    "PoolTimeout",
    "live_pools",
]
