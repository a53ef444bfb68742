"""Liveness probes for an idle libpq connection: a free readability poll and a bounded ping.

Theory of operation: an idle PostgreSQL connection has nothing to read. When the server ends a
backend (``pg_terminate_backend``, a fast shutdown, a fail-over) it sends a FATAL
``ErrorResponse`` and closes the socket, so the client socket becomes readable and then reads
EOF. :func:`poll_dead` looks for exactly that with a zero-timeout ``poll()`` -- one system call,
no round trip. Readable data on a live connection (a ``NOTIFY``, a ``ParameterStatus``) is
consumed into libpq's buffers, where psycopg finds it later; only a consume that fails, or a
socket that stays readable after a few consumes (EOF is always readable), means the peer is gone.

A server that vanished without a FIN or RST (a black hole) leaves nothing to read; only a round
trip shows it. :func:`ping` sends an empty query straight through libpq and waits for the answer
for at most *timeout* seconds, so a checkout can never hang on it. :func:`aping` is the same for
asyncio.
"""

from __future__ import annotations

import asyncio
import select
from time import monotonic
from typing import TYPE_CHECKING

from psycopg import pq

if TYPE_CHECKING:
    from psycopg.pq.abc import PGconn

_POLL_READ = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
_POLL_WRITE = select.POLLOUT | select.POLLERR | select.POLLHUP
_MAX_CONSUMES = 4  # a NOTIFY or two, then EOF must have shown up


_OK = int(pq.ConnStatus.OK)


def _ready(fd: int, events: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(max(0, int(timeout * 1000))))


def make_poller(pgconn: PGconn) -> select.poll:
    """A poll object watching *pgconn*'s socket for reading (kept with the connection)."""
    poller = select.poll()
    poller.register(pgconn.socket, _POLL_READ)
    return poller


def poll_dead(pgconn: PGconn, poller: select.poll | None = None) -> str | None:
    """Return why an idle connection is dead, or ``None`` when nothing says so (no round trip).

    Args:
        pgconn: The libpq connection (``conn.pgconn``) of a connection nobody is using.
        poller: :func:`make_poller`'s result for this connection, to save building one.

    """
    if pgconn.status != _OK:  # first: libpq may have closed the socket, its number reused
        return "the connection is already broken"
    try:
        if poller is None:
            poller = make_poller(pgconn)
        for _ in range(_MAX_CONSUMES):
            if not poller.poll(0):
                return None
            pgconn.consume_input()
            if pgconn.status != _OK:
                return "the server closed the connection"
    except Exception as ex:  # psycopg.OperationalError: EOF, ECONNRESET, ...
        return f"the server closed the connection ({_first_line(ex)})"
    return "the server closed the connection (the socket stays readable: EOF)"


def _first_line(ex: BaseException) -> str:
    text = str(ex).strip()
    return text.splitlines()[0] if text else type(ex).__name__


def _finish(pgconn: PGconn) -> str | None:
    """Drain the results of the ping; return a failure reason or ``None``."""
    failure: str | None = None
    while (res := pgconn.get_result()) is not None:
        if res.status not in (pq.ExecStatus.EMPTY_QUERY, pq.ExecStatus.COMMAND_OK):
            msg = res.error_message.decode("utf-8", "replace").strip()
            failure = f"the health check failed: {msg or pq.ExecStatus(res.status).name}"
    return failure


def ping(pgconn: PGconn, timeout: float) -> str | None:
    """Send an empty query and wait at most *timeout* seconds for its answer.

    Returns ``None`` when the server answered, otherwise the reason it is considered dead. The
    connection must be idle and unused; on failure it should be closed (it may be mid-query).
    """
    deadline = monotonic() + timeout
    try:
        pgconn.send_query(b"")
        fd = pgconn.socket
        while pgconn.flush():
            if not _ready(fd, _POLL_WRITE, deadline - monotonic()):
                return f"the server did not accept a health check within {timeout:.3g} s"
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                return _finish(pgconn)
            if not _ready(fd, _POLL_READ, deadline - monotonic()):
                return f"the server did not answer a health check within {timeout:.3g} s"
    except Exception as ex:  # psycopg.OperationalError from libpq
        return f"the health check failed ({_first_line(ex)})"


async def _aready(fd: int, write: bool, timeout: float) -> bool:
    if timeout <= 0:
        return _ready(fd, _POLL_WRITE if write else _POLL_READ, 0)
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, wake)
    try:
        await asyncio.wait_for(fut, timeout)
    except TimeoutError:
        return False
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)
    return True


async def aping(pgconn: PGconn, timeout: float) -> str | None:
    """The asyncio version of :func:`ping`: the event loop waits, never a blocking call."""
    deadline = monotonic() + timeout
    try:
        pgconn.send_query(b"")
        fd = pgconn.socket
        while pgconn.flush():
            if not await _aready(fd, True, deadline - monotonic()):
                return f"the server did not accept a health check within {timeout:.3g} s"
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                return _finish(pgconn)
            if not await _aready(fd, False, deadline - monotonic()):
                return f"the server did not answer a health check within {timeout:.3g} s"
    except Exception as ex:  # psycopg.OperationalError from libpq
        return f"the health check failed ({_first_line(ex)})"
