"""The policy's socket options and default timeouts on the connections sockwise pools open."""

from __future__ import annotations

import socket

import pytest
import urllib3
from http_support import POLICY, WITH_POLICY, idle_conns
from urllib3.util.timeout import Timeout

import sockwise.urllib3 as swu
from sockwise import Policy
from sockwise.testing import read_socket_options


def _only_sock(pool):
    conns = idle_conns(pool)
    assert len(conns) == 1
    return conns[0].sock


def test_http_pool_sets_policy_options(server):
    with swu.HTTPConnectionPool("127.0.0.1", server.port, policy=POLICY) as pool:
        assert pool.request("GET", "/").data == b"ok"
        assert read_socket_options(_only_sock(pool)) == WITH_POLICY


def test_https_pool_sets_policy_options(make_server, server_ssl_context, client_ssl_context):
    server = make_server(ssl_context=server_ssl_context)
    with swu.HTTPSConnectionPool(
        "127.0.0.1", server.port, policy=POLICY, ssl_context=client_ssl_context
    ) as pool:
        assert pool.request("GET", "/").data == b"ok"
        assert read_socket_options(_only_sock(pool)) == WITH_POLICY


def test_pool_manager_builds_sockwise_pools(server):
    with swu.PoolManager(policy=POLICY) as pm:
        assert pm.request("GET", server.url + "/").status == 200
        pool = pm.connection_from_url(server.url)
        assert isinstance(pool, swu.HTTPConnectionPool)
        assert read_socket_options(_only_sock(pool)) == WITH_POLICY


def test_default_policy_when_none(server):
    with swu.HTTPConnectionPool("127.0.0.1", server.port) as pool:
        pool.request("GET", "/")
        opts = read_socket_options(_only_sock(pool))
    assert opts["TCP_KEEPIDLE"] == Policy().keepalive_idle
    assert opts["TCP_USER_TIMEOUT"] == 90_000


def test_caller_socket_options_win(server):
    extra = [(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 42)]
    with swu.HTTPConnectionPool(
        "127.0.0.1", server.port, policy=POLICY, socket_options=extra
    ) as pool:
        pool.request("GET", "/")
        opts = read_socket_options(_only_sock(pool))
    assert opts["TCP_KEEPIDLE"] == 42
    assert opts["TCP_KEEPCNT"] == 4


def test_proxied_http_connections_get_options(server, proxy):
    with swu.ProxyManager(proxy.url, policy=POLICY) as pm:
        assert pm.request("GET", server.url + "/x").data == b"ok"
        pool = pm.connection_from_url(server.url)
        assert isinstance(pool, swu.HTTPConnectionPool)
        assert read_socket_options(_only_sock(pool)) == WITH_POLICY
    assert proxy.methods == ["GET"]


def test_proxied_https_tunnel_gets_options(
    make_server, server_ssl_context, client_ssl_context, proxy
):
    server = make_server(ssl_context=server_ssl_context)
    with swu.ProxyManager(proxy.url, policy=POLICY, ssl_context=client_ssl_context) as pm:
        assert pm.request("GET", server.url + "/t").data == b"ok"
        pool = pm.connection_from_url(server.url)
        assert isinstance(pool, swu.HTTPSConnectionPool)
        assert read_socket_options(_only_sock(pool)) == WITH_POLICY
    assert proxy.methods == ["CONNECT"]


def test_bare_urllib3_proxy_sets_no_options(server, proxy):
    """The gap sockwise closes: urllib3's own ProxyManager leaves keepalive off."""
    with urllib3.ProxyManager(proxy.url) as pm:
        pm.request("GET", server.url + "/")
        opts = read_socket_options(_only_sock(pm.connection_from_url(server.url)))
    assert opts["SO_KEEPALIVE"] == 0
    assert opts["TCP_NODELAY"] == 0


def test_default_timeout_is_bounded():
    pool = swu.HTTPConnectionPool("127.0.0.1", 9, policy=Policy(connect_timeout=2.5))
    assert pool.timeout.connect_timeout == 2.5
    assert pool.timeout.read_timeout == swu.DEFAULT_READ_TIMEOUT
    pool.close()


def test_explicit_timeout_is_kept():
    pool = swu.HTTPConnectionPool("127.0.0.1", 9, timeout=Timeout(connect=1, read=2))
    assert (pool.timeout.connect_timeout, pool.timeout.read_timeout) == (1, 2)
    positional = swu.HTTPConnectionPool("127.0.0.1", 9, 4.0)
    assert positional.timeout.read_timeout == 4.0
    pool.close()
    positional.close()


def test_connect_is_bounded_by_policy():
    """A listener whose accept queue is full drops SYNs; the connect fails within the bound."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(listener.getsockname())
            fillers.append(s)
        port = listener.getsockname()[1]
        pool = swu.HTTPConnectionPool(
            "127.0.0.1", port, policy=Policy(connect_timeout=0.5), retries=False
        )
        with pytest.raises(urllib3.exceptions.ConnectTimeoutError):
            pool.request("GET", "/")
        pool.close()
    finally:
        for s in fillers:
            s.close()
        listener.close()


@pytest.mark.parametrize(
    ("kwargs", "exc", "text"),
    [
        ({"idle_timeout": 0}, ValueError, "idle_timeout=0 is out of range"),
        ({"idle_timeout": "5"}, TypeError, "idle_timeout must be a number"),
        ({"policy": {"keepalive": True}}, TypeError, "policy must be a sockwise.Policy"),
    ],
)
def test_bad_arguments_are_named(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        swu.HTTPConnectionPool("127.0.0.1", 9, **kwargs)
    with pytest.raises(exc, match=text):
        swu.PoolManager(**kwargs)
