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
import operator
import os
import socket
import struct
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Final

from sockwise._net.addr import diag_address
from sockwise._net.records import TCP_STATES, SocketRecord, TcpInfo

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


def build_request(
    family: int, mask: int, seq: int = 1, bytecode: bytes = b"", ext: int = 0
) -> bytes:
    """The ``SOCK_DIAG_BY_FAMILY`` dump request for TCP sockets of *family* in states *mask*.

    Args:
        family: ``AF_INET`` or ``AF_INET6``.
        mask: Bitmask of TCP states (``1 << state``).
        seq: The message's sequence number.
        bytecode: A filter (:func:`destination_filter`); empty for none.
        ext: ``idiag_ext``: extra attributes wanted (:data:`EXT_INFO` for ``struct tcp_info``).

    """
    body = REQ_V2.pack(family, IPPROTO_TCP, ext, mask)
    if bytecode:
        body += NLATTR.pack(NLATTR.size + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
        body += bytes(-len(body) % 4)
    return (
        NLMSGHDR.pack(_HDR_LEN + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        + body
    )


def _raise_error(chunk: Buffer, off: int, length: int) -> None:
    """Raise the kernel's errno carried by the ``NLMSG_ERROR`` message at *off* (if non-zero).

    Raises:
        OSError: The message is well-formed and carries a non-zero errno.

    """
    if length >= _HDR_LEN + 4:
        (err,) = _ERRNO.unpack_from(chunk, off + _HDR_LEN)
        if err < 0:
            raise OSError(-err, f"sock_diag: {os.strerror(-err)}")


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
            _raise_error(chunk, off, length)
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
    ``(family, dst, dport)`` (raw 16 and 2 bytes, as :func:`~sockwise._net.addr.diag_address`
    takes them), or ``None`` when the chunk is not made only of same-length, same-family
    TIME_WAIT messages (plus an optional final ``NLMSG_DONE``): the caller then parses it row
    by row.
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


def to_record(row: RawRow, tcp_info: TcpInfo | None = None) -> SocketRecord | None:
    """A :class:`SocketRecord` from a raw row (``None`` for an unknown family or state)."""
    family, state, sport, dport, src, dst, expires, rqueue, wqueue, uid, inode = row
    name = TCP_STATES.get(state)
    if name is None or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return SocketRecord(
        family=family,
        state=name,
        local=diag_address(family, src, sport),
        remote=diag_address(family, dst, dport),
        inode=inode,
        uid=uid,
        rqueue=rqueue,
        wqueue=wqueue,
        expires_ms=expires,
        tcp_info=tcp_info,
    )


# -- struct tcp_info: INET_DIAG_INFO in a dump, or getsockopt(TCP_INFO) -------------------------

INET_DIAG_INFO: Final = 2
#: ``idiag_ext`` bit asking for ``INET_DIAG_INFO`` (``1 << (INET_DIAG_INFO - 1)``).
EXT_INFO: Final = 1 << (INET_DIAG_INFO - 1)
#: ``struct tcp_info`` up to ``tcpi_data_segs_out`` (160 bytes; every kernel since 4.6): eight
#: ``__u8`` (state, ca_state, retransmits, probes, backoff, options, wscales, flags), 24
#: ``__u32`` (rto ... total_retrans), four ``__u64`` (pacing_rate, max_pacing_rate,
#: bytes_acked, bytes_received), six ``__u32`` (segs_out, segs_in, notsent_bytes, min_rtt,
#: data_segs_in, data_segs_out).
TCP_INFO_HEAD: Final = struct.Struct("=8B24I4Q6I")
#: ``tcpi_snd_wnd``'s offset (Linux 5.5+), and the smallest info that holds it.
_OFF_SND_WND: Final = 228
#: Offsets inside ``struct tcp_info`` the columnar scan reads.
_TI_LAST_DATA_SENT: Final = 44
_TI_LAST_DATA_RECV: Final = 52
_TI_DATA_SEGS_IN: Final = 152
_TI_DATA_SEGS_OUT: Final = 156
#: ``struct inet_diag_msg`` with its timer fields: family, state, timer, retrans, sport, dport,
#: src, dst, (if, cookie skipped), expires, rqueue, wqueue, uid, inode.
DIAG_MSG_FULL: Final = struct.Struct("=BBBB2s2s16s16s4x8xIIIII")
_ESTABLISHED: Final = 1


def parse_tcp_info(
    data: Buffer, timer: int | None = None, timer_ms: int | None = None
) -> TcpInfo | None:
    """A :class:`TcpInfo` from the bytes of ``struct tcp_info`` (``None`` when too short).

    Args:
        data: ``INET_DIAG_INFO``'s payload or what ``getsockopt(TCP_INFO)`` returned.
        timer: ``idiag_timer`` from the sock_diag message, when known.
        timer_ms: ``idiag_expires``, when known.

    """
    if len(data) < TCP_INFO_HEAD.size:
        return None
    v = TCP_INFO_HEAD.unpack_from(data)
    snd_wnd = None
    if len(data) >= _OFF_SND_WND + 4:
        (snd_wnd,) = _U32.unpack_from(data, _OFF_SND_WND)
    return TcpInfo(
        state=v[0],
        retransmits=v[2],
        probes=v[3],
        backoff=v[4],
        rto_us=v[8],
        unacked=v[12],
        last_data_sent_ms=v[17],
        last_data_recv_ms=v[19],
        last_ack_recv_ms=v[20],
        rcv_space=v[30],
        total_retrans=v[31],
        bytes_acked=v[34],
        bytes_received=v[35],
        notsent_bytes=v[38],
        data_segs_out=v[41],
        data_segs_in=v[40],
        snd_wnd=snd_wnd,
        timer=timer,
        timer_ms=timer_ms,
    )


_U32: Final = struct.Struct("=I")


def _info_attr(msg: Buffer, start: int, end: int) -> tuple[int, int] | None:
    """``(offset, length)`` of the ``INET_DIAG_INFO`` payload in the message at *start*."""
    off = start + _HDR_LEN + DIAG_MSG_FULL.size
    for _ in range(64):
        if off + NLATTR.size > end:
            return None
        alen, atype = NLATTR.unpack_from(msg, off)
        if alen < NLATTR.size or off + alen > end:
            return None
        if atype & 0x3FFF == INET_DIAG_INFO:
            return off + NLATTR.size, alen - NLATTR.size
        off += (alen + 3) & ~3
    return None


def _info_record(view: Buffer, start: int, end: int) -> SocketRecord | None:
    """The record (with ``tcp_info``) of the message at *start*; ``None`` when malformed."""
    if end - start < _MSG_MIN:
        return None
    fam, state, timer, _retrans, sport, dport, src, dst, expires, rq, wq, uid, ino = (
        DIAG_MSG_FULL.unpack_from(view, start + _HDR_LEN)
    )
    found = _info_attr(view, start, end)
    info = None
    if found is not None:
        info = parse_tcp_info(bytes(view[found[0] : found[0] + found[1]]), timer, expires)
    return to_record((fam, state, sport, dport, src, dst, expires, rq, wq, uid, ino), info)


def _maybe_stalled(rq: int, wq: int, lds: int, ldr: int, dso: int, dsi: int) -> bool:
    """The cheap test a socket must pass to be looked at closely (see :func:`scan_info`)."""
    return bool(rq or wq or (dso and (lds < ldr or not dsi)))


def _scan_uniform(body: memoryview, length: int, uid: int, out: list[SocketRecord]) -> bool:
    """Columnar pass over same-length messages; ``False`` when they are not uniform enough."""
    end = len(body)
    rows = end // length
    if not rows:
        return True
    found = _info_attr(body, 0, length)
    if found is None or found[1] < TCP_INFO_HEAD.size or found[0] % 4:
        return False
    info_off = found[0]
    w16 = body.cast("H")
    w32 = body.cast("I")
    s16, s32 = length // 2, length // 4
    head = w32[(info_off - 4) // 4]
    if (
        w32[0::s32].tolist().count(length) != rows
        or w16[_OFF_TYPE // 2 :: s16].tolist().count(SOCK_DIAG_BY_FAMILY) != rows
        or w32[(info_off - 4) // 4 :: s32].tolist().count(head) != rows
    ):
        return False

    def col(offset: int) -> list[int]:
        return w32[offset // 4 :: s32].tolist()

    rq, wq, uids = col(_OFF_RQUEUE), col(_OFF_RQUEUE + 4), col(_OFF_RQUEUE + 8)
    lds = col(info_off + _TI_LAST_DATA_SENT)
    ldr = col(info_off + _TI_LAST_DATA_RECV)
    dso = col(info_off + _TI_DATA_SEGS_OUT)
    dsi = col(info_off + _TI_DATA_SEGS_IN)
    b8 = body.cast("B")
    states = b8[_OFF_FAMILY + 1 :: length].tolist()
    # _maybe_stalled for every row, in C: (rq | wq) | min(lds < ldr or not dsi, dso)
    awaiting = map(min, map(operator.or_, map(operator.lt, lds, ldr), map(operator.not_, dsi)), dso)
    keep = map(operator.or_, map(operator.or_, rq, wq), awaiting)
    for i in itertools.compress(range(rows), keep):
        if uids[i] != uid or states[i] != _ESTABLISHED:
            continue
        rec = _info_record(body, i * length, (i + 1) * length)
        if rec is not None:
            out.append(rec)
    return True


_OFF_RQUEUE: Final = 72


def _info_rows(view: memoryview) -> Iterator[SocketRecord]:
    """Every record of one chunk, row by row (stops at ``NLMSG_DONE`` or malformed input).

    Raises:
        OSError: The kernel answered ``NLMSG_ERROR`` with a non-zero errno.

    """
    end = len(view)
    off = 0
    while off + _HDR_LEN <= end:
        mlen, mtype = NLMSGHDR.unpack_from(view, off)[:2]
        if mlen < _HDR_LEN or off + mlen > end or mtype == NLMSG_DONE:
            return
        if mtype == NLMSG_ERROR:
            _raise_error(view, off, mlen)
            return
        if mtype == SOCK_DIAG_BY_FAMILY and mlen >= _MSG_MIN:
            rec = _info_record(view, off, off + mlen)
            if rec is not None:
                yield rec
        off += (mlen + 3) & ~3


def info_records(chunks: Sequence[Buffer]) -> list[SocketRecord]:
    """Every socket of a dump made with :data:`EXT_INFO`, ``tcp_info`` filled in (for the CLI).

    Raises:
        OSError: The kernel answered ``NLMSG_ERROR`` with a non-zero errno.

    """
    out: list[SocketRecord] = []
    for chunk in chunks:
        out.extend(_info_rows(memoryview(chunk)))
    return out


def scan_info(chunks: Sequence[Buffer], uid: int) -> tuple[int, list[SocketRecord]]:
    """Read a dump made with :data:`EXT_INFO`: ``(rows, records of the possibly stalled)``.

    A row is kept (parsed into a :class:`SocketRecord` with ``tcp_info``) only when it is
    ESTABLISHED, owned by *uid* and could be stalled: bytes in its receive or send queue, or data
    sent after the last data received (or never answered). Chunks whose messages all have one
    length (the usual case) are read as columns without a Python loop per row, like
    :func:`count_time_wait`; others row by row. Malformed input ends the chunk, never raises
    (except ``NLMSG_ERROR``).

    Raises:
        OSError: The kernel answered ``NLMSG_ERROR`` with a non-zero errno.

    """
    out: list[SocketRecord] = []
    rows = 0
    for chunk in chunks:
        view = memoryview(chunk)
        end = len(view)
        if end < _HDR_LEN:
            continue
        length = NLMSGHDR.unpack_from(view)[0]
        body_end = end
        if end >= _DONE_LEN and NLMSGHDR.unpack_from(view, end - _DONE_LEN)[:2] == (
            _DONE_LEN,
            NLMSG_DONE,
        ):
            body_end = end - _DONE_LEN
        if (
            _MSG_MIN <= length <= 4096
            and length % 4 == 0
            and body_end % length == 0
            and _scan_uniform(view[:body_end], length, uid, out)
        ):
            rows += body_end // length
            continue
        for rec in _info_rows(view):
            rows += 1
            info = rec.tcp_info
            if (
                info is not None
                and rec.uid == uid
                and rec.state == "ESTABLISHED"
                and _maybe_stalled(
                    rec.rqueue,
                    rec.wqueue,
                    info.last_data_sent_ms,
                    info.last_data_recv_ms,
                    info.data_segs_out,
                    info.data_segs_in,
                )
            ):
                out.append(rec)
    return rows, out


class InfoDump:
    """A dump with ``struct tcp_info`` read a slice at a time, across calls (guard ticks).

    The kernel produces a netlink dump lazily, one chunk per ``recv``, and remembers where it
    stopped for as long as the socket stays open; reading at most *max_bytes* per call spreads
    one pass over many sockets across several ticks, so no single tick pays for all of them.
    The socket is closed when a pass ends (and by :meth:`close`); after ``fork()`` the child
    never reads the parent's dump (the open file description is shared): it closes its copy
    and starts its own.

    Args:
        open_socket: Opens the netlink socket (:meth:`NetlinkReader.open_socket`).
        mask: TCP states to dump.

    """

    def __init__(self, open_socket: SocketFactory, mask: int = 1 << _ESTABLISHED) -> None:
        self._open = open_socket
        self._mask = mask
        self._sock: socket.socket | None = None
        self._pid = 0
        self._families: list[int] = []
        self._seq = 0

    @property
    def running(self) -> bool:
        """Whether a pass is in progress."""
        return self._sock is not None and self._pid == os.getpid()

    def close(self) -> None:
        """Abandon the pass in progress (if any) and close the socket."""
        sock, self._sock = self._sock, None
        self._families = []
        if sock is not None:
            sock.close()

    def _start(self, families: Sequence[int]) -> None:
        self.close()
        self._sock = self._open()
        self._pid = os.getpid()
        self._sock.settimeout(_TIMEOUT)
        self._families = list(families)
        self._request()

    def _request(self) -> None:
        assert self._sock is not None
        self._seq += 1
        family = self._families.pop(0)
        self._sock.sendto(build_request(family, self._mask, self._seq, ext=EXT_INFO), (0, 0))

    def read(self, max_bytes: int, families: Sequence[int]) -> tuple[list[bytes], bool]:
        """The next chunks, about *max_bytes* of them, and whether the pass ended with them.

        Starts a pass over *families* when none is in progress.

        Raises:
            OSError: The netlink socket failed or the kernel refused the dump (the pass is
                abandoned).

        """
        if not self.running:
            self._start(families)  # closes a copy inherited from the parent, unread
        sock = self._sock
        assert sock is not None
        chunks: list[bytes] = []
        got = 0
        buf = bytearray(_RECV_SIZE)
        view = memoryview(buf)
        try:
            for _ in range(_MAX_CHUNKS):
                n = sock.recv_into(view)
                chunk = bytes(view[:n])
                chunks.append(chunk)
                got += n
                end = n == 0 or (
                    n >= _HDR_LEN and NLMSGHDR.unpack_from(chunk)[1] in (NLMSG_ERROR, NLMSG_DONE)
                )
                if n >= _DONE_LEN and NLMSGHDR.unpack_from(chunk, n - _DONE_LEN)[:2] == (
                    _DONE_LEN,
                    NLMSG_DONE,
                ):
                    end = True
                if end:
                    if not self._families:
                        self.close()
                        return chunks, True
                    self._request()
                if got >= max_bytes:
                    return chunks, False
        except BaseException:
            self.close()
            raise
        self.close()  # Defensive: a dump of more than _MAX_CHUNKS chunks is cut short
        return chunks, True


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

    def open_socket(self) -> socket.socket:
        """A new netlink socket from the reader's factory (the caller closes it)."""
        return self._factory()

    def info_chunks(
        self,
        mask: int = 1 << _ESTABLISHED,
        families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6),
    ) -> list[bytes]:
        """The raw chunks of a dump of sockets in *mask* with ``struct tcp_info`` attached.

        One netlink socket, closed after; each family's dump ends with its ``NLMSG_DONE``
        (kept in the chunk, for :func:`scan_info`).

        Raises:
            OSError: The kernel refused the dump.

        """
        chunks: list[bytes] = []
        buf = bytearray(_RECV_SIZE)
        view = memoryview(buf)
        with self._factory() as nl:
            nl.settimeout(_TIMEOUT)
            for seq, family in enumerate(families, 1):
                nl.sendto(build_request(family, mask, seq, ext=EXT_INFO), (0, 0))
                for _ in range(_MAX_CHUNKS):
                    n = nl.recv_into(view)
                    if n == 0:
                        break
                    chunk = bytes(view[:n])
                    chunks.append(chunk)
                    if n >= _DONE_LEN and NLMSGHDR.unpack_from(chunk, n - _DONE_LEN)[:2] == (
                        _DONE_LEN,
                        NLMSG_DONE,
                    ):
                        break
                    if n >= _HDR_LEN and NLMSGHDR.unpack_from(chunk)[1] in (
                        NLMSG_ERROR,
                        NLMSG_DONE,
                    ):
                        break
        return chunks

    def probe(self) -> None:
        """Raise :class:`OSError` if sock_diag cannot be used here."""
        for _ in self.raw_rows(1 << 10):  # LISTEN: small, always answerable
            pass
