"""Declared silences: waits the application means to be long (a long-poll, a stream, a push).

Inside :func:`expect_silence` the stall detector does not report the declared socket (or, without
a target, any socket the calling thread is blocked on).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Iterator

#: ``{inode: [deadline, ...]}`` and ``{thread ident: [deadline, ...]}`` (monotonic seconds;
#: ``inf`` for no limit). Plain dict and list operations: atomic under the GIL, no lock to fork.
_silent_sockets: dict[int, list[float]] = {}
_silent_threads: dict[int, list[float]] = {}


def _find_fd(target: object) -> int | None:
    """The descriptor behind *target*: a socket, an fd, or an HTTP response (``None``: none)."""
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, socket.socket):
        return target.fileno()
    seen: set[int] = set()
    candidates: list[object] = [target]
    for _ in range(64):  # bounded walk: response -> raw -> connection -> sock
        if not candidates:
            break
        obj = candidates.pop(0)
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, socket.socket):
            return obj.fileno()
        extensions = getattr(obj, "extensions", None)
        if isinstance(extensions, dict):  # httpx / httpcore: the network stream
            stream = extensions.get("network_stream")
            get = getattr(stream, "get_extra_info", None)
            if callable(get):
                with contextlib.suppress(Exception):
                    candidates.append(get("socket"))
        for attr in ("raw", "connection", "_connection", "sock", "_sock", "_fp", "fp"):
            with contextlib.suppress(Exception):
                candidates.append(getattr(obj, attr, None))
    return None


@contextlib.contextmanager
def expect_silence(target: object = None, *, up_to: float | None = None) -> Iterator[None]:
    """Declare a wait that is meant to be long: a long-poll, a stream, a push channel.

    Inside the block the guard does not report the declared socket (or, without *target*, any
    socket the calling thread is blocked on) as stalled -- for at most *up_to* seconds, after
    which a silence is a stall again.

    Example::

        with sockwise.expect_silence(up_to=120):  # this thread's long-poll
            events = session.get(url, timeout=(5, 130))

        resp = session.get(stream_url, stream=True)
        with sockwise.expect_silence(resp):  # a server-sent event stream
            for line in resp.iter_lines():
                ...

    Args:
        target: A socket, a file descriptor, or a response of requests, urllib3 or httpx
            (whose connection's socket is used); ``None``: the calling thread.
        up_to: Seconds the silence may last (``None``: the whole block).

    Raises:
        TypeError: *target* is not a socket, descriptor or response with a socket, or *up_to*
            is not a number.
        ValueError: *up_to* is not positive.

    """
    if up_to is not None:
        if isinstance(up_to, bool) or not isinstance(up_to, int | float):
            raise TypeError(f"up_to: expected a number of seconds or None, got {up_to!r}")
        if not (0 < up_to <= 10**9):
            raise ValueError(f"up_to: {up_to!r} is out of range; allowed: 0 < up_to <= 1e9")
    deadline = math.inf if up_to is None else time.monotonic() + float(up_to)
    table: dict[int, list[float]]
    if target is None:
        table, key = _silent_threads, threading.get_ident()
    else:
        fd = _find_fd(target)
        if fd is None or fd < 0:
            raise TypeError(
                f"target: {target!r} is not an open socket, a file descriptor, or a response "
                "holding one"
            )
        try:
            key = os.fstat(fd).st_ino
        except OSError as exc:
            raise TypeError(f"target: {target!r} has no open descriptor ({exc})") from None
        table = _silent_sockets
    table.setdefault(key, []).append(deadline)
    try:
        yield
    finally:
        entries = table.get(key)
        if entries is not None:
            with contextlib.suppress(ValueError):
                entries.remove(deadline)
            if not entries:
                table.pop(key, None)


def silenced(table: dict[int, list[float]], key: int, now: float) -> bool:
    """Whether *key* of *table* is inside a declared silence at *now*."""
    entries = table.get(key)
    return bool(entries) and max(entries or (0.0,)) > now
