"""``PoolManager`` and ``ProxyManager`` that build sockwise pools.

urllib3's managers build their pools in ``_new_pool`` from ``connection_pool_kw``, whose keys
also form the pool key; ``policy`` and ``idle_timeout`` are therefore not put there but added
to each new pool's keyword arguments.

Pools evicted from the manager's LRU (``num_pools``) or cleared are *not* closed, exactly as in
urllib3 2.x: a thread may still be using an evicted pool (closing it brought back urllib3 bug
#1252, ``ClosedPoolError`` in that thread). Such a pool closes its idle connections when it is
garbage collected (urllib3's own finalizer). For :meth:`PoolManager.stats` the manager keeps a
weak reference to every sockwise pool it built, and a ``weakref.finalize`` per pool folds the
pool's counters into a running total when the pool is collected -- nothing is closed.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import urllib3

from sockwise._idle import UNSET as _UNSET
from sockwise._idle import resolve_idle_timeout
from sockwise.policy import Policy, resolve_policy
from sockwise.urllib3._pool import HTTPConnectionPool, HTTPSConnectionPool
from sockwise.urllib3._stats import Counters, PoolStats


class _Built:
    """The sockwise pools a manager built: alive ones by weak reference, gone ones summed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pools: weakref.WeakSet[HTTPConnectionPool] = weakref.WeakSet()
        self.gone = PoolStats()

    def add(self, pool: HTTPConnectionPool) -> None:
        with self.lock:
            self.pools.add(pool)
        weakref.finalize(pool, self._fold, pool._sw)

    def _fold(self, counters: Counters) -> None:
        done = counters.snapshot(0)
        with self.lock:
            self.gone = self.gone + PoolStats(
                created=done.created,
                reused=done.reused,
                closed_idle=done.closed_idle,
                closed_peer=done.closed_peer,
                retried=done.retried,
            )

    def alive(self) -> list[HTTPConnectionPool]:
        with self.lock:
            return list(self.pools)


def _is_sockwise_pool_class(cls: object) -> bool:
    """Whether *cls* is a sockwise pool class (a duck-typed pool class or factory is not)."""
    return isinstance(cls, type) and issubclass(cls, HTTPConnectionPool)


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
        self._built = _Built()

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> urllib3.HTTPConnectionPool:
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        if _is_sockwise_pool_class(self.pool_classes_by_scheme[scheme]):
            context["policy"] = self.policy
            context["idle_timeout"] = self.idle_timeout
        pool = super()._new_pool(scheme, host, port, context)
        if isinstance(pool, HTTPConnectionPool):
            self._built.add(pool)
        return pool

    def live_pools(self) -> list[HTTPConnectionPool]:
        """The sockwise pools this manager built that are still alive.

        Includes pools evicted from the LRU or cleared that some thread still holds.
        """
        return self._built.alive()

    def stats(self) -> PoolStats:
        """Counters summed over all pools this manager built, evicted and collected ones too."""
        pools = self._built.alive()
        with self._built.lock:
            total = self._built.gone
        for pool in pools:
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
