"""``PoolManager`` and ``ProxyManager`` that build sockwise pools.

urllib3's managers build their pools in ``_new_pool`` from ``connection_pool_kw``, whose keys
also form the pool key; ``policy`` and ``idle_timeout`` are therefore not put there but added
to each new pool's keyword arguments. Pools evicted from the manager's LRU (``num_pools``) or
cleared have their counters folded into :meth:`PoolManager.stats` before they go.
"""

from __future__ import annotations

import threading
from typing import Any

import urllib3

from sockwise._idle import UNSET as _UNSET
from sockwise._idle import resolve_idle_timeout
from sockwise.policy import Policy, resolve_policy
from sockwise.urllib3._pool import HTTPConnectionPool, HTTPSConnectionPool
from sockwise.urllib3._stats import PoolStats


class _Retired:
    """Counters of pools the manager has let go (evicted or cleared)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = PoolStats()

    def __call__(self, pool: urllib3.HTTPConnectionPool) -> None:
        if isinstance(pool, HTTPConnectionPool):
            done = pool.stats()
            with self.lock:
                self.total = self.total + PoolStats(
                    created=done.created,
                    reused=done.reused,
                    closed_idle=done.closed_idle,
                    closed_peer=done.closed_peer,
                    retried=done.retried,
                )
        pool.close()


class _SockwiseManager(urllib3.PoolManager):
    """Shared implementation of :class:`PoolManager` and :class:`ProxyManager`."""

    def __init__(
        self,
        *args: Any,
        policy: Policy | None = None,
        idle_timeout: float | None = _UNSET,
        **kwargs: Any,
    ) -> None:
        self.policy: Policy = resolve_policy(policy)
        self.idle_timeout: float | None = resolve_idle_timeout(idle_timeout)
        super().__init__(*args, **kwargs)
        self.pool_classes_by_scheme = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}
        self._retired = _Retired()
        self.pools.dispose_func = self._retired

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> urllib3.HTTPConnectionPool:
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        if issubclass(self.pool_classes_by_scheme[scheme], HTTPConnectionPool):
            context["policy"] = self.policy
            context["idle_timeout"] = self.idle_timeout
        return super()._new_pool(scheme, host, port, context)

    def live_pools(self) -> list[HTTPConnectionPool]:
        """The sockwise pools this manager holds right now."""
        with self.pools.lock:
            pools = list(self.pools._container.values())
        return [p for p in pools if isinstance(p, HTTPConnectionPool)]

    def stats(self) -> PoolStats:
        """Counters summed over all pools, including those already evicted or cleared."""
        total = self._retired.total
        for pool in self.live_pools():
            total = total + pool.stats()
        return total

    def __repr__(self) -> str:
        cls = type(self)
        return (
            f"<{cls.__module__.rsplit('._', 1)[0]}.{cls.__qualname__} "
            f"{len(self.pools)} pools [{self.stats().summary()}]>"
        )


class PoolManager(_SockwiseManager):
    """urllib3's ``PoolManager`` building sockwise pools (policy, idle expiry, reaping, stats).

    Args:
        *args: urllib3's positional arguments (``num_pools``, ``headers``).
        policy: The socket policy for every connection (``None``: the policy in force, see
            :func:`~sockwise.policy.resolve_policy`).
        idle_timeout: Seconds a connection may sit idle before it is closed instead of reused
            (default :data:`DEFAULT_IDLE_TIMEOUT`; ``None``: never expire).
        **kwargs: urllib3's keyword arguments, passed to every pool.

    .. versionadded:: 0.1.0

    """


class ProxyManager(_SockwiseManager, urllib3.ProxyManager):
    """urllib3's ``ProxyManager`` whose proxied connections get the policy's socket options.

    urllib3 gives connections through a proxy no socket options at all (not even
    ``TCP_NODELAY``); these get the full policy, like direct ones.

    Args:
        *args: urllib3's positional arguments (``proxy_url``, ``num_pools``, ``headers``, ...).
        policy: The socket policy for every connection (``None``: the policy in force, see
            :func:`~sockwise.policy.resolve_policy`).
        idle_timeout: Seconds a connection may sit idle before it is closed instead of reused.
        **kwargs: urllib3's keyword arguments (``proxy_headers``, ``proxy_ssl_context``, ...).

    .. versionadded:: 0.1.0

    """
