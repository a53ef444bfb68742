"""``sockwise.psycopg.ConnectionPool``: psycopg_pool's pool, hardened (see ``_common``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from time import monotonic
from typing import Any, Literal, cast

import psycopg
import psycopg_pool
from psycopg import Connection
from psycopg_pool.abc import CT, ConnectFailedCB, ConnectionCB, ConninfoParam, KwargsParam
from psycopg_pool.pool import AddConnection, MaintenanceTask, Schedule

from sockwise.policy import Policy
from sockwise.psycopg._common import (
    DEFAULT_MAX_IDLE,
    DEFAULT_MAX_LIFETIME,
    SockwiseMixin,
    adopt,
    guard_mark,
)
from sockwise.psycopg._probe import ping


class ConnectionPool(SockwiseMixin, psycopg_pool.ConnectionPool[CT]):
    """A :class:`psycopg_pool.ConnectionPool` that applies a :class:`sockwise.Policy`.

    Same arguments as psycopg_pool's pool, plus ``policy``; these defaults differ:

    * ``check="auto"``: every checkout polls the socket (free: it sees a server's FIN/RST) and
      pays a round trip only for a connection idle longer than :attr:`alive_bypass` (0.5 s) or
      suspect. A callable runs on every checkout, as in psycopg_pool; ``None`` keeps only the
      poll and the expiry checks.
    * ``max_idle=180`` (psycopg_pool: 600): below the 240 s idle timeout of the Azure load
      balancer and the 350 s of AWS NLB and NAT gateways. Enforced at checkout and by a sweep
      every :attr:`sweep_interval` seconds, below ``min_size`` too (the connection is replaced).
    * ``max_lifetime=1800`` (psycopg_pool: 3600): HikariCP's default; enforced at checkout too,
      not only when a connection is returned.

    The policy's libpq keywords (``keepalives*``, ``tcp_user_timeout``, ``connect_timeout``)
    are added to every connection; keywords the caller gives in ``kwargs`` or in the conninfo
    string win. Incoherent settings raise a :class:`sockwise.ConfigurationWarning` once, at
    construction. A checkout that times out raises :class:`sockwise.psycopg.PoolTimeout`
    naming the pool and its size.

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
        timeout: float = 30.0,
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
        timeout, deadline = self._sw_checkout_start(timeout)
        try:
            return self._getconn_with_check_loop(deadline)
        except psycopg_pool.PoolTimeout:
            raise self._sw_timeout_error(timeout) from None

    def _getconn_with_check_loop(self, deadline: float) -> CT:
        while True:
            conn = self._getconn_unchecked(deadline - monotonic())
            try:
                failure = self._sw_vet(conn, deadline)
            except BaseException:
                self._putconn(conn, from_getconn=True)
                raise
            if failure is None:
                guard_mark(conn, idle=False)
                return conn
            self._sw_discard(conn, failure)

    def _sw_vet(self, conn: CT, deadline: float) -> tuple[str, bool] | None:
        """Return ``None`` when *conn* may be handed out, else ``(reason, found_dead)``."""
        now = monotonic()
        failure, budget = self._sw_vet_free(conn, now, deadline)
        if budget is not None:
            failure = self._sw_pinged(conn, ping(conn.pgconn, budget), now)
        if failure is None and self._check is not None:
            try:
                self._check(conn)
            except Exception as ex:
                failure = self._sw_check_failed(ex)
        return failure

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

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[CT]:
        """Borrow a connection for a ``with`` block; see psycopg_pool's ``connection()``.

        An error the policy caused (the kernel aborting a connection to a server that stopped
        answering) carries a note saying which server and which policy setting.
        """
        conn = self.getconn(timeout=timeout)
        t0 = monotonic()
        try:
            with conn:
                yield conn
        except psycopg.OperationalError as ex:
            self._sw_explain(ex, conn)
            raise
        finally:
            self.putconn(conn)
            self._sw_count_usage(t0)

    # -- pool maintenance --------------------------------------------------------------------

    def _add_to_pool(self, conn: CT) -> None:
        self._sw_went_idle(conn)
        super()._add_to_pool(conn)

    def _connect(self, timeout: float | None = None) -> CT:
        try:
            conn = super()._connect(timeout)
        except Exception as ex:
            self._sw_connect_failed(ex)
            raise
        adopt(conn)
        return conn

    def _resolve_conninfo(self) -> str:
        return self._sw_conninfo(super()._resolve_conninfo())

    def _start_initial_tasks(self) -> None:
        super()._start_initial_tasks()
        self.run_task(Schedule(self, _Sweep(self), self.sweep_interval))


class _Sweep(MaintenanceTask):
    """Every ``sweep_interval`` seconds, close idle connections that are dead or expired."""

    def _run(self, pool: psycopg_pool.ConnectionPool[Any]) -> None:
        if isinstance(pool, ConnectionPool):
            pool.schedule_task(self, pool.sweep_interval)
            pool._sw_sweep()
