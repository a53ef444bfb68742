"""An httpx integration: transports and clients whose connections carry the policy's options.

httpx takes ``socket_options`` on its transports; :class:`HTTPTransport` and
:class:`AsyncHTTPTransport` fill them from a :class:`~sockwise.Policy` (the caller's own
``socket_options`` are applied after, so they win) and set ``keepalive_expiry`` to
:data:`sockwise.urllib3.DEFAULT_IDLE_TIMEOUT` unless ``limits`` is given. :class:`Client` and
:class:`AsyncClient` build such transports for direct *and* proxied connections (``proxy=``,
``mounts`` from the environment), keeping every other httpx argument -- httpcore's proxy
classes take ``socket_options`` but drop them, so proxied transports get them through a
wrapped network backend. httpx's own default
timeout (5 s) already bounds every request. Needs the ``httpx`` extra
(``pip install sockwise[httpx]``).
"""

from __future__ import annotations

from sockwise._errors import missing_extra

try:
    import httpx as _httpx
except ModuleNotFoundError as _exc:
    raise missing_extra("sockwise.httpx", "httpx") from _exc

import logging
from collections.abc import Iterable
from typing import Any, ClassVar

import httpcore

from sockwise._idle import UNSET as _UNSET
from sockwise._idle import resolve_idle_timeout
from sockwise._log import log_once
from sockwise.policy import Policy, resolve_policy

__all__ = ["AsyncClient", "AsyncHTTPTransport", "Client", "HTTPTransport"]

#: httpcore's ``SOCKET_OPTION``.
_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


def _limits(idle_timeout: float | None) -> _httpx.Limits:
    return _httpx.Limits(
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=idle_timeout
    )


def _default_limits(idle_timeout: object, kwargs: dict[str, Any]) -> None:
    """Set ``kwargs["limits"]`` from *idle_timeout* unless the caller gave ``limits``."""
    expiry = resolve_idle_timeout(idle_timeout)
    if kwargs.get("limits") is None:
        kwargs["limits"] = _limits(expiry)


class _BackendWrapper:
    """What both option-adding network backends share: the inner backend, the merge."""

    def __init__(self, inner: Any, options: list[_SocketOption]) -> None:
        self._inner = inner
        self._options = options

    def _merged(self, socket_options: Iterable[_SocketOption] | None) -> list[_SocketOption]:
        return [*self._options, *(socket_options or ())]


class _OptionsBackend(_BackendWrapper, httpcore.NetworkBackend):
    """Adds socket options to every ``connect_tcp`` (httpcore's proxies drop them)."""

    _inner: httpcore.NetworkBackend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        options = self._merged(socket_options)
        return self._inner.connect_tcp(host, port, timeout, local_address, options)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - no unix sockets for proxies
        return self._inner.connect_unix_socket(path, timeout, socket_options)

    def sleep(self, seconds: float) -> None:  # pragma: no cover - delegation
        self._inner.sleep(seconds)


class _AsyncOptionsBackend(_BackendWrapper, httpcore.AsyncNetworkBackend):
    """The async twin of :class:`_OptionsBackend`."""

    _inner: httpcore.AsyncNetworkBackend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        options = self._merged(socket_options)
        return await self._inner.connect_tcp(host, port, timeout, local_address, options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - no unix sockets for proxies
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - delegation
        await self._inner.sleep(seconds)


def _fix_proxy_backend(
    transport: Any, options: list[_SocketOption], wrapper: type[_BackendWrapper]
) -> None:
    """Give proxied connections the options: wrap the proxy pool's network backend.

    httpcore's ``HTTPProxy`` accepts ``socket_options`` but never passes them to the
    connections it creates.
    """
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if pool is None or backend is None:  # Defensive: httpcore internals changed
        log_once(
            "httpx-proxy-backend",
            logging.WARNING,
            "sockwise: cannot apply the policy to httpx proxied connections with this httpcore",
        )
        return
    pool._network_backend = wrapper(backend, options)


class _PolicyTransport:
    """The construction both transports share (the sync or async base comes after it)."""

    #: Wraps the proxy pool's network backend (sync or async).
    _backend_wrapper: ClassVar[type[_BackendWrapper]]

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        idle_timeout: float | None = _UNSET,
        socket_options: Iterable[_SocketOption] | None = None,
        **kwargs: Any,
    ) -> None:
        self.policy = resolve_policy(policy)
        kwargs["socket_options"] = [*self.policy.socket_options(), *(socket_options or ())]
        _default_limits(idle_timeout, kwargs)
        super().__init__(**kwargs)
        if kwargs.get("proxy") is not None:
            _fix_proxy_backend(self, kwargs["socket_options"], self._backend_wrapper)


class HTTPTransport(_PolicyTransport, _httpx.HTTPTransport):
    """httpx's ``HTTPTransport`` with the policy's socket options on every connection.

    Args:
        policy: The socket policy (``None``: the policy in force, see
            :func:`~sockwise.policy.resolve_policy`).
        idle_timeout: ``keepalive_expiry`` when ``limits`` is not given (default
            :data:`sockwise.urllib3.DEFAULT_IDLE_TIMEOUT`).
        socket_options: Extra options, applied after the policy's.
        **kwargs: httpx's ``HTTPTransport`` arguments (``verify``, ``limits``, ``proxy``, ...).

    .. versionadded:: 0.1.0

    """

    _backend_wrapper = _OptionsBackend


class AsyncHTTPTransport(_PolicyTransport, _httpx.AsyncHTTPTransport):
    """httpx's ``AsyncHTTPTransport`` with the policy's socket options on every connection.

    The async twin of :class:`HTTPTransport`: the same arguments, and ``**kwargs`` are httpx's
    ``AsyncHTTPTransport`` arguments.

    .. versionadded:: 0.1.0

    """

    _backend_wrapper = _AsyncOptionsBackend


class _PolicyClient:
    """The construction both clients share (the sync or async base comes after it)."""

    #: The transport class built for direct and proxied connections.
    _transport_class: ClassVar[type[_PolicyTransport]]

    def __init__(
        self, *, policy: Policy | None = None, idle_timeout: float | None = _UNSET, **kwargs: Any
    ) -> None:
        self.policy = resolve_policy(policy)
        _default_limits(idle_timeout, kwargs)
        super().__init__(**kwargs)

    def _init_transport(self, *args: Any, **kwargs: Any) -> Any:
        transport = kwargs.pop("transport", None)
        if transport is not None:
            return transport
        return self._transport_class(*args, policy=self.policy, **kwargs)

    def _init_proxy_transport(self, proxy: _httpx.Proxy, *args: Any, **kwargs: Any) -> Any:
        return self._transport_class(*args, proxy=proxy, policy=self.policy, **kwargs)


class Client(_PolicyClient, _httpx.Client):
    """httpx's ``Client`` whose direct and proxied transports apply the policy.

    Args:
        policy: The socket policy (``None``: the policy in force, see
            :func:`~sockwise.policy.resolve_policy`).
        idle_timeout: ``keepalive_expiry`` when ``limits`` is not given (default
            :data:`sockwise.urllib3.DEFAULT_IDLE_TIMEOUT`).
        **kwargs: httpx's ``Client`` arguments. A ``transport=`` you pass is used as is.

    .. versionadded:: 0.1.0

    """

    _transport_class = HTTPTransport


class AsyncClient(_PolicyClient, _httpx.AsyncClient):
    """httpx's ``AsyncClient`` whose direct and proxied transports apply the policy.

    The async twin of :class:`Client`: the same arguments, and ``**kwargs`` are httpx's
    ``AsyncClient`` arguments (a ``transport=`` you pass is used as is).

    .. versionadded:: 0.1.0

    """

    _transport_class = AsyncHTTPTransport
