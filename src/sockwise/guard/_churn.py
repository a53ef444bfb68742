"""The churn detector: new connections toward one destination fast enough to exhaust ports.

Each closed connection leaves a TIME_WAIT row holding its local port for
:data:`~sockwise.guard._sample.TIME_WAIT_SECONDS`; toward one destination, connecting faster
than ``ip_local_port_range`` can refill within that time makes ``connect()`` fail with
``EADDRNOTAVAIL``. Per destination the detector keeps a few numbers (a streak of fast samples,
the last TIME_WAIT count) and, per sample, this process's own connects (the last 60 s), so that
with ``churn_scope="process"`` only churn this process causes is reported.
"""

from __future__ import annotations

import linecache
import math
from collections import deque
from typing import Final

from sockwise._net.addr import Address, format_address
from sockwise._net.proc import port_range
from sockwise.guard import _origin
from sockwise.guard._claims import claim
from sockwise.guard._detect import Thresholds, Tick
from sockwise.guard._events import GuardEvent, PortChurnWarning, redact
from sockwise.guard._sample import TIME_WAIT_SECONDS, Sample

_DEFAULT_RANGE: Final = (32768, 60999)


class ChurnDetector:
    """Per-guard state of the churn detector.

    Args:
        th: The guard's thresholds.

    """

    def __init__(self, th: Thresholds) -> None:
        self.th = th
        self.streak: dict[Address, int] = {}
        self.prev_tw: dict[Address, int] = {}
        self.dest_prev: dict[Address, int] = _origin.destination_connects()
        self.last_connects = _origin.connects()
        #: Per sample: this process's connects per destination (the last 60 s).
        self.history: deque[tuple[float, dict[Address, int]]] = deque(maxlen=512)
        self.port_range: tuple[int, int] | None = None
        self.port_range_at = -math.inf

    def baseline(self) -> None:
        """Count this process's connects from now on (the guard starts)."""
        self.last_connects = _origin.connects()
        self.dest_prev = _origin.destination_connects()

    def detect(self, tick: Tick) -> list[GuardEvent]:
        """The churn events of this tick's sample."""
        return self.churn(tick.sample, tick.window, tick.now)

    def sizes(self) -> dict[str, int]:
        """Entries in the detector's tables."""
        return {
            "streaks": len(self.streak),
            "prev_time_wait": len(self.prev_tw),
            "history": len(self.history),
        }

    def _range(self, now: float) -> tuple[int, int]:
        if self.port_range is None or now - self.port_range_at > 60.0:
            self.port_range = port_range() or _DEFAULT_RANGE
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
            f"ephemeral-port churn toward {format_address(dest)}: {rate:,.0f} new connections/s "
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
