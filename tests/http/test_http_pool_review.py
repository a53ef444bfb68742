"""Review regressions: guard bookkeeping of checked-out connections, in_use on a closed pool."""

from __future__ import annotations

import os

import pytest
from urllib3.exceptions import ClosedPoolError

import sockwise.urllib3 as swu


def test_checked_out_connection_is_not_marked_pooled(server):
    """A connection handed out again is no longer an idle member: the guard may report it."""
    from sockwise import Guard
    from sockwise.guard._origin import is_pooled

    with Guard(), swu.HTTPConnectionPool("127.0.0.1", server.port) as pool:
        assert pool.request("GET", "/").data == b"ok"  # the connection goes idle: registered
        held = pool.request("GET", "/", preload_content=False)  # reused, and kept checked out
        assert pool.stats().reused == 1
        try:
            inode = os.fstat(held.connection.sock.fileno()).st_ino
            assert not is_pooled(inode)
        finally:
            held.read()
            held.release_conn()
        assert is_pooled(inode)  # idle again: registered again


def test_no_guard_no_registration(server):
    """Without a running guard, idle members are not recorded (no system call per request)."""
    from sockwise.guard import running_guards
    from sockwise.guard._origin import is_pooled

    assert not running_guards()
    with swu.HTTPConnectionPool("127.0.0.1", server.port) as pool:
        assert pool.request("GET", "/").data == b"ok"
        (conn,) = [c for c in pool.pool.queue if c is not None and c.sock is not None]
        assert not is_pooled(os.fstat(conn.sock.fileno()).st_ino)


def test_request_on_closed_pool_keeps_in_use(server):
    """A checkout refused because the pool is closed does not uncount a connection in use."""
    pool = swu.HTTPConnectionPool("127.0.0.1", server.port)
    held = pool.request("GET", "/", preload_content=False)
    try:
        assert pool.stats().in_use == 1
        pool.close()
        with pytest.raises(ClosedPoolError):
            pool.request("GET", "/")
        assert pool.stats().in_use == 1
    finally:
        held.read()
        held.release_conn()  # the pool is closed: urllib3 closes the connection
    assert pool.stats().in_use == 0


def test_checkout_alone_rejects_peer_closed_member(make_server, monkeypatch):
    """With the reaper held off, the checkout's own poll must catch the peer-closed member."""
    from http_support import tcp_states_toward, wait_until

    from sockwise.urllib3._reaper import REAPER

    server = make_server(lambda c, r, m, p: "ok-close")
    REAPER.stop()
    monkeypatch.setattr(REAPER, "interval", 600.0)  # the restarted reaper won't sweep in time
    try:
        with swu.HTTPConnectionPool("127.0.0.1", server.port, retries=False) as pool:
            assert pool.request("GET", "/").data == b"ok"
            assert wait_until(lambda: tcp_states_toward(server.port, "08") == 1, 5)
            assert pool.stats().closed_peer == 0  # nobody swept it
            assert pool.request("GET", "/").data == b"ok"
            stats = pool.stats()
    finally:
        REAPER.stop()  # the next pool restarts it with the normal interval
    assert (stats.created, stats.reused, stats.closed_peer, stats.retried) == (2, 0, 1, 0)
