"""The stall detector: connections that wait forever, read from the kernel's ``tcp_info``.

Theory of operation: each scan asks sock_diag for the namespace's ESTABLISHED sockets with
``struct tcp_info`` attached (``INET_DIAG_INFO``), keeps -- without a Python loop per row -- those
owned by this user that could be stalled (bytes queued, or data sent after the last data
received), confirms they belong to this process (the origin table, else a listing of
``/proc/self/fd``), and classifies each:

* ``"retransmitting"``: data unacknowledged and the kernel retransmitting (``tcpi_backoff``) for
  a third of ``stall_after``: the path to the peer is gone. Reported with the time left before
  ``TCP_USER_TIMEOUT`` aborts the connection.
* ``"zero_window"``: the peer advertises a zero window (``tcpi_snd_wnd == 0``, or the
  zero-window probe timer pending) and nothing could be sent for ``stall_after``: it stopped
  reading.
* ``"unread"``: our receive queue holds bytes that arrived ``stall_after`` ago or more: this
  process stopped reading.
* ``"awaiting_reply"``: on a connection we opened (not an accepted one), everything we sent is
  acknowledged, nothing is queued, and nothing came back for ``stall_after`` since our last
  send; reported when a thread is blocked reading that socket, or when the connection has
  answered before (a keep-alive connection reused): a connection that only ever sends (a log
  shipper) is not waiting for anything.

Without netlink, ``getsockopt(TCP_INFO)`` on the sockets the origin table knows gives the same
fields (no timer). Cost: a pass over the dump starts at most every quarter of ``stall_after``
and reads at most :data:`ROWS_PER_TICK` rows per tick (the kernel resumes a netlink dump where
the last ``recv`` left it), so at 10,000 established sockets one pass spreads over several ticks;
a socket found on its way to a stall is read again by itself (``getsockopt(TCP_INFO)``) when it
comes due, so a report still comes at most ``stall_after`` plus one interval after the stall
began.

Applications declare expected silences with :func:`~sockwise.guard.expect_silence` (a
long-poll, a stream, a push channel; :mod:`~sockwise.guard._silence`): a socket or thread inside
it is not reported. Which thread waits on a stalled socket comes from
:mod:`~sockwise.guard._blocked`; the per-socket reads (``getsockopt``) from
:mod:`sockwise._net.sockets`.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import Final

from sockwise._log import log_once
from sockwise._net import sockets
from sockwise._net.addr import format_address
from sockwise._net.netlink import InfoDump, NetlinkReader, scan_info
from sockwise._net.proc import socket_fds, tcp_families
from sockwise._net.records import SocketRecord
from sockwise._net.sockets import read_tcp_info
from sockwise.guard import _origin
from sockwise.guard._blocked import blocked_on
from sockwise.guard._detect import Tick
from sockwise.guard._events import GuardEvent, StallWarning
from sockwise.guard._explain import socket_event
from sockwise.guard._origin import Origin
from sockwise.guard._silence import _silent_sockets, _silent_threads, silenced

#: Default seconds of silence before a stall is reported. Thirty seconds is longer than a
#: healthy request/response exchange takes behind common proxies (Heroku's router and many API
#: gateways cut requests at 30 s; nginx and load balancers at 60 s), so a reply that has not
#: started by then is not coming in time anyway, and it reports a hung thread within a minute,
#: well before the policy's 90 s ``user_timeout`` would end a dead connection.
DEFAULT_STALL_AFTER: Final = 30.0
#: Retransmissions are reported after this share of ``stall_after`` (10 s by default): a lost
#: segment is recovered within a few retransmission timeouts (well under 2 s on a working path).
RETRANSMIT_SHARE: Final = 1 / 3
#: Rows of the ESTABLISHED dump read per tick: a pass over more sockets spreads over several
#: ticks (a pass lasts at most half of ``stall_after``, reading more per tick if it must).
ROWS_PER_TICK: Final = 2000
#: A pass over the dump starts at most every this share of ``stall_after`` (7.5 s by default):
#: a stall that begins just after a pass is found by the next one, before it is due, and then
#: re-read by itself when due -- so passes need not run every tick.
PASS_SHARE: Final = 1 / 4
#: Bytes of one row with ``tcp_info`` (408 on Linux 6.x), rounded up.
_ROW_BYTES: Final = 512
#: Least seconds between two ``/proc/self/fd`` listings (for sockets the hooks did not see).
FD_SCAN_EVERY: Final = 10.0
#: Most sockets read through ``getsockopt`` per tick when netlink is unavailable.
MAX_FALLBACK: Final = 4096
_ZERO_WINDOW_PROBE: Final = 4


def _tracked() -> dict[int, tuple[int, Origin | None]]:
    """A snapshot of the origin table ``{inode: (fd, origin)}``."""
    _origin.drain()
    state = getattr(_origin, "_state", None)
    table = getattr(state, "tracked", None)
    return dict(table) if isinstance(table, dict) else {}


@dataclass(frozen=True, slots=True)
class Finding:
    """One stalled socket before it becomes an event."""

    kind: str
    record: SocketRecord
    seconds: float


def stall_state(
    rec: SocketRecord, stall_after: float, server_ports: frozenset[int] = frozenset()
) -> tuple[str, float, float] | None:
    """``(kind, seconds so far, threshold)`` of a socket on its way to a stall, else ``None``.

    ``None`` also for a socket without ``tcp_info``.

    Args:
        rec: An ESTABLISHED socket with ``tcp_info``.
        stall_after: The threshold (retransmissions: a third of it).
        server_ports: Local ports of this process's listeners (an accepted socket waiting for
            its client's next request is not awaiting a reply).

    """
    info = rec.tcp_info
    if info is None or rec.state != "ESTABLISHED":
        return None
    lds = info.last_data_sent_ms / 1000.0
    ldr = info.last_data_recv_ms / 1000.0
    if info.unacked and (info.backoff or info.retransmits):
        backed_off = info.rto_us / 1e6 * (1.0 - 2.0**-info.backoff) if info.backoff else 0.0
        waited = backed_off + lds if info.backoff else info.last_ack_recv_ms / 1000.0
        return "retransmitting", waited, stall_after * RETRANSMIT_SHARE
    if (info.snd_wnd == 0 and rec.wqueue > 0) or info.timer == _ZERO_WINDOW_PROBE:
        # Each zero-window probe counts as a send, and the probes back off from the base RTO
        # (probe k after rto << k): the window closed about rto * (2**backoff - 1) before the
        # last probe.
        closed = lds + info.rto_us / 1e6 * (2.0 ** min(info.backoff, 16) - 1.0)
        return "zero_window", closed, stall_after
    if rec.rqueue > 0:
        return "unread", ldr, stall_after
    if (
        rec.wqueue == 0
        and not info.unacked
        and info.data_segs_out
        and (info.last_data_sent_ms < info.last_data_recv_ms or not info.data_segs_in)
        and rec.local[1] not in server_ports
    ):
        return "awaiting_reply", lds, stall_after
    return None


def classify(
    rec: SocketRecord, stall_after: float, server_ports: frozenset[int] = frozenset()
) -> tuple[str | None, float, float | None]:
    """``(kind or None, seconds stalled, seconds until it would be reported)`` for *rec*.

    The kind is ``None`` until the stall lasts its threshold; the last value is ``None`` when
    the socket is not on its way to any stall.
    """
    state = stall_state(rec, stall_after, server_ports)
    if state is None:
        return None, 0.0, None
    kind, seconds, limit = state
    return (kind if seconds >= limit else None), seconds, limit - seconds


class StallDetector:
    """Find stalled connections of this process (one per guard).

    Args:
        stall_after: Seconds of silence before a stall is reported.

    """

    def __init__(self, stall_after: float) -> None:
        self.stall_after = stall_after
        self.next_scan = 0.0
        #: Sockets on their way to a stall: ``{inode: (fd, origin, due)}``.
        self.pending: dict[int, tuple[int, Origin | None, float]] = {}
        self.pass_started = -math.inf
        self.rows = 0
        self.cycle_rows = 0
        #: Stalls seen in the pass in progress (reports of the others are forgotten at its end).
        self.cycle_stalled: set[tuple[int, str]] = set()
        self.scans = 0
        self.dump: InfoDump | None = None
        self.fds: dict[int, int] = {}
        self.foreign: set[int] = set()
        self.fds_at = -math.inf
        self.reported: dict[tuple[int, str], float] = {}

    def detect(self, tick: Tick) -> list[GuardEvent]:
        """The events of stalls crossing their threshold in this tick (see :meth:`collect`)."""
        ports = frozenset(r.local[1] for r in tick.sample.listen)
        return self.collect(tick.reader, tick.uid, tick.now, tick.interval, ports)

    def sizes(self) -> dict[str, int]:
        """Entries in the detector's tables."""
        return {
            "stall_reported": len(self.reported),
            "stall_fds": len(self.fds),
            "stall_foreign": len(self.foreign),
            "stall_pending": len(self.pending),
        }

    def next_due(self) -> float | None:
        """The earliest monotonic time a pending socket would cross its threshold, if any.

        A guard loop that wakes then (instead of at its next interval) reports a stall at
        ``stall_after`` plus the cost of one ``getsockopt``.
        """
        return min((v[2] for v in self.pending.values()), default=None)

    def _fallback_records(self) -> list[SocketRecord]:
        """The tracked sockets through ``getsockopt(TCP_INFO)`` (no netlink here)."""
        out = []
        tracked = _tracked()
        self.rows = len(tracked)
        for fd, _ in itertools.islice(tracked.values(), MAX_FALLBACK):
            rec = read_tcp_info(fd)
            if rec is not None and rec.state == "ESTABLISHED":
                out.append(rec)
        return out

    def _budget(self, interval: float) -> int:
        """Bytes of the dump to read this tick.

        :data:`ROWS_PER_TICK` rows, or more when the last pass was so large that a pass would
        otherwise last over half of ``stall_after``.
        """
        ticks = max(1.0, self.stall_after / 2 / interval)
        rows = max(ROWS_PER_TICK, math.ceil(self.rows / ticks))
        return rows * _ROW_BYTES

    def _owner(self, inode: int, now: float, scan: bool) -> tuple[int, Origin | None] | None:
        """``(fd, origin)`` when *inode* belongs to this process.

        The origin table answers for sockets the hooks saw opened; for others, with *scan*, a
        listing of ``/proc/self/fd`` (at most every :data:`FD_SCAN_EVERY` seconds; an inode
        it did not hold is remembered as another process's, and never looked up again).
        """
        found = _origin.lookup(inode)
        if found is not None:
            return found
        fd = self.fds.get(inode)
        if fd is not None or not scan or inode in self.foreign:
            return None if fd is None else (fd, None)
        if now - self.fds_at >= FD_SCAN_EVERY:
            self.fds_at = now
            try:
                self.fds = socket_fds()
            except OSError:  # Defensive: /proc unavailable
                self.fds = {}
            fd = self.fds.get(inode)
            if fd is None:
                if len(self.foreign) >= MAX_FALLBACK:
                    self.foreign.clear()
                self.foreign.add(inode)
        return None if fd is None else (fd, None)

    def collect(
        self,
        reader: object,
        uid: int,
        now: float,
        interval: float,
        server_ports: frozenset[int] = frozenset(),
    ) -> list[GuardEvent]:
        """Read the next slice of the dump; return the events of stalls crossing their threshold.

        Sockets found on their way to a stall are read again one by one
        (``getsockopt(TCP_INFO)``) when they come due.
        """
        events = self._recheck(now, server_ports)
        try:
            if isinstance(reader, NetlinkReader):
                if self.dump is None:
                    self.dump = InfoDump(reader.open_socket)
                if not self.dump.running:
                    if now - self.pass_started < self.stall_after * PASS_SHARE:
                        return events
                    self.pass_started = now
                chunks, finished = self.dump.read(self._budget(interval), tcp_families())
                rows, found = scan_info(chunks, uid)
                self.cycle_rows += rows
            elif now >= self.next_scan:
                found, finished = self._fallback_records(), True
                self.cycle_rows = self.rows
                self.next_scan = now + min(interval * max(1, self.rows // 1000), self.stall_after)
            else:
                return events
        except OSError as exc:
            log_once(
                "guard-stall-scan",
                logging.WARNING,
                "sockwise guard: reading tcp_info failed (%r); stalls are not detected",
                exc,
            )
            return events
        for rec in found:
            self._judge(rec, now, server_ports, None, events, self.cycle_stalled)
        if finished:
            self.scans += 1
            self.rows, self.cycle_rows = self.cycle_rows, 0
            for key in [k for k in self.reported if k not in self.cycle_stalled]:
                del self.reported[key]  # that stall ended: a new one is reported again
            self.cycle_stalled = set()
        return events

    def close(self) -> None:
        """Close the netlink socket of a pass in progress (the guard stopped)."""
        if self.dump is not None:
            self.dump.close()

    def _judge(
        self,
        rec: SocketRecord,
        now: float,
        server_ports: frozenset[int],
        owner: tuple[int, Origin | None] | None,
        events: list[GuardEvent],
        stalled: set[tuple[int, str]],
    ) -> None:
        kind, seconds, left = classify(rec, self.stall_after, server_ports)
        if kind is None and left is None:
            return
        # Not due yet: only sockets whose descriptor is known wait in `pending`; the others are
        # looked up (one fd listing) once a pass finds them due.
        owner = owner or self._owner(rec.inode, now, scan=kind is not None)
        if owner is None:
            return  # another process of this user (or not known yet)
        fd, origin = owner
        if kind is None:
            if left is not None and len(self.pending) < MAX_FALLBACK:
                self.pending[rec.inode] = (fd, origin, now + max(left, 0.0))
            return
        if kind == "awaiting_reply" and origin is not None and origin.kind == "accept":
            return  # a server waiting for its client's next request: normal
        if _origin.is_pooled(rec.inode):
            return  # an idle pool member: its pool checks it before handing it out
        key = (rec.inode, kind)
        stalled.add(key)
        if key in self.reported or silenced(_silent_sockets, rec.inode, now):
            return
        event = self._event(Finding(kind, rec, seconds), fd, origin, now)
        if event is not None:
            self.reported[key] = now
            events.append(event)

    def _recheck(self, now: float, server_ports: frozenset[int]) -> list[GuardEvent]:
        """Read the sockets that came due since the last scan, one by one."""
        events: list[GuardEvent] = []
        due = [(ino, v) for ino, v in self.pending.items() if v[2] <= now]
        for inode, (fd, origin, _) in due:
            del self.pending[inode]
            rec = read_tcp_info(fd)
            if rec is None or rec.inode != inode:
                continue  # closed (or the descriptor now holds another socket)
            self._judge(rec, now, server_ports, (fd, origin), events, set())
        return events

    def _event(
        self, finding: Finding, fd: int, origin: Origin | None, now: float
    ) -> GuardEvent | None:
        rec = finding.record
        info = rec.tcp_info
        assert info is not None
        blocked = blocked_on(fd)
        if blocked is not None and silenced(_silent_threads, blocked.ident, now):
            return None
        if finding.kind == "awaiting_reply" and blocked is None and not info.bytes_received:
            return None  # sends only, has never been answered, nobody waits: not a request
        peer = format_address(rec.remote)
        secs = finding.seconds
        details: dict[str, object] = {
            "seconds": round(secs, 3),
            "stall_after": self.stall_after,
            "rqueue": rec.rqueue,
            "wqueue": rec.wqueue,
            "unacked": info.unacked,
            "retransmits": info.retransmits,
            "backoff": info.backoff,
            "snd_wnd": info.snd_wnd,
        }
        if finding.kind == "awaiting_reply":
            what = (
                f"request sent {secs:.1f} s ago and acknowledged by the peer; no reply since "
                "(the server is alive but not answering)"
            )
            advice = (
                "set a read timeout (requests: timeout=(connect, read); http.client: "
                "timeout=...), or declare a long-poll with sockwise.expect_silence()"
            )
        elif finding.kind == "retransmitting":
            user_timeout = sockets.user_timeout(fd)
            details["user_timeout"] = user_timeout
            if user_timeout is not None:
                left = max(0.0, user_timeout - secs)
                details["time_left"] = round(left, 3)
                fate = f"TCP_USER_TIMEOUT ({user_timeout:g} s) aborts it in about {left:.0f} s"
            else:
                details["time_left"] = None
                fate = "no TCP_USER_TIMEOUT is set: the kernel retries for ~15 minutes"
            what = (
                f"{info.unacked} segment(s) unacknowledged for {secs:.1f} s, retransmitted "
                f"{info.retransmits} time(s) (backoff {info.backoff}): the peer is "
                f"unreachable; {fate}"
            )
            advice = "check the network path; sockwise.harden() bounds such waits"
        elif finding.kind == "zero_window":
            what = (
                f"the peer advertises a zero window: it stopped reading {secs:.1f} s ago "
                f"with {rec.wqueue} bytes waiting in our send queue"
            )
            advice = "the peer is overloaded or stuck; a write timeout bounds the wait"
        else:
            what = f"{rec.rqueue} bytes received {secs:.1f} s ago were never read by this process"
            advice = "read the response, or close it (requests: use `with` or response.close())"
        if blocked is not None:
            timeout = blocked.timeout
            details["timeout"] = timeout
            has_timeout = (
                "no timeout"
                if timeout is None
                else ("non-blocking" if timeout == 0 else f"timeout {timeout:g} s")
            )
        else:
            nonblocking = sockets.nonblocking(fd)
            # A blocking descriptor has no timeout; a non-blocking one has one or an event loop.
            details["timeout"] = None if nonblocking is False else "unknown"
            has_timeout = (
                "timeout unknown"
                if nonblocking is None
                else (
                    "non-blocking (a timeout or an event loop)"
                    if nonblocking
                    else "no timeout (blocking socket)"
                )
            )
        opened = f"opened at {origin}" if origin is not None else "origin not recorded"
        thread = ""
        if blocked is not None:
            details["thread"] = blocked.name
            details["blocked_at"] = str(blocked.where) if blocked.where else None
            at = f" at {blocked.where}" if blocked.where else ""
            thread = f"; thread {blocked.name!r} is blocked {blocked.verb} it{at}"
        message = (
            f"sockwise: stalled connection to {peer} ({finding.kind}): {what}; socket {opened}; "
            f"{has_timeout}{thread}. Fix: {advice}."
        )
        return socket_event(
            finding.kind,  # type: ignore[arg-type]
            StallWarning,
            message,
            rec,
            origin if origin is not None else (blocked.where if blocked else None),
            details,
            fd=fd,
        )
