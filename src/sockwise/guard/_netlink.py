"""Read TCP sockets from the kernel through netlink sock_diag (Linux).

Theory of operation: a ``NETLINK_SOCK_DIAG`` socket accepts a ``SOCK_DIAG_BY_FAMILY`` dump request
(``struct inet_diag_req_v2``, ``include/uapi/linux/inet_diag.h``) carrying a bitmask of TCP states;
the kernel answers with one ``struct inet_diag_msg`` per matching socket of the network namespace
and a final ``NLMSG_DONE``. Filtering by state happens in the kernel, so asking for
``CLOSE_WAIT|LISTEN`` on a machine with 10,000 established sockets returns a handful of rows.
A request may also carry an ``INET_DIAG_REQ_BYTECODE`` attribute: a little filter program the
kernel runs on every socket (:func:`destination_filter` builds "destination is one of these
addresses and ports", the way ``ss dst ...`` does), so TIME_WAIT rows toward destinations the
guard does not care about never cross into user space. TIME_WAIT rows are then counted without a
Python loop per row (:func:`count_time_wait`).

The parsers take untrusted bytes and never raise on malformed input: a truncated or
inconsistent message ends the chunk (fuzz-tested). Only a well-formed ``NLMSG_ERROR`` becomes an
:class:`OSError` carrying the kernel's errno.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
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
Buffer = bytes | bytearray | memoryview

_RECV_SIZE: Final = 1 << 16
_MAX_CHUNKS: Final = 1 << 16  # a dump of 2**16 chunks (~2 million sockets) is cut short
_TIMEOUT: Final = 5.0


INET_DIAG_REQ_BYTECODE: Final = 1  # the request's filter attribute
INET_DIAG_BC_JMP: Final = 1
INET_DIAG_BC_D_COND: Final = 8
BC_OP: Final = struct.Struct("=BBH")  # struct inet_diag_bc_op: code, yes, no
HOSTCOND: Final = struct.Struct("=BBxxi")  # struct inet_diag_hostcond: family, prefix_len, port
NLATTR: Final = struct.Struct("=HH")  # len, type
#: Most destinations in one filter (each costs the kernel one comparison per socket).
MAX_FILTER_DESTINATIONS: Final = 64
_ADDR_LEN: Final = {int(socket.AF_INET): 4, int(socket.AF_INET6): 16}


def destination_filter(family: int, destinations: Sequence[tuple[bytes, int]]) -> bytes:
    """Bytecode accepting sockets whose destination is one of *destinations*.

    Each destination is ``(packed address, port)`` of *family*. The program is a chain of
    ``INET_DIAG_BC_D_COND`` tests, each followed by a jump to the end: a test that matches
    falls through to its jump (accept), one that fails skips it to the next test, and the last
    failing test jumps past the end (reject) -- the shape ``ss`` compiles ``dst A or dst B`` to,
    which the kernel's verifier (``inet_diag_bc_audit``) accepts.

    Raises:
        ValueError: No destination, more than :data:`MAX_FILTER_DESTINATIONS`, an unknown
            family, an address of the wrong length, or a port outside 0-65535.

    """
    size = _ADDR_LEN.get(family)
    if size is None:
        raise ValueError(f"family: {family!r} is not AF_INET or AF_INET6")
    if not 1 <= len(destinations) <= MAX_FILTER_DESTINATIONS:
        raise ValueError(
            f"destinations: {len(destinations)} given; allowed: 1 to {MAX_FILTER_DESTINATIONS}"
        )
    tests = []
    for addr, port in destinations:
        if len(addr) != size or not 0 <= port <= 0xFFFF:
            raise ValueError(f"destinations: bad entry {(addr, port)!r} for family {family}")
        length = BC_OP.size + HOSTCOND.size + size
        tests.append(
            BC_OP.pack(INET_DIAG_BC_D_COND, length, length + 4)
            + HOSTCOND.pack(family, size * 8, port)
            + addr
        )
    code = tests[-1]
    for test in reversed(tests[:-1]):
        code = test + BC_OP.pack(INET_DIAG_BC_JMP, 4, len(code) + 4) + code
    return code


def build_request(family: int, mask: int, seq: int = 1, bytecode: bytes = b"") -> bytes:
    """The ``SOCK_DIAG_BY_FAMILY`` dump request for TCP sockets of *family* in states *mask*.

    Args:
        family: ``AF_INET`` or ``AF_INET6``.
        mask: Bitmask of TCP states (``1 << state``).
        seq: The message's sequence number.
        bytecode: A filter (:func:`destination_filter`); empty for none.

    """
    body = REQ_V2.pack(family, IPPROTO_TCP, 0, mask)
    if bytecode:
        body += NLATTR.pack(NLATTR.size + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
        body += bytes(-len(body) % 4)
    return (
        NLMSGHDR.pack(_HDR_LEN + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        + body
    )


def iter_rows(chunk: Buffer) -> Iterator[RawRow | None]:
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


#: Offsets inside one message (``nlmsghdr`` then ``inet_diag_msg``) that counting reads.
_OFF_TYPE: Final = 4
_OFF_FAMILY: Final = 16
_OFF_DPORT: Final = 22
_OFF_DST: Final = 40
_OFF_EXPIRES: Final = 68
_DONE_LEN: Final = _HDR_LEN + 4
_BYTEORDER: Final = sys.byteorder
TimeWaitKey = tuple[int, bytes, bytes]


def count_time_wait(
    chunk: Buffer, young_ms: float
) -> tuple[Counter[TimeWaitKey], Counter[TimeWaitKey], bool] | None:
    """Count a chunk of a TIME_WAIT-only dump per destination, without a Python loop per row.

    TIME_WAIT messages of one dump all have the same length and family, so the chunk is read
    as columns: strided views of the message length, type, destination port and address and
    timer (``memoryview.cast`` and slicing, all in C), zipped into counted keys.

    Returns ``(all rows, rows whose timer exceeds young_ms, done)`` keyed by
    ``(family, dst, dport)`` (raw 16 and 2 bytes, as :func:`format_address` takes them), or
    ``None`` when the chunk is not made only of same-length, same-family TIME_WAIT messages
    (plus an optional final ``NLMSG_DONE``): the caller then parses it row by row.
    """
    view = memoryview(chunk)
    end = len(view)
    if end < _HDR_LEN:
        return None
    msg_len, mtype = NLMSGHDR.unpack_from(view)[:2]
    if msg_len == _DONE_LEN and end == _DONE_LEN and mtype == NLMSG_DONE:
        return Counter(), Counter(), True
    if msg_len < _MSG_MIN or msg_len % 4 or msg_len > 4096:
        return None
    done = False
    if end % msg_len == _DONE_LEN % msg_len and end >= _DONE_LEN:
        length, mtype = NLMSGHDR.unpack_from(view, end - _DONE_LEN)[:2]
        if (length, mtype) != (_DONE_LEN, NLMSG_DONE):
            return None
        end -= _DONE_LEN
        done = True
    elif end % msg_len:
        return None
    rows = end // msg_len
    if not rows:
        return Counter(), Counter(), done
    body = view[:end]
    b8 = body.cast("B")
    w16 = body.cast("H")
    w32 = body.cast("I")
    s16 = msg_len // 2
    s32 = msg_len // 4
    family = b8[_OFF_FAMILY]
    size = _ADDR_LEN.get(family)
    if (
        size is None
        or w32[0::s32].tolist().count(msg_len) != rows
        or w16[_OFF_TYPE // 2 :: s16].tolist().count(SOCK_DIAG_BY_FAMILY) != rows
        or b8[_OFF_FAMILY::msg_len].tobytes().count(family) != rows
    ):
        return None
    d = _OFF_DST // 4
    columns = [w16[_OFF_DPORT // 2 :: s16].tolist()]
    columns += [w32[d + i :: s32].tolist() for i in range(size // 4)]
    expires = w32[_OFF_EXPIRES // 4 :: s32].tolist()
    is_young = map(young_ms.__lt__, expires)
    if all(col.count(col[0]) == rows for col in columns):  # one destination (a filtered dump)
        key = tuple(col[0] for col in columns)
        total = Counter({key: rows})
        young = Counter({key: sum(is_young)})
    else:
        keys = list(zip(*columns, strict=True))
        total = Counter(keys)
        young = Counter(itertools.compress(keys, is_young))
    return _rekey(family, total), _rekey(family, young), done


def _rekey(family: int, counts: Counter[tuple[int, ...]]) -> Counter[TimeWaitKey]:
    """``(dport word, address words...)`` keys back to ``(family, dst, dport)`` raw bytes."""
    out: Counter[TimeWaitKey] = Counter()
    for (dport, *words), n in counts.items():
        if not n:
            continue
        dst = b"".join(w.to_bytes(4, _BYTEORDER) for w in words).ljust(16, b"\0")
        out[family, dst, dport.to_bytes(2, _BYTEORDER)] = n
    return out


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
        self,
        young_ms: float,
        destinations: Mapping[int, Sequence[tuple[bytes, int]]] | None = None,
    ) -> tuple[Counter[TimeWaitKey], Counter[TimeWaitKey]]:
        """TIME_WAIT rows per ``(family, dst, dport)``: all, and those with timers > *young_ms*.

        Args:
            young_ms: Count a row as young when its timer has more than this many ms left.
            destinations: Only rows toward these, per family: ``{AF_INET: [(packed address,
                port), ...]}``, filtered in the kernel (families not listed are not dumped);
                ``None`` counts every row of the namespace.

        """
        total: Counter[TimeWaitKey] = Counter()
        young: Counter[TimeWaitKey] = Counter()
        requests: list[tuple[int, bytes]]
        if destinations is None:
            requests = [(family, b"") for family in (socket.AF_INET, socket.AF_INET6)]
        else:
            requests = [
                (family, destination_filter(family, dests))
                for family, dests in destinations.items()
                if dests
            ]
        if not requests:
            return total, young
        buf = bytearray(_RECV_SIZE)
        view = memoryview(buf)
        with self._factory() as nl:
            nl.settimeout(_TIMEOUT)
            for seq, (family, code) in enumerate(requests, 1):
                nl.sendto(build_request(family, 1 << 6, seq, code), (0, 0))
                for _ in range(_MAX_CHUNKS):
                    n = nl.recv_into(view)
                    chunk = view[:n]
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
                    chunk.release()
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
