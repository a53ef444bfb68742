"""Policy exports for clients harden() cannot reach (grpcio, redis-py), against the real libraries.

grpcio opens its sockets in C (its own event engine), so ``socket.socket`` hooks never see them;
redis-py sets its options itself before connecting. Both are checked on loopback with
``getsockopt`` on the sockets the library really opened: the test finds them among this
process's descriptors (``/proc/self/fd`` and ``/proc/net/tcp*``) and reads their options
through a duplicate descriptor.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import pytest

from sockwise import Policy

TCP = socket.IPPROTO_TCP
TCP_USER_TIMEOUT = 18
#: Small numbers, so an idle channel pings within the test.
QUICK = Policy(keepalive_idle=1, keepalive_interval=1, keepalive_count=2)


def _inodes_with_remote_port(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(fields[9])
    return inodes


@contextlib.contextmanager
def client_sockets_to(port: int) -> Iterator[list[socket.socket]]:
    """This process's ESTABLISHED sockets connected to *port*, as duplicates (closed after)."""
    inodes = _inodes_with_remote_port(port)
    found: list[socket.socket] = []
    seen: set[str] = set()
    try:
        for fd in sorted(os.listdir("/proc/self/fd"), key=int):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:  # closed meanwhile (this listing's own descriptor)
                continue
            inode = target[8:-1] if target.startswith("socket:[") else None
            if inode in inodes and inode not in seen:  # one entry per socket, not per fd
                seen.add(inode)
                found.append(socket.socket(fileno=os.dup(int(fd))))
        yield found
    finally:
        for sock in found:
            sock.close()


def _options(sock: socket.socket) -> dict[str, int]:
    return {
        "SO_KEEPALIVE": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        "TCP_KEEPIDLE": sock.getsockopt(TCP, socket.TCP_KEEPIDLE),
        "TCP_KEEPINTVL": sock.getsockopt(TCP, socket.TCP_KEEPINTVL),
        "TCP_KEEPCNT": sock.getsockopt(TCP, socket.TCP_KEEPCNT),
        "TCP_USER_TIMEOUT": sock.getsockopt(TCP, TCP_USER_TIMEOUT),
        "TCP_NODELAY": sock.getsockopt(TCP, socket.TCP_NODELAY),
    }


# -- grpcio -----------------------------------------------------------------------------------


def test_grpc_options_values() -> None:
    assert Policy().grpc_options() == [
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 30_000),  # 60 + 30 = dead_peer_bound, 90 s
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    assert (
        dict(Policy().grpc_server_options())["grpc.http2.min_ping_interval_without_data_ms"]
        == 60_000
    )
    assert Policy.kernel_defaults().grpc_options() == []
    assert Policy(keepalive=False).grpc_server_options() == []


@pytest.fixture
def grpc_server() -> Iterator[int]:
    """An in-process gRPC echo server on loopback (raw bytes, no protobuf); yields its port."""
    grpc = pytest.importorskip("grpc")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2), options=QUICK.grpc_server_options()
    )
    echo = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t", {"Echo": echo}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait(10)


def test_grpc_channel_accepts_the_options_and_its_socket_carries_them(grpc_server: int) -> None:
    """The channel works across idle periods longer than the ping interval (no GOAWAY
    too_many_pings), and grpcio turns keepalive_timeout_ms into the socket's TCP_USER_TIMEOUT."""
    import grpc

    options = dict(QUICK.grpc_options())
    with grpc.insecure_channel(f"127.0.0.1:{grpc_server}", options=QUICK.grpc_options()) as ch:
        echo = ch.unary_unary("/t/Echo")
        assert echo(b"one", timeout=5) == b"one"
        time.sleep(3.5)  # idle: about three keepalive pings, each allowed by the server
        assert echo(b"two", timeout=5) == b"two"
        with client_sockets_to(grpc_server) as socks:
            assert len(socks) == 1, socks  # one connection: no reconnect after a GOAWAY
            got = _options(socks[0])
    assert got["TCP_USER_TIMEOUT"] == options["grpc.keepalive_timeout_ms"] == 2000
    assert got["TCP_NODELAY"] == 1


# -- redis-py ---------------------------------------------------------------------------------


def test_redis_kwargs_values() -> None:
    assert Policy().redis_kwargs() == {
        "socket_keepalive": True,
        "socket_keepalive_options": {
            socket.TCP_KEEPIDLE: 60,
            socket.TCP_KEEPINTVL: 10,
            socket.TCP_KEEPCNT: 3,
            TCP_USER_TIMEOUT: 90_000,
        },
        "socket_connect_timeout": 10.0,
    }
    assert Policy(keepalive=False).redis_kwargs() == {
        "socket_keepalive": False,
        "socket_connect_timeout": 10.0,
    }
    assert Policy.kernel_defaults().redis_kwargs() == {}


def test_redis_client_sockets_carry_the_policy(redis_port: int) -> None:
    redis = pytest.importorskip("redis")
    policy = Policy(keepalive_idle=17, keepalive_interval=4, keepalive_count=5)
    client = redis.Redis(host="127.0.0.1", port=redis_port, **policy.redis_kwargs())
    try:
        assert client.ping() is True
        with client_sockets_to(redis_port) as socks:
            assert len(socks) == 1, socks
            got = _options(socks[0])
    finally:
        client.close()
    assert got == {
        "SO_KEEPALIVE": 1,
        "TCP_KEEPIDLE": 17,
        "TCP_KEEPINTVL": 4,
        "TCP_KEEPCNT": 5,
        "TCP_USER_TIMEOUT": 37_000,
        "TCP_NODELAY": 1,  # redis-py's own
    }
    assert client.connection_pool.connection_kwargs["socket_connect_timeout"] == 10.0
