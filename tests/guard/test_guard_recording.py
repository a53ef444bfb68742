"""Origin recording off the hot path, and TIME_WAIT counting filtered in the kernel."""

from __future__ import annotations

import gc
import os
import socket
import struct
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockwise._net.netlink import (
    DIAG_MSG,
    MAX_FILTER_DESTINATIONS,
    NLMSG_DONE,
    NLMSGHDR,
    SOCK_DIAG_BY_FAMILY,
    NetlinkReader,
    count_time_wait,
    destination_filter,
    iter_rows,
)
from sockwise.guard import Guard, PortChurnWarning, _origin
from sockwise.guard._sample import packed_destinations


def _churn(address: tuple[str, int], listener: socket.socket, count: int) -> None:
    """Open and close *count* connections; the client closes first, so it holds TIME_WAIT."""
    for _ in range(count):
        client = socket.create_connection(address)
        conn, _ = listener.accept()
        client.close()
        conn.close()


# -- origin recording ---------------------------------------------------------------------------


def test_hooks_only_queue_and_readers_resolve(listener: socket.socket) -> None:
    """Connect/accept/listen queue an entry; the first reader resolves inode, origin, backlog."""
    with Guard(interval=3600):
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        srv = socket.socket()
        try:
            srv.bind(("127.0.0.1", 0))
            srv.listen(7)
            assert len(_origin._state.pending) == 3  # nothing resolved yet: no fstat was made
            for sock, kind in ((client, "connect"), (conn, "accept"), (srv, "listen")):
                found = _origin.lookup(os.fstat(sock.fileno()).st_ino)
                assert found is not None, kind
                fd, origin = found
                assert fd == sock.fileno()
                assert origin is not None and origin.kind == kind
                assert origin.function == "test_hooks_only_queue_and_readers_resolve"
                assert origin.filename == __file__
            assert len(_origin._state.pending) == 0
            listening = _origin.listeners()[os.fstat(srv.fileno()).st_ino]
            assert listening[:2] == (srv.fileno(), 7)
            assert _origin.destination_connects()[listener.getsockname()] == 1
        finally:
            client.close()
            conn.close()
            srv.close()


def test_sockets_closed_before_the_drain_count_but_are_not_tracked(
    listener: socket.socket,
) -> None:
    """A closed socket (dead reference or fileno -1) counts toward its destination only."""
    with Guard(interval=3600):
        kept = socket.create_connection(listener.getsockname())  # closed, object alive
        listener.accept()[0].close()
        kept.close()
        gone = socket.create_connection(listener.getsockname())  # closed and collected
        listener.accept()[0].close()
        gone.close()
        del gone
        gc.collect()
        sizes = _origin.sizes()
        connects = _origin.destination_connects()
    assert connects[listener.getsockname()] == 2
    assert sizes["tracked"] == 0 and sizes["pending"] == 0, sizes


def test_ipv6_destinations_are_canonical() -> None:
    """Numeric IPv6 hosts are keyed in inet_ntop form, so they match the kernel's rows."""
    assert _origin.destination_key(("0:0:0:0:0:0:0:1", 80, 0, 0)) == ("::1", 80)
    assert _origin.destination_key(("db.example", 5432)) == ("db.example", 5432)
    assert _origin.destination_key("/tmp/sock") is None


# -- the kernel filter --------------------------------------------------------------------------


def test_destination_filter_keeps_only_the_named_destinations(
    listener: socket.socket,
) -> None:
    """TIME_WAIT rows toward other destinations never leave the kernel."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as other:
        other_port = other.getsockname()[1].to_bytes(2, "big")
        _churn(listener.getsockname(), listener, 20)
        _churn(other.getsockname(), other, 30)
        wanted = packed_destinations([listener.getsockname(), ("10.255.255.1", 9)])
        total, young = NetlinkReader().time_wait_counts(0.0, wanted)
        everything, _ = NetlinkReader().time_wait_counts(0.0)
    mine = (socket.AF_INET, socket.inet_aton("127.0.0.1") + bytes(12))
    port = listener.getsockname()[1].to_bytes(2, "big")
    assert set(total) == {(*mine, port)}
    assert total[(*mine, port)] >= 20 and young[(*mine, port)] >= 20
    assert everything[(*mine, other_port)] >= 30  # the unfiltered dump does see them
    assert NetlinkReader().time_wait_counts(0.0, {}) == (Counter(), Counter())


def test_process_scope_counts_time_wait_toward_own_destinations_only(
    listener: socket.socket,
) -> None:
    """The default guard asks the kernel only for destinations this process churns to."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as before:
        unrecorded = before.getsockname()
        _churn(unrecorded, before, 30)  # made before the guard: not recorded
        guard = Guard(interval=3600, churn_rate=1e6, time_wait_fraction=0.001).start()
        try:
            _churn(listener.getsockname(), listener, 30)
            with pytest.warns(PortChurnWarning):
                report = guard.check()
        finally:
            guard.stop()
    assert [e.remote for e in report.events] == [listener.getsockname()]
    counted = dict(report.time_wait)
    assert counted.get(listener.getsockname(), 0) >= 30
    assert unrecorded not in counted


def test_destination_filter_rejects_bad_input() -> None:
    """Bad filters fail with a message naming the parameter and the allowed range."""
    v4 = socket.inet_aton("127.0.0.1")
    with pytest.raises(ValueError, match="destinations: 0 given; allowed: 1 to"):
        destination_filter(socket.AF_INET, [])
    with pytest.raises(ValueError, match=r"destinations: 65 given; allowed"):
        destination_filter(socket.AF_INET, [(v4, 1)] * (MAX_FILTER_DESTINATIONS + 1))
    with pytest.raises(ValueError, match="bad entry"):
        destination_filter(socket.AF_INET6, [(v4, 1)])
    with pytest.raises(ValueError, match="family"):
        destination_filter(socket.AF_UNIX, [(v4, 1)])


# -- the column counter agrees with the row parser ------------------------------------------


def _tw_message(family: int, dst: bytes, dport: int, expires: int, extra: bytes = b"") -> bytes:
    body = DIAG_MSG.pack(
        family, 6, b"\x9c\x40", dport.to_bytes(2, "big"), bytes(16), dst, expires, 0, 0, 0, 0
    )
    body += extra
    return NLMSGHDR.pack(16 + len(body), SOCK_DIAG_BY_FAMILY, 2, 1, 0) + body


def _slow(chunk: bytes, young_ms: float) -> tuple[Counter[object], Counter[object]]:
    total: Counter[object] = Counter()
    young: Counter[object] = Counter()
    for row in iter_rows(chunk):
        if row is None:
            break
        total[row[0], row[5], row[3]] += 1
        if row[6] > young_ms:
            young[row[0], row[5], row[3]] += 1
    return total, young


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([socket.AF_INET, socket.AF_INET6]),
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 0xFFFF), st.integers(0, 60_000)),
        max_size=40,
    ),
    st.booleans(),
    st.integers(0, 60_000),
)
def test_column_counting_matches_row_parsing(
    family: int, rows: list[tuple[int, int, int]], done: bool, young_ms: int
) -> None:
    """count_time_wait gives exactly what parsing row by row gives, or declines (None)."""
    hosts = [bytes([10, 0, 0, i]) + bytes(12) for i in range(4)]
    extra = struct.pack("=HHI", 8, 9, 0)  # an attribute, as newer kernels append
    chunk = b"".join(_tw_message(family, hosts[h], p, e, extra) for h, p, e in rows)
    if done:
        chunk += NLMSGHDR.pack(20, NLMSG_DONE, 2, 1, 0) + bytes(4)
    fast = count_time_wait(chunk, young_ms)
    if not chunk:
        assert fast is None
        return
    assert fast is not None
    assert (fast[0], fast[1]) == _slow(chunk, young_ms)
    assert fast[2] == done


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 70_000))
def test_column_counting_never_crashes(data: bytes, young_ms: int) -> None:
    """Random bytes: a count or None, never an exception."""
    out = count_time_wait(data, young_ms)
    assert out is None or isinstance(out[0], Counter)
