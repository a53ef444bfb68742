"""sockwise keeps urllib3's documented semantics: the drop-in pools and ``harden()``.

Each test runs real urllib3 against a real server on loopback (``http_support``).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
import urllib3
from http_support import POLICY, WITH_POLICY, idle_conns
from urllib3.exceptions import ClosedPoolError, MaxRetryError, ProtocolError
from urllib3.util.retry import Retry

import sockwise
import sockwise.urllib3 as swu
from sockwise.testing import read_socket_options


def _kernel_defaults() -> dict[str, int]:
    def sysctl(name: str) -> int:
        return int(Path(f"/proc/sys/net/ipv4/{name}").read_text())

    return {
        "SO_KEEPALIVE": 0,
        "TCP_KEEPIDLE": sysctl("tcp_keepalive_time"),
        "TCP_KEEPINTVL": sysctl("tcp_keepalive_intvl"),
        "TCP_KEEPCNT": sysctl("tcp_keepalive_probes"),
        "TCP_USER_TIMEOUT": 0,
        "TCP_NODELAY": 0,
    }


@pytest.fixture
def hardened():
    sockwise.unharden()
    sockwise.harden(POLICY, guard=False)
    yield
    sockwise.unharden()


def _one_sock(pool):
    (conn,) = idle_conns(pool)
    return conn.sock


# -- socket_options=[] / None -------------------------------------------------------------------


@pytest.mark.parametrize("options", [[], None])
def test_pool_honours_no_socket_options(server, options):
    with swu.HTTPConnectionPool(
        "127.0.0.1", server.port, policy=POLICY, socket_options=options
    ) as pool:
        assert pool.request("GET", "/").data == b"ok"
        assert read_socket_options(_one_sock(pool)) == _kernel_defaults()


def test_manager_honours_no_socket_options(server):
    with swu.PoolManager(policy=POLICY, socket_options=[]) as pm:
        assert pm.request("GET", server.url + "/").data == b"ok"
        (pool,) = pm.live_pools()
        assert read_socket_options(_one_sock(pool)) == _kernel_defaults()


@pytest.mark.parametrize("options", [[], None])
def test_harden_honours_no_socket_options(hardened, server, options):
    with urllib3.HTTPConnectionPool("127.0.0.1", server.port, socket_options=options) as pool:
        assert pool.request("GET", "/").data == b"ok"
        assert read_socket_options(_one_sock(pool)) == _kernel_defaults()
    # The same process, default options: the policy.
    with urllib3.HTTPConnectionPool("127.0.0.1", server.port) as pool:
        assert pool.request("GET", "/").data == b"ok"
        assert read_socket_options(_one_sock(pool)) == WITH_POLICY


def test_harden_gives_proxied_connections_the_policy(hardened, server, proxy):
    """urllib3's own ``[]`` for proxies is not the caller's choice (a documented difference)."""
    with urllib3.ProxyManager(proxy.url) as pm:
        assert pm.request("GET", server.url + "/").data == b"ok"
        pool = pm.connection_from_url(server.url)
        assert read_socket_options(_one_sock(pool)) == WITH_POLICY
    for explicit in (None, []):  # the caller's own "no options" is honoured through a proxy
        with urllib3.ProxyManager(proxy.url, socket_options=explicit) as pm:
            assert pm.request("GET", server.url + "/").data == b"ok"
            pool = pm.connection_from_url(server.url)
            assert read_socket_options(_one_sock(pool)) == _kernel_defaults()


def test_unharden_restores_set_socket_options():
    from urllib3.util import connection

    original = connection._set_socket_options
    sockwise.harden(POLICY, guard=False)
    try:
        assert connection._set_socket_options is not original
    finally:
        sockwise.unharden()
    assert connection._set_socket_options is original


# -- replay only within urllib3's Retry ---------------------------------------------------------


def _close_second(conn_index, request_index, method, path):
    return "close" if request_index == 1 else "ok"


@pytest.mark.parametrize("retries", [False, Retry(0)], ids=["False", "Retry0"])
def test_put_read_by_server_not_sent_twice_without_retries(make_server, retries):
    server = make_server(_close_second)
    with swu.HTTPConnectionPool("127.0.0.1", server.port) as pool:
        assert pool.request("PUT", "/a", body=b"1").data == b"ok"
        with pytest.raises((ProtocolError, MaxRetryError)):
            pool.request("PUT", "/b", body=b"2", retries=retries)
        assert pool.stats().retried == 0
    assert [(c, m, p) for c, m, p, _ in server.requests] == [(0, "PUT", "/a"), (0, "PUT", "/b")]


def test_put_replayed_within_retry_and_in_its_history(make_server):
    server = make_server(_close_second)
    with swu.HTTPConnectionPool("127.0.0.1", server.port) as pool:
        assert pool.request("PUT", "/a", body=b"1").data == b"ok"
        response = pool.request("PUT", "/b", body=b"2", retries=Retry(1))
        assert response.data == b"ok"
        assert pool.stats().retried == 1
    assert len(response.retries.history) == 1
    assert isinstance(response.retries.history[0].error, ProtocolError)
    assert [(c, p) for c, _, p, _ in server.requests] == [(0, "/a"), (0, "/b"), (1, "/b")]


# -- evicted pools stay open (urllib3 #1252) ----------------------------------------------------


@pytest.mark.parametrize("manager", [urllib3.PoolManager, swu.PoolManager])
def test_evicted_pools_are_not_closed_under_threads(make_server, manager):
    servers = [make_server(), make_server()]
    per_thread = 60
    errors: list[BaseException] = []
    done = []

    def work(index: int) -> None:
        for i in range(per_thread):
            url = servers[(index + i) % 2].url + "/"
            try:
                pm.request("GET", url, retries=False).data  # noqa: B018
                done.append(1)
            except Exception as exc:  # recorded and asserted below
                errors.append(exc)

    with manager(num_pools=1, maxsize=1) as pm:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert [e for e in errors if isinstance(e, (ClosedPoolError, AttributeError))] == []
        assert errors == []
        assert len(done) == 4 * per_thread
        if isinstance(pm, swu.PoolManager):
            stats = pm.stats()  # evicted pools still counted
            assert stats.created + stats.reused == 4 * per_thread


def test_clear_does_not_close_a_pool_in_use(server):
    with swu.PoolManager() as pm:
        pool = pm.connection_from_url(server.url)
        pm.clear()
        assert pool.pool is not None  # urllib3 2.x: cleared pools are not closed
        assert pool.request("GET", "/").data == b"ok"


# -- custom pool classes ------------------------------------------------------------------------


class _Counting(urllib3.HTTPConnectionPool):
    made = 0

    def __init__(self, *args, **kwargs):
        type(self).made += 1
        super().__init__(*args, **kwargs)


class _DuckPool:
    """Not a urllib3 pool at all: what some test doubles and wrappers look like."""

    def __init__(self, host, port, **kwargs):
        self.host, self.port = host, port

    def urlopen(self, method, url, **kwargs):
        raise RuntimeError("duck")


def test_custom_pool_classes_work(server):
    with swu.PoolManager(policy=POLICY) as pm:
        pm.pool_classes_by_scheme = {**pm.pool_classes_by_scheme, "http": _Counting}
        assert pm.request("GET", server.url + "/").data == b"ok"
        assert _Counting.made == 1
        pool = pm.connection_from_url(server.url)
        assert type(pool) is _Counting
        assert pm.live_pools() == []  # not a sockwise pool: not counted, not broken
        pm.clear()


def test_duck_typed_pool_class_survives_clear():
    pm = swu.PoolManager()
    pm.pool_classes_by_scheme = {"http": _DuckPool, "https": _DuckPool}
    pool = pm.connection_from_url("http://127.0.0.1:9/")
    assert isinstance(pool, _DuckPool)
    pm.clear()  # no close() on a duck: must not crash
    assert len(pm.pools) == 0


class _OurSubclass(swu.HTTPConnectionPool):
    pass


def test_sockwise_subclass_gets_the_policy(server):
    with swu.PoolManager(policy=POLICY) as pm:
        pm.pool_classes_by_scheme = {**pm.pool_classes_by_scheme, "http": _OurSubclass}
        assert pm.request("GET", server.url + "/").data == b"ok"
        (pool,) = pm.live_pools()
        assert type(pool) is _OurSubclass and pool.policy is POLICY


# -- __str__ untouched, __repr__ informative ----------------------------------------------------


def test_str_is_urllib3s_and_repr_has_counters(server):
    with swu.HTTPConnectionPool("127.0.0.1", server.port) as pool:
        pool.request("GET", "/")
        bare = urllib3.HTTPConnectionPool("127.0.0.1", server.port)
        assert str(pool) == str(bare).replace("HTTPConnectionPool", type(pool).__name__)
        assert str(pool) == f"HTTPConnectionPool(host='127.0.0.1', port={server.port})"
        assert "created=1" in repr(pool)
        bare.close()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connect is refused
    with swu.HTTPConnectionPool("127.0.0.1", port, retries=Retry(0)) as pool:
        with pytest.raises(MaxRetryError) as info:
            pool.request("GET", "/")
    assert f"HTTPConnectionPool(host='127.0.0.1', port={port})" in str(info.value)
    assert "reuse=" not in str(info.value)
