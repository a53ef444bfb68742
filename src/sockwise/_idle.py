"""The ``idle_timeout`` shared by sockwise's HTTP clients (urllib3, requests, httpx, aiohttp).

A low-level module of its own so that each HTTP extra works without the others installed: it
imports nothing but the standard library.
"""

from __future__ import annotations

from typing import Any, Final

#: Default ``idle_timeout`` in seconds. A keep-alive connection must be retired by the client
#: *before* the server's keep-alive timeout, or the client may send a request just as the
#: server's FIN is on its way: the request is lost and (for a POST) cannot be safely retried.
#: Common server timeouts: gunicorn 2 s (``--keep-alive``), Node.js 5 s
#: (``server.keepAliveTimeout``), Apache 5 s (``KeepAliveTimeout``), nginx 75 s
#: (``keepalive_timeout``). 1.5 s stays below the shortest of them with 0.5 s to spare for the
#: round trip and timer slack. Retiring early costs at most one extra handshake per idle gap --
#: nothing when traffic is dense (connections never sit that long), and little when it is
#: sparse (one handshake per 1.5 s of silence). Raise it for a peer known to keep connections
#: longer (nginx: 60).
DEFAULT_IDLE_TIMEOUT: Final = 1.5

#: Sentinel for "argument left out" (``None`` already means "never expire").
UNSET: Final[Any] = object()


def check_idle_timeout(value: object) -> float | None:
    """Validate an ``idle_timeout`` argument (seconds > 0, or ``None`` for no expiry)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"idle_timeout must be a number of seconds or None, got {value!r} "
            f"({type(value).__name__})"
        )
    if not value > 0 or value == float("inf"):
        raise ValueError(f"idle_timeout={value!r} is out of range: allowed 0 < idle_timeout < inf")
    return float(value)


def resolve_idle_timeout(value: object) -> float | None:
    """An ``idle_timeout`` argument as seconds: left out means :data:`DEFAULT_IDLE_TIMEOUT`."""
    return DEFAULT_IDLE_TIMEOUT if value is UNSET else check_idle_timeout(value)
