"""The default read timeout: none under ``harden()``, 300 s in the drop-in pools (a decision).

``sockwise.harden()`` does not bound the read of a request that set no timeout (long polls and
streams wait on purpose; the guard's stall detector reports a silent server instead); the
drop-in pools and ``sockwise.requests.Session`` do. See docs/reference/differences.md.
"""

from __future__ import annotations

import http.client

import pytest
import requests
import urllib3
from http_support import idle_conns

import sockwise
import sockwise.requests as swr
import sockwise.urllib3 as swu


@pytest.fixture
def plain_harden():
    sockwise.unharden()
    sockwise.harden()  # the defaults, guard included
    yield
    sockwise.unharden()


def _session_socket(session: requests.Session):
    (pool,) = list(session.get_adapter("http://").poolmanager.pools._container.values())
    (conn,) = idle_conns(pool)
    return conn.sock


def test_harden_adds_no_read_timeout(plain_harden, server):
    with requests.Session() as session:
        assert session.get(server.url + "/").text == "ok"
        assert _session_socket(session).gettimeout() is None
    with urllib3.PoolManager() as pm:
        assert pm.request("GET", server.url + "/").data == b"ok"
        (conn,) = idle_conns(pm.connection_from_url(server.url))
        assert conn.sock.gettimeout() is None
    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"
        assert conn.sock.gettimeout() is None
    finally:
        conn.close()


def test_dropin_bounds_the_read_by_default(server):
    assert swu.DEFAULT_READ_TIMEOUT == 300.0
    with swr.Session() as session:
        assert session.get(server.url + "/").text == "ok"
        assert _session_socket(session).gettimeout() == swu.DEFAULT_READ_TIMEOUT
    with swu.PoolManager(timeout=None) as pm:  # the opt-out: urllib3's "wait forever"
        assert pm.request("GET", server.url + "/").data == b"ok"
        (pool,) = pm.live_pools()
        (conn,) = idle_conns(pool)
        assert conn.sock.gettimeout() is None
