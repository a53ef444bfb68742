"""The ``idle_timeout`` shared by sockwise's HTTP clients (urllib3, requests, httpx, aiohttp).

A low-level module of its own so that each HTTP extra works without the others installed: it
imports nothing but the standard library.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final


class DefaultIdleTimeout(float):
    """The default ``idle_timeout``, told apart from the same number given by the caller.

    A plain number of seconds otherwise; a server's announced keep-alive timeout replaces the
    default only (see :func:`idle_limit`).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return float.__repr__(self)


#: Default ``idle_timeout`` in seconds, for a server that does not announce its keep-alive
#: timeout (see :func:`announced_idle_limit` for one that does). A keep-alive connection must be
#: retired by the client *before* the server's keep-alive timeout, or the client may send a
#: request just as the server's FIN is on its way: the request is lost and (for a POST) cannot
#: be safely retried. Common server timeouts: gunicorn 2 s (``--keep-alive``), Node.js 5 s
#: (``server.keepAliveTimeout``), Apache 5 s (``KeepAliveTimeout``), nginx 75 s
#: (``keepalive_timeout``). 1.5 s stays below the shortest of them with 0.5 s to spare for the
#: round trip and timer slack. Raise it for a peer known to keep connections longer (nginx: 60).
#:
#: Measured (``sockwise bench --only gaps``, loopback, 2 cores shared with other work, load
#: 1.5-2; the first request after an idle gap, sockwise minus bare urllib3, medians of 6 to 24
#: calls, three runs): after 0.2 s and 1 s gaps no new connection and no difference beyond the noise
#: (-60 to +110 us either way); after 2 s and 10 s gaps every call opens a new connection:
#: +460 to +890 us over HTTP (one TCP handshake; across a network add one round trip) and
#: +2.9 to +3.6 ms over HTTPS (TCP and a full TLS handshake; two or three round trips). Back to
#: back, +-5 us: a connection in use never sits idle.
#:
#: Kept at 1.5 s on these numbers. The cost is one handshake per idle gap longer than 1.5 s --
#: at most ~0.7 extra handshakes per second, and only for traffic that sparse, where a
#: millisecond is a small part of a request that waited seconds. The risk it removes is a lost
#: request (an error for a POST, a replay for a GET) against any server whose keep-alive
#: timeout is 2 s (gunicorn's default). A 5 s default (proposed) would race gunicorn at its
#: defaults; servers that say how long they keep a connection (Apache, Node.js:
#: ``Keep-Alive: timeout=5``) get their own limit instead (:func:`idle_limit`), no guess.
DEFAULT_IDLE_TIMEOUT: Final = DefaultIdleTimeout(1.5)

#: Seconds kept in hand below a server's announced keep-alive timeout (half of it for an
#: announced 2 s or less): the server's timer starts when it sends the response, the pool's when
#: the response has been read, and the next request needs a round trip to arrive.
KEEP_ALIVE_MARGIN: Final = 1.0

#: The longest idle limit an announced keep-alive timeout can set (seconds): a server may keep
#: connections for minutes, but a NAT gateway or load balancer on the way may forget an idle
#: flow sooner (Azure load balancer: 240 s). 180 s is a minute below it, as psycopg's
#: ``max_idle`` default.
KEEP_ALIVE_CAP: Final = 180.0

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
    return value if isinstance(value, DefaultIdleTimeout) else float(value)  # passed on: kept


def resolve_idle_timeout(value: object) -> float | None:
    """An ``idle_timeout`` argument as seconds: left out means :data:`DEFAULT_IDLE_TIMEOUT`."""
    return DEFAULT_IDLE_TIMEOUT if value is UNSET else check_idle_timeout(value)


def is_default(value: object) -> bool:
    """Whether *value* is the default ``idle_timeout``, not a number the caller gave."""
    return isinstance(value, DefaultIdleTimeout)


@lru_cache(maxsize=64)
def announced_idle_limit(header: str) -> float | None:
    """The idle limit a server's ``Keep-Alive`` header value sets, or ``None`` if it sets none.

    ``Keep-Alive: timeout=5, max=100`` (Apache, Node.js) says the server closes a connection
    idle for 5 s: the limit is 4 s (:data:`KEEP_ALIVE_MARGIN` below it; half of it for 2 s or
    less), at most :data:`KEEP_ALIVE_CAP`. A missing, zero, negative or malformed ``timeout``
    sets none. Cached: a server sends the same value every time.
    """
    for part in header.split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() != "timeout":
            continue
        try:
            announced = float(value.strip().strip('"'))
        except ValueError:
            return None
        if not 0 < announced < float("inf"):
            return None
        return min(announced - min(KEEP_ALIVE_MARGIN, announced / 2), KEEP_ALIVE_CAP)
    return None


def idle_limit(idle_timeout: float | None, header: str) -> float | None:
    """The idle limit of one connection whose server sent ``Keep-Alive: <header>``.

    The announced limit (:func:`announced_idle_limit`) replaces the default ``idle_timeout``
    and caps one the caller gave; ``None`` (never expire) is kept as asked, and so is the
    pool's own value when the header announces nothing.
    """
    announced = announced_idle_limit(header)
    if announced is None or idle_timeout is None:
        return idle_timeout
    return announced if is_default(idle_timeout) else min(idle_timeout, announced)
