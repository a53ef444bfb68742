"""The sampling core: one sample per tick, given to every detector of a guard.

A tick drains the origins recorded since the last one, reads the CLOSE_WAIT, LISTEN and (when
churn is possible) TIME_WAIT rows in one sample (:mod:`~sockwise.guard._sample`), and hands the
same :class:`~sockwise.guard._detect.Tick` to each detector in turn: CLOSE_WAIT, accept queue,
churn, then stalls (whose failure never costs the others' findings). A new detector is a module
with a class of the :class:`~sockwise.guard._detect.Detector` interface, added to
:class:`Detectors`.
"""

from __future__ import annotations

import logging

from sockwise._log import log_once
from sockwise.guard._acceptq import AcceptQueueDetector
from sockwise.guard._churn import ChurnDetector
from sockwise.guard._claims import claims_size
from sockwise.guard._closewait import CloseWaitDetector
from sockwise.guard._detect import Thresholds, Tick, uid
from sockwise.guard._events import GuardEvent
from sockwise.guard._owners import Owners
from sockwise.guard._sample import TIME_WAIT_SECONDS, Sample, half_open_peers, sample
from sockwise.guard._stall import StallDetector


class Detectors:
    """The detectors of one guard and what they share (rebuilt in a forked child).

    Args:
        th: The guard's thresholds.
        interval: The guard's interval.
        stall: The stall detector (``None``: stalls are not detected).

    """

    def __init__(self, th: Thresholds, interval: float, stall: StallDetector | None) -> None:
        self.interval = interval
        # Sockets the hooks never saw (libpq's, ones opened before start) are matched by listing
        # /proc/self/fd at most every two intervals, and only while unmatched rows exist.
        self.owners = Owners(scan_every=2 * interval)
        self.close_wait = CloseWaitDetector(th, self.owners)
        self.accept_queue = AcceptQueueDetector(th, self.owners)
        self.churn = ChurnDetector(th)
        self.stall = stall
        self.last_time: float | None = None

    def baseline(self) -> None:
        """Start counting from now: this process's connects, the kernel's overflow counters."""
        self.churn.baseline()
        self.accept_queue.baseline()

    def window(self, now: float) -> float:
        """Seconds covered by the sample taken at *now*."""
        if self.last_time is None:
            return min(max(self.interval, 0.001), TIME_WAIT_SECONDS)
        return min(max(now - self.last_time, 0.001), TIME_WAIT_SECONDS)

    def run(self, reader: object, now: float) -> tuple[Sample, tuple[GuardEvent, ...]]:
        """Take this tick's sample through *reader* and run every detector on it.

        Returns the sample and the events: CLOSE_WAIT, churn, accept queue, then stalls.
        """
        window = self.window(now)
        counting = self.churn.wants_time_wait(window, now)
        targets = self.churn.time_wait_targets() if counting else None
        me = uid()
        smp = sample(reader, me, window, counting, targets)
        present = {r.inode for r in smp.close_wait} | {r.inode for r in smp.listen}
        half_open = (
            half_open_peers(reader, smp.close_wait, smp.fin_wait2_owned)
            if smp.close_wait
            else set()
        )
        tick = Tick(now, window, self.interval, me, reader, smp, present, half_open)
        cw_events = self.close_wait.detect(tick)
        q_events = self.accept_queue.detect(tick)
        churn_events = self.churn.detect(tick)
        stall_events = self._stalls(tick)
        self.owners.prune(present)
        self.last_time = now
        return smp, (*cw_events, *churn_events, *q_events, *stall_events)

    def _stalls(self, tick: Tick) -> list[GuardEvent]:
        """The stall detector's events; never raises."""
        if self.stall is None:
            return []
        try:
            return self.stall.detect(tick)
        except Exception as exc:  # the other detectors' findings still go out
            log_once(
                f"guard-stall-error:{type(exc).__name__}",
                logging.ERROR,
                "sockwise guard: stall detection failed (%r); sampling continues",
                exc,
            )
            return []

    def sizes(self) -> dict[str, int]:
        """Entries in the tables of the CLOSE_WAIT, churn and accept-queue detectors."""
        return {
            **self.close_wait.sizes(),
            **self.owners.sizes(),
            **self.churn.sizes(),
            **self.accept_queue.sizes(),
            "claims": claims_size(),
        }
