"""``sockwise.psycopg.ConnectionPool``: psycopg_pool's pool, hardened (see ``_common``).

Generated from ``_pool_async.py`` by ``tools/gen_sync_pool.py``: do not edit, edit the asyncio
pool and run the generator (CI runs it with ``--check``).
"""

from __future__ import annotations

from contextlib import suppress
from time import monotonic, sleep
from types import TracebackType
from typing import Any, Generic, Literal, cast

import psycopg
import psycopg_pool
from psycopg import Connection
from psycopg_pool.abc import (
    CT,
    ConnectFailedCB,
    ConnectionCB,
    ConninfoParam,
    KwargsParam,
)
from psycopg_pool.base import AttemptWithBackoff
from psycopg_pool.pool import AddConnection, MaintenanceTask, Schedule

from sockwise.policy import Policy
from sockwise.psycopg._common import (
    CHECKOUTS_FAST,
    CONN_OK,
    DEFAULT_MAX_IDLE,
    DEFAULT_MAX_LIFETIME,
    DEFAULT_TIMEOUT,
    FAILED_FAST,
    SockwiseMixin,
    guard_mark,
    guard_recording,
    pool_logger,
)
from sockwise.psycopg._errors import PoolTimeout
from sockwise.psycopg._probe import ping


class ConnectionPool(SockwiseMixin, psycopg_pool.ConnectionPool[CT]):
    """A :class:`psycopg_pool.ConnectionPool` that applies a :class:`sockwise.Policy`.

    Same arguments as psycopg_pool's pool, plus ``policy``; these defaults differ:

    * ``check="auto"``: every checkout polls the socket (free: it sees a server's FIN/RST) and
      pays a round trip only for a connection idle longer than :attr:`alive_bypass` (0.5 s) or
      suspect; during an outage a checkout fails fast (see :data:`PROBE_INTERVAL`). A
      callable runs on every checkout, as in psycopg_pool (a connection failing it goes back to
      the pool and the checkout backs off, as psycopg_pool does); ``None`` keeps only the poll
      and the expiry checks.
    * ``max_idle=180`` (psycopg_pool: 600): below the 240 s idle timeout of the Azure load
      balancer and the 350 s of AWS NLB and NAT gateways. Enforced at checkout and by a sweep
      every :attr:`sweep_interval` seconds, below ``min_size`` too (the connection is replaced).
    * ``max_lifetime=1800`` (psycopg_pool: 3600): HikariCP's default; enforced at checkout too,
      not only when a connection is returned.

    The policy's libpq keywords (``keepalives*``, ``tcp_user_timeout``, ``connect_timeout``)
    are added to every connection; keywords the caller gives in ``kwargs`` or in the conninfo
    string win (``tcp_user_timeout`` only where libpq supports it: libpq 12 or newer).
    Incoherent settings raise a :class:`sockwise.ConfigurationWarning` once, at construction,
    only about settings the caller made (never about defaults alone). A checkout that times out
    raises :class:`sockwise.psycopg.PoolTimeout` naming the pool and its size.

    Args:
        conninfo: The libpq connection string (or a callable returning it), as psycopg_pool.
        connection_class: The connection class to create.
        kwargs: Extra connection keywords (or a callable returning them); they win over the
            policy's.
        min_size: Connections kept open (replaced when they expire).
        max_size: The most connections the pool may hold (default: ``min_size``).
        open: Open the pool at construction (psycopg_pool's deprecated default ``None``).
        configure: Called with each new connection.
        check: ``"auto"``, a callable run on every checkout, or ``None`` (see above).
        reset: Called with each returned connection.
        name: The pool's name, used in logs and errors.
        close_returns: Make ``conn.close()`` return the connection to the pool.
        timeout: Seconds a checkout may wait before :class:`PoolTimeout`.
        max_waiting: The most clients allowed to wait (0: no limit).
        max_lifetime: Seconds after which a connection is closed and replaced.
        max_idle: Seconds a connection may stay idle before it is closed.
        reconnect_timeout: Seconds the pool keeps trying to reconnect before giving up.
        reconnect_failed: Called when reconnecting has failed for ``reconnect_timeout``.
        num_workers: Background worker threads.
        policy: The socket policy for every connection (``None``: the policy in force, see
            :func:`~sockwise.policy.resolve_policy`).

    .. versionadded:: 0.1.0

    """

    __module__ = "sockwise.psycopg"

    def __init__(
        self,
        conninfo: ConninfoParam = "",
        *,
        connection_class: type[CT] = cast(type[CT], Connection),  # noqa: B008 (as psycopg_pool)
        kwargs: KwargsParam | None = None,
        min_size: int = 4,
        max_size: int | None = None,
        open: bool | None = None,
        configure: ConnectionCB[CT] | None = None,
        check: ConnectionCB[CT] | Literal["auto"] | None = "auto",
        reset: ConnectionCB[CT] | None = None,
        name: str | None = None,
        close_returns: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        max_waiting: int = 0,
        max_lifetime: float = DEFAULT_MAX_LIFETIME,
        max_idle: float = DEFAULT_MAX_IDLE,
        reconnect_timeout: float = 5 * 60.0,
        reconnect_failed: ConnectFailedCB | None = None,
        num_workers: int = 3,
        policy: Policy | None = None,
    ) -> None:
        self._sw_construct(
            conninfo,
            policy=policy,
            check=check,
            open=open,
            max_idle=max_idle,
            max_lifetime=max_lifetime,
            connection_class=connection_class,
            kwargs=kwargs,
            min_size=min_size,
            max_size=max_size,
            configure=configure,
            reset=reset,
            name=name,
            close_returns=close_returns,
            timeout=timeout,
            max_waiting=max_waiting,
            reconnect_timeout=reconnect_timeout,
            reconnect_failed=reconnect_failed,
            num_workers=num_workers,
        )

    # -- checkout ----------------------------------------------------------------------------

    def getconn(self, timeout: float | None = None) -> CT:
        """Obtain a vetted connection; see :meth:`psycopg_pool.ConnectionPool.getconn`.

        Raises:
            PoolTimeout: No connection could be handed out within *timeout* (default:
                ``self.timeout``); the message names the pool and its size.

        """
        # The hot path, kept flat: every call here costs on each of the application's checkouts.
        if timeout is None:
            timeout = self.timeout
        deadline = monotonic() + timeout
        pool_logger.info("connection requested from %r", self.name)
        self._stats[self._REQUESTS_NUM] += 1
        self._check_open_getconn()
        try:
            return self._getconn_with_check_loop(deadline)
        except PoolTimeout:
            raise
        except psycopg_pool.PoolTimeout:
            raise self._sw_timeout_error(timeout) from None

    def _getconn_with_check_loop(self, deadline: float) -> CT:
        attempt: AttemptWithBackoff | None = None
        while True:
            if self._sw_down_at >= 0.0 and self._sw_outage():
                self._sw_fail_fast(deadline)
            conn = self._getconn_unchecked(deadline - monotonic())
            try:
                now = monotonic()
                # The usual checkout, inline (every operation here costs on each checkout):
                # used within alive_bypass and max_idle, not past its lifetime, not older
                # than a drain or a connection found dead, and quiet on the socket poll. Any
                # other connection gets the whole vetting (_sw_vet_free), which decides alike.
                c: Any = conn  # the pool's marks on it (psycopg_pool's and sockwise's)
                idle = now - c._sw_used_at
                poller = c._sw_poller
                if (
                    idle < self.alive_bypass
                    and idle < self.max_idle
                    and c._expire_at > now
                    and c._created_at > self._drained_at
                    and c._created_at > self._sw_suspect_created
                    and poller is not None
                    and c.pgconn.status == CONN_OK
                    and not poller.poll(0)
                ):
                    self._stats[CHECKOUTS_FAST] += 1
                    if self._check is None:  # nothing more to ask: hand it out
                        self._sw_out.append(None)  # lent out (see _sw_outage)
                        if guard_recording():  # a call fewer per checkout with no guard
                            guard_mark(conn, idle=False)
                        pool_logger.info("connection given by %r", self.name)
                        return conn
                    failure, budget = None, None
                else:
                    failure, budget = self._sw_vet_free(conn, now, deadline)
                if budget is not None:  # not on the fast path: a round trip first
                    failure = self._sw_vet(conn, budget, now)
                passed = failure is None and (self._check is None or self._sw_user_check(conn))
            except BaseException:
                self._putconn(conn, from_getconn=True)
                raise
            if passed:
                self._sw_out.append(None)  # lent out (see _sw_outage)
                if guard_recording():  # asked here: a call fewer per checkout with no guard
                    guard_mark(conn, idle=False)
                pool_logger.info("connection given by %r", self.name)
                return conn
            if failure is None:  # the caller's check failed: back to the pool, as psycopg_pool
                self._putconn(conn, from_getconn=True)
            else:
                self._sw_discard(conn, failure)
                if not failure[1]:
                    continue  # expired: routine, no backoff
            attempt = self._sw_backoff(attempt, deadline)
            sleep(attempt.delay)

    def _sw_vet(self, conn: CT, budget: float, now: float) -> tuple[str, bool] | None:
        """The round-trip half of vetting: ``None`` when *conn* answered within *budget*."""
        return self._sw_pinged(conn, ping(conn.pgconn, budget), now)

    def _sw_user_check(self, conn: CT) -> bool:
        """Run the caller's ``check`` callback; ``False`` when it raised."""
        assert self._check is not None
        try:
            self._check(conn)
        except Exception as ex:
            self._sw_check_failed(conn, ex)
            return False
        return True

    def _sw_fail_fast(self, deadline: float) -> None:
        """During an outage: fail now, or try one connection first (see ``PROBE_INTERVAL``)."""
        if not self._sw_outage_decision(monotonic()):
            return
        try:
            conn = self._connect(self._sw_probe_timeout(deadline))
        except Exception:
            self._stats[FAILED_FAST] += 1
            raise self._sw_unreachable_error() from None
        finally:
            self._sw_probing = False
        with self._lock:
            room = self._nconns < self._max_size
            if room:  # it joins the pool: psycopg_pool's reconnection may still be backing off
                self._nconns += 1
        if room:
            self._add_to_pool(conn)
        else:
            self._close_connection(conn)

    def _sw_fail_waiting(self) -> None:
        """A connection attempt failed during an outage: fail the clients waiting for one."""
        with self._lock:
            waiting = self._sw_take_waiting()
        for pos in waiting:
            if pos.fail(self._sw_unreachable_error()):
                self._stats[FAILED_FAST] += 1

    def _sw_discard(self, conn: CT, failure: tuple[str, bool]) -> None:
        self._sw_close_replace(conn, failure[0])
        if failure[1]:  # dead: sweep the idle stack for its siblings now, for free
            self._sw_sweep()

    def _sw_close_replace(self, conn: CT, reason: str) -> None:
        conn._pool = None
        with suppress(Exception):  # Defensive: closing a broken one must not fail a checkout
            conn.close()
        if reason == "max_idle":
            with self._lock:
                if self._sw_shrink():  # above min_size: shrink instead
                    return
        self.run_task(AddConnection(self))

    def _sw_sweep(self) -> None:
        """Close and replace the idle connections that are dead or expired (no round trips)."""
        with self._lock:
            bad = self._sw_pick_bad(monotonic())
        for conn, reason in bad:
            self._sw_close_replace(conn, reason)

    def connection(self, timeout: float | None = None) -> _Borrowed[CT]:  # type: ignore[override]
        """Borrow a connection for a ``with`` block; see psycopg_pool's ``connection()``.

        The same steps as psycopg_pool's (checkout, the connection's own block -- commit, or
        rollback on an error --, return, ``usage_ms``), in a plain context manager rather than
        a generator-based one: 1.5 us less per checkout (measured), the largest single cost of
        a pooled query's Python after the query itself.

        An error the policy caused (the kernel aborting a connection to a server that stopped
        answering) carries a note saying which server and which policy setting.
        """
        return _Borrowed(self, timeout)

    def putconn(self, conn: CT) -> None:
        """Give a connection back; see :meth:`psycopg_pool.ConnectionPool.putconn`."""
        # Lent out no more (a putconn() without its getconn() finds it empty). Not
        # contextlib.suppress: two Python calls on every return.
        try:  # noqa: SIM105
            self._sw_out.pop()
        except IndexError:
            pass
        super().putconn(conn)

    # -- pool maintenance --------------------------------------------------------------------

    def _add_to_pool(self, conn: CT) -> None:
        conn._sw_used_at = monotonic()  # type: ignore[attr-defined]
        if guard_recording():
            guard_mark(conn, idle=True)
        super()._add_to_pool(conn)

    def _connect(self, timeout: float | None = None) -> CT:
        # The one place where the pool creates a connection (background or during an outage).
        try:
            conn = super()._connect(timeout)
        except Exception as ex:
            self._sw_connect_failed(ex)
            if self._sw_outage():
                self._sw_fail_waiting()
            raise
        self._sw_connected(conn)
        return conn

    def _resolve_conninfo(self) -> str:
        return self._sw_conninfo(super()._resolve_conninfo())

    def _start_initial_tasks(self) -> None:
        super()._start_initial_tasks()
        self.run_task(Schedule(self, _Sweep(self), self.sweep_interval))


class _Borrowed(Generic[CT]):
    """What :meth:`ConnectionPool.connection` returns: the loan of a ``with`` block."""

    __slots__ = ("_conn", "_pool", "_t0", "_timeout")

    def __init__(self, pool: ConnectionPool[CT], timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout

    def __enter__(self) -> CT:
        pool = self._pool
        conn = pool.getconn(timeout=self._timeout)
        self._t0 = monotonic()
        try:
            conn.__enter__()
        except BaseException as ex:  # as if raised in the block: explained, conn returned
            pool._sw_explain(ex, conn)
            pool.putconn(conn)
            pool._stats[pool._USAGE_MS] += int(1000.0 * (monotonic() - self._t0))
            raise
        self._conn = conn
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool, conn = self._pool, self._conn
        try:
            try:
                conn.__exit__(exc_type, exc, tb)  # commit, or roll back; never suppresses
            except psycopg.OperationalError as ex:
                pool._sw_explain(ex, conn)
                raise
            if isinstance(exc, psycopg.OperationalError):
                pool._sw_explain(exc, conn)
        finally:
            pool.putconn(conn)
            pool._stats[pool._USAGE_MS] += int(1000.0 * (monotonic() - self._t0))


class _Sweep(MaintenanceTask):
    """Every ``sweep_interval`` seconds, close idle connections that are dead or expired."""

    def _run(self, pool: psycopg_pool.ConnectionPool[Any]) -> None:
        if isinstance(pool, ConnectionPool):
            pool.schedule_task(self, pool.sweep_interval)
            pool._sw_sweep()
