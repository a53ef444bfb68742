"""What the sync and async sockwise pools share: defaults, vetting, warnings, stats, errors.

Theory of operation (the checkout path): psycopg_pool hands a connection out after at most one
callback (``check``), which either costs a round trip per checkout or is absent. sockwise vets
each connection it is about to hand out in three steps, cheapest first:

1. *Expiry*, from timestamps: past ``max_lifetime`` or idle for ``max_idle`` -- enforced here, at
   checkout, for every connection (psycopg_pool only enforces ``max_lifetime`` when a connection
   is returned, and ``max_idle`` only shrinks the pool above ``min_size``).
2. *A readability poll* of the libpq socket (:func:`~sockwise.psycopg._probe.poll_dead`): one
   non-blocking system call that sees the FIN or RST of a server that ended the backend.
3. *A round trip* (:func:`~sockwise.psycopg._probe.ping`, bounded by the checkout deadline), only
   when the connection has been idle longer than :attr:`alive_bypass` (HikariCP's "alive bypass
   window": a connection that answered a moment ago is not asked again), or when it is *suspect*.

When a connection turns out dead, the connections created before it are suspect (a restart or a
fail-over killed them together; a black hole shows nothing on the socket): each is pinged before
it is handed out, and the idle stack is swept at once for the ones whose socket already says so.
A dead or expired connection is closed and replaced, and the checkout moves on to the next one.
A connection the caller's own ``check`` callback rejects is treated exactly as psycopg_pool
treats it: returned to the pool (rolled back; discarded and counted in ``connections_lost`` if
the check broke it), then the checkout backs off with psycopg_pool's ``AttemptWithBackoff``
(immediately once, then ~1 s, 2 s, 4 s ... within the checkout timeout). A connection found dead
is never retried in a loop either: a second failure in one checkout waits like psycopg_pool's.

During an outage (``check="auto"`` only) a checkout fails fast instead of waiting its whole
timeout: when the latest connection attempt failed and the pool has no idle connection and none
lent out that could come back, waiting clients are failed by each failed attempt, and a new
checkout either fails at once (an attempt failed less than :data:`PROBE_INTERVAL` ago) or makes
one connection attempt itself, bounded by the policy's ``connect_timeout`` (one at a time per
pool), and fails with its error. psycopg_pool's background reconnection goes on meanwhile.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from collections import Counter, deque
from time import monotonic
from typing import TYPE_CHECKING, Any, Final, Literal

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool.base import AttemptWithBackoff, BasePool

from sockwise import guard
from sockwise._errors import ConfigurationWarning
from sockwise._net.addr import format_address
from sockwise.policy import MIDDLEBOX_IDLE_TIMEOUTS, Policy, resolve_policy
from sockwise.psycopg._errors import PoolTimeout
from sockwise.psycopg._probe import make_poller, poll_dead

logger = logging.getLogger("sockwise.psycopg")
#: psycopg_pool's own logger: the pools emit its INFO lines where psycopg_pool does (a checkout
#: requested and given, a failed check), so logging set up for psycopg_pool sees the same.
pool_logger = logging.getLogger("psycopg.pool")


class _DefaultSeconds(float):
    """A default number of seconds, told apart from the same value given by the caller.

    Construction warnings are only about settings the caller made: a value of this type was not
    passed (its ``repr`` is the plain number, for signatures and docs).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return float.__repr__(self)


def caller_set(value: object) -> bool:
    """Whether *value* was given by the caller rather than left at a sockwise default."""
    return not isinstance(value, _DefaultSeconds)


#: The shortest idle timeout among the common middleboxes (Azure load balancer: 240 s).
MIDDLEBOX_MIN: Final = min(MIDDLEBOX_IDLE_TIMEOUTS.values())
#: Default ``max_idle`` (seconds). The strictest common middlebox, the Azure load balancer,
#: forgets a flow after 240 s without a packet (AWS NLB and NAT gateway: 350 s); a connection
#: reused after that meets a black hole or a RST. 180 s stays a full minute below it even if
#: keepalive probes are off or dropped. psycopg_pool's 600 s is above all of them.
DEFAULT_MAX_IDLE: Final[float] = _DefaultSeconds(180.0)
#: Default ``max_lifetime`` (seconds): 30 minutes, HikariCP's default. Recycling connections
#: spreads them over new servers after a fail-over or a DNS change, and bounds per-backend memory
#: growth; it stays below the one-hour limits proxies commonly impose (PgBouncer
#: ``server_lifetime``), and the pool jitters it by 5 % so connections don't expire together.
DEFAULT_MAX_LIFETIME: Final[float] = _DefaultSeconds(1800.0)
#: Seconds after its last use during which a connection is handed out on the free poll alone
#: (HikariCP's ``aliveBypassWindowMs`` is 500 ms): a busy pool pays no round trip per checkout.
#:
#: Measured (``python tools/psycopg_idle_gap.py --samples 30 --bypass 2,5``, loopback, 2 shared
#: cores): after an idle gap of 0.2 s a checkout costs what psycopg_pool's does (median +4 us);
#: after 1 s or 2 s the ping adds one round trip, +100 to +120 us (psycopg_pool with
#: ``check_connection`` pays +110 to +140 us on every checkout); checkout + ``SELECT 1`` +
#: return, +60 to +75 us median. Across a network the round trip is the network's (0.3-1 ms in
#: one cloud region). Windows of 2 s and 5 s remove the ping at 1 s (and at 2 s for 5 s).
#: ``sockwise bench --only gaps`` (one query after each gap, sockwise minus psycopg_pool,
#: medians, three runs on the same 2 shared cores at load 1.5-2): 0.2 s, no ping, -16 to
#: +48 us; 1 s and 2 s, a ping on every call, +16 to +280 us; 10 s, -117 to +122 us (the
#: first call after 10 s of sleep is slow for both, 300-600 us, and the noise swamps the ping).
#: The +230 us that an earlier version of that benchmark showed at every gap, ping or not, was
#: the benchmark's (the bare pool always ran right after sockwise's, on warm code). Back to
#: back, +2 and +5 us in two runs (+58 us in a third, noisy one); a checkout and return alone
#: cost ~1.5 us more than psycopg_pool's (7.1 vs 5.6 us: one ``poll()`` and the bookkeeping).
#:
#: Kept at 0.5 s on these numbers. The cost appears only when traffic is sparse (a connection
#: idle for half a second or more), i.e. when the pool has spare capacity and 0.1-1 ms is a
#: small part of a request; a pool busy enough for throughput to matter pings nothing. What the
#: ping buys is the silent failure the socket poll cannot see (server host lost, partition, a
#: fail-over whose old address black-holes): without it, a connection idle for less than the
#: window is handed out and its query hangs until the policy's ``user_timeout`` (90 s for
#: ``Policy()``); with it, the checkout fails over to a fresh connection within the ping
#: budget and the older siblings become suspect. psycopg_pool rotates its connections (FIFO),
#: so each one's idle gap is about ``pool size / request rate``: 0.5 s keeps that protection
#: for pools up to ~2 requests per second per connection (8/s for the default min_size=4), a
#: 2 s window only up to 0.5/s; above those rates no checkout pays. Raise
#: :attr:`ConnectionPool.alive_bypass` per pool where the round trip matters more.
ALIVE_BYPASS: Final = 0.5
#: Longest a health-check round trip may take (also bounded by the checkout deadline).
PING_TIMEOUT: Final = 5.0
#: Seconds between sweeps of the idle connections (poll and expiry; no round trips).
SWEEP_INTERVAL: Final = 5.0
#: During an outage, a checkout fails at once when a connection attempt failed less than this
#: many seconds ago; otherwise it tries one connection itself first. So the pool adds at most
#: about one connection attempt per second to a server that is down (one at a time), and errors
#: stop as soon as the server answers again (the next checkout after it), not only after
#: psycopg_pool's reconnection backoff (1 s doubling, up to minutes) has come round.
PROBE_INTERVAL: Final = 1.0
#: psycopg_pool's default checkout ``timeout``, marked as a default (see :func:`caller_set`).
DEFAULT_TIMEOUT: Final[float] = _DefaultSeconds(30.0)


CheckParam = Literal["auto"] | None

# Extra stats keys (get_stats() / pop_stats()).
CHECKOUTS_FAST: Final = "checkouts_fast"
CHECKOUTS_PINGED: Final = "checkouts_pinged"
DEAD_POLL: Final = "connections_dead_poll"
DEAD_PING: Final = "connections_dead_ping"
EXPIRED_IDLE: Final = "connections_expired_idle"
EXPIRED_LIFETIME: Final = "connections_expired_lifetime"
SUSPECT_CHECKED: Final = "connections_suspect_checked"
SWEPT: Final = "connections_swept"
FAILED_FAST: Final = "requests_failed_fast"

#: ``psycopg.pq.ConnStatus.OK`` as an int (compared on every checkout).
CONN_OK: Final = int(psycopg.pq.ConnStatus.OK)


#: libpq 12 added ``tcp_user_timeout``; an older libpq rejects a conninfo that names it.
LIBPQ_TCP_USER_TIMEOUT: Final = 120000


def libpq_supported(params: dict[str, int], version: int | None = None) -> dict[str, int]:
    """*params* without ``tcp_user_timeout`` when the libpq in use (or *version*) predates 12."""
    if (psycopg.pq.version() if version is None else version) >= LIBPQ_TCP_USER_TIMEOUT:
        return params
    return {k: v for k, v in params.items() if k != "tcp_user_timeout"}


def merged_conninfo(conninfo: str, params: dict[str, int]) -> str:
    """Return *conninfo* with the policy's libpq *params* added where it names none itself."""
    given = conninfo_to_dict(conninfo)
    extra = {k: v for k, v in params.items() if k not in given}
    return make_conninfo(conninfo, **extra) if extra else conninfo


def _check_seconds(name: str, value: object, *, zero_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not (value >= 0 if zero_ok else value > 0):
        allowed = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name}={value!r} is out of range: allowed {allowed} seconds")


def incoherences(pool: SockwiseMixin, given: frozenset[str] | None = None) -> list[str]:
    """Return a sentence for each setting the caller made that contradicts another or the network.

    Only settings in *given* (the names the caller passed; default: all) are judged, alone or
    against documented defaults; defaults are never judged against each other. psycopg_pool's
    ``reconnect_timeout`` is not compared with ``connect_timeout``: its first reconnection
    attempt always runs to the end, the timeout only starts counting after it failed.
    """
    if given is None:
        given = frozenset({"max_idle", "max_lifetime", "timeout", "policy", "min_size"})
    out: list[str] = []
    policy = pool.policy
    ka_idle = policy.keepalive_idle if policy.keepalive else None
    if given & {"max_idle", "policy"}:
        for box, limit in sorted(MIDDLEBOX_IDLE_TIMEOUTS.items(), key=lambda kv: kv[1]):
            if pool.max_idle >= limit and (ka_idle is None or ka_idle >= limit):
                out.append(
                    f"max_idle={pool.max_idle:g} s is at or above the {limit} s idle timeout of "
                    f"{box} and no keepalive probe refreshes the flow before it (keepalive_idle="
                    f"{ka_idle}): connections idle that long may be reused after the middlebox "
                    f"forgot them; use max_idle below {limit} s"
                )
                break
    if "max_idle" in given and pool.max_idle >= pool.max_lifetime:
        out.append(
            f"max_idle={pool.max_idle:g} s can never act: max_lifetime={pool.max_lifetime:g} s "
            "closes every connection first"
        )
    if "max_idle" in given and pool.min_size and pool.max_idle < 10:
        out.append(
            f"max_idle={pool.max_idle:g} s with min_size={pool.min_size}: the pool replaces "
            "its idle connections every few seconds to keep min_size, reconnecting "
            f"~{pool.min_size / pool.max_idle:.2g} connections/s while idle"
        )
    bound = policy.dead_peer_bound
    if "timeout" in given and bound is not None and pool.timeout > bound:
        out.append(
            f"timeout={pool.timeout:g} s (checkout) is longer than the policy's dead_peer_bound="
            f"{bound:g} s: a checkout would keep waiting after the policy has declared the "
            "server dead"
        )
    return out


_LIVE: weakref.WeakSet[BasePool] = weakref.WeakSet()


def live_pools() -> list[BasePool]:
    """Every sockwise psycopg pool (sync or async) of this process that is alive and open."""
    return [p for p in list(_LIVE) if not p.closed]


class SockwiseMixin(BasePool):
    """Shared state and decisions of :class:`ConnectionPool` and :class:`AsyncConnectionPool`."""

    #: Seconds after its last use during which a connection is handed out without a round trip.
    alive_bypass: float = ALIVE_BYPASS
    #: Longest a health-check round trip may take, in seconds.
    ping_timeout: float = PING_TIMEOUT
    #: Seconds between background sweeps of the idle connections.
    sweep_interval: float = SWEEP_INTERVAL

    policy: Policy
    _sw_auto_check: bool
    _sw_down_at: float
    _sw_probing: bool
    _sw_out: deque[None]
    _sw_suspect_created: float
    _sw_suspect_at: float
    _sw_last_failure: str | None
    _pool: deque[Any]
    _stats: Counter[str]

    if TYPE_CHECKING:  # both psycopg_pool pools have it; BasePool does not

        def _open(self) -> None: ...

    def _sw_init(
        self, policy: Policy, check: object, max_idle: float, max_lifetime: float, conninfo: object
    ) -> None:
        _check_seconds("max_idle", max_idle)
        _check_seconds("max_lifetime", max_lifetime)
        if not (check is None or check == "auto" or callable(check)):
            raise TypeError(f"check must be 'auto', None or a callable, got {check!r}")
        if isinstance(conninfo, str):
            conninfo_to_dict(conninfo)  # a malformed string fails here, not in every reconnect
        self.policy = policy
        _LIVE.add(self)
        self._sw_auto_check = check == "auto"
        self._sw_params = libpq_supported(policy.libpq_params())
        self._sw_conninfo_cache: tuple[str, str] | None = None
        self._sw_suspect_created = -1.0  # connections created at or before this are suspect ...
        self._sw_suspect_at = -1.0  # ... unless returned (proven alive) after this
        self._sw_last_failure = None
        self._sw_down_at = -1.0  # when the latest connection attempt failed; -1: it succeeded
        self._sw_probing = False  # a checkout is trying a connection during an outage
        # One item per connection lent out by getconn() and not returned yet (deque append and
        # pop are atomic: no lock on the hot path, no lost update between threads).
        self._sw_out = deque()

    def _sw_construct(
        self,
        conninfo: object,
        *,
        policy: Policy | None,
        check: object,
        open: bool | None,
        max_idle: float,
        max_lifetime: float,
        **pool_kwargs: Any,
    ) -> None:
        """The whole ``__init__`` of both pools: vet, build the psycopg_pool base, warn, open.

        The psycopg_pool base is built closed (and without ``check="auto"``, which only
        sockwise understands); it is opened afterwards, once the settings were checked and the
        warnings given, as psycopg_pool would (the asyncio one warns about opening here).
        """
        self._sw_init(resolve_policy(policy), check, max_idle, max_lifetime, conninfo)
        timeout = pool_kwargs.pop("timeout")
        settings = {"max_idle": max_idle, "max_lifetime": max_lifetime, "timeout": timeout}
        given = {name for name, value in settings.items() if caller_set(value)}
        if policy is not None:
            given.add("policy")
        base_kwargs: dict[str, Any] = {
            "conninfo": conninfo,
            "open": False,
            "check": None if check == "auto" else check,
            # psycopg_pool gets plain numbers; only the warnings need to know what was given.
            **{name: v if caller_set(v) else float(v) for name, v in settings.items()},
            **pool_kwargs,
        }
        super().__init__(**base_kwargs)
        self._sw_warn(frozenset(given))
        warn_open = getattr(self, "_warn_open_async", None)  # psycopg_pool's asyncio pool only
        if open and warn_open is not None:
            warn_open()
        if open is None:
            open = self._open_implicit = True
        if open:
            self._open()

    def _sw_warn(self, given: frozenset[str]) -> None:
        # stacklevel=4 skips _sw_warn, _sw_construct and __init__: it names the caller's line.
        for problem in incoherences(self, given):
            warnings.warn(f"pool {self.name!r}: {problem}", ConfigurationWarning, stacklevel=4)

    def _sw_conninfo(self, conninfo: str) -> str:
        cached = self._sw_conninfo_cache
        if cached is not None and cached[0] == conninfo:
            return cached[1]
        merged = merged_conninfo(conninfo, self._sw_params)
        self._sw_conninfo_cache = (conninfo, merged)
        return merged

    # -- vetting -----------------------------------------------------------------------------

    def _sw_vet_free(
        self, conn: Any, now: float, deadline: float
    ) -> tuple[tuple[str, bool] | None, float | None]:
        """The round-trip-free half of vetting *conn*, in the order of cost.

        Expired (``max_lifetime``, ``max_idle``) and dead on the socket poll mean discard;
        suspect (older than a connection found dead) or idle longer than ``alive_bypass`` (with
        ``check="auto"``) mean ping first. One ``poll()``, no round trip.

        The pools' checkout loop passes the usual connection without calling this: its inline
        test is stricter than every rule here (any doubt comes here). A rule added here that
        discards or pings must also fail that inline test.

        Returns:
            ``(failure, None)`` to discard it (``failure`` is ``(reason, found_dead)``),
            ``(None, budget)`` to ping it within *budget* seconds first, ``(None, None)`` when
            it passed on the socket poll alone.

        """
        stats = self._stats
        used = conn._sw_used_at
        if (
            conn._expire_at <= now
            or conn._created_at <= self._drained_at
            or now - used >= self.max_idle
        ):
            return (self._sw_expired(conn, now) or "max_lifetime", False), None
        pgconn = conn.pgconn
        poller = conn._sw_poller
        # poll_dead()'s first two steps, inline: the usual answer costs one poll(), no call.
        if poller is None or pgconn.status != CONN_OK or poller.poll(0):
            dead = poll_dead(pgconn, poller)
            if dead is not None:
                stats[DEAD_POLL] += 1
                self._sw_found_dead(conn, dead, now)
                return (dead, True), None
        if conn._created_at <= self._sw_suspect_created and used < self._sw_suspect_at:
            stats[SUSPECT_CHECKED] += 1
        elif not (self._sw_auto_check and now - used > self.alive_bypass):
            stats[CHECKOUTS_FAST] += 1
            return None, None
        return None, min(self.ping_timeout, max(deadline - now, 0.05))

    def _sw_pinged(self, conn: Any, failure: str | None, now: float) -> tuple[str, bool] | None:
        """Account for the health-check round trip of *conn* (started at *now*)."""
        if failure is not None:
            self._stats[DEAD_PING] += 1
            self._sw_found_dead(conn, failure, now)
            return failure, True
        self._stats[CHECKOUTS_PINGED] += 1
        return None

    def _sw_check_failed(self, conn: Any, ex: Exception) -> None:
        """Account for *conn* failing the caller's ``check`` (it goes back to psycopg_pool).

        psycopg_pool's return path rolls it back, or discards it and counts it in
        ``connections_lost`` when the check left it broken; here a broken one also makes its
        older siblings suspect, as a connection found dead does.
        """
        pool_logger.info("connection failed check: %s", ex)
        logger.info("pool %r: connection failed the check callback: %s", self.name, ex)
        if conn.pgconn.status != CONN_OK:
            self._sw_found_dead(conn, f"the check callback broke it: {ex}", monotonic(), False)

    def _sw_backoff(
        self, attempt: AttemptWithBackoff | None, deadline: float
    ) -> AttemptWithBackoff:
        """psycopg_pool's backoff between two failed vettings of one checkout.

        Raises:
            psycopg_pool.PoolTimeout: The next try would come after *deadline*.

        """
        now = monotonic()
        if attempt is None:
            attempt = AttemptWithBackoff(timeout=deadline - now)
        else:
            attempt.update_delay(now)
        if attempt.time_to_give_up(now):
            raise psycopg_pool.PoolTimeout()
        return attempt

    def _sw_shrink(self) -> bool:
        """Drop an expired idle connection's slot above ``min_size`` (call under the lock).

        Returns:
            ``True`` when the pool shrank, ``False`` when the connection must be replaced.

        """
        if self._nconns > self._min_size:
            self._nconns -= 1
            return True
        return False

    def _sw_found_dead(self, conn: Any, reason: str, now: float, count: bool = True) -> None:
        """Record a dead connection: the ones created before it become suspect.

        *count* adds it to ``connections_lost`` (``False`` when psycopg_pool counts it).
        """
        if count:
            self._stats[self._CONNECTIONS_LOST] += 1
        if self._sw_down_at < 0:  # during an outage the refused connect explains more
            self._sw_last_failure = f"{_peer(conn)}: {reason}"
        self._sw_suspect_created = max(self._sw_suspect_created, conn._created_at)
        self._sw_suspect_at = now
        logger.info("pool %r: connection to %s found dead: %s", self.name, _peer(conn), reason)

    def _sw_connect_failed(self, ex: Exception) -> None:
        """Remember why a connection attempt failed, for the next :class:`PoolTimeout`."""
        text = str(ex).strip()
        self._sw_last_failure = f"connecting failed: {text.splitlines()[0] if text else ex!r}"
        self._sw_down_at = monotonic()

    def _sw_connected(self, conn: Any) -> None:
        """A connection attempt succeeded: the outage (if any) is over; prepare *conn*.

        Every connection either pool creates (background growth and replacement, the outage
        probe) passes here once, right after libpq connected it: the one place for a
        per-connection hook (e.g. the guard attributing the libpq socket to the caller).
        """
        self._sw_down_at = -1.0
        adopt(conn)

    def _sw_expired(self, conn: Any, now: float) -> str | None:
        """``"max_lifetime"`` or ``"max_idle"`` when *conn* must go (counted), else ``None``.

        A connection created before the last :meth:`drain` counts as past its lifetime, as in
        psycopg_pool's return path.
        """
        if conn._expire_at <= now or conn._created_at <= self._drained_at:
            self._stats[EXPIRED_LIFETIME] += 1
            return "max_lifetime"
        if now - conn._sw_used_at >= self.max_idle:
            self._stats[EXPIRED_IDLE] += 1
            return "max_idle"
        return None

    def _sw_pick_bad(self, now: float) -> list[tuple[Any, str]]:
        """Take the dead and expired connections out of the idle deque (call under the lock)."""
        bad: list[tuple[Any, str]] = []
        keep: deque[Any] = deque()
        for conn in self._pool:
            if (expired := self._sw_expired(conn, now)) is not None:
                bad.append((conn, expired))
            elif (dead := poll_dead(conn.pgconn, conn._sw_poller)) is not None:
                self._stats[DEAD_POLL] += 1
                self._stats[SWEPT] += 1
                self._sw_found_dead(conn, dead, now)
                bad.append((conn, dead))
            else:
                keep.append(conn)
        if bad:
            self._pool.clear()
            self._pool.extend(keep)
        return bad

    # -- outages -----------------------------------------------------------------------------

    def _sw_outage(self) -> bool:
        """Whether the server is taken as down: fail checkouts instead of letting them wait.

        Only with ``check="auto"``; the latest connection attempt failed, and no connection is
        idle or lent out (one that could come back: a full server's ``too many clients`` with
        busy members is a wait, not an outage).
        """
        return (
            self._sw_auto_check
            and self._sw_down_at >= 0.0
            and not self._pool
            and not self._sw_out
            and not self._closed
        )

    def _sw_outage_decision(self, now: float) -> bool:
        """At checkout during an outage: ``True`` to try a connection first, else fail now.

        Raises:
            PoolTimeout: A connection attempt failed less than :data:`PROBE_INTERVAL` ago.

        """
        if self._sw_probing:  # another checkout is trying: wait for its outcome with the rest
            return False
        if now - self._sw_down_at < PROBE_INTERVAL:
            self._stats[FAILED_FAST] += 1
            raise self._sw_unreachable_error()
        self._sw_probing = True
        return True

    def _sw_probe_timeout(self, deadline: float) -> float:
        """How long a checkout's own connection attempt may take."""
        left = max(deadline - monotonic(), 0.05)
        connect = self.policy.connect_timeout
        return min(left, connect) if connect else left

    def _sw_unreachable_error(self) -> PoolTimeout:
        err = PoolTimeout(
            f"pool {self.name!r} couldn't hand out a connection: the server is unreachable "
            f"(size {self._nconns}/{self._max_size}, none idle or in use; check='auto' fails "
            "fast during an outage instead of waiting for the checkout timeout)",
            pool_name=self.name,
            timeout=self.timeout,
            size=self._nconns,
            max_size=self._max_size,
        )
        if self._sw_last_failure:
            err.add_note(f"sockwise: last connection failure: {self._sw_last_failure}")
        return err

    def _sw_take_waiting(self) -> list[Any]:
        """Remove and return the waiting clients (call under the lock)."""
        waiting = list(self._sw_waiting())
        self._sw_waiting().clear()
        return waiting

    # -- errors, stats, repr -----------------------------------------------------------------

    def _sw_timeout_error(self, timeout: float) -> PoolTimeout:
        idle = len(self._pool)
        size = self._nconns
        msg = (
            f"pool {self.name!r} couldn't hand out a connection within {timeout:.2f} s "
            f"(size {size}/{self._max_size}: {size - idle} in use or connecting, {idle} idle, "
            f"{self._sw_still_waiting()} other clients waiting)"
        )
        err = PoolTimeout(
            msg, pool_name=self.name, timeout=timeout, size=size, max_size=self._max_size
        )
        if self._sw_last_failure:
            err.add_note(f"sockwise: last connection failure: {self._sw_last_failure}")
        return err

    def _sw_still_waiting(self) -> int:
        """Clients still waiting (those that timed out linger in the deque until popped)."""
        return sum(1 for w in list(self._sw_waiting()) if not (w.conn or w.error))

    def _sw_waiting(self) -> deque[Any]:
        waiting: deque[Any] = getattr(self, "_waiting", deque())
        return waiting

    def _sw_explain(self, ex: BaseException, conn: Any) -> None:
        """Add a PEP 678 note to *ex* when it looks like the policy declared the server dead."""
        text = str(ex).lower()
        if not isinstance(ex, psycopg.OperationalError) or "timed out" not in text:
            return
        policy = self.policy
        settings = []
        if isinstance(policy.user_timeout, (int, float)) and policy.user_timeout > 0:
            settings.append(f"user_timeout={policy.user_timeout:g} s (TCP_USER_TIMEOUT)")
        if policy.dead_peer_bound is not None:
            settings.append(
                f"keepalive {policy.keepalive_idle}/{policy.keepalive_interval}/"
                f"{policy.keepalive_count} (dead_peer_bound={policy.dead_peer_bound:g} s)"
            )
        if not settings:
            return
        ex.add_note(
            f"sockwise: the PostgreSQL server at {_peer(conn)} stopped answering; the kernel "
            f"aborted the connection under the pool's policy ({', '.join(settings)}), instead "
            "of letting the query hang for the ~15 minutes of TCP retransmissions"
        )

    def get_stats(self) -> dict[str, int]:
        """Return psycopg_pool's stats plus sockwise's counters (always present, 0 at first).

        The added keys: ``checkouts_fast`` (handed out on the free socket poll alone),
        ``checkouts_pinged`` (after a health-check round trip), ``connections_dead_poll`` and
        ``connections_dead_ping`` (found dead by the poll or by the round trip, never handed
        out), ``connections_expired_idle`` and ``connections_expired_lifetime`` (closed at
        checkout or by the sweep), ``connections_suspect_checked`` (pinged because an older
        sibling was found dead), ``connections_swept`` (dead ones the background sweep
        closed before anyone asked for them) and ``requests_failed_fast`` (checkouts failed at
        once during an outage, see :data:`PROBE_INTERVAL`).
        """
        return _with_keys(super().get_stats())

    def pop_stats(self) -> dict[str, int]:
        """Like :meth:`get_stats`, then reset the counters to zero."""
        return _with_keys(super().pop_stats())

    def __repr__(self) -> str:
        idle = len(self._pool)
        state = "closed" if self._closed else f"{self._nconns - idle} in use, {idle} idle"
        return (
            f"<{type(self).__module__}.{type(self).__qualname__} {self.name!r} {state}, "
            f"{len(self._sw_waiting())} waiting, size {self._nconns}/{self._max_size} "
            f"at 0x{id(self):x}>"
        )


def _peer(conn: Any) -> str:
    """``host:port`` of *conn* (``[::1]:5432`` for IPv6; cached on it), or ``"the server"``."""
    peer: str | None = getattr(conn, "_sw_peer", None)
    if peer is None:
        try:
            peer = format_address((str(conn.info.host), int(conn.info.port)))
        except Exception:  # Defensive: a finished pgconn
            peer = "the server"
        conn._sw_peer = peer
    return peer


def adopt(conn: Any) -> None:
    """Prepare a fresh connection: its peer (while libpq can tell), last use and poller."""
    _peer(conn)
    conn._sw_used_at = conn._created_at
    try:
        conn._sw_poller = make_poller(conn.pgconn)
    except Exception:  # Defensive: no socket yet; poll_dead builds one when needed
        conn._sw_poller = None


#: Whether a guard records origins: the pools ask before :func:`guard_mark` (the guard's own
#: function, not a wrapper -- it runs on every checkout and return).
guard_recording = guard.recording_origins


def guard_mark(conn: Any, idle: bool) -> None:
    """Tell a running sockwise guard that *conn* went idle in the pool, or left it.

    An idle member is registered with :func:`sockwise.guard.register_pooled`: the pool closes
    it itself when its peer goes away, so the guard does not report its CLOSE_WAIT as a leak.
    With no guard running (nothing to tell) this costs one attribute test, on the hot path of
    every checkout and return.
    """
    if not guard.recording_origins():
        return
    try:
        if idle:
            guard.register_pooled(conn.pgconn.socket)
        else:  # also unregisters it; names the line that checked it out
            guard.note_origin(conn.pgconn.socket, kind="checkout", owner=conn)
    except Exception:  # Defensive: the guard must never break the pool
        logger.debug("sockwise.guard pooled-member bookkeeping failed", exc_info=True)


STATS_KEYS: Final = (
    CHECKOUTS_FAST,
    CHECKOUTS_PINGED,
    DEAD_POLL,
    DEAD_PING,
    EXPIRED_IDLE,
    EXPIRED_LIFETIME,
    SUSPECT_CHECKED,
    SWEPT,
    FAILED_FAST,
)


def _with_keys(stats: dict[str, int]) -> dict[str, int]:
    for key in STATS_KEYS:
        stats.setdefault(key, 0)
    return stats
