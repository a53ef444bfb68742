"""Tell the runtime guard which sockets are idle pool members (if the guard offers that).

The guard reports sockets left in CLOSE_WAIT as leaks; an idle member of a sockwise pool that
the peer closed is not a leak -- the pool's reaper closes it within a second or two. The pool
registers each connection's socket with ``sockwise.guard.register_pooled`` when it goes idle
and unregisters it (``unregister_pooled``) when it is handed out again -- a checked-out
connection left in CLOSE_WAIT is the application's leak -- or just before the pool closes it.
Both functions
are looked up lazily, once, and their absence is tolerated.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

_SockFn = Callable[[socket.socket], Any]
_resolved: tuple[_SockFn | None, _SockFn | None] | None = None


def _resolve() -> tuple[_SockFn | None, _SockFn | None]:
    global _resolved
    if _resolved is None:
        try:
            from sockwise import guard
        except Exception:  # Defensive: no guard module in this build
            _resolved = (None, None)
        else:
            _resolved = (
                getattr(guard, "register_pooled", None),
                getattr(guard, "unregister_pooled", None),
            )
    return _resolved


def register(sock: socket.socket) -> None:
    """Mark *sock* as an idle pool member (no-op without the guard helper)."""
    fn = _resolve()[0]
    if fn is not None:
        with contextlib.suppress(Exception):  # Defensive: the guard never breaks the pool
            fn(sock)


def unregister(sock: socket.socket) -> None:
    """Forget *sock* as a pool member, before the pool closes it."""
    fn = _resolve()[1]
    if fn is not None:
        with contextlib.suppress(Exception):  # Defensive: the guard never breaks the pool
            fn(sock)
