"""An aiohttp integration: a ``TCPConnector`` whose sockets carry the policy's options.

aiohttp (3.10+) takes a ``socket_factory`` on ``TCPConnector``: a callable receiving the
``getaddrinfo`` tuple and returning an unconnected socket. :func:`socket_factory` builds one that
applies a :class:`~sockwise.Policy` before the connect; :class:`TCPConnector` uses it and sets
``keepalive_timeout`` to :data:`sockwise.urllib3.DEFAULT_IDLE_TIMEOUT` (aiohttp's 15 s is above
the keep-alive timeout of Node, Apache and gunicorn). Needs the ``aiohttp`` extra
(``pip install sockwise[aiohttp]``).
"""

from __future__ import annotations

from sockwise._errors import missing_extra

try:
    import aiohttp as _aiohttp
    from aiohappyeyeballs import AddrInfoType, SocketFactoryType
except ModuleNotFoundError as _exc:
    raise missing_extra("sockwise.aiohttp", "aiohttp") from _exc

import socket
from typing import Any

from sockwise._idle import UNSET as _UNSET
from sockwise._idle import resolve_idle_timeout
from sockwise.policy import Policy, resolve_policy

__all__ = ["TCPConnector", "socket_factory"]


def socket_factory(
    policy: Policy | None = None, base: SocketFactoryType | None = None
) -> SocketFactoryType:
    """A ``socket_factory`` for aiohttp's ``TCPConnector`` that applies *policy*.

    Args:
        policy: The socket policy (``None``: the policy in force, see
            :func:`~sockwise.policy.resolve_policy`).
        base: A factory creating the socket (default: ``socket.socket(family, type, proto)``);
            the policy is applied to what it returns.

    .. versionadded:: 0.1.0

    """
    checked = resolve_policy(policy)

    def factory(addr_info: AddrInfoType) -> socket.socket:
        if base is not None:
            sock = base(addr_info)
        else:
            family, type_, proto, _, _ = addr_info
            sock = socket.socket(family=family, type=type_, proto=proto)
        try:
            checked.apply(sock)
        except OSError:
            sock.close()
            raise
        return sock

    factory.__qualname__ = f"sockwise_socket_factory[{checked!r}]"
    return factory


class TCPConnector(_aiohttp.TCPConnector):
    """aiohttp's ``TCPConnector`` applying the policy to every socket it opens.

    Args:
        policy: The socket policy (``None``: the policy in force, see
            :func:`~sockwise.policy.resolve_policy`).
        idle_timeout: ``keepalive_timeout`` unless given (default
            :data:`sockwise.urllib3.DEFAULT_IDLE_TIMEOUT`; ignored with ``force_close``).
        **kwargs: aiohttp's ``TCPConnector`` arguments; a ``socket_factory`` you pass creates
            the socket and the policy is applied to it.

    .. versionadded:: 0.1.0

    """

    def __init__(
        self, *, policy: Policy | None = None, idle_timeout: float | None = _UNSET, **kwargs: Any
    ) -> None:
        self.policy = resolve_policy(policy)
        expiry = resolve_idle_timeout(idle_timeout)
        kwargs["socket_factory"] = socket_factory(self.policy, kwargs.get("socket_factory"))
        if "keepalive_timeout" not in kwargs and not kwargs.get("force_close"):
            kwargs["keepalive_timeout"] = expiry
        super().__init__(**kwargs)
