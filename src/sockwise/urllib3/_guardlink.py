"""Tell a running guard which sockets are idle pool members.

The guard reports sockets left in CLOSE_WAIT as leaks; an idle member of a sockwise pool that
the peer closed is not a leak -- the pool's reaper closes it within a second or two. The pool
registers each connection's socket with :func:`sockwise.guard.register_pooled` when it goes
idle and unregisters it (:func:`~sockwise.guard.unregister_pooled`) when it is handed out again
-- a checked-out connection left in CLOSE_WAIT is the application's leak -- or just before the
pool closes it. With no guard running, both cost one attribute test.
"""

from __future__ import annotations

import contextlib
import socket

from sockwise import guard

#: Whether a guard records origins (pools skip the registration work otherwise). The guard's
#: own function, not a wrapper: a pool asks on every return of a connection.
recording = guard.recording_origins


def register(sock: socket.socket) -> None:
    """Mark *sock* as an idle pool member (nothing to do when no guard runs)."""
    if guard.recording_origins():
        with contextlib.suppress(Exception):  # Defensive: the guard never breaks the pool
            guard.register_pooled(sock)


def unregister(sock: socket.socket) -> None:
    """Forget *sock* as a pool member (handed out again, or about to be closed)."""
    if guard.recording_origins():
        with contextlib.suppress(Exception):  # Defensive: the guard never breaks the pool
            guard.unregister_pooled(sock)
