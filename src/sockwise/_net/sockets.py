"""Socket predicates and per-descriptor readers (``getsockopt``/``ioctl`` on one socket).

The readers work on a bare descriptor through a C socket object (no Python wrapper, no
``socket`` hooks), detached after use, so they never close or change the application's socket.
"""

from __future__ import annotations

import _socket
import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from typing import Final

from sockwise._net.netlink import parse_tcp_info
from sockwise._net.records import SocketRecord

#: The address families of TCP sockets.
TCP_FAMILIES: Final = frozenset({socket.AF_INET, socket.AF_INET6})
_family: Final = _socket.socket.family.__get__
_type: Final = _socket.socket.type.__get__
_TCP_INFO_LEN: Final = 512
_TCP_INFO_OPT: Final = getattr(socket, "TCP_INFO", 11)
_TCP_USER_TIMEOUT: Final = getattr(socket, "TCP_USER_TIMEOUT", 18)


def is_tcp(sock: socket.socket) -> bool:
    """Whether *sock* is a TCP socket (AF_INET/AF_INET6 and SOCK_STREAM).

    A socket object (a subclass of the C socket, as :class:`socket.socket` is) is read through
    the C getters, the cost of the ``connect`` hooks; any other object with ``family`` and
    ``type`` (gevent's, uvloop's socket-likes) through those attributes. A closed or foreign
    object that cannot tell is not TCP.
    """
    try:
        return _family(sock) in TCP_FAMILIES and _type(sock) == socket.SOCK_STREAM
    except TypeError:  # not a C socket object: a socket-like wrapper
        pass
    try:
        return sock.family in TCP_FAMILIES and sock.type == socket.SOCK_STREAM
    except (OSError, ValueError, AttributeError):  # Defensive: a closed or foreign object
        return False


@contextlib.contextmanager
def _bare(fd: int) -> Iterator[_socket.socket | None]:
    """A bare C socket object on *fd* (no Python wrapper, no hooks), detached on exit.

    ``None`` when *fd* is not a descriptor a socket object can be made on.
    """
    try:
        sock = _socket.socket(fileno=fd)
    except (OSError, ValueError):
        yield None
        return
    try:
        yield sock
    finally:
        sock.detach()


def user_timeout(fd: int) -> float | None:
    """The socket's ``TCP_USER_TIMEOUT`` in seconds (``None``: unset or unknown)."""
    with _bare(fd) as sock:
        try:
            ms = sock.getsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT) if sock is not None else 0
        except OSError:
            ms = 0
    return ms / 1000.0 if ms > 0 else None


def nonblocking(fd: int) -> bool | None:
    """Whether *fd* is non-blocking: Python sockets with a timeout are (``None``: unknown)."""
    try:
        import fcntl

        return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK)
    except (ImportError, OSError):
        return None


def read_tcp_info(fd: int) -> SocketRecord | None:
    """One socket's record through ``getsockopt(TCP_INFO)`` (the fallback without netlink)."""
    with _bare(fd) as sock:
        if sock is None:
            return None
        try:
            return _tcp_info_record(sock, fd)
        except (ImportError, OSError):
            return None


def _tcp_info_record(sock: _socket.socket, fd: int) -> SocketRecord | None:
    if sock.type & 0xF != socket.SOCK_STREAM or sock.family not in TCP_FAMILIES:
        return None
    info = parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO_OPT, _TCP_INFO_LEN))
    if info is None:
        return None
    local = sock.getsockname()[:2]
    try:
        remote = sock.getpeername()[:2]
    except OSError:
        remote = ("", 0)
    import fcntl
    import termios

    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    rq = int.from_bytes(buf, sys.byteorder)
    buf = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0")
    wq = int.from_bytes(buf, sys.byteorder)
    return SocketRecord(
        family=int(sock.family),
        state="ESTABLISHED" if info.state == 1 else str(info.state),
        local=(str(local[0]), int(local[1])),
        remote=(str(remote[0]), int(remote[1])),
        inode=os.fstat(fd).st_ino,
        uid=os.getuid(),
        rqueue=rq,
        wqueue=wq,
        fd=fd,
        tcp_info=info,
    )
