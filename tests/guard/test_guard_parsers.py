"""The /proc and netlink parsers: known inputs decode exactly, malformed ones never crash."""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockwise._net.addr import proc_address
from sockwise._net.netlink import (
    DIAG_MSG,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGHDR,
    SOCK_DIAG_BY_FAMILY,
    iter_rows,
    to_record,
)
from sockwise._net.proc import (
    parse_netstat,
    parse_port_range,
    parse_tcp_line,
    parse_tcp_table,
)
from sockwise._net.records import ALL_STATES_MASK, state_mask
from sockwise.guard import redact

FUZZ = settings(max_examples=300, deadline=None)


def _diag(state: int, sport: int, dport: int, inode: int, family: int = socket.AF_INET) -> bytes:
    src = socket.inet_aton("127.0.0.1") + bytes(12)
    dst = socket.inet_aton("10.0.0.2") + bytes(12)
    body = DIAG_MSG.pack(
        family,
        state,
        sport.to_bytes(2, "big"),
        dport.to_bytes(2, "big"),
        src,
        dst,
        9,
        1,
        2,
        1000,
        inode,
    )
    return NLMSGHDR.pack(16 + len(body), SOCK_DIAG_BY_FAMILY, 2, 1, 0) + body


def test_netlink_message_decodes() -> None:
    """A well-formed inet_diag_msg becomes the record it describes; NLMSG_DONE ends the chunk."""
    done = NLMSGHDR.pack(20, NLMSG_DONE, 2, 1, 0) + bytes(4)
    rows = list(iter_rows(_diag(8, 40000, 5432, 77) + done + _diag(1, 1, 2, 3)))
    assert rows[-1] is None and len(rows) == 2
    rec = to_record(rows[0])  # type: ignore[arg-type]
    assert rec is not None
    assert (rec.state, rec.local, rec.remote) == (
        "CLOSE_WAIT",
        ("127.0.0.1", 40000),
        ("10.0.0.2", 5432),
    )
    assert (rec.inode, rec.uid, rec.rqueue, rec.wqueue, rec.expires_ms) == (77, 1000, 1, 2, 9)


def test_netlink_error_becomes_oserror() -> None:
    """NLMSG_ERROR with a negative errno raises OSError with that errno."""
    msg = NLMSGHDR.pack(20, NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -errno.EPROTONOSUPPORT)
    with pytest.raises(OSError) as info:
        list(iter_rows(msg))
    assert info.value.errno == errno.EPROTONOSUPPORT


@FUZZ
@given(st.binary(max_size=600))
def test_netlink_random_bytes_never_crash(data: bytes) -> None:
    """Arbitrary bytes yield rows or nothing; only a well-formed NLMSG_ERROR raises."""
    try:
        for row in iter_rows(data):
            if row is not None:
                to_record(row)
    except OSError:
        pass


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF), st.binary(max_size=90)))
)
def test_netlink_bad_lengths_never_crash(parts: list[tuple[int, int, bytes]]) -> None:
    """Headers with lying lengths and types never crash the parser."""
    data = b"".join(NLMSGHDR.pack(length, mtype, 0, 0, 0) + body for length, mtype, body in parts)
    try:
        for row in iter_rows(data):
            if row is not None:
                to_record(row)
    except OSError:
        pass


def test_proc_tcp_line_decodes() -> None:
    """A real /proc/net/tcp row decodes to addresses, state, queues, uid, inode and timer."""
    line = (
        "   3: 0100007F:ADD3 0200000A:1538 06 00000001:00000002 03:00001079 00000000     0"
        "        0 0 3 0000000017161db8"
    )
    rec = parse_tcp_line(line, socket.AF_INET, ALL_STATES_MASK)
    assert rec is not None
    assert rec.local == ("127.0.0.1", 0xADD3) and rec.remote == ("10.0.0.2", 5432)
    assert (rec.state, rec.wqueue, rec.rqueue, rec.expires_ms) == ("TIME_WAIT", 1, 2, 42170)
    assert parse_tcp_line(line, socket.AF_INET, state_mask(["LISTEN"])) is None


def test_decode_ipv6() -> None:
    """An IPv6 address in /proc word order decodes to ::1."""
    assert proc_address("00000000000000000000000001000000:0050", socket.AF_INET6) == ("::1", 80)


@FUZZ
@given(st.text(max_size=300))
def test_proc_parsers_never_crash_on_text(text: str) -> None:
    """Random text never crashes any /proc parser."""
    list(parse_tcp_table(text, socket.AF_INET, ALL_STATES_MASK))
    list(parse_tcp_table(text, socket.AF_INET6, ALL_STATES_MASK))
    parse_netstat(text)
    parse_port_range(text)


@FUZZ
@given(
    st.lists(
        st.sampled_from(["0100007F:1F90", "ZZ:1", ":", "0A", "1:2:3", "FFFFFFFF:FFFFF", "-1"]),
        min_size=10,
        max_size=14,
    )
)
def test_proc_tcp_rows_with_bad_fields(fields: list[str]) -> None:
    """Rows with the right shape but bad fields are skipped, not fatal."""
    parse_tcp_line(" ".join(fields), socket.AF_INET, ALL_STATES_MASK)


def test_netstat_and_port_range() -> None:
    """Paired header/value lines parse; mismatched pairs and bad ranges are skipped."""
    text = "TcpExt: ListenOverflows ListenDrops\nTcpExt: 3 4\nIpExt: A\nTcpExt: 1\n"
    assert parse_netstat(text) == {"TcpExt.ListenOverflows": 3, "TcpExt.ListenDrops": 4}
    assert parse_port_range("32768\t60999\n") == (32768, 60999)
    assert parse_port_range("5 4") is None and parse_port_range("x y") is None


def test_state_mask_rejects_unknown_names() -> None:
    """An unknown state name is a ValueError listing the allowed names."""
    assert state_mask(["CLOSE_WAIT", "LISTEN"]) == (1 << 8) | (1 << 10)
    with pytest.raises(ValueError, match=r"states: unknown TCP state 'CLOSE-WAIT'.*CLOSE_WAIT"):
        state_mask(["CLOSE-WAIT"])


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("psycopg.connect('postgresql://app:s3cr3t@db/x')", "s3cr3t"),
        ("connect('host=db user=app password=hunter2 dbname=x')", "hunter2"),
        ("requests.get('https://u:tok123@example.org/')", "tok123"),
        ('Session(token="abc.def")', "abc.def"),
    ],
)
def test_credentials_are_redacted(text: str, secret: str) -> None:
    """Passwords in URLs and key=value strings never survive redact()."""
    out = redact(text)
    assert secret not in out and "***" in out
