"""One reading of a process's TCP sockets, shared by ``sockwise inspect`` and the metrics.

Theory of operation: the socket rows come from the guard's reading layer (:mod:`sockwise.guard`:
sock_diag, with ``/proc`` and psutil fallbacks); a process in another network namespace has its
namespace read from ``/proc/<pid>/net/tcp``, and a proc root other than ``/proc`` (tests) is read
with the guard's procfs parser. A :class:`Snapshot` condenses the rows into what a person or a
dashboard asks first: how many sockets in each state, which ones sit in CLOSE_WAIT (a leak: the
peer closed and this process never did), where TIME_WAIT sockets point (connection churn), how
full each accept queue is, and how much of the ephemeral port range is taken.

TIME_WAIT sockets belong to no process (their inode is 0), so they are counted for the whole
network namespace and grouped by destination. Ages are not kept by the kernel; an
:class:`AgeTracker` remembers when each CLOSE_WAIT socket was first seen, so ages are lower bounds.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sockwise._net.addr import format_address
from sockwise._net.proc import (
    ProcfsReader,
    owned,
    port_range,
    process_name,
    same_netns,
    socket_fds,
)
from sockwise._net.records import TCP_STATES, SocketRecord, state_mask


@dataclass(frozen=True)
class CloseWait:
    """A socket whose peer closed while this process keeps it open."""

    fd: int | None
    local: str
    peer: str
    inode: int
    age: float | None


@dataclass(frozen=True)
class Listener:
    """A listening socket: connections waiting in its accept queue, and the queue's size."""

    fd: int | None
    local: str
    queued: int
    backlog: int | None

    @property
    def fill(self) -> float | None:
        """The accept queue's fill as a fraction of the backlog (``None`` when unknown)."""
        return self.queued / self.backlog if self.backlog else None


@dataclass(frozen=True)
class Snapshot:
    """One reading of a process's TCP sockets.

    It condenses the rows into what a person or a dashboard asks first: how many sockets in
    each state (``counts``), which ones sit in CLOSE_WAIT (``close_wait``: the peer
    closed and this process never did), where TIME_WAIT sockets point (``time_wait``, for
    the whole network namespace: they belong to no process), how full each accept queue is
    (``listeners``) and how much of the ephemeral port range is taken.
    """

    pid: int
    name: str
    source: str
    taken_at: float
    counts: dict[str, int]
    close_wait: list[CloseWait]
    listeners: list[Listener]
    time_wait: dict[str, int]
    port_range: tuple[int, int] | None
    ports_in_use: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Number of TCP sockets the process holds."""
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the snapshot."""
        out = asdict(self)
        out["total"] = self.total
        out["listeners"] = [{**asdict(x), "fill": x.fill} for x in self.listeners]
        out["time_wait_total"] = sum(self.time_wait.values())
        return out


class AgeTracker:
    """Remembers when each socket inode was first seen, to give CLOSE_WAIT sockets an age."""

    def __init__(self) -> None:
        self._first: dict[int, float] = {}

    def ages(self, inodes: Iterable[int], now: float | None = None) -> dict[int, float]:
        """Seconds since each inode was first seen (0 for new ones); forgets the others."""
        t = time.monotonic() if now is None else now
        current = set(inodes)
        self._first = {i: self._first.get(i, t) for i in current}
        return {i: t - first for i, first in self._first.items()}


#: States no process owns a socket in (TIME_WAIT rows have inode 0): filtered out early.
_UNOWNED = frozenset({"TIME_WAIT", "NEW_SYN_RECV"})

#: The name of the fallback source (``/proc/net/tcp`` does not show a listener's backlog).
PROCNET_SOURCE = "/proc/net/tcp"


def read_rows(
    pid: int | None = None, proc_root: str = "/proc"
) -> tuple[Sequence[SocketRecord], Sequence[SocketRecord], str]:
    """The sockets *pid* owns, every socket of its network namespace, and the source's name.

    Raises:
        ProcessLookupError: No process with this PID.
        PermissionError: The process's descriptors cannot be read.

    """
    from sockwise import guard

    real = os.getpid() if pid is None else pid
    if not os.path.isdir(f"{proc_root}/{real}"):
        raise ProcessLookupError(f"no process with PID {real}")
    owned_states = [s for s in TCP_STATES.values() if s not in _UNOWNED]
    if proc_root == "/proc" and guard.source_name() != "unavailable":
        mine = guard.process_sockets(pid=real, states=owned_states)
        if same_netns(real, proc_root):
            return mine, guard.machine_sockets(), guard.source_name()
        other = ProcfsReader(proc_root, real).dump(state_mask(None))
        return mine, other, f"{guard.source_name()} + /proc/{real}/net/tcp"
    fds = socket_fds(proc_root, real)
    every = ProcfsReader(proc_root, real).dump(state_mask(None))
    return owned(every, fds), every, PROCNET_SOURCE


def take_snapshot(
    pid: int | None = None, *, proc_root: str = "/proc", ages: AgeTracker | None = None
) -> Snapshot:
    """Read the TCP sockets of *pid* (default: this process) into a :class:`Snapshot`.

    Args:
        pid: The process to read; ``None`` for the calling process.
        proc_root: Where procfs is mounted (tests point it elsewhere).
        ages: A tracker kept between calls, so CLOSE_WAIT sockets get an age.

    Raises:
        ProcessLookupError: No process with this PID.
        PermissionError: The process's descriptors cannot be read.

    """
    real = os.getpid() if pid is None else pid
    owned, everything, source = read_rows(real, proc_root)
    counts = Counter(r.state for r in owned)
    cw_rows = [r for r in owned if r.state == "CLOSE_WAIT"]
    seen = ages.ages(r.inode for r in cw_rows) if ages is not None else {}
    close_wait = [
        CloseWait(
            r.fd, format_address(r.local), format_address(r.remote), r.inode, seen.get(r.inode)
        )
        for r in cw_rows
    ]
    backlog_known = source not in (PROCNET_SOURCE, "procfs")
    listeners = [
        Listener(
            r.fd, format_address(r.local), r.rqueue, (r.wqueue or None) if backlog_known else None
        )
        for r in owned
        if r.state == "LISTEN"
    ]
    tw = Counter(format_address(r.remote) for r in everything if r.state == "TIME_WAIT")
    ports = port_range(proc_root)
    in_use = None
    if ports is not None:
        lo, hi = ports
        in_use = len(
            {r.local[1] for r in everything if r.state != "LISTEN" and lo <= r.local[1] <= hi}
        )
    return Snapshot(
        pid=real,
        name=process_name(real, proc_root),
        source=source,
        taken_at=time.time(),
        counts=dict(sorted(counts.items())),
        close_wait=close_wait,
        listeners=listeners,
        time_wait=dict(tw.most_common()),
        port_range=ports,
        ports_in_use=in_use,
    )
