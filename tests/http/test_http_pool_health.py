"""Idle expiry, CLOSE_WAIT reaping, safe replay, stats and repr of sockwise urllib3 pools."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import urllib3
from http_support import idle_conns, tcp_state_of_local_port, tcp_states_toward, wait_until
from urllib3.exceptions import ProtocolError

import sockwise.urllib3 as swu
from sockwise.urllib3._reaper import REAPER

CLOSE_WAIT = "08"


def _checkout_n(pool, n):
    """Hold *n* connections at once, then release them all (leaves *n* idle members)."""
    responses = [pool.request("GET", f"/{i}", preload_content=False) for i in range(n)]
    for r in responses:
        r.read()
        r.release_conn()


def test_idle_connection_expires_at_checkout(server):
    with swu.HTTPConnectionPool("127.0.0.1", server.port, idle_timeout=0.2) as pool:
        pool.request("GET", "/")
        first = idle_conns(pool)[0].sock
        time.sleep(0.35)
        pool.request("GET", "/")
        stats = pool.stats()
        assert idle_conns(pool)[0].sock is not first
    assert (stats.created, stats.reused, stats.closed_idle) == (2, 0, 1)
    assert server.accepted == 2


def test_connection_within_idle_timeout_is_reused(server):
    with swu.HTTPConnectionPool("127.0.0.1", server.port, idle_timeout=30) as pool:
        for _ in range(5):
            pool.request("GET", "/")
        stats = pool.stats()
    assert (stats.created, stats.reused, stats.closed_idle) == (1, 4, 0)
    assert stats.reuse_ratio == pytest.approx(0.8)


def test_announced_keep_alive_timeout_replaces_the_default(make_server):
    """``Keep-Alive: timeout=3``: reused after 1.8 s idle (past the default), not after 2.3 s."""
    server = make_server(keep_alive="timeout=3, max=100")
    with swu.HTTPConnectionPool("127.0.0.1", server.port) as pool:
        assert pool.idle_timeout == swu.DEFAULT_IDLE_TIMEOUT
        pool.request("GET", "/")
        time.sleep(1.8)  # past the default, below 3 s - 1 s
        pool.request("GET", "/")
        assert (pool.stats().created, pool.stats().reused) == (1, 1)
        time.sleep(2.3)  # past 3 s - 1 s: retired before the server's own timeout
        pool.request("GET", "/")
        stats = pool.stats()
    assert (stats.created, stats.reused, stats.closed_idle) == (2, 1, 1)
    assert server.accepted == 2


def test_announced_keep_alive_timeout_caps_the_callers_value(make_server):
    """``Keep-Alive: timeout=1`` lowers idle_timeout=30 to 0.5 s; the reaper closes it too."""
    server = make_server(keep_alive="timeout=1")
    with swu.HTTPConnectionPool("127.0.0.1", server.port, idle_timeout=30) as pool:
        pool.request("GET", "/")
        time.sleep(0.7)
        pool.request("GET", "/")
        assert (pool.stats().created, pool.stats().closed_idle) == (2, 1)
        assert wait_until(lambda: pool.stats().idle == 0, 5)  # the reaper, no request needed
        assert pool.stats().closed_idle == 2
    with swu.HTTPConnectionPool("127.0.0.1", server.port, idle_timeout=None) as pool:
        pool.request("GET", "/")
        time.sleep(0.7)
        pool.request("GET", "/")  # None: never expire, as asked
        assert (pool.stats().created, pool.stats().reused) == (1, 1)


def test_default_idle_timeout_survives_managers_and_adapters():
    """The default reaches the pools as the default (the header may replace it), a number given
    by the caller as that number."""
    from sockwise._idle import DEFAULT_IDLE_TIMEOUT, is_default, resolve_idle_timeout
    from sockwise._idle import UNSET as _UNSET

    assert is_default(resolve_idle_timeout(_UNSET))
    assert is_default(resolve_idle_timeout(resolve_idle_timeout(_UNSET)))
    assert not is_default(resolve_idle_timeout(1.5))
    assert repr(DEFAULT_IDLE_TIMEOUT) == "1.5"
    with swu.PoolManager() as manager:
        pool = manager.connection_from_url("http://127.0.0.1:9/")
        assert is_default(pool.idle_timeout)
    with swu.PoolManager(idle_timeout=1.5) as manager:
        pool = manager.connection_from_url("http://127.0.0.1:9/")
        assert pool.idle_timeout == 1.5 and not is_default(pool.idle_timeout)


@pytest.mark.parametrize(
    ("header", "default_limit", "given_limit"),
    [
        ("timeout=5, max=100", 4.0, 4.0),  # Apache
        ("timeout=5", 4.0, 4.0),  # Node.js
        ("max=100, Timeout = 2", 1.0, 1.0),
        ('timeout="60"', 59.0, 10.0),
        ("timeout=1", 0.5, 0.5),
        ("timeout=100000", 180.0, 10.0),
        ("max=100", 1.5, 10.0),
        ("timeout=0", 1.5, 10.0),
        ("timeout=-3", 1.5, 10.0),
        ("timeout=soon", 1.5, 10.0),
        ("timeout=inf", 1.5, 10.0),
        ("", 1.5, 10.0),
    ],
)
def test_keep_alive_header_limits(header, default_limit, given_limit):
    from sockwise._idle import DEFAULT_IDLE_TIMEOUT, idle_limit

    assert idle_limit(DEFAULT_IDLE_TIMEOUT, header) == default_limit
    assert idle_limit(10.0, header) == given_limit
    assert idle_limit(None, header) is None


def test_reaper_expires_idle_without_requests(server):
    with swu.HTTPConnectionPool("127.0.0.1", server.port, maxsize=3, idle_timeout=0.3) as pool:
        _checkout_n(pool, 3)
        assert pool.stats().idle == 3
        assert wait_until(lambda: pool.stats().idle == 0, 5)
        assert pool.stats().closed_idle == 3


def test_peer_closed_members_reaped_without_requests(make_server):
    """The server closes the bottom two of three idle connections; the pool closes those only."""
    server = make_server()
    with swu.HTTPConnectionPool("127.0.0.1", server.port, maxsize=3, idle_timeout=None) as pool:
        _checkout_n(pool, 3)
        conns = idle_conns(pool)
        assert len(conns) == 3
        bottom_ports = {c.sock.getsockname()[1] for c in conns[:2]}
        server.close_where(lambda local_peer_port: local_peer_port in bottom_ports)
        assert wait_until(lambda: tcp_states_toward(server.port, CLOSE_WAIT) == 2, 5)
        # No further request: the reaper alone must close them, within a few seconds.
        assert wait_until(lambda: pool.stats().closed_peer == 2, 5)
        assert tcp_states_toward(server.port, CLOSE_WAIT) == 0
        left = idle_conns(pool)
        assert len(left) == 1
        assert left[0] is conns[2]
        pool.request("GET", "/")
        assert pool.stats().reused == 1


def test_bare_urllib3_leaves_close_wait(make_server):
    """The behaviour sockwise fixes: urllib3 keeps peer-closed members in CLOSE_WAIT."""
    server = make_server(lambda c, r, m, p: "ok")
    with urllib3.HTTPConnectionPool("127.0.0.1", server.port, maxsize=2) as pool:
        _checkout_n(pool, 2)
        server.close_where(lambda port: True)
        assert wait_until(lambda: tcp_states_toward(server.port, CLOSE_WAIT) == 2, 5)
        time.sleep(swu.REAP_INTERVAL * 1.5)
        assert tcp_states_toward(server.port, CLOSE_WAIT) == 2


def test_peer_closed_member_never_handed_out(make_server):
    server = make_server(lambda c, r, m, p: "ok-close")
    with swu.HTTPConnectionPool("127.0.0.1", server.port, retries=False) as pool:
        for _ in range(3):
            # The server closes after each response; the next checkout must not use that socket.
            assert pool.request("GET", "/").data == b"ok"
            # Counted after the request: its checkout retired the member before this one.
            reaped_before = pool.stats().closed_peer
            (member,) = idle_conns(pool)
            local = member.sock.getsockname()[1]
            # Wait until *this* idle member is peer-closed (the server's FIN arrived): seen in
            # CLOSE_WAIT, or already closed by the background reaper (which may win the race on
            # a loaded machine). Counting CLOSE_WAIT toward the server could count the member
            # retired before, whose descriptor the previous response may still hold open.
            assert wait_until(
                lambda b=reaped_before, port=local: (
                    tcp_state_of_local_port(port) in (CLOSE_WAIT, None)
                    or pool.stats().closed_peer > b
                ),
                5,
            )
        stats = pool.stats()
    assert stats.created == 3
    assert stats.reused == 0
    assert stats.closed_peer >= 2
    assert stats.retried == 0


def _close_second_request(conn_index, request_index, method, path):
    return "close" if request_index == 1 else "ok"


def test_get_replayed_by_retry_when_server_closes_reused_connection(make_server):
    server = make_server(_close_second_request)
    with swu.HTTPConnectionPool("127.0.0.1", server.port) as pool:
        assert pool.request("GET", "/a").data == b"ok"
        response = pool.request("GET", "/b")
        assert response.data == b"ok"
        stats = pool.stats()
    assert stats.retried == 1
    # The replay is urllib3's Retry: it is in its history.
    assert response.retries is not None
    assert len(response.retries.history) == 1
    assert [(c, m, p) for c, m, p, _ in server.requests] == [
        (0, "GET", "/a"),
        (0, "GET", "/b"),  # read, then the connection closed without an answer
        (1, "GET", "/b"),  # replayed once on a fresh connection
    ]


def test_bare_urllib3_fails_the_same_get(make_server):
    server = make_server(_close_second_request)
    with urllib3.HTTPConnectionPool("127.0.0.1", server.port, retries=False) as pool:
        pool.request("GET", "/a")
        with pytest.raises(ProtocolError):
            pool.request("GET", "/b")


def test_post_never_replayed(make_server):
    server = make_server(_close_second_request)
    with swu.HTTPConnectionPool("127.0.0.1", server.port) as pool:
        assert pool.request("POST", "/a", body=b"1").data == b"ok"
        with pytest.raises(ProtocolError):
            pool.request("POST", "/b", body=b"2")
        assert pool.stats().retried == 0
    # The server saw the second POST exactly once: it was not replayed.
    assert [p for _, _, p, _ in server.requests] == ["/a", "/b"]
    assert server.accepted == 1


def test_fresh_connection_not_replayed(make_server):
    server = make_server(lambda c, r, m, p: "close")
    with swu.HTTPConnectionPool("127.0.0.1", server.port, retries=False) as pool:
        with pytest.raises(ProtocolError):
            pool.request("GET", "/")
        assert pool.stats().retried == 0
    assert server.accepted == 1


def test_stats_and_repr(server):
    with swu.HTTPConnectionPool("127.0.0.1", server.port, maxsize=2) as pool:
        assert repr(pool) == (
            f"<sockwise.urllib3.HTTPConnectionPool http://127.0.0.1:{server.port} "
            "[0 in use, 0 idle, created=0 reused=0 closed_idle=0 closed_peer=0 reuse=0%]>"
        )
        held = pool.request("GET", "/", preload_content=False)
        pool.request("GET", "/")
        pool.request("GET", "/")
        assert pool.stats().in_use == 1
        assert "1 in use, 1 idle, created=2 reused=1" in repr(pool)
        held.read()
        held.release_conn()
        stats = pool.stats()
        assert (stats.in_use, stats.idle) == (0, 2)
        d = stats.as_dict()
        assert set(d) == {
            "created",
            "reused",
            "closed_idle",
            "closed_peer",
            "retried",
            "in_use",
            "idle",
            "reuse_ratio",
        }
        assert d["reuse_ratio"] == pytest.approx(1 / 3)


def test_manager_aggregates_and_keeps_evicted_counts(make_server):
    a, b = make_server(), make_server()
    with swu.PoolManager(num_pools=1) as pm:
        pm.request("GET", a.url + "/")
        pm.request("GET", a.url + "/")
        pm.request("GET", b.url + "/")  # evicts a's pool
        stats = pm.stats()
        assert (stats.created, stats.reused) == (2, 1)
        assert len(pm.live_pools()) == 1
        assert repr(pm).startswith("<sockwise.urllib3.PoolManager 1 pools [0 in use, 1 idle")


def test_reaper_is_one_named_daemon_thread(server):
    pools = [swu.HTTPConnectionPool("127.0.0.1", server.port) for _ in range(3)]
    reapers = [t for t in threading.enumerate() if t.name == "sockwise-pool-reaper"]
    assert len(reapers) == 1
    assert reapers[0].daemon
    for p in pools:
        p.close()


def test_reaper_does_not_keep_pools_alive(server):
    import gc
    import weakref

    pool = swu.HTTPConnectionPool("127.0.0.1", server.port)
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_reaper_restarts_in_forked_child(server):
    code = f"""
import os, sys, time, threading
import sockwise.urllib3 as swu
pool = swu.HTTPConnectionPool("127.0.0.1", {server.port}, idle_timeout=0.2)
pool.request("GET", "/")
pid = os.fork()
if pid == 0:
    pool.request("GET", "/")
    deadline = time.monotonic() + 5
    while pool.stats().idle and time.monotonic() < deadline:
        time.sleep(0.05)
    names = [t.name for t in threading.enumerate()]
    os._exit(0 if pool.stats().idle == 0 and "sockwise-pool-reaper" in names else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_stop_at_exit_leaves_no_output(server):
    code = f"""
import sockwise.urllib3 as swu
pool = swu.HTTPConnectionPool("127.0.0.1", {server.port})
pool.request("GET", "/")
"""
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert REAPER is not None
