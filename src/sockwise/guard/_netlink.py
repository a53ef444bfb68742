"""Read TCP sockets from the kernel through netlink sock_diag (Linux).

Theory of operation: a ``NETLINK_SOCK_DIAG`` socket accepts a ``SOCK_DIAG_BY_FAMILY`` dump request
(``struct inet_diag_req_v2``, ``include/uapi/linux/inet_diag.h``) carrying a bitmask of TCP states;
the kernel answers with one ``struct inet_diag_msg`` per matching socket of the network namespace
and a final ``NLMSG_DONE``. Filtering by state happens in the kernel, so asking for
``CLOSE_WAIT|LISTEN`` on a machine with 10,000 established sockets returns a handful of rows.

The parsers take untrusted bytes and never raise on malformed input: a truncated or
inconsistent message ends the chunk (fuzz-tested). Only a well-formed ``NLMSG_ERROR`` becomes an
:class:`OSError` carrying the kernel's errno.
"""

from __future__ import annotations

import itertools
import operator
import os
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Final

from sockwise.guard._records import TCP_STATES, SocketRecord

NETLINK_SOCK_DIAG: Final = 4  # include/uapi/linux/netlink.h
SOCK_DIAG_BY_FAMILY: Final = 20  # include/uapi/linux/sock_diag.h
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
NLM_F_REQUEST: Final = 0x1
NLM_F_DUMP: Final = 0x300  # NLM_F_ROOT | NLM_F_MATCH
IPPROTO_TCP: Final = 6

NLMSGHDR: Final = struct.Struct("=IHHII")  # len, type, flags, seq, pid
REQ_V2: Final = struct.Struct("=BBBxI48x")  # family, protocol, ext, pad, states, inet_diag_sockid
#: struct inet_diag_msg: family, state, timer, retrans, sockid (sport, dport big-endian, src[16],
#: dst[16], if, cookie[2]), expires, rqueue, wqueue, uid, inode.
DIAG_MSG: Final = struct.Struct("=BBxx2s2s16s16s4x8xIIIII")
_HDR_LEN: Final = NLMSGHDR.size
_MSG_MIN: Final = _HDR_LEN + DIAG_MSG.size
_ERRNO: Final = struct.Struct("=i")

#: One raw row: family, state, sport, dport (2 bytes, big-endian), src, dst (16 bytes),
#: expires (ms), rqueue, wqueue, uid, inode.
RawRow = tuple[int, int, bytes, bytes, bytes, bytes, int, int, int, int, int]
SocketFactory = Callable[[], socket.socket]

_RECV_SIZE: Final = 1 << 16
_MAX_CHUNKS: Final = 1 << 16  # a dump of 2**16 chunks (~2 million sockets) is cut short
_TIMEOUT: Final = 5.0


def build_request(family: int, mask: int, seq: int = 1) -> bytes:
    """The ``SOCK_DIAG_BY_FAMILY`` dump request for TCP sockets of *family* in states *mask*."""
    body = REQ_V2.pack(family, IPPROTO_TCP, 0, mask)
    return (
        NLMSGHDR.pack(_HDR_LEN + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        + body
    )


def iter_rows(chunk: bytes) -> Iterator[RawRow | None]:
    """Yield the rows of one received chunk; ``None`` marks ``NLMSG_DONE``.

    Raises:
        OSError: The kernel answered ``NLMSG_ERROR`` with a non-zero errno.

    """
    off = 0
    end = len(chunk)
    while off + _HDR_LEN <= end:
        length, mtype, _flags, _seq, _pid = NLMSGHDR.unpack_from(chunk, off)
        if length < _HDR_LEN or off + length > end:
            return  # malformed: stop reading this chunk
        if mtype == NLMSG_DONE:
            yield None
            return
        if mtype == NLMSG_ERROR:
            if length >= _HDR_LEN + 4:
                (err,) = _ERRNO.unpack_from(chunk, off + _HDR_LEN)
                if err < 0:
                    raise OSError(-err, f"sock_diag: {os.strerror(-err)}")
            yield None
            return
        if mtype == SOCK_DIAG_BY_FAMILY and length >= _MSG_MIN:
            yield DIAG_MSG.unpack_from(chunk, off + _HDR_LEN)
        off += (length + 3) & ~3


#: The fields of a TIME_WAIT message the guard needs: len, type, family, state, dport, dst,
#: expires. TIME_WAIT messages of one kernel all have the same length (header, inet_diag_msg and
#: the same fixed attributes), so a chunk of them unpacks with one ``iter_unpack``.
_TW_FIELDS: Final = "=IH10xBB2x2x2s16x16s4x8xI16x"
_TW_MIN: Final = struct.calcsize(_TW_FIELDS)
_tw_structs: dict[int, struct.Struct] = {}
_DONE_LEN: Final = _HDR_LEN + 4
_get_len = operator.itemgetter(0)
_get_type = operator.itemgetter(1)
_get_key = operator.itemgetter(2, 5, 4)  # family, dst, dport
_get_expires = operator.itemgetter(6)


def count_time_wait(
    chunk: bytes, young_ms: float
) -> tuple[Counter[tuple[int, bytes, bytes]], Counter[tuple[int, bytes, bytes]], bool] | None:
    """Count a chunk of a TIME_WAIT-only dump per destination, without a Python loop per row.

    Returns ``(all rows, rows whose timer exceeds young_ms, done)`` keyed by
    ``(family, dst, dport)``, or ``None`` when the chunk is not made only of TIME_WAIT messages
    (plus an optional final ``NLMSG_DONE``): the caller then parses it row by row.
    """
    end = len(chunk)
    done = False
    if end < _HDR_LEN:
        return None
    msg_len = struct.unpack_from("=I", chunk)[0]
    if msg_len == _DONE_LEN and end == _DONE_LEN:
        return Counter(), Counter(), True
    if msg_len < _TW_MIN or msg_len % 4 or msg_len > 4096:
        return None
    tw = _tw_structs.get(msg_len)
    if tw is None:
        tw = _tw_structs[msg_len] = struct.Struct(f"{_TW_FIELDS}{msg_len - _TW_MIN}x")
    if end % msg_len == _DONE_LEN % msg_len and end >= _DONE_LEN:
        length, mtype = struct.unpack_from("=IH", chunk, end - _DONE_LEN)
        if (length, mtype) != (_DONE_LEN, NLMSG_DONE):
            return None
        end -= _DONE_LEN
        done = True
    elif end % msg_len:
        return None
    rows = list(tw.iter_unpack(memoryview(chunk)[:end]))
    if rows and not (
        all(map(msg_len.__eq__, map(_get_len, rows)))
        and all(map(SOCK_DIAG_BY_FAMILY.__eq__, map(_get_type, rows)))
    ):
        return None
    keys = list(map(_get_key, rows))
    young = Counter(itertools.compress(keys, map(young_ms.__lt__, map(_get_expires, rows))))
    return Counter(keys), young, done


def format_address(family: int, raw: bytes, port: bytes) -> tuple[str, int]:
    """``(address, port)`` from sock_diag's raw address (16 bytes) and big-endian port."""
    try:
        if family == socket.AF_INET:
            host = socket.inet_ntop(socket.AF_INET, raw[:4])
        else:
            host = socket.inet_ntop(socket.AF_INET6, raw[:16])
    except (ValueError, OSError):
        host = "?"
    return host, int.from_bytes(port, "big")


def to_record(row: RawRow) -> SocketRecord | None:
    """A :class:`SocketRecord` from a raw row (``None`` for an unknown family or state)."""
    family, state, sport, dport, src, dst, expires, rqueue, wqueue, uid, inode = row
    name = TCP_STATES.get(state)
    if name is None or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return SocketRecord(
        family=family,
        state=name,
        local=format_address(family, src, sport),
        remote=format_address(family, dst, dport),
        inode=inode,
        uid=uid,
        rqueue=rqueue,
        wqueue=wqueue,
        expires_ms=expires,
    )


def _default_socket() -> socket.socket:
    return socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
    )


class NetlinkReader:
    """TCP sockets of this network namespace through sock_diag.

    Args:
        socket_factory: Opens the netlink socket (the boundary where tests inject failures).

    """

    name: Final = "netlink"

    def __init__(self, socket_factory: SocketFactory | None = None) -> None:
        self._factory = socket_factory or _default_socket

    def raw_rows(
        self, mask: int, families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6)
    ) -> Iterator[RawRow]:
        """Yield the raw rows of every TCP socket in states *mask* (one socket, closed after)."""
        buf = bytearray(_RECV_SIZE)
        view = memoryview(buf)
        with self._factory() as nl:
            nl.settimeout(_TIMEOUT)
            for seq, family in enumerate(families, 1):
                nl.sendto(build_request(family, mask, seq), (0, 0))
                for _ in range(_MAX_CHUNKS):
                    n = nl.recv_into(view)
                    done = False
                    for row in iter_rows(bytes(view[:n])):
                        if row is None:
                            done = True
                            break
                        yield row
                    if done or n == 0:
                        break

    def time_wait_counts(
        self, young_ms: float
    ) -> tuple[Counter[tuple[int, bytes, bytes]], Counter[tuple[int, bytes, bytes]]]:
        """TIME_WAIT rows per ``(family, dst, dport)``: all, and those with timers > *young_ms*."""
        total: Counter[tuple[int, bytes, bytes]] = Counter()
        young: Counter[tuple[int, bytes, bytes]] = Counter()
        buf = bytearray(_RECV_SIZE)
        view = memoryview(buf)
        with self._factory() as nl:
            nl.settimeout(_TIMEOUT)
            for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
                nl.sendto(build_request(family, 1 << 6, seq), (0, 0))
                for _ in range(_MAX_CHUNKS):
                    n = nl.recv_into(view)
                    chunk = bytes(view[:n])
                    fast = count_time_wait(chunk, young_ms)
                    if fast is not None:
                        total.update(fast[0])
                        young.update(fast[1])
                        done = fast[2]
                    else:
                        done = False
                        for row in iter_rows(chunk):
                            if row is None:
                                done = True
                                break
                            key = (row[0], row[5], row[3])
                            total[key] += 1
                            if row[6] > young_ms:
                                young[key] += 1
                    if done or n == 0:
                        break
        return total, young

    def dump(self, mask: int) -> list[SocketRecord]:
        """Every TCP socket of the namespace in states *mask*."""
        out = []
        for row in self.raw_rows(mask):
            rec = to_record(row)
            if rec is not None:
                out.append(rec)
        return out

    def probe(self) -> None:
        """Raise :class:`OSError` if sock_diag cannot be used here."""
        for _ in self.raw_rows(1 << 10):  # LISTEN: small, always answerable
            pass
