"""One sample of the states the guard watches, read as cheaply as the source allows.

TIME_WAIT rows can number in the tens of thousands; they are only counted per destination (and,
when the source shows timers, per destination among those that entered TIME_WAIT within the last
*window*): no record object is built for them, and when the caller names the destinations it
cares about, sock_diag filters the others out in the kernel. CLOSE_WAIT and LISTEN rows of other
users are skipped before any object is built.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from sockwise._net.addr import Address, diag_address, is_loopback
from sockwise._net.netlink import MAX_FILTER_DESTINATIONS, NetlinkReader, to_record
from sockwise._net.records import STATE_NUMBERS, SocketRecord

#: ``TCP_TIMEWAIT_LEN`` (``include/net/tcp.h``): how long a TIME_WAIT row lives, in seconds.
TIME_WAIT_SECONDS: Final = 60.0
CLOSE_WAIT: Final = STATE_NUMBERS["CLOSE_WAIT"]
LISTEN: Final = STATE_NUMBERS["LISTEN"]
TIME_WAIT: Final = STATE_NUMBERS["TIME_WAIT"]
FIN_WAIT2: Final = STATE_NUMBERS["FIN_WAIT2"]
GUARD_MASK: Final = (1 << CLOSE_WAIT) | (1 << LISTEN) | (1 << TIME_WAIT)


@dataclass
class Sample:
    """What one sample found.

    Attributes:
        close_wait: CLOSE_WAIT rows owned by *uid*.
        listen: LISTEN rows owned by *uid*.
        time_wait: TIME_WAIT rows per destination.
        time_wait_recent: Per destination, TIME_WAIT rows younger than the window (``None``
            when the source shows no timers).

    """

    close_wait: list[SocketRecord] = field(default_factory=list)
    listen: list[SocketRecord] = field(default_factory=list)
    time_wait: Counter[Address] = field(default_factory=Counter)
    time_wait_recent: Counter[Address] | None = None
    #: FIN_WAIT2 rows a process still owns (inode non-zero: a half-close, not a close), read in
    #: the same dump; ``None`` when the source does not give them that way.
    fin_wait2_owned: list[SocketRecord] | None = None


def packed_destinations(
    destinations: Collection[Address],
) -> dict[int, list[tuple[bytes, int]]]:
    """*destinations* as sock_diag filter entries per family (host names are left out)."""
    out: dict[int, list[tuple[bytes, int]]] = {}
    for host, port in destinations:
        if not (isinstance(port, int) and 0 <= port <= 0xFFFF):
            continue
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                packed = socket.inet_pton(family, host)
            except (OSError, ValueError, TypeError):
                continue
            entries = out.setdefault(int(family), [])
            if len(entries) < MAX_FILTER_DESTINATIONS:
                entries.append((packed, port))
            break
    return out


def _sample_netlink(
    reader: NetlinkReader,
    uid: int,
    window: float,
    time_wait: bool,
    destinations: Collection[Address] | None,
) -> Sample:
    out = Sample(time_wait_recent=Counter(), fin_wait2_owned=[])
    owned = out.fin_wait2_owned
    assert owned is not None
    for row in reader.raw_rows((1 << CLOSE_WAIT) | (1 << LISTEN) | (1 << FIN_WAIT2)):
        if row[1] == FIN_WAIT2:
            if row[10]:  # owned by a process: it half-closed (orphans of a close() have inode 0)
                rec = to_record(row)
                if rec is not None:
                    owned.append(rec)
        elif row[9] == uid:
            rec = to_record(row)
            if rec is not None:
                (out.close_wait if row[1] == CLOSE_WAIT else out.listen).append(rec)
    if not time_wait:
        return out
    wanted = None if destinations is None else packed_destinations(destinations)
    tw, recent = reader.time_wait_counts((TIME_WAIT_SECONDS - window) * 1000.0, wanted)
    assert out.time_wait_recent is not None
    for (family, dst, dport), n in tw.items():
        out.time_wait[diag_address(family, dst, dport)] += n
    for (family, dst, dport), n in recent.items():
        out.time_wait_recent[diag_address(family, dst, dport)] += n
    return out


def sample(
    reader: object,
    uid: int,
    window: float,
    time_wait: bool = True,
    destinations: Collection[Address] | None = None,
) -> Sample:
    """Read CLOSE_WAIT, LISTEN and TIME_WAIT rows through *reader*.

    Args:
        reader: The socket source (see :mod:`sockwise.guard._source`).
        uid: Keep CLOSE_WAIT/LISTEN rows of this owner only (rows with uid -1, from sources that
            cannot tell, are kept).
        window: Seconds since the previous sample (for ``time_wait_recent``).
        time_wait: Count TIME_WAIT rows (skipped, where the source allows, when ``False``).
        destinations: Count TIME_WAIT rows only toward these ``(host, port)`` (``None``: all);
            netlink filters in the kernel, at most
            :data:`~sockwise._net.netlink.MAX_FILTER_DESTINATIONS` per family.

    """
    if isinstance(reader, NetlinkReader):
        return _sample_netlink(reader, uid, window, time_wait, destinations)
    keep = None if destinations is None else set(destinations)
    out = Sample()
    young = (TIME_WAIT_SECONDS - window) * 1000.0
    recent: Counter[Address] = Counter()
    timers = False
    for rec in reader.dump(GUARD_MASK):  # type: ignore[attr-defined]
        if rec.state == "TIME_WAIT":
            if not time_wait or (keep is not None and rec.remote not in keep):
                continue
            out.time_wait[rec.remote] += 1
            if rec.expires_ms:
                timers = True
                if rec.expires_ms > young:
                    recent[rec.remote] += 1
        elif rec.uid in (uid, -1):
            (out.close_wait if rec.state == "CLOSE_WAIT" else out.listen).append(rec)
    if timers:
        out.time_wait_recent = recent
    return out


def half_open_peers(
    reader: object, rows: Collection[SocketRecord], owned: list[SocketRecord] | None = None
) -> set[tuple[Address, Address]]:
    """``(local, remote)`` of *rows* (our CLOSE_WAIT sockets) whose local peer only half-closed.

    A peer on this machine that closed its socket leaves an orphan in FIN_WAIT2, which no
    process owns (inode 0); a peer that called ``shutdown(SHUT_WR)`` and waits for our answer
    still owns its socket (inode non-zero). Only loopback peers can be told apart this way; the
    FIN_WAIT2 rows come from the sample (*owned*, netlink) or, for other sources, from a dump
    made only when such a row exists.
    """
    wanted = {(r.remote, r.local) for r in rows if is_loopback(r.remote[0])}
    if not wanted:
        return set()
    found: set[tuple[Address, Address]] = set()
    records: list[SocketRecord] = (
        owned if owned is not None else reader.dump(1 << FIN_WAIT2)  # type: ignore[attr-defined]
    )
    for rec in records:
        if rec.inode and (rec.local, rec.remote) in wanted:
            found.add((rec.remote, rec.local))
    return found
