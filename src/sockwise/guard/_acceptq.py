"""The accept-queue detector: listeners of this process whose queue of connections is full.

A listener's accept queue (``rqueue`` of a LISTEN row; its backlog is ``wqueue`` from sock_diag,
else the ``listen()`` argument recorded by the hooks, capped at ``net.core.somaxconn``) that
reaches ``accept_queue_ratio`` of its backlog is reported; so is this process's fullest
non-empty listener when the kernel counted overflows (``TcpExt.ListenOverflows``) since the
last sample, since a transient overflow may have drained already.
"""

from __future__ import annotations

import math
from dataclasses import replace

from sockwise._net.addr import format_address
from sockwise._net.proc import parse_netstat, read_int, read_text
from sockwise._net.records import SocketRecord
from sockwise.guard import _origin
from sockwise.guard._claims import claim
from sockwise.guard._detect import Thresholds, Tick
from sockwise.guard._events import AcceptQueueWarning, GuardEvent
from sockwise.guard._explain import socket_event, where
from sockwise.guard._origin import Origin
from sockwise.guard._owners import Owners


class AcceptQueueDetector:
    """Per-guard state of the accept-queue detector.

    Args:
        th: The guard's thresholds.
        owners: Which sockets are this process's (shared with the CLOSE_WAIT detector).

    """

    def __init__(self, th: Thresholds, owners: Owners) -> None:
        self.th = th
        self.owners = owners
        self.netstat_prev: dict[str, int] | None = None
        self.somaxconn: int | None = None
        #: This process's listeners in the last sample.
        self.listeners: list[SocketRecord] = []

    def detect(self, tick: Tick) -> list[GuardEvent]:
        """The accept-queue events of this tick's sample (and :attr:`listeners` updated)."""
        self.listeners, events = self.accept_queue(tick.sample.listen, tick.present, tick.now)
        return events

    def sizes(self) -> dict[str, int]:
        """Entries in the detector's tables (none grows with the sockets)."""
        return {}

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
            owner = self.owners.owner(rec.inode)
            if owner is None and rec.rqueue and rec.rqueue >= rec.wqueue:
                unknown.append(rec.inode)
        if unknown:
            self.owners.resolve(unknown, present_all, now)
        for rec in rows:
            if rec.inode in hooked:
                continue
            owner = self.owners.owner(rec.inode)
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
            f"accept queue {full} on {format_address(rec.local)} (fd {rec.fd}): {rec.rqueue} "
            f"connections wait to be accepted, backlog {backlog} ({cut}){drops}. {effect} "
            "Accept faster (a dedicated accept loop, more workers) or raise the backlog and "
            f"net.core.somaxconn. Listener {where(origin, 'opened')}."
        )
        details: dict[str, object] = {
            "queue": rec.rqueue,
            "backlog": backlog,
            "requested_backlog": requested,
            "somaxconn": somaxconn,
            **counters,
        }
        return socket_event(
            "accept_queue", AcceptQueueWarning, msg, rec, origin, details, peer=False
        )
