"""The low-level helpers of ``sockwise._net``: addresses, predicates, per-descriptor reads."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from sockwise._net.addr import format_address, is_loopback, psutil_address
from sockwise._net.proc import port_range, process_name, same_netns, tcp_families
from sockwise._net.sockets import is_tcp, nonblocking, read_tcp_info, user_timeout


def test_format_address_brackets_ipv6_only() -> None:
    assert format_address(("127.0.0.1", 80)) == "127.0.0.1:80"
    assert format_address(("::1", 8080)) == "[::1]:8080"
    assert format_address(("::ffff:10.0.0.1", 5432)) == "[::ffff:10.0.0.1]:5432"
    assert is_loopback("127.0.0.2") and is_loopback("::1") and not is_loopback("10.0.0.1")
    assert psutil_address((), socket.AF_INET6) == ("::", 0)
    assert psutil_address(("10.0.0.1", 443), socket.AF_INET) == ("10.0.0.1", 443)


class _Wrapper:
    """A socket-like object that is not a C socket (as gevent's and uvloop's are)."""

    def __init__(self, sock: socket.socket) -> None:
        self.family = sock.family
        self.type = sock.type


def test_is_tcp_on_sockets_and_socket_likes() -> None:
    with (
        socket.socket() as tcp,
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as tcp6,
        socket.socket(type=socket.SOCK_DGRAM) as udp,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix,
    ):
        assert is_tcp(tcp) and is_tcp(tcp6)
        assert not is_tcp(udp) and not is_tcp(unix)
        assert is_tcp(_Wrapper(tcp))  # type: ignore[arg-type]
        assert not is_tcp(_Wrapper(udp))  # type: ignore[arg-type]
    assert not is_tcp(object())  # type: ignore[arg-type]


def test_per_descriptor_reads_on_a_real_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        client = socket.create_connection(srv.getsockname())
        conn, _ = srv.accept()
        try:
            client.sendall(b"x" * 10)
            rec = None
            for _ in range(100):
                rec = read_tcp_info(conn.fileno())
                if rec is not None and rec.rqueue == 10:
                    break
            assert rec is not None and rec.state == "ESTABLISHED" and rec.rqueue == 10
            assert rec.fd == conn.fileno() and rec.inode == os.fstat(conn.fileno()).st_ino
            assert rec.local == srv.getsockname() and rec.tcp_info is not None
            assert user_timeout(client.fileno()) is None
            client.setsockopt(socket.IPPROTO_TCP, getattr(socket, "TCP_USER_TIMEOUT", 18), 1500)
            assert user_timeout(client.fileno()) == 1.5
            assert nonblocking(conn.fileno()) is False
            conn.settimeout(1.0)
            assert nonblocking(conn.fileno()) is True
            assert conn.fileno() >= 0 and client.fileno() >= 0  # the reads closed nothing
        finally:
            client.close()
            conn.close()
    with socket.socket(type=socket.SOCK_DGRAM) as udp:
        assert read_tcp_info(udp.fileno()) is None
    r, w = os.pipe()
    try:
        assert read_tcp_info(r) is None and user_timeout(r) is None
    finally:
        os.close(r)
        os.close(w)


def test_same_netns_says_no_when_it_cannot_tell(tmp_path: Path) -> None:
    assert same_netns(os.getpid())
    assert not same_netns(2**22 + 7)  # no such process
    (tmp_path / "self" / "ns").mkdir(parents=True)
    assert not same_netns(1, str(tmp_path))  # a proc root without namespace links


def test_proc_readers_under_a_proc_root(tmp_path: Path) -> None:
    (tmp_path / "sys/net/ipv4").mkdir(parents=True)
    (tmp_path / "sys/net/ipv4/ip_local_port_range").write_text("20000\t30000\n")
    (tmp_path / "42").mkdir()
    (tmp_path / "42/comm").write_text("worker\n")
    (tmp_path / "net").mkdir()
    (tmp_path / "net/sockstat6").write_text("TCP6: inuse 0\nUDP6: inuse 3\n")
    assert port_range(str(tmp_path)) == (20000, 30000)
    assert process_name(42, str(tmp_path)) == "worker"
    assert process_name(43, str(tmp_path)) == "?"
    assert tcp_families(str(tmp_path)) == (socket.AF_INET,)
    (tmp_path / "net/sockstat6").write_text("TCP6: inuse 2\n")
    assert tcp_families(str(tmp_path)) == (socket.AF_INET, socket.AF_INET6)
    (tmp_path / "sys/net/ipv4/ip_local_port_range").write_text("garbage")
    assert port_range(str(tmp_path)) is None
    assert port_range(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("pid", [os.getpid(), "self"])
def test_same_netns_accepts_self(pid: int | str) -> None:
    assert same_netns(pid)
