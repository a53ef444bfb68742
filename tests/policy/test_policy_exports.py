"""Exports tested against their real consumers: sockets, urllib3, httpx and libpq (psycopg)."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from sockwise import Policy
from sockwise.testing import PostgresServer, read_socket_options

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux options")

#: Distinct numbers, so a value read back can only come from this policy.
POLICY = Policy(
    keepalive_idle=17,
    keepalive_interval=7,
    keepalive_count=4,
    user_timeout=45.5,
    connect_timeout=2.5,
)
EXPECTED = {
    "SO_KEEPALIVE": 1,
    "TCP_KEEPIDLE": 17,
    "TCP_KEEPINTVL": 7,
    "TCP_KEEPCNT": 4,
    "TCP_USER_TIMEOUT": 45500,
    "TCP_NODELAY": 1,
}


def test_apply_sets_every_option_on_a_live_tcp_socket(tcp_pair) -> None:
    client, _ = tcp_pair
    before = read_socket_options(client)
    assert before != EXPECTED
    assert POLICY.apply(client) == tuple(EXPECTED)
    assert read_socket_options(client) == EXPECTED


def test_apply_of_kernel_defaults_changes_nothing(tcp_pair) -> None:
    client, _ = tcp_pair
    before = read_socket_options(client)
    assert Policy.kernel_defaults().apply(client) == ()
    assert read_socket_options(client) == before


def test_apply_on_ipv6(tcp_pair) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        assert POLICY.apply(sock) == tuple(EXPECTED)
        assert read_socket_options(sock) == EXPECTED


def test_apply_leaves_udp_and_unix_sockets_alone() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert POLICY.apply(udp) == ()
        assert udp.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        with pytest.raises(ValueError, match="needs a TCP socket"):
            POLICY.apply(udp, strict=True)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert POLICY.apply(a) == ()
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        with pytest.raises(ValueError, match=r"family=.*AF_UNIX"):
            POLICY.apply(a, strict=True)


def test_apply_on_a_closed_socket() -> None:
    sock = socket.socket()
    sock.close()
    # Documented: the kernel's refusal surfaces as OSError (EBADF), nothing is half-hidden.
    with pytest.raises(OSError, match="Bad file descriptor"):
        POLICY.apply(sock)


def test_socket_options_with_real_urllib3_pool(http_server: str) -> None:
    import urllib3

    host, port = http_server.removeprefix("http://").split(":")
    with urllib3.HTTPConnectionPool(
        host, int(port), socket_options=POLICY.socket_options(), maxsize=1
    ) as pool:
        resp = pool.request("GET", "/", preload_content=False)
        try:
            conn = resp.connection
            assert conn is not None and conn.sock is not None
            assert read_socket_options(conn.sock) == EXPECTED
            assert resp.read() == b"ok"
        finally:
            resp.release_conn()


def test_socket_options_with_real_httpx_transport(http_server: str) -> None:
    import httpx

    transport = httpx.HTTPTransport(socket_options=POLICY.socket_options())
    with httpx.Client(transport=transport) as client, client.stream("GET", http_server) as resp:
        sock = resp.extensions["network_stream"].get_extra_info("socket")
        assert isinstance(sock, socket.socket)
        assert read_socket_options(sock) == EXPECTED
        assert resp.read() == b"ok"


def test_libpq_params_values() -> None:
    assert POLICY.libpq_params() == {
        "keepalives": 1,
        "keepalives_idle": 17,
        "keepalives_interval": 7,
        "keepalives_count": 4,
        "tcp_user_timeout": 45500,
        "connect_timeout": 3,  # whole seconds, rounded up
    }
    assert Policy(keepalive=False, user_timeout=None, connect_timeout=None).libpq_params() == {
        "keepalives": 0
    }
    assert "keepalives_idle=17" in POLICY.libpq_conninfo().split()


@pytest.mark.postgres
def test_libpq_params_reach_the_real_client_socket(postgres: PostgresServer) -> None:
    import psycopg

    with psycopg.connect(postgres.dsn, **POLICY.libpq_params()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        params = conn.info.get_parameters()
        assert params["keepalives_idle"] == "17"
        assert params["tcp_user_timeout"] == "45500"
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as dup:
            got = read_socket_options(dup)
    # libpq sets NODELAY itself; everything else came from the policy.
    assert got == EXPECTED


@pytest.mark.postgres
def test_libpq_conninfo_string_works_too(postgres: PostgresServer) -> None:
    import psycopg

    with psycopg.connect(f"{postgres.dsn} {POLICY.libpq_conninfo()}") as conn:
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as dup:
            assert dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
