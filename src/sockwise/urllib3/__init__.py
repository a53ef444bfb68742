"""urllib3 pools that apply a :class:`~sockwise.Policy` and keep their connections healthy.

Drop-in replacements: ``from sockwise.urllib3 import PoolManager`` instead of
``from urllib3 import PoolManager``; every urllib3 argument still works, plus ``policy=`` and
``idle_timeout=``. Needs the ``urllib3`` extra (``pip install sockwise[urllib3]``).
"""

from __future__ import annotations

from sockwise._errors import missing_extra

try:
    import urllib3 as _urllib3  # noqa: F401
except ModuleNotFoundError as _exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("sockwise.urllib3", "urllib3") from _exc

from sockwise.urllib3._dead import DeadPeerError, DeadPeerProtocolError, DeadPeerReadTimeoutError
from sockwise.urllib3._manager import PoolManager, ProxyManager
from sockwise.urllib3._pool import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    IDEMPOTENT_METHODS,
    HTTPConnectionPool,
    HTTPSConnectionPool,
    default_timeout,
    live_pools,
)
from sockwise.urllib3._reaper import REAP_INTERVAL
from sockwise.urllib3._stats import PoolStats

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "IDEMPOTENT_METHODS",
    "REAP_INTERVAL",
    "DeadPeerError",
    "DeadPeerProtocolError",
    "DeadPeerReadTimeoutError",
    "HTTPConnectionPool",
    "HTTPSConnectionPool",
    "PoolManager",
    "PoolStats",
    "ProxyManager",
    "default_timeout",
    "live_pools",
]
