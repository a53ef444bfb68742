"""A ``requests`` integration: a :class:`Session` and an :class:`HTTPAdapter` on sockwise pools.

``sockwise.requests.Session()`` is a ``requests.Session`` whose ``http://`` and ``https://``
adapters use :class:`sockwise.urllib3.PoolManager` (policy socket options, idle expiry,
peer-closed reaping, stats). To keep an existing session, mount the adapter::

    session.mount("https://", sockwise.requests.HTTPAdapter(policy=Policy.interactive()))

requests waits forever when no ``timeout`` is passed; this adapter substitutes
:func:`sockwise.urllib3.default_timeout` (connect bound from the policy) for a missing one.
Needs the ``requests`` extra (``pip install sockwise[requests]``).
"""

from __future__ import annotations

from sockwise._errors import missing_extra

try:
    import requests as _requests
    from requests.adapters import DEFAULT_POOLBLOCK, DEFAULT_POOLSIZE, DEFAULT_RETRIES
except ModuleNotFoundError as _exc:
    raise missing_extra("sockwise.requests", "requests") from _exc

from typing import Any

from urllib3.util.retry import Retry

from sockwise._idle import UNSET as _UNSET
from sockwise._idle import resolve_idle_timeout
from sockwise.policy import Policy, resolve_policy
from sockwise.urllib3 import PoolManager, PoolStats, ProxyManager, default_timeout

__all__ = ["HTTPAdapter", "Session"]


class HTTPAdapter(_requests.adapters.HTTPAdapter):
    """requests' ``HTTPAdapter`` on :class:`sockwise.urllib3.PoolManager` / ``ProxyManager``.

    Args:
        pool_connections: Number of per-host pools to keep (as requests).
        pool_maxsize: Connections kept per pool (as requests).
        max_retries: requests' retry setting (as requests).
        pool_block: Block when a pool is exhausted (as requests).
        policy: The socket policy for every connection (``None``: the policy in force, see
            :func:`~sockwise.policy.resolve_policy`).
        idle_timeout: Seconds a connection may sit idle before it is closed instead of reused
            (default :data:`sockwise.urllib3.DEFAULT_IDLE_TIMEOUT`; ``None``: never).

    .. versionadded:: 0.1.0

    """

    __attrs__ = [*_requests.adapters.HTTPAdapter.__attrs__, "policy", "idle_timeout"]

    def __init__(
        self,
        pool_connections: int = DEFAULT_POOLSIZE,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        max_retries: int | Retry = DEFAULT_RETRIES,
        pool_block: bool = DEFAULT_POOLBLOCK,
        *,
        policy: Policy | None = None,
        idle_timeout: float | None = _UNSET,
    ) -> None:
        self.policy = resolve_policy(policy)
        self.idle_timeout = resolve_idle_timeout(idle_timeout)
        super().__init__(pool_connections, pool_maxsize, max_retries, pool_block)

    def init_poolmanager(
        self,
        connections: int,
        maxsize: int,
        block: bool = DEFAULT_POOLBLOCK,
        **pool_kwargs: Any,
    ) -> None:
        """Build the sockwise ``PoolManager`` (called by requests; not for user code)."""
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = PoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            policy=self.policy,
            idle_timeout=self.idle_timeout,
            **pool_kwargs,
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Return a sockwise ``ProxyManager`` for *proxy* (SOCKS proxies: requests' own)."""
        if proxy in self.proxy_manager or proxy.lower().startswith("socks"):
            return super().proxy_manager_for(proxy, **proxy_kwargs)
        manager = self.proxy_manager[proxy] = ProxyManager(
            proxy,
            proxy_headers=self.proxy_headers(proxy),
            num_pools=self._pool_connections,
            maxsize=self._pool_maxsize,
            block=self._pool_block,
            policy=self.policy,
            idle_timeout=self.idle_timeout,
            **proxy_kwargs,
        )
        return manager

    def send(  # type: ignore[override]
        self,
        request: _requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        **kwargs: Any,
    ) -> _requests.Response:
        """Send *request*; a missing ``timeout`` becomes the policy's bounded default."""
        if timeout is None:
            timeout = default_timeout(self.policy)
        return super().send(request, stream=stream, timeout=timeout, **kwargs)

    def stats(self) -> PoolStats:
        """Counters summed over this adapter's pool manager and proxy managers."""
        total = self.poolmanager.stats() if isinstance(self.poolmanager, PoolManager) else None
        out = total or PoolStats()
        for manager in self.proxy_manager.values():
            if isinstance(manager, ProxyManager):
                out = out + manager.stats()
        return out


class Session(_requests.Session):
    """A ``requests.Session`` with :class:`HTTPAdapter` mounted for ``http://`` and ``https://``.

    Args:
        policy: The socket policy for every connection (``None``: the policy in force, see
            :func:`~sockwise.policy.resolve_policy`).
        idle_timeout: Seconds a connection may sit idle before it is closed instead of reused.

    .. versionadded:: 0.1.0

    """

    def __init__(self, *, policy: Policy | None = None, idle_timeout: float | None = _UNSET):
        super().__init__()
        self.adapter = HTTPAdapter(policy=policy, idle_timeout=idle_timeout)
        self.policy = self.adapter.policy
        self.mount("https://", self.adapter)
        self.mount("http://", self.adapter)

    def stats(self) -> PoolStats:
        """The mounted sockwise adapter's counters (see :class:`sockwise.urllib3.PoolStats`)."""
        return self.adapter.stats()

    def __repr__(self) -> str:
        return f"<sockwise.requests.Session [{self.stats().summary()}]>"
