"""One sample of the states the guard watches, read as cheaply as the source allows.

TIME_WAIT rows can number in the tens of thousands; they are only counted per destination (and,
when the source shows timers, per destination among those that entered TIME_WAIT within the last
*window*): no record object is built for them. CLOSE_WAIT and LISTEN rows of other users are
skipped before any object is built.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from sockwise.guard._netlink import NetlinkReader, format_address, to_record
from sockwise.guard._records import STATE_NUMBERS, SocketRecord

#: ``TCP_TIMEWAIT_LEN`` (``include/net/tcp.h``): how long a TIME_WAIT row lives, in seconds.
TIME_WAIT_SECONDS: Final = 60.0
CLOSE_WAIT: Final = STATE_NUMBERS["CLOSE_WAIT"]
LISTEN: Final = STATE_NUMBERS["LISTEN"]
TIME_WAIT: Final = STATE_NUMBERS["TIME_WAIT"]
GUARD_MASK: Final = (1 << CLOSE_WAIT) | (1 << LISTEN) | (1 << TIME_WAIT)

Address = tuple[str, int]


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


def _sample_netlink(reader: NetlinkReader, uid: int, window: float, time_wait: bool) -> Sample:
    out = Sample(time_wait_recent=Counter())
    for row in reader.raw_rows((1 << CLOSE_WAIT) | (1 << LISTEN)):
        if row[9] == uid:
            rec = to_record(row)
            if rec is not None:
                (out.close_wait if row[1] == CLOSE_WAIT else out.listen).append(rec)
    if not time_wait:
        return out
    tw, recent = reader.time_wait_counts((TIME_WAIT_SECONDS - window) * 1000.0)
    assert out.time_wait_recent is not None
    for (family, dst, dport), n in tw.items():
        out.time_wait[format_address(family, dst, dport)] += n
    for (family, dst, dport), n in recent.items():
        out.time_wait_recent[format_address(family, dst, dport)] += n
    return out


def sample(reader: object, uid: int, window: float, time_wait: bool = True) -> Sample:
    """Read CLOSE_WAIT, LISTEN and TIME_WAIT rows through *reader*.

    Args:
        reader: The socket source (see :mod:`sockwise.guard._source`).
        uid: Keep CLOSE_WAIT/LISTEN rows of this owner only (rows with uid -1, from sources that
            cannot tell, are kept).
        window: Seconds since the previous sample (for ``time_wait_recent``).
        time_wait: Count TIME_WAIT rows (skipped, where the source allows, when ``False``).

    """
    if isinstance(reader, NetlinkReader):
        return _sample_netlink(reader, uid, window, time_wait)
    out = Sample()
    young = (TIME_WAIT_SECONDS - window) * 1000.0
    recent: Counter[Address] = Counter()
    timers = False
    for rec in reader.dump(GUARD_MASK):  # type: ignore[attr-defined]
        if rec.state == "TIME_WAIT":
            if not time_wait:
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
