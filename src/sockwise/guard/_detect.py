"""The detectors' common ground: their thresholds, the tick they are given, and the set of them.

Each detector is a module of its own with a class of the same small interface
(:class:`Detector`): ``detect(tick)`` returns the events of one sample
(:class:`~sockwise.guard.GuardEvent`), ``sizes()`` the entries of its tables.

* :mod:`~sockwise.guard._closewait`: CLOSE_WAIT leaks;
* :mod:`~sockwise.guard._churn`: ephemeral-port churn;
* :mod:`~sockwise.guard._acceptq`: accept-queue overflow;
* :mod:`~sockwise.guard._stall`: stalled connections (optional: ``stall_after=None``).

A detector keeps only per-socket state for sockets currently in a suspicious state (pruned each
sample), a few numbers per destination with TIME_WAIT rows, and counters; memory is bounded by
what the kernel reports, not by how many sockets the application ever opened. Which reports
were already made is shared by all guards of the process (:mod:`~sockwise.guard._claims`), so a
second guard never repeats the first one's warnings.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Protocol

from sockwise._net.addr import Address
from sockwise.guard._events import GuardEvent
from sockwise.guard._sample import Sample


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


@dataclass(frozen=True, slots=True)
class Tick:
    """What every detector is given once per tick: the sample and when it was taken.

    Attributes:
        now: The sample's time (:func:`monotonic`).
        window: Seconds since the previous sample.
        interval: The guard's interval.
        uid: The uid whose sockets may be this process's (:func:`uid`).
        reader: The socket source (see :mod:`sockwise.guard._source`).
        sample: The CLOSE_WAIT, LISTEN and TIME_WAIT rows.
        present: Inodes of the sample's CLOSE_WAIT and LISTEN rows.
        half_open: ``(local, remote)`` of our CLOSE_WAIT sockets whose peer, on this machine,
            only half-closed (:func:`~sockwise.guard._sample.half_open_peers`).

    """

    now: float
    window: float
    interval: float
    uid: int
    reader: object
    sample: Sample
    present: set[int]
    half_open: set[tuple[Address, Address]]


class Detector(Protocol):
    """What the guard calls on each detector."""

    def detect(self, tick: Tick) -> list[GuardEvent]:
        """The events of this tick."""
        ...

    def sizes(self) -> dict[str, int]:
        """Entries in the detector's tables (for memory checks)."""
        ...


def monotonic() -> float:
    """The clock the detectors use."""
    return time.monotonic()


def uid() -> int:
    """The effective uid whose sockets are candidates for being this process's."""
    return os.geteuid() if hasattr(os, "geteuid") else -1
