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

Applications declare expected silences with :func:`expect_silence` (a long-poll, a stream, a
push channel): a socket or thread inside it is not reported.
"""

from __future__ import annotations

import _socket
import contextlib
import dataclasses
import itertools
import linecache
import logging
import math
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Final

from sockwise._log import log_once
from sockwise.guard import _origin
from sockwise.guard._events import GuardEvent, StallWarning, redact
from sockwise.guard._netlink import (
    InfoDump,
    NetlinkReader,
    info_records,
    parse_tcp_info,
    scan_info,
)
from sockwise.guard._origin import Origin
from sockwise.guard._procfs import ProcfsReader, socket_fds
from sockwise.guard._records import SocketRecord

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
_TCP_INFO_LEN: Final = 512
_TCP_INFO_OPT: Final = getattr(socket, "TCP_INFO", 11)
_TCP_USER_TIMEOUT: Final = getattr(socket, "TCP_USER_TIMEOUT", 18)
_ZERO_WINDOW_PROBE: Final = 4
_MAX_FRAMES: Final = 8
_ESTABLISHED_MASK: Final = 1 << 1
#: A line that calls socket I/O (what a thread blocked on a socket has on top of its stack).
_IO_CALL: Final = re.compile(
    r"\.(recv_into|recvfrom_into|recvfrom|recvmsg|recv|readinto|readline|read|sendall|sendmsg|"
    r"sendfile|sendto|send|write)\s*\("
)

Address = tuple[str, int]


# -- declared silences -------------------------------------------------------------------------

#: ``{inode: [deadline, ...]}`` and ``{thread ident: [deadline, ...]}`` (monotonic seconds;
#: ``inf`` for no limit). Plain dict and list operations: atomic under the GIL, no lock to fork.
_silent_sockets: dict[int, list[float]] = {}
_silent_threads: dict[int, list[float]] = {}


def _find_fd(target: object) -> int | None:
    """The descriptor behind *target*: a socket, an fd, or an HTTP response (``None``: none)."""
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, socket.socket):
        return target.fileno()
    seen: set[int] = set()
    candidates: list[object] = [target]
    for _ in range(64):  # bounded walk: response -> raw -> connection -> sock
        if not candidates:
            break
        obj = candidates.pop(0)
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, socket.socket):
            return obj.fileno()
        extensions = getattr(obj, "extensions", None)
        if isinstance(extensions, dict):  # httpx / httpcore: the network stream
            stream = extensions.get("network_stream")
            get = getattr(stream, "get_extra_info", None)
            if callable(get):
                with contextlib.suppress(Exception):
                    candidates.append(get("socket"))
        for attr in ("raw", "connection", "_connection", "sock", "_sock", "_fp", "fp"):
            with contextlib.suppress(Exception):
                candidates.append(getattr(obj, attr, None))
    return None


@contextlib.contextmanager
def expect_silence(target: object = None, *, up_to: float | None = None) -> Iterator[None]:
    """Declare a wait that is meant to be long: a long-poll, a stream, a push channel.

    Inside the block the guard does not report the declared socket (or, without *target*, any
    socket the calling thread is blocked on) as stalled -- for at most *up_to* seconds, after
    which a silence is a stall again.

    Example::

        with sockwise.expect_silence(up_to=120):  # this thread's long-poll
            events = session.get(url, timeout=(5, 130))

        resp = session.get(stream_url, stream=True)
        with sockwise.expect_silence(resp):  # a server-sent event stream
            for line in resp.iter_lines():
                ...

    Args:
        target: A socket, a file descriptor, or a response of requests, urllib3 or httpx
            (whose connection's socket is used); ``None``: the calling thread.
        up_to: Seconds the silence may last (``None``: the whole block).

    Raises:
        TypeError: *target* is not a socket, descriptor or response with a socket, or *up_to*
            is not a number.
        ValueError: *up_to* is not positive.

    """
    if up_to is not None:
        if isinstance(up_to, bool) or not isinstance(up_to, int | float):
            raise TypeError(f"up_to: expected a number of seconds or None, got {up_to!r}")
        if not (0 < up_to <= 10**9):
            raise ValueError(f"up_to: {up_to!r} is out of range; allowed: 0 < up_to <= 1e9")
    deadline = math.inf if up_to is None else time.monotonic() + float(up_to)
    table: dict[int, list[float]]
    if target is None:
        table, key = _silent_threads, threading.get_ident()
    else:
        fd = _find_fd(target)
        if fd is None or fd < 0:
            raise TypeError(
                f"target: {target!r} is not an open socket, a file descriptor, or a response "
                "holding one"
            )
        try:
            key = os.fstat(fd).st_ino
        except OSError as exc:
            raise TypeError(f"target: {target!r} has no open descriptor ({exc})") from None
        table = _silent_sockets
    table.setdefault(key, []).append(deadline)
    try:
        yield
    finally:
        entries = table.get(key)
        if entries is not None:
            with contextlib.suppress(ValueError):
                entries.remove(deadline)
            if not entries:
                table.pop(key, None)


def _silenced(table: dict[int, list[float]], key: int, now: float) -> bool:
    entries = table.get(key)
    return bool(entries) and max(entries or (0.0,)) > now


# -- threads blocked on a socket ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blocked:
    """A thread blocked reading a socket.

    Attributes:
        ident: The thread's identifier.
        name: The thread's name.
        where: The first frame of the application's code in its stack, when found.
        timeout: The socket object's timeout (``None``: blocking, no timeout).
        verb: ``"reading"`` or ``"writing"``.

    """

    ident: int
    name: str
    where: Origin | None
    timeout: float | None
    verb: str = "reading"


def _socket_in(frame: FrameType, fd: int) -> socket.socket | None:
    try:
        values = list(frame.f_locals.values())
    except Exception:  # Defensive: a frame that cannot build its locals
        return None
    for value in values:
        for obj in (value, getattr(value, "_sock", None)):
            if isinstance(obj, socket.socket):
                try:
                    if obj.fileno() == fd:
                        return obj
                except OSError:  # Defensive: a closed wrapper
                    continue
    return None


def _waiting_call(frame: FrameType) -> str | None:
    """``"reading"``/``"writing"`` when *frame*'s current line calls a socket I/O method."""
    try:
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
    except Exception:  # Defensive: an unreadable source
        return None
    match = _IO_CALL.search(line)
    if match is None:
        return None
    return "writing" if match.group(1).startswith(("send", "write")) else "reading"


def blocked_on(fd: int) -> Blocked | None:
    """The thread blocked in a socket call on *fd*, if any.

    A thread counts when one of its innermost frames is on a line calling a socket I/O method
    (``recv``, ``recv_into``, ``read``, ``readinto``, ``readline``, ``send``, ``sendall``...)
    and holds the socket *fd* (directly, or as the ``_sock`` of a ``socket.makefile()`` reader).
    """
    me = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, top in sys._current_frames().items():
        if ident == me:
            continue
        frame: FrameType | None = top
        for _ in range(_MAX_FRAMES):
            if frame is None:
                break
            verb = _waiting_call(frame)
            if verb is None:
                break  # the innermost frames are not in socket I/O: not blocked on a socket
            sock = _socket_in(frame, fd)
            if sock is not None:
                try:
                    timeout = sock.gettimeout()
                except OSError:  # Defensive
                    timeout = None
                where, _ = _origin.find_origin(top, "blocked")
                return Blocked(ident, names.get(ident, f"thread {ident}"), where, timeout, verb)
            frame = frame.f_back
    return None


# -- per-socket facts the dump does not carry --------------------------------------------------


def _wrap(fd: int) -> _socket.socket | None:
    """A bare C socket object on *fd* (no Python wrapper, no hooks); ``detach()`` it after."""
    try:
        return _socket.socket(fileno=fd)
    except (OSError, ValueError):
        return None


def _user_timeout(fd: int) -> float | None:
    """The socket's ``TCP_USER_TIMEOUT`` in seconds (``None``: unset or unknown)."""
    sock = _wrap(fd)
    if sock is None:
        return None
    try:
        ms = sock.getsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT)
    except OSError:
        return None
    finally:
        sock.detach()
    return ms / 1000.0 if ms > 0 else None


def _nonblocking(fd: int) -> bool | None:
    """Whether *fd* is non-blocking: Python sockets with a timeout are (``None``: unknown)."""
    try:
        import fcntl

        return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK)
    except (ImportError, OSError):
        return None


def read_tcp_info(fd: int) -> SocketRecord | None:
    """One socket's record through ``getsockopt(TCP_INFO)`` (the fallback without netlink)."""
    sock = _wrap(fd)
    if sock is None:
        return None
    try:
        if sock.type & 0xF != socket.SOCK_STREAM or sock.family not in (
            socket.AF_INET,
            socket.AF_INET6,
        ):
            return None
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO_OPT, _TCP_INFO_LEN)
        info = parse_tcp_info(raw)
        if info is None:
            return None
        local = sock.getsockname()[:2]
        try:
            remote = sock.getpeername()[:2]
        except OSError:
            remote = ("", 0)
        import fcntl
        import termios

        buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
        rq = int.from_bytes(buf, sys.byteorder)
        buf = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0")
        wq = int.from_bytes(buf, sys.byteorder)
        return SocketRecord(
            family=int(sock.family),
            state="ESTABLISHED" if info.state == 1 else str(info.state),
            local=(str(local[0]), int(local[1])),
            remote=(str(remote[0]), int(remote[1])),
            inode=os.fstat(fd).st_ino,
            uid=os.getuid(),
            rqueue=rq,
            wqueue=wq,
            fd=fd,
            tcp_info=info,
        )
    except (ImportError, OSError):
        return None
    finally:
        sock.detach()


def _tracked() -> dict[int, tuple[int, Origin | None]]:
    """A snapshot of the origin table ``{inode: (fd, origin)}``."""
    _origin.drain()
    state = getattr(_origin, "_state", None)
    table = getattr(state, "tracked", None)
    return dict(table) if isinstance(table, dict) else {}


def _families() -> tuple[int, ...]:
    """``AF_INET`` and, unless ``/proc/net/sockstat6`` shows no IPv6 TCP socket, ``AF_INET6``."""
    try:
        with open("/proc/net/sockstat6", encoding="ascii") as f:
            for line in f:
                if line.startswith("TCP6:"):
                    parts = line.split()
                    if parts[1:3] == ["inuse", "0"]:
                        return (socket.AF_INET,)
    except (OSError, ValueError):
        pass
    return (socket.AF_INET, socket.AF_INET6)


def _same_netns(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return False


def established_sockets(pid: int | None = None, proc_root: str = "/proc") -> list[SocketRecord]:
    """The ESTABLISHED TCP sockets of a process, ``fd`` and (where possible) ``tcp_info`` set.

    ``tcp_info`` comes from one sock_diag dump with ``INET_DIAG_INFO``; where netlink cannot see
    the process (another network namespace, no netlink, a *proc_root* other than ``/proc``),
    the rows come from ``PROC_ROOT/PID/net/tcp{,6}`` and ``tcp_info`` is ``None``.

    Args:
        pid: The process (``None``: this one).
        proc_root: Where procfs is mounted.

    Raises:
        ValueError: *pid* is not a positive integer or ``None``.
        ProcessLookupError: No process *pid*.
        PermissionError: Not allowed to list its descriptors.

    """
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise ValueError(f"pid: expected a positive integer or None, got {pid!r}")
    real = os.getpid() if pid is None else pid
    fds = socket_fds(proc_root, real)
    rows: list[SocketRecord] | None = None
    if proc_root == "/proc" and (real == os.getpid() or _same_netns(real)):
        with contextlib.suppress(OSError):
            rows = info_records(NetlinkReader().info_chunks(_ESTABLISHED_MASK))
    if rows is None:
        rows = ProcfsReader(proc_root, real).dump(_ESTABLISHED_MASK)
    return [
        dataclasses.replace(r, fd=fds[r.inode])
        for r in rows
        if r.inode and r.inode in fds and r.state == "ESTABLISHED"
    ]


# -- the detector ------------------------------------------------------------------------------


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
                chunks, finished = self.dump.read(self._budget(interval), _families())
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
        if key in self.reported or _silenced(_silent_sockets, rec.inode, now):
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
        if blocked is not None and _silenced(_silent_threads, blocked.ident, now):
            return None
        if finding.kind == "awaiting_reply" and blocked is None and not info.bytes_received:
            return None  # sends only, has never been answered, nobody waits: not a request
        peer = f"{rec.remote[0]}:{rec.remote[1]}"
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
            user_timeout = _user_timeout(fd)
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
            nonblocking = _nonblocking(fd)
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
        return GuardEvent(
            kind=finding.kind,  # type: ignore[arg-type]
            category=StallWarning,
            message=redact(message),
            local=rec.local,
            remote=rec.remote,
            fd=fd,
            origin=origin if origin is not None else (blocked.where if blocked else None),
            details=details,
        )
