"""The drop-in on urllib3 (and so requests): checked on the sockets urllib3 really opens."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import urllib3
import urllib3.connection

import sockwise

TCP = socket.IPPROTO_TCP
POLICY = sockwise.Policy(keepalive_idle=19, keepalive_interval=3, keepalive_count=4)


def pooled_socket(pool: urllib3.HTTPConnectionPool) -> socket.socket:
    """The socket of the (single) idle connection the pool keeps after a request."""
    conns = [c for c in pool.pool.queue if c is not None and c.sock is not None]  # type: ignore[union-attr]
    assert len(conns) == 1
    return conns[0].sock


def test_urllib3_imported_before_harden(http_server):
    """urllib3 was imported first: its new connections carry the policy, then not after unharden."""
    host, port = http_server.host, http_server.port
    sockwise.harden(POLICY, guard=False)
    with urllib3.HTTPConnectionPool(str(host), port, maxsize=1) as pool:
        assert pool.request("GET", "/").data == b"ok"
        sock = pooled_socket(pool)
        assert sock.getsockopt(TCP, socket.TCP_KEEPIDLE) == 19
        assert sock.getsockopt(TCP, socket.TCP_USER_TIMEOUT) == 31000
        assert sock.getsockopt(TCP, socket.TCP_NODELAY) == 1
    # The socket hooks apply the policy: urllib3's own defaults stay urllib3's.
    defaults = urllib3.connection.HTTPConnection.__init__.__kwdefaults__["socket_options"]
    assert defaults == [(TCP, socket.TCP_NODELAY, 1)]
    sockwise.unharden()
    restored = urllib3.connection.HTTPConnection.__init__.__kwdefaults__["socket_options"]
    assert restored == [(TCP, socket.TCP_NODELAY, 1)]
    with urllib3.HTTPConnectionPool(str(host), port, maxsize=1) as pool:
        pool.request("GET", "/")
        assert pooled_socket(pool).getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


def test_explicit_socket_options_win(http_server):
    """socket_options passed to urllib3 explicitly are kept (keepalive off stays off)."""
    host, port = http_server.host, http_server.port
    sockwise.harden(POLICY, guard=False)
    explicit = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0), (TCP, socket.TCP_KEEPIDLE, 555)]
    with urllib3.HTTPConnectionPool(str(host), port, maxsize=1, socket_options=explicit) as pool:
        pool.request("GET", "/")
        sock = pooled_socket(pool)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        assert sock.getsockopt(TCP, socket.TCP_KEEPIDLE) == 555


def test_urllib3_imported_after_harden(http_server):
    """In a fresh interpreter, harden() first and urllib3 later: the import is patched."""
    host, port = http_server.host, http_server.port
    code = textwrap.dedent(
        f"""
        import socket, sys
        import sockwise
        sockwise.harden(sockwise.Policy(keepalive_idle=23), guard=False)
        assert "urllib3" not in sys.modules
        import urllib3
        with urllib3.HTTPConnectionPool("{host}", {port}, maxsize=1) as pool:
            pool.request("GET", "/")
            sock = pool.pool.queue[-1].sock
            print(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))
        print(sorted(c for c in sockwise.harden(guard=False).changes if "urllib3" in c))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "23"
    assert "urllib3 connections (by the socket hooks)" in lines[1]
    assert "(on import)" not in lines[1]


def test_requests_session_follows_policy(http_server):
    """requests (through urllib3) opens hardened sockets."""
    import requests

    host, port = http_server.host, http_server.port
    sockwise.harden(POLICY, guard=False)
    with requests.Session() as session:
        assert session.get(f"http://{host}:{port}/", timeout=5).text == "ok"
        adapter = session.get_adapter(f"http://{host}:{port}/")
        pools = [adapter.poolmanager.pools[key] for key in adapter.poolmanager.pools.keys()]  # noqa: SIM118
        assert len(pools) == 1
        assert pooled_socket(pools[0]).getsockopt(TCP, socket.TCP_KEEPIDLE) == 19


def test_without_stdlib_hooks_urllib3_defaults_carry_the_policy(http_server):
    """harden(stdlib=False): no socket hook, so the policy goes into urllib3's defaults."""
    host, port = http_server.host, http_server.port
    sockwise.harden(POLICY, guard=False, stdlib=False)
    defaults = urllib3.connection.HTTPConnection.__init__.__kwdefaults__["socket_options"]
    assert (TCP, socket.TCP_KEEPIDLE, 19) in defaults
    with urllib3.HTTPConnectionPool(str(host), port, maxsize=1) as pool:
        assert pool.request("GET", "/").data == b"ok"
        assert pooled_socket(pool).getsockopt(TCP, socket.TCP_KEEPIDLE) == 19
    sockwise.unharden()
    restored = urllib3.connection.HTTPConnection.__init__.__kwdefaults__["socket_options"]
    assert restored == [(TCP, socket.TCP_NODELAY, 1)]
