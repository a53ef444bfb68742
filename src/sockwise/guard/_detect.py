"""The three detectors: CLOSE_WAIT leaks, ephemeral-port churn, accept-queue overflow.

A :class:`Detector` keeps only per-socket state for sockets currently in a suspicious state
(pruned each sample), a few numbers per destination with TIME_WAIT rows, and counters; memory is
bounded by what the kernel reports, not by how many sockets the application ever opened.

Which reports were already made is shared by all guards of the process (:func:`claim`), so a
second guard never repeats the first one's warnings.
"""

from __future__ import annotations

import linecache
import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Final

from sockwise._log import log_once, logger
from sockwise.guard import _origin, _pools
from sockwise.guard._events import (
    AcceptQueueWarning,
    CloseWaitLeakWarning,
    GuardEvent,
    PortChurnWarning,
    redact,
)
from sockwise.guard._origin import Origin
from sockwise.guard._pools import PoolVerdict
from sockwise.guard._procfs import parse_netstat, parse_port_range, read_int, read_text, socket_fds
from sockwise.guard._records import SocketRecord
from sockwise.guard._sample import TIME_WAIT_SECONDS, Address, Sample

#: Least time between two listings of ``/proc/self/fd`` (≈60 ms at 10,000 descriptors).
SCAN_EVERY: Final = 30.0
_DEFAULT_RANGE: Final = (32768, 60999)
_MAX_CLAIMS: Final = 8192
_MAX_RESET: Final = 4096

_claims_lock = threading.Lock()
_claims: dict[tuple[str, object], float] = {}


def claim(key: tuple[str, object], now: float, every: float | None) -> bool:
    """Whether *key* may be reported now (and record that it is); ``every=None``: only once."""
    with _claims_lock:
        last = _claims.get(key)
        if last is not None and (every is None or now - last < every):
            return False
        _claims[key] = now
        if len(_claims) > _MAX_CLAIMS:
            del _claims[next(iter(_claims))]
        return True


def claimed(key: tuple[str, object]) -> bool:
    """Whether *key* was reported already."""
    return key in _claims


def forget_claims(kind: str, keep: set[object] | None = None) -> None:
    """Forget reports of *kind* except those whose subject is in *keep* (``None``: all)."""
    with _claims_lock:
        for key in [k for k in _claims if k[0] == kind and (keep is None or k[1] not in keep)]:
            del _claims[key]


def claims_size() -> int:
    """How many reports are remembered."""
    return len(_claims)


def after_fork_in_child() -> None:
    """Replace the lock, possibly held by another thread at fork time."""
    global _claims_lock
    _claims_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The knobs of :class:`~sockwise.Guard` the detectors use (validated there)."""

    close_wait_after: float
    churn_rate: float | None
    churn_samples: int
    time_wait_fraction: float
    accept_queue_ratio: float
    report_every: float
    max_reports: int
    churn_scope: str = "process"


def _where(origin: Origin | None, opened: str = "opened") -> str:
    if origin is None:
        return (
            "origin not recorded: opened before the guard started, or by code the guard does "
            "not see (C extensions; a library's own thread)"
        )
    line = linecache.getline(origin.filename, origin.lineno).strip()
    if len(line) > 120:
        line = line[:117] + "..."
    if origin.kind == "checkout":
        opened = "checked out of its pool"
    elif origin.kind == "accept":
        opened = "accepted"
    elif origin.kind == "served":
        if origin.via == "socketserver":
            opened = "accepted by a socketserver thread for the handler"
        elif origin.via == "uvicorn":
            opened = "accepted by uvicorn, serving the application set up"
        else:
            opened = "accepted by the server set up"
    text = f"{opened} at {origin}"
    return f"{text}: {line}" if line else text


#: What to do about a leak, by the library the socket was opened through (``Origin.via``).
_ADVICE: Final = {
    "requests": (
        "Close the response when done with it (response.close(), or `with requests.get(..., "
        "stream=True) as response:`), or read it to the end: a streamed response keeps its "
        "connection until then."
    ),
    "urllib3": (
        "Release the response (response.release_conn() or response.close(), or read it to the "
        "end); with preload_content=False the connection stays checked out until then."
    ),
    "http": (
        "Close the http.client connection when done (conn.close()), or reconnect per use: "
        "servers close idle keep-alive connections, and a cached connection sits half-dead."
    ),
    "httpx": "Close the response or the client (use `with client.stream(...)` / `with Client()`).",
    "httpcore": "Close the response or the client (use `with client.stream(...)`).",
    "psycopg": "Close the connection (conn.close(), or `with psycopg.connect(...) as conn:`).",
    "psycopg_pool": (
        "Return the connection to its pool (pool.putconn(conn)), or use `with pool.connection() "
        "as conn:`."
    ),
    "redis": "Close the client (client.close()) or use a shared connection pool.",
    "aiohttp": "Close the response and the session (`async with session.get(...) as resp:`).",
    "asyncpg": "Close the connection or release it to its pool (`async with pool.acquire()`).",
}
_RAW_ADVICE: Final = (
    "Close the socket when a read returns b'' (use a with-block), or let a pool that drops "
    "peer-closed connections own it."
)


def _advice(origin: Origin | None, verdict: PoolVerdict | None) -> str:
    if origin is not None and origin.kind == "checkout":
        return _ADVICE["psycopg_pool"]
    if verdict is not None and verdict.lib == "psycopg_pool":
        return _ADVICE["psycopg_pool"]
    via = origin.via if origin is not None else ""
    if via in _ADVICE:
        return _ADVICE[via]
    if verdict is not None and verdict.lib in _ADVICE:
        return _ADVICE[verdict.lib]
    if origin is not None and origin.kind in ("accept", "served"):
        return (
            "Close the accepted connection once the client has closed its side (a read "
            "returned b''): the handler never did."
        )
    return _RAW_ADVICE


def _leak_event(
    rec: SocketRecord, age: float, origin: Origin | None, verdict: PoolVerdict | None
) -> GuardEvent:
    if rec.state == "CLOSE":
        what = (
            f"CLOSE_WAIT leak: socket fd {rec.fd} {_addr(rec.local)} -> {_addr(rec.remote)}: "
            f"the peer closed the connection {age:.0f} s ago and has since reset it, but this "
            "process still holds the descriptor"
        )
    else:
        what = (
            f"CLOSE_WAIT leak: socket fd {rec.fd} {_addr(rec.local)} -> {_addr(rec.remote)} "
            f"has been in CLOSE_WAIT for {age:.0f} s: the peer closed the connection and this "
            "process never closed its end"
        )
    held = ""
    if verdict is not None and verdict.state == "in_use" and verdict.pool:
        held = f"; it is checked out of the {verdict.pool}, not idle in it"
    msg = f"{what} ({_where(origin)}{held}). {_advice(origin, verdict)}"
    return GuardEvent(
        kind="close_wait",
        category=CloseWaitLeakWarning,
        message=redact(msg),
        local=rec.local,
        remote=rec.remote,
        fd=rec.fd,
        origin=origin,
        details={"age": age, "inode": rec.inode, "state": rec.state},
    )


def _addr(a: Address) -> str:
    host, port = a
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Detector:
    """Per-guard state of the three detectors."""

    def __init__(self, th: Thresholds, scan_every: float = SCAN_EVERY) -> None:
        self.th = th
        self.scan_every = scan_every
        self.cw_first: dict[int, float] = {}
        self.cw_rec: dict[int, SocketRecord] = {}  # our CLOSE_WAIT sockets, last seen
        self.reset: dict[int, SocketRecord] = {}  # ours that left CLOSE_WAIT, fd still open
        self.unhooked: dict[int, int] = {}  # inode -> fd found by listing /proc/self/fd
        self.foreign: set[int] = set()
        self.last_scan = -math.inf
        self.streak: dict[Address, int] = {}
        self.prev_tw: dict[Address, int] = {}
        self.last_time: float | None = None
        self.dest_prev: dict[Address, int] = _origin.destination_connects()
        self.last_connects = _origin.connects()
        #: Per sample: this process's connects per destination (the last 60 s).
        self.history: deque[tuple[float, dict[Address, int]]] = deque(maxlen=512)
        self.netstat_prev: dict[str, int] | None = None
        self.somaxconn: int | None = None
        self.port_range: tuple[int, int] | None = None
        self.port_range_at = -math.inf
        self.cw_due: float | None = None

    # -- helpers -----------------------------------------------------------------------------

    def window(self, now: float, interval: float) -> float:
        """Seconds covered by the sample taken at *now*."""
        if self.last_time is None:
            return min(max(interval, 0.001), TIME_WAIT_SECONDS)
        return min(max(now - self.last_time, 0.001), TIME_WAIT_SECONDS)

    def _owner(self, ino: int) -> tuple[int, Origin | None] | bool | None:
        """``(fd, origin)`` if ours, ``False`` if not ours, ``None`` if unknown."""
        known = _origin.lookup(ino)
        if known is not None and _origin._alive(known[0], ino):
            return known
        fd = self.unhooked.get(ino)
        if fd is not None and _origin._alive(fd, ino):
            return fd, None
        if ino in self.foreign:
            return False
        return None

    def _resolve(self, unknown: list[int], present: set[int], now: float) -> None:
        unknown = [i for i in unknown if i not in self.foreign]
        if not unknown or now - self.last_scan < self.scan_every:
            return
        self.last_scan = now
        try:
            fds = socket_fds()
        except OSError as exc:
            log_once("guard-fd-scan", logging.WARNING, "sockwise guard: cannot list fds: %r", exc)
            return
        for ino, fd in fds.items():
            if ino in present:
                self.unhooked[ino] = fd
        self.foreign.update(ino for ino in unknown if ino not in fds)

    # -- CLOSE_WAIT --------------------------------------------------------------------------

    def close_wait(
        self,
        rows: list[SocketRecord],
        present_all: set[int],
        now: float,
        half_open: set[tuple[Address, Address]] | None = None,
    ) -> tuple[list[tuple[SocketRecord, float]], list[GuardEvent]]:
        """Age the CLOSE_WAIT rows; return this process's ones and the leak events.

        Args:
            rows: This uid's CLOSE_WAIT rows.
            present_all: Inodes of every row of the sample (to keep per-socket state).
            now: The sample's time.
            half_open: ``(local, remote)`` of our CLOSE_WAIT sockets whose peer, on this
                machine, still holds its socket open: it half-closed (``shutdown(SHUT_WR)``)
                and waits for our answer, so our CLOSE_WAIT is no leak.

        """
        th = self.th
        present = {r.inode for r in rows}
        rows = rows + self._reset_rows(present)
        present |= self.reset.keys()
        self.cw_first = {i: t for i, t in self.cw_first.items() if i in present}
        forget_claims("cw", set(present))
        due: float | None = None
        ours: list[tuple[SocketRecord, float]] = []
        leaks: list[tuple[SocketRecord, float, Origin | None]] = []
        unknown: list[int] = []
        for rec in rows:
            self.cw_first.setdefault(rec.inode, now)
            if self._owner(rec.inode) is None:
                unknown.append(rec.inode)
        self._resolve(unknown, present_all, now)
        idle_pooled: dict[object, tuple[PoolVerdict, SocketRecord]] = {}
        for rec in rows:
            owner = self._owner(rec.inode)
            if not isinstance(owner, tuple):
                continue
            fd, origin = owner
            age = now - self.cw_first[rec.inode]
            rec = replace(rec, fd=fd)
            ours.append((rec, age))
            if rec.state == "CLOSE_WAIT":
                self.cw_rec[rec.inode] = rec
            if _origin.is_pooled(rec.inode) or claimed(("cw", rec.inode)):
                continue
            if half_open and (rec.local, rec.remote) in half_open:
                self.cw_first[rec.inode] = now  # the peer still waits: age from its full close
                continue
            if age < th.close_wait_after:
                limit = self.cw_first[rec.inode] + th.close_wait_after
                due = limit if due is None else min(due, limit)
                continue
            verdict = _pools.judge(_origin.holder(rec.inode))
            if verdict is not None and verdict.state == "idle":
                idle_pooled.setdefault(verdict.key, (verdict, rec))
                continue
            leaks.append((rec, age, origin))
        self.cw_rec = {i: r for i, r in self.cw_rec.items() if i in present}
        self.cw_due = due
        self._pool_notices(idle_pooled, now)
        return ours, self._leak_events(leaks, now)

    def _reset_rows(self, present: set[int]) -> list[SocketRecord]:
        """Our sockets seen in CLOSE_WAIT that left it (reset) while we hold the descriptor.

        A peer that closed forgets the connection after ``tcp_fin_timeout``; the next segment we
        send (a keepalive probe) meets a RST and our socket leaves CLOSE_WAIT for CLOSE, where
        no dump shows it -- but the descriptor is still open: the leak goes on.
        """
        for ino, rec in self.cw_rec.items():
            if ino not in present and ino not in self.reset:
                self.reset[ino] = replace(rec, state="CLOSE")
        alive = {}
        for ino, rec in self.reset.items():
            if ino not in present and rec.fd is not None and _origin._alive(rec.fd, ino):
                alive[ino] = rec
        self.reset = dict(list(alive.items())[-_MAX_RESET:])
        return list(self.reset.values())

    def _pool_notices(
        self, idle: dict[object, tuple[PoolVerdict, SocketRecord]], now: float
    ) -> None:
        """Say once per pool that the server closed idle members (no warning: not a leak)."""
        for key, (verdict, rec) in idle.items():
            if claim(("pool", key), now, None):
                logger.info(
                    "sockwise guard: the server %s closed idle connections held by the %s "
                    "(e.g. fd %s); the pool discards them when it next hands one out. Not a "
                    "leak; nothing to do (to close them sooner, close pools no longer used; "
                    "a pool whose idle timeout is shorter than the server's keep-alive, as "
                    "sockwise's pools, closes them first).",
                    _addr(rec.remote),
                    verdict.pool or verdict.lib,
                    rec.fd,
                )

    def _leak_events(
        self, leaks: list[tuple[SocketRecord, float, Origin | None]], now: float
    ) -> list[GuardEvent]:
        events: list[GuardEvent] = []
        extra: list[tuple[SocketRecord, float, Origin | None]] = []
        for rec, age, origin in leaks:
            if not claim(("cw", rec.inode), now, None):
                continue
            if len(events) >= self.th.max_reports:
                extra.append((rec, age, origin))
                continue
            verdict = _pools.judge(_origin.holder(rec.inode))
            events.append(_leak_event(rec, age, origin, verdict))
        if extra and claim(("summary", "cw"), now, self.th.report_every):
            sites: dict[str, int] = {}
            for _, _, origin in extra:
                key = str(origin) if origin else "origin not recorded"
                sites[key] = sites.get(key, 0) + 1
            top = ", ".join(
                f"{k} (x{n})" for k, n in sorted(sites.items(), key=lambda x: -x[1])[:5]
            )
            msg = f"CLOSE_WAIT leak: {len(extra)} more sockets in CLOSE_WAIT, opened at: {top}"
            events.append(
                GuardEvent(
                    kind="summary",
                    category=CloseWaitLeakWarning,
                    message=redact(msg),
                    origin=next((o for _, _, o in extra if o is not None), None),
                    details={"count": len(extra), "sites": sites},
                )
            )
        return events

    # -- port churn --------------------------------------------------------------------------

    def _range(self, now: float) -> tuple[int, int]:
        if self.port_range is None or now - self.port_range_at > 60.0:
            try:
                text = read_text("/proc/sys/net/ipv4/ip_local_port_range")
            except OSError:
                text = ""
            self.port_range = parse_port_range(text) or _DEFAULT_RANGE
            self.port_range_at = now
        return self.port_range

    def wants_time_wait(self, window: float, now: float) -> bool:
        """Whether this sample must count TIME_WAIT rows (the costly part of a dump).

        With ``churn_scope="process"`` only when this process itself connects fast enough, or
        connected often enough within the TIME_WAIT period, for one of the churn conditions to
        be possible (or a streak is under way): a process that is not churning never pays for
        the namespace's TIME_WAIT rows.
        """
        th = self.th
        if th.churn_scope == "namespace" or self.streak:
            return True
        if not _origin.recording():
            return False
        low, high = self._range(now)
        size = high - low + 1
        threshold = th.churn_rate if th.churn_rate is not None else size / TIME_WAIT_SECONDS
        fresh = max(0, _origin.connects() - self.last_connects)
        recent = fresh + sum(sum(h.values()) for _, h in self.history)
        return fresh / window >= 0.5 * threshold or recent >= 0.25 * th.time_wait_fraction * size

    def time_wait_targets(self) -> list[Address] | None:
        """The destinations whose TIME_WAIT rows this sample must count (``None``: all).

        With ``churn_scope="process"`` a destination can only be reported if this process
        connected to it within the TIME_WAIT period, so only those (and any destination with a
        streak under way) are asked for -- the kernel filters the namespace's other TIME_WAIT
        rows out. Most connected-to first, at most
        :data:`~sockwise.guard._netlink.MAX_FILTER_DESTINATIONS` per address family.
        """
        if self.th.churn_scope == "namespace":
            return None
        recent: dict[Address, int] = {}
        for _, counts in self.history:
            for dest, n in counts.items():
                recent[dest] = recent.get(dest, 0) + n
        prev = self.dest_prev
        for dest, n in _origin.destination_connects().items():
            if n > prev.get(dest, 0):
                recent[dest] = recent.get(dest, 0) + n - prev.get(dest, 0)
        ordered = list(self.streak)
        ordered += sorted((d for d in recent if d not in self.streak), key=lambda d: -recent[d])
        return ordered

    def churn(self, smp: Sample, window: float, now: float) -> list[GuardEvent]:
        """Rate of new connections and TIME_WAIT rows per destination, against the port range.

        With ``churn_scope="process"``, a destination is only reported if this process itself
        connected to it at a comparable rate (other processes' churn is theirs to report).
        """
        th = self.th
        low, high = self._range(now)
        size = high - low + 1
        threshold = th.churn_rate if th.churn_rate is not None else size / TIME_WAIT_SECONDS
        self.last_connects = _origin.connects()
        total = _origin.destination_connects()
        prev = self.dest_prev
        mine = {d: n - prev.get(d, 0) for d, n in total.items() if n > prev.get(d, 0)}
        self.dest_prev = total
        self.history.append((now, mine))
        while self.history and now - self.history[0][0] > TIME_WAIT_SECONDS:
            self.history.popleft()
        gate = th.churn_scope == "process"
        if gate and not _origin.recording():
            return []  # nothing recorded: nothing of ours to attribute
        streak: dict[Address, int] = {}
        events: list[GuardEvent] = []
        for dest, count in smp.time_wait.items():
            if smp.time_wait_recent is not None:
                new = smp.time_wait_recent.get(dest, 0)
            else:
                new = max(0, count - self.prev_tw.get(dest, 0))
            rate = new / window
            if rate >= threshold:
                streak[dest] = self.streak.get(dest, 0) + 1
            by_rate = streak.get(dest, 0) >= th.churn_samples
            by_count = count >= th.time_wait_fraction * size
            # A burst shorter than churn_samples samples: this process's own connects (counted
            # as they happen, not sampled) add up to what sustained churn would have made.
            burst = sum(h.get(dest, 0) for _, h in list(self.history)[-th.churn_samples :])
            by_burst = burst >= threshold * th.churn_samples * window and count >= 0.5 * burst
            if by_burst and not by_rate:
                rate = max(rate, burst / (th.churn_samples * window))
            by_rate = by_rate or by_burst
            if not (by_rate or by_count):
                continue
            own_rate = mine.get(dest, 0) / window
            if by_burst:
                own_rate = max(own_rate, burst / (th.churn_samples * window))
            if gate:
                own_recent = sum(h.get(dest, 0) for _, h in self.history)
                by_rate = by_rate and own_rate >= 0.5 * rate
                by_count = by_count and own_recent >= 0.25 * count
            if (by_rate or by_count) and claim(("churn", dest), now, th.report_every):
                events.append(self._churn_event(dest, rate, own_rate, count, (low, high)))
        self.streak = streak
        if smp.time_wait_recent is None:
            self.prev_tw = dict(smp.time_wait)
        return events

    def _churn_event(
        self, dest: Address, rate: float, own_rate: float, count: int, rng: tuple[int, int]
    ) -> GuardEvent:
        low, high = rng
        size = high - low + 1
        if rate * TIME_WAIT_SECONDS > size and rate > 0:
            eta = max(0.0, size - count) / rate
            outlook = (
                f"at this rate the ports toward this destination run out in ~{eta:.0f} s and "
                "connect() fails with EADDRNOTAVAIL"
            )
        else:
            eta = math.inf
            steady = rate * TIME_WAIT_SECONDS
            outlook = (
                f"at this rate TIME_WAIT holds ~{steady:,.0f} ports ({steady / size:.0%} of the "
                "range); a little faster and connect() fails with EADDRNOTAVAIL"
            )
        sites = sorted(_origin.destination_sites(dest).items(), key=lambda kv: -kv[1])
        origin = next((o for o, _ in sites if o is not None), None)
        recorded = sum(n for _, n in sites)
        if origin is not None:
            top = ", ".join(f"{o} (x{n})" for o, n in sites[:3] if o is not None)
            where = f"; the connects are issued at {top} of {recorded} recorded"
            line = linecache.getline(origin.filename, origin.lineno).strip()
            if line:
                where += f" -- {line[:100]}"
        else:
            where = "; the line issuing them was not recorded"
        via = origin.via if origin is not None else ""
        if via == "psycopg":
            fix = "a pool such as sockwise.psycopg.ConnectionPool (or psycopg_pool)"
        elif via in ("requests", "urllib3", "http", "httpx", "httpcore"):
            fix = (
                "one Session/PoolManager/Client reused across requests "
                "(e.g. sockwise.urllib3.PoolManager)"
            )
        else:
            fix = (
                "a pool such as sockwise.urllib3.PoolManager (HTTP) or "
                "sockwise.psycopg.ConnectionPool (PostgreSQL)"
            )
        msg = (
            f"ephemeral-port churn toward {_addr(dest)}: {rate:,.0f} new connections/s "
            f"(this process: {own_rate:,.0f}/s), {count:,} sockets in TIME_WAIT "
            f"({count / size:.0%} of ip_local_port_range {low}-{high}, {size:,} ports)"
            f"{where}; {outlook}. Reuse connections instead of opening one per request: {fix}."
        )
        return GuardEvent(
            kind="port_churn",
            category=PortChurnWarning,
            message=redact(msg),
            remote=dest,
            origin=origin,
            details={
                "rate": rate,
                "own_rate": own_rate,
                "time_wait": count,
                "port_range": rng,
                "fill": count / size,
                "seconds_to_exhaustion": eta,
            },
        )

    # -- accept queue ------------------------------------------------------------------------

    def accept_queue(
        self, rows: list[SocketRecord], present_all: set[int], now: float
    ) -> tuple[list[SocketRecord], list[GuardEvent]]:
        """Return this process's listeners, and an event for each whose accept queue is full."""
        hooked = _origin.listeners()
        if self.somaxconn is None:
            self.somaxconn = read_int("/proc/sys/net/core/somaxconn") or 4096
        ours: list[tuple[SocketRecord, int | None, Origin | None]] = []
        unknown = []
        for rec in rows:
            info = hooked.get(rec.inode)
            if info is not None and _origin._alive(info[0], rec.inode):
                ours.append((replace(rec, fd=info[0]), info[1], info[2]))
                continue
            owner = self._owner(rec.inode)
            if owner is None and rec.rqueue and rec.rqueue >= rec.wqueue:
                unknown.append(rec.inode)
        if unknown:
            self._resolve(unknown, present_all, now)
        for rec in rows:
            if rec.inode in hooked:
                continue
            owner = self._owner(rec.inode)
            if isinstance(owner, tuple):
                ours.append((replace(rec, fd=owner[0]), None, None))
        counters = self._netstat()  # every sample: the deltas are "since the last sample"
        overflowed = counters.get("TcpExt.ListenOverflows", 0) > 0
        events = []
        # The kernel counted overflows (namespace-wide) since the last sample: a transient
        # overflow may have drained already, so our fullest non-empty listener is reported.
        suspect = None
        if overflowed:
            waiting = [o[0] for o in ours if o[0].rqueue > 0]
            if waiting:
                suspect = max(waiting, key=lambda r: r.rqueue / max(1, r.wqueue)).inode
        for rec, requested, origin in ours:
            backlog = rec.wqueue or (min(requested, self.somaxconn) if requested else 0)
            if not backlog and requested is None:
                continue
            full = rec.rqueue >= max(1, math.ceil(self.th.accept_queue_ratio * backlog))
            if (full or rec.inode == suspect) and claim(
                ("acceptq", rec.inode), now, self.th.report_every
            ):
                events.append(self._queue_event(rec, backlog, requested, origin, counters))
        return [r for r, _, _ in ours], events

    def baseline(self) -> None:
        """Read the kernel's counters now, so the first report's deltas are real."""
        self.netstat_prev = None
        self._netstat()

    def _netstat(self) -> dict[str, int]:
        try:
            now = parse_netstat(read_text("/proc/net/netstat"))
        except OSError:
            return {}
        prev = self.netstat_prev or now
        self.netstat_prev = now
        keys = ("TcpExt.ListenOverflows", "TcpExt.ListenDrops")
        return {k: now.get(k, 0) - prev.get(k, 0) for k in keys}

    def _queue_event(
        self,
        rec: SocketRecord,
        backlog: int,
        requested: int | None,
        origin: Origin | None,
        counters: dict[str, int],
    ) -> GuardEvent:
        somaxconn = self.somaxconn or 4096
        if requested is not None and requested > somaxconn:
            cut = f"listen({requested}) was truncated to net.core.somaxconn={somaxconn}"
        elif requested is None and backlog == somaxconn:
            cut = f"possibly truncated to net.core.somaxconn={somaxconn}"
        else:
            cut = "as requested"
        overflows = counters.get("TcpExt.ListenOverflows", 0)
        if overflows > 0:
            drops = (
                f"; since the last sample the kernel dropped connections: ListenOverflows "
                f"+{overflows}, ListenDrops +{counters.get('TcpExt.ListenDrops', 0)} "
                "(counted for the whole network namespace)"
            )
            effect = "New connections are being dropped and clients see connect timeouts."
        else:
            drops = ""
            effect = "The next connections will be dropped and clients see connect timeouts."
        full = "full" if rec.rqueue >= backlog else "overflowing"
        msg = (
            f"accept queue {full} on {_addr(rec.local)} (fd {rec.fd}): {rec.rqueue} connections "
            f"wait to be accepted, backlog {backlog} ({cut}){drops}. {effect} Accept faster "
            "(a dedicated accept loop, more workers) or raise the backlog and "
            f"net.core.somaxconn. Listener {_where(origin, 'opened')}."
        )
        return GuardEvent(
            kind="accept_queue",
            category=AcceptQueueWarning,
            message=redact(msg),
            local=rec.local,
            fd=rec.fd,
            origin=origin,
            details={
                "queue": rec.rqueue,
                "backlog": backlog,
                "requested_backlog": requested,
                "somaxconn": somaxconn,
                **counters,
            },
        )

    # -- one sample --------------------------------------------------------------------------

    def prune(self, present: set[int]) -> None:
        """Forget per-socket state of sockets no longer in a watched state."""
        self.unhooked = {i: fd for i, fd in self.unhooked.items() if i in present}
        self.foreign &= present

    def sizes(self) -> dict[str, int]:
        """Entries in each internal table."""
        return {
            "close_wait_ages": len(self.cw_first),
            "unhooked": len(self.unhooked),
            "foreign": len(self.foreign),
            "streaks": len(self.streak),
            "prev_time_wait": len(self.prev_tw),
            "history": len(self.history),
            "claims": claims_size(),
        }


def monotonic() -> float:
    """The clock the detectors use."""
    return time.monotonic()


def uid() -> int:
    """The effective uid whose sockets are candidates for being this process's."""
    return os.geteuid() if hasattr(os, "geteuid") else -1
