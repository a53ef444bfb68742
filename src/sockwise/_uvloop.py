"""uvloop for the hook layer: its sockets are connected and accepted by libuv, not by Python.

Theory of operation: ``uvloop.Loop.create_connection(host, port)`` creates and connects its
socket in C, and its servers accept in C, so the ``socket.socket`` patch never sees them. Two
replacements on ``uvloop.Loop`` (installed by :mod:`sockwise._hooks` with the rest of the patch)
bring them back:

* ``create_connection`` with a host and port resolves the address with the loop's own
  ``getaddrinfo``, creates a ``socket.socket`` for each address in turn and connects it with the
  loop's ``sock_connect`` -- which calls ``socket.socket.connect``, so the connect hooks run before
  the SYN leaves, as for any other client -- then hands the connected socket to uvloop's own
  ``create_connection(sock=...)``. uvloop tries the addresses in the same order and raises the
  same errors. Calls with ``sock=`` or ``local_addr=`` go to uvloop unchanged (a ``sock=`` was
  connected through ``socket.socket`` already; aiohttp does exactly that).
* ``create_server`` (and so ``asyncio.start_server`` and uvicorn) runs the listen hooks on each
  listening socket, and the accept hooks on each accepted connection when its protocol's
  ``connection_made`` runs: the protocol returned by the application's factory gets an instance
  attribute ``connection_made`` for that one call (deleted before the protocol's own method
  runs). A protocol with ``__slots__`` cannot take it; its connections still get the policy,
  which Linux copies from the listening socket to every accepted one.

The hooks need a ``_socket.socket``; uvloop hands out a *pseudo-socket* (no weak references, no C
methods). A :class:`_View` -- a ``_socket.socket`` on the same descriptor, detached right after
the hooks ran, so it never closes anything -- stands in for it; its ``fileno()`` asks the
pseudo-socket, which uvloop sets to ``-1`` when it closes the connection. The guard resolves a
recorded socket's descriptor at its next tick, so the last :data:`KEEP` views are kept alive.
"""

from __future__ import annotations

import _socket
import contextlib
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, Final

#: How many recent views stay alive for the guard to resolve (a few hundred bytes each).
KEEP: Final = 4096

_kept: deque[_View] = deque(maxlen=KEEP)


class _Bindings:
    """What the hook layer provides (set by :mod:`sockwise._hooks`; no import cycle)."""

    active: Callable[[], bool] = staticmethod(lambda: False)
    accept: Callable[[Any], None] = staticmethod(lambda sock: None)
    listen: Callable[[Any, tuple[int, ...]], None] = staticmethod(lambda sock, args: None)


bindings = _Bindings()


class _View(_socket.socket):
    """A ``_socket.socket`` standing in for a uvloop pseudo-socket (detached after use)."""

    __slots__ = ("__weakref__", "_pseudo")
    _pseudo: Any

    def fileno(self) -> int:
        """The pseudo-socket's descriptor, ``-1`` once uvloop closed it."""
        return int(self._pseudo.fileno())

    def getsockname(self) -> Any:
        """The pseudo-socket's local address (still answered after the view was detached)."""
        return self._pseudo.getsockname()

    def close(self) -> None:
        """Let go of the descriptor without closing it: uvloop owns it."""
        _socket.socket.detach(self)


def _view(pseudo: Any) -> _View | None:
    try:
        fd = pseudo.fileno()
        if fd < 0:
            return None
        view = _View(int(pseudo.family), int(pseudo.type), int(pseudo.proto), fd)
    except (OSError, AttributeError, TypeError, ValueError):  # closed under us, or not a socket
        return None
    view._pseudo = pseudo
    return view


def _with_view(pseudo: Any, run: Callable[[_View], None]) -> None:
    view = _view(pseudo)
    if view is None:
        return
    try:
        run(view)
    finally:
        _socket.socket.detach(view)
    _kept.append(view)


def _connection_made(transport: Any) -> None:
    try:
        pseudo = transport.get_extra_info("socket")
    except Exception:  # Defensive: a transport that cannot tell
        return
    if pseudo is not None:
        _with_view(pseudo, bindings.accept)


def _watch(protocol: Any) -> None:
    try:
        made = protocol.connection_made
    except AttributeError:
        return

    def connection_made(transport: Any) -> Any:
        with contextlib.suppress(AttributeError):  # Defensive: already gone
            del protocol.connection_made  # the protocol's own method again, and no cycle left
        _connection_made(transport)
        return made(transport)

    # With __slots__ it cannot be set: the options inherited from the listener still apply.
    with contextlib.suppress(AttributeError, TypeError):
        protocol.connection_made = connection_made


class _Factory:
    """The application's protocol factory, watching each protocol it returns."""

    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory

    def __call__(self) -> Any:
        protocol = self.factory()
        if bindings.active():
            _watch(protocol)
        return protocol


def wrap_create_server(prev: Any) -> Any:
    """The replacement of ``uvloop.Loop.create_server`` (*prev*: what the class held)."""

    async def create_server(
        self: Any, protocol_factory: Any, host: Any = None, port: Any = None, **kwargs: Any
    ) -> Any:
        if not bindings.active():
            return await prev(self, protocol_factory, host, port, **kwargs)
        server = await prev(self, _Factory(protocol_factory), host, port, **kwargs)
        backlog = kwargs.get("backlog", 100)
        try:
            for pseudo in getattr(server, "sockets", None) or ():
                _with_view(pseudo, lambda view: bindings.listen(view, (backlog,)))
        except BaseException:  # a warning the application's filters made an error: no leak
            server.close()
            raise
        return server

    return create_server


def wrap_create_connection(prev: Any) -> Any:
    """The replacement of ``uvloop.Loop.create_connection`` (*prev*: what the class held)."""

    async def create_connection(
        self: Any,
        protocol_factory: Any,
        host: Any = None,
        port: Any = None,
        *,
        ssl: Any = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: Any = None,
        local_addr: Any = None,
        server_hostname: Any = None,
        **kwargs: Any,
    ) -> Any:
        if (
            not bindings.active()
            or sock is not None
            or local_addr is not None
            or host is None
            or port is None
        ):
            return await prev(
                self,
                protocol_factory,
                host,
                port,
                ssl=ssl,
                family=family,
                proto=proto,
                flags=flags,
                sock=sock,
                local_addr=local_addr,
                server_hostname=server_hostname,
                **kwargs,
            )
        sock = await _connect(self, host, port, family, proto, flags)
        if ssl and server_hostname is None:
            server_hostname = host
        try:
            return await prev(
                self,
                protocol_factory,
                ssl=ssl,
                sock=sock,
                server_hostname=server_hostname,
                **kwargs,
            )
        except BaseException:
            if sock.fileno() != -1:  # uvloop detaches it when it already closed the descriptor
                sock.close()
            raise

    return create_connection


async def _connect(
    loop: Any, host: Any, port: Any, family: int, proto: int, flags: int
) -> socket.socket:
    infos = await loop.getaddrinfo(
        host, port, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
    )
    if not infos:
        raise OSError("getaddrinfo() returned empty list")
    exceptions: list[OSError] = []
    for fam, kind, pr, _, address in infos:
        sock = socket.socket(fam, kind, pr)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            exceptions.append(exc)
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    model = str(exceptions[0])
    if all(str(exc) == model for exc in exceptions):
        raise exceptions[0]
    raise OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in exceptions)))
