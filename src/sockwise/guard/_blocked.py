"""Threads blocked on a socket: who waits on a stalled connection, and with what timeout.

Read from the threads' current frames (:func:`sys._current_frames`): a thread counts when one of
its innermost frames is on a line calling a socket I/O method and holds the socket.
"""

from __future__ import annotations

import linecache
import re
import socket
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Final

from sockwise.guard import _origin
from sockwise.guard._origin import Origin

_MAX_FRAMES: Final = 8
#: A line that calls socket I/O (what a thread blocked on a socket has on top of its stack).
_IO_CALL: Final = re.compile(
    r"\.(recv_into|recvfrom_into|recvfrom|recvmsg|recv|readinto|readline|read|sendall|sendmsg|"
    r"sendfile|sendto|send|write)\s*\("
)


@dataclass(frozen=True, slots=True)
class Blocked:
    """A thread blocked reading a socket.

    Attributes:
        ident: The thread's identifier.
        name: The thread's name.
        where: The first frame of the application's code in its stack, when found.
        timeout: The socket object's timeout (``None``: blocking, no timeout).
        verb: ``"reading"`` or ``"writing"``.

    """

    ident: int
    name: str
    where: Origin | None
    timeout: float | None
    verb: str = "reading"


def _socket_in(frame: FrameType, fd: int) -> socket.socket | None:
    try:
        values = list(frame.f_locals.values())
    except Exception:  # Defensive: a frame that cannot build its locals
        return None
    for value in values:
        for obj in (value, getattr(value, "_sock", None)):
            if isinstance(obj, socket.socket):
                try:
                    if obj.fileno() == fd:
                        return obj
                except OSError:  # Defensive: a closed wrapper
                    continue
    return None


def _waiting_call(frame: FrameType) -> str | None:
    """``"reading"``/``"writing"`` when *frame*'s current line calls a socket I/O method."""
    try:
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
    except Exception:  # Defensive: an unreadable source
        return None
    match = _IO_CALL.search(line)
    if match is None:
        return None
    return "writing" if match.group(1).startswith(("send", "write")) else "reading"


def blocked_on(fd: int) -> Blocked | None:
    """The thread blocked in a socket call on *fd*, if any.

    A thread counts when one of its innermost frames is on a line calling a socket I/O method
    (``recv``, ``recv_into``, ``read``, ``readinto``, ``readline``, ``send``, ``sendall``...)
    and holds the socket *fd* (directly, or as the ``_sock`` of a ``socket.makefile()`` reader).
    """
    me = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, top in sys._current_frames().items():
        if ident == me:
            continue
        frame: FrameType | None = top
        for _ in range(_MAX_FRAMES):
            if frame is None:
                break
            verb = _waiting_call(frame)
            if verb is None:
                break  # the innermost frames are not in socket I/O: not blocked on a socket
            sock = _socket_in(frame, fd)
            if sock is not None:
                try:
                    timeout = sock.gettimeout()
                except OSError:  # Defensive
                    timeout = None
                where, _ = _origin.find_origin(top, "blocked")
                return Blocked(ident, names.get(ident, f"thread {ident}"), where, timeout, verb)
            frame = frame.f_back
    return None
