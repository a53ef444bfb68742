"""urllib3 connection pools that apply a :class:`~sockwise.Policy` and stay healthy.

Theory of operation -- what the subclasses change, and where:

* ``__init__``: the policy's socket options go into ``socket_options`` for every connection,
  proxied ones included (urllib3 gives proxied connections none); the caller's own
  ``socket_options`` are applied after them, so they win. ``socket_options=None`` or ``[]``
  -- urllib3's way to switch options off -- is honoured: no options at all. A timeout left at
  urllib3's default
  (which waits forever) becomes ``Timeout(connect=policy.connect_timeout,
  read=DEFAULT_READ_TIMEOUT)``. The pool registers with the process-wide reaper.
* ``_put_conn``: stamps the connection with the time it went idle (one ``monotonic()``).
* ``_get_conn``: replaces urllib3's check (which costs the same single ``poll()``): a popped
  connection idle longer than its idle limit is closed (``closed_idle``); one whose socket is
  readable -- the peer's FIN or RST, or unsolicited bytes -- is closed (``closed_peer``) and
  never handed out.
* ``_sockwise_sweep`` (called by the reaper thread every second): does the same for the *whole*
  idle queue, with one ``poll()`` over all idle sockets, so peer-closed members do not linger
  in CLOSE_WAIT while the application is quiet.
* The idle limit is ``idle_timeout``, unless the server announced its own keep-alive timeout
  (``Keep-Alive: timeout=N``, read in ``_make_request`` from a connection's first response: a
  server announces the same value every time): then a second
  below it (:func:`sockwise._idle.idle_limit`), instead of the default, or capping the
  caller's value.
* ``_make_request``: a kernel ``ETIMEDOUT`` becomes a :class:`DeadPeerError` naming the peer,
  the elapsed time and the policy setting. A request on a *reused* connection that the server
  closed under it is left to urllib3's ``Retry`` (which replays idempotent methods while it has
  retries left, and records it in its history); it is counted in ``retried`` when ``Retry``
  allows the replay. Nothing is replayed beside ``Retry``: ``retries=False`` or ``Retry(0)``
  raise exactly as urllib3 does.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import queue
import select
import time
from typing import TYPE_CHECKING, Any, Final

import urllib3
from urllib3.exceptions import ClosedPoolError, EmptyPoolError, ReadTimeoutError
from urllib3.util.retry import Retry
from urllib3.util.timeout import _DEFAULT_TIMEOUT, Timeout

from sockwise import _idle
from sockwise._idle import UNSET as _UNSET
from sockwise._idle import idle_limit, resolve_idle_timeout
from sockwise.policy import Policy, resolve_policy
from sockwise.urllib3 import _guardlink
from sockwise.urllib3._dead import explain, kernel_timeout
from sockwise.urllib3._reaper import REAPER
from sockwise.urllib3._stats import Counters, PoolStats

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection
    from urllib3.response import BaseHTTPResponse

log = logging.getLogger("sockwise.urllib3")

#: Default ``idle_timeout`` in seconds (1.5): a client must retire a keep-alive connection
#: before the server does, and the shortest common server keep-alive timeout is gunicorn's 2 s.
#: A server that announces its timeout (``Keep-Alive: timeout=N``) gets N - 1 s instead.
#: Shared by every sockwise HTTP client; the reasoning and the measured cost are next to its
#: definition (``sockwise._idle``).
DEFAULT_IDLE_TIMEOUT: Final = _idle.DEFAULT_IDLE_TIMEOUT

#: Default read timeout in seconds when the caller names none (urllib3 waits forever). It is a
#: bound against a *live* server that never answers -- a dead one is detected sooner, by the
#: policy (``dead_peer_bound``, 90 s by default). 300 s is aiohttp's default total timeout:
#: generous enough for slow legitimate responses.
DEFAULT_READ_TIMEOUT: Final = 300.0

#: RFC 9110 idempotent methods (as urllib3's ``Retry.DEFAULT_ALLOWED_METHODS``): the methods
#: urllib3's default ``Retry`` replays after a reused connection turned out closed.
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

#: Errors that mean "the server closed this connection before answering".
_CLOSED_UNDER_US: Final = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)
# The pool's marks on a connection, as attributes (written as literals where set: a plain
# attribute store). Read with getattr() where a connection may not carry one yet.
_IDLE_SINCE: Final = "_sockwise_idle_since"
_IDLE_LIMIT: Final = "_sockwise_idle_limit"  # set from the server's Keep-Alive header
_REUSED: Final = "_sockwise_reused"
_REGISTERED: Final = "_sockwise_registered"  # the socket the guard was told is idle, or None
_POLL_DEAD: Final = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
_monotonic: Final = time.monotonic
_poll: Final = select.poll
_recording: Final = _guardlink.recording


def default_timeout(policy: Policy) -> Timeout:
    """The timeout sockwise pools use when the caller names none.

    ``connect`` is ``policy.connect_timeout`` (``None`` or 0 there: unbounded); ``read`` is
    :data:`DEFAULT_READ_TIMEOUT`.
    """
    connect = policy.connect_timeout or None
    return Timeout(connect=connect, read=DEFAULT_READ_TIMEOUT)


def retry_allows(retries: Retry | None, method: str) -> bool:
    """Whether urllib3's ``urlopen`` will replay *method* after a connection error.

    Mirrors ``Retry.increment`` for a read error (``ProtocolError``) without its side effects
    (no log line, no new object kept): ``False``, ``Retry(0)`` and methods outside
    ``allowed_methods`` are not replayed.
    """
    if not isinstance(retries, Retry) or retries.total is False or retries.read is False:
        return False
    allowed = retries.allowed_methods
    if allowed is not None and method.upper() not in allowed:
        return False
    total = retries.total - 1 if isinstance(retries.total, int) else retries.total
    read = retries.read - 1 if isinstance(retries.read, int) else retries.read
    try:
        return not retries.new(total=total, read=read).is_exhausted()
    except Exception:  # Defensive: a Retry subclass with another constructor
        return False


class HTTPConnectionPool(urllib3.HTTPConnectionPool):
    """urllib3's ``HTTPConnectionPool`` with the policy applied and idle connections kept healthy.

    Takes every argument urllib3's pool takes, plus the two keywords below. Counters are in
    :meth:`stats`.

    Args:
        *args: urllib3's positional arguments (``host``, ``port``, ``timeout``, ...).
        policy: The socket policy for every connection (``None``: the policy in force, see
            :func:`~sockwise.policy.resolve_policy`).
        idle_timeout: Seconds a connection may sit idle before it is closed instead of reused
            (default :data:`DEFAULT_IDLE_TIMEOUT`; ``None``: never expire). A server's
            ``Keep-Alive: timeout=N`` replaces the default with N - 1 s (half of N up to 2 s,
            at most 180 s) and caps a value given here.
        **kwargs: urllib3's keyword arguments. ``socket_options`` are applied after the
            policy's options; ``timeout`` left out means :func:`default_timeout`.

    Raises:
        TypeError: ``policy`` or ``idle_timeout`` has the wrong type.
        ValueError: ``idle_timeout`` is not positive.

    .. versionadded:: 0.1.0

    """

    def __init__(
        self,
        *args: Any,
        policy: Policy | None = None,
        idle_timeout: float | None = _UNSET,
        **kwargs: Any,
    ) -> None:
        self.policy: Policy = resolve_policy(policy)
        self.idle_timeout: float | None = resolve_idle_timeout(idle_timeout)
        self._sw = Counters()
        if "socket_options" not in kwargs:
            kwargs["socket_options"] = self.policy.socket_options()
        else:
            user_options = kwargs["socket_options"]
            if user_options:  # None or [] (urllib3: no options at all) is kept as given
                kwargs["socket_options"] = [*self.policy.socket_options(), *user_options]
        if len(args) < 3 and kwargs.get("timeout", _DEFAULT_TIMEOUT) is _DEFAULT_TIMEOUT:
            kwargs["timeout"] = default_timeout(self.policy)
        super().__init__(*args, **kwargs)
        REAPER.register(self)

    # -- checkout / return ---------------------------------------------------------------------

    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        q = self.pool
        if q is None:
            self._count_refused_checkout()
            raise ClosedPoolError(self, "Pool is closed.")
        conn: Any = None
        try:
            conn = q.get(block=self.block, timeout=timeout)
        except AttributeError:  # Defensive: self.pool is None
            self._count_refused_checkout()
            raise ClosedPoolError(self, "Pool is closed.") from None
        except queue.Empty:
            if self.block:
                raise EmptyPoolError(
                    self,
                    "Pool is empty and a new connection can't be opened due to blocking mode.",
                ) from None
        counters = self._sw
        sock = conn.sock if conn is not None else None
        if sock is not None:
            # The connection's own attributes, never conn.__dict__: reading an instance's
            # __dict__ costs that object CPython's fast attribute path for good, and urllib3
            # and http.client read the connection's attributes dozens of times per request
            # (measured: 20 -> 38 ns each; +2-3 % client CPU per request, against urllib3).
            limit = getattr(conn, _IDLE_LIMIT, self.idle_timeout)
            if limit is not None and _monotonic() - getattr(conn, _IDLE_SINCE, 0.0) > limit:
                self._retire(conn, peer=False)
                sock = None
            else:
                # _peer_gone(), inlined: every checkout runs this, and a Python call costs
                # ~1 us in the middle of a request's system calls (measured, against urllib3).
                try:
                    poller = _poll()
                    poller.register(sock, _POLL_DEAD)
                    gone = bool(poller.poll(0))
                except (OSError, ValueError):  # closed or invalid descriptor
                    gone = True
                if gone:
                    self._retire(conn, peer=True)
                    sock = None
        if sock is not None:  # a live idle connection: reuse it
            conn._sockwise_reused = True
            if getattr(conn, _REGISTERED, None) is not None:  # no longer idle: the guard may
                conn._sockwise_registered = None  # judge it
                _guardlink.unregister(sock)
            counters.reuse()
            counters.out.append(None)
            return conn  # type: ignore[no-any-return]
        if conn is None:
            conn = self._new_conn()
        conn._sockwise_reused = False
        with counters.lock:
            counters.created += 1
        counters.out.append(None)
        return conn  # type: ignore[no-any-return]

    def _count_refused_checkout(self) -> None:
        """Count a checkout refused by a closed pool as in use.

        urllib3's ``urlopen`` answers a ``ClosedPoolError`` from :meth:`_get_conn` with
        ``_put_conn(None)``, which uncounts one connection in use; this balances it.
        """
        self._sw.out.append(None)

    def _put_conn(self, conn: BaseHTTPConnection | None) -> None:
        # Not contextlib.suppress (two Python calls per request).
        try:  # noqa: SIM105
            self._sw.out.pop()
        except IndexError:  # a return without its checkout (urlopen after ClosedPoolError)
            pass
        if conn is not None:
            conn._sockwise_idle_since = _monotonic()  # type: ignore[attr-defined]
            if _recording():  # tell a running guard it is an idle pool member
                sock = getattr(conn, "sock", None)
                if sock is not None and getattr(conn, _REGISTERED, None) is not sock:
                    conn._sockwise_registered = sock  # type: ignore[attr-defined]
                    _guardlink.register(sock)
            if REAPER.thread is None:
                REAPER.ensure_running()
        super()._put_conn(conn)

    def _retire(self, conn: Any, *, peer: bool) -> None:
        """Close an idle connection found expired (``peer=False``) or peer-closed."""
        sock = conn.sock
        log.debug(
            "sockwise: closing idle connection to %s:%s (%s)",
            self.host,
            self.port,
            "closed by peer" if peer else "idle timeout",
        )
        if sock is not None:
            _guardlink.unregister(sock)
        with contextlib.suppress(Exception):  # Defensive: closing never breaks the pool
            conn.close()
        with self._sw.lock:
            if peer:
                self._sw.closed_peer += 1
            else:
                self._sw.closed_idle += 1

    def _sockwise_sweep(self) -> None:
        """Close every idle connection that expired or whose peer closed it (reaper thread)."""
        q = self.pool
        if q is None:
            return
        now = _monotonic()
        idle_timeout = self.idle_timeout
        expired: list[Any] = []
        dead: list[Any] = []
        with q.mutex:
            items: list[Any] = q.queue
            poller = select.poll()
            by_fd: dict[int, Any] = {}
            for conn in items:
                if conn is None or conn.sock is None:
                    continue
                limit = getattr(conn, _IDLE_LIMIT, idle_timeout)
                if limit is not None and now - getattr(conn, _IDLE_SINCE, now) > limit:
                    expired.append(conn)
                    continue
                try:
                    fd = conn.sock.fileno()
                    poller.register(fd, _POLL_DEAD)
                except (OSError, ValueError):
                    dead.append(conn)
                    continue
                by_fd[fd] = conn
            if by_fd:
                dead.extend(by_fd[fd] for fd, _ in poller.poll(0) if fd in by_fd)
            if not expired and not dead:
                return
            gone = {id(c) for c in expired} | {id(c) for c in dead}
            keep = [c for c in items if id(c) not in gone]
            # Free slots (None) go to the bottom of the LIFO, live connections stay on top.
            items[:] = [None] * (len(items) - len(keep)) + keep
        for conn in expired:
            self._retire(conn, peer=False)
        for conn in dead:
            self._retire(conn, peer=True)

    # -- requests ------------------------------------------------------------------------------

    def _make_request(  # urllib3 2.x signature
        self,
        conn: BaseHTTPConnection,
        method: str,
        url: str,
        body: Any = None,
        headers: Any = None,
        retries: Retry | None = None,
        timeout: Any = _DEFAULT_TIMEOUT,
        chunked: bool = False,
        response_conn: BaseHTTPConnection | None = None,
        preload_content: bool = True,
        decode_content: bool = True,
        enforce_content_length: bool = True,
        **extra: Any,
    ) -> BaseHTTPResponse:
        # urllib3's parameters by name (2.0 to 2.8 alike, in the same order), passed on by
        # position: repacking *args/**kwargs cost 1.4 us per request, keywords 0.2 us (measured).
        started = _monotonic()
        try:
            response = super()._make_request(
                conn,
                method,
                url,
                body,
                headers,
                retries,
                timeout,
                chunked,
                response_conn,
                preload_content,
                decode_content,
                enforce_content_length,
                **extra,  # keywords of a newer urllib3
            )
        except Exception as exc:
            if isinstance(exc, (ReadTimeoutError, OSError)) and kernel_timeout(exc) is not None:
                peer = f"{conn.host}:{conn.port}"
                raise explain(exc, self.policy, peer, _monotonic() - started) from exc
            reused = getattr(conn, _REUSED, False)
            if reused:  # counted once: a replay gets another checkout
                conn._sockwise_reused = False  # type: ignore[attr-defined]
            if reused and isinstance(exc, _CLOSED_UNDER_US) and retry_allows(retries, method):
                with self._sw.lock:
                    self._sw.retried += 1
                log.debug(
                    "sockwise: %s %s met a keep-alive connection the server closed; "
                    "urllib3's Retry replays it",
                    method,
                    url,
                )
            raise
        if not getattr(conn, _REUSED, False):  # a new connection's first response
            # Whether the server says how long it keeps an idle connection: read once per
            # connection (a server announces the same value on every response; the check is
            # a Python call on each request otherwise). ``in`` first: a get() of a missing
            # header raises and catches, 3x the cost.
            found = response.headers
            if "Keep-Alive" in found:
                limit = idle_limit(self.idle_timeout, found["Keep-Alive"])
                if limit != self.idle_timeout:
                    conn._sockwise_idle_limit = limit  # type: ignore[attr-defined]
        return response

    # -- introspection -------------------------------------------------------------------------

    def _idle_count(self) -> int:
        q = self.pool
        if q is None:
            return 0
        with q.mutex:
            items: list[Any] = q.queue
            return sum(1 for c in items if c is not None and c.sock is not None)

    def stats(self) -> PoolStats:
        """A snapshot of this pool's counters (see :class:`PoolStats`)."""
        return self._sw.snapshot(self._idle_count())

    def __repr__(self) -> str:
        cls = type(self)
        return (
            f"<{cls.__module__.rsplit('._', 1)[0]}.{cls.__qualname__} "
            f"{self.scheme}://{self.host}:{self.port} [{self.stats().summary()}]>"
        )


class HTTPSConnectionPool(HTTPConnectionPool, urllib3.HTTPSConnectionPool):
    """urllib3's ``HTTPSConnectionPool`` with the policy applied; see :class:`HTTPConnectionPool`.

    Args:
        *args: urllib3's positional arguments.
        policy: The socket policy for every connection (``None``: the policy in force, see
            :func:`~sockwise.policy.resolve_policy`).
        idle_timeout: Seconds a connection may sit idle before it is closed instead of reused.
        **kwargs: urllib3's keyword arguments (``ssl_context``, ``ca_certs``, ...).

    .. versionadded:: 0.1.0

    """


def live_pools() -> list[HTTPConnectionPool]:
    """Every sockwise HTTP(S) pool of this process that is alive and open (for metrics)."""
    return [p for p in REAPER.pools() if isinstance(p, HTTPConnectionPool) and p.pool is not None]
