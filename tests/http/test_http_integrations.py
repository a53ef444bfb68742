"""requests, httpx (sync and async) and aiohttp integrations apply the policy on real sockets."""

from __future__ import annotations

import subprocess
import sys

import pytest
from http_support import POLICY, WITH_POLICY, idle_conns

import sockwise.aiohttp as swaio
import sockwise.httpx as swhttpx
import sockwise.requests as swreq
import sockwise.urllib3 as swu
from sockwise import Policy
from sockwise.testing import read_socket_options


def test_requests_session(server):
    with swreq.Session(policy=POLICY) as session:
        for _ in range(3):
            assert session.get(server.url + "/").text == "ok"
        (pool,) = session.adapter.poolmanager.live_pools()
        assert read_socket_options(idle_conns(pool)[0].sock) == WITH_POLICY
        stats = session.stats()
        assert (stats.created, stats.reused) == (1, 2)
        assert "created=1 reused=2" in repr(session)


def test_requests_adapter_bounds_missing_timeout(server, monkeypatch):
    import requests

    seen = []
    original = swu.HTTPConnectionPool.urlopen

    def spy(self, *args, **kwargs):
        seen.append(kwargs["timeout"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(swu.HTTPConnectionPool, "urlopen", spy)
    adapter = swreq.HTTPAdapter(policy=Policy(connect_timeout=3.0))
    with requests.Session() as session:
        session.mount("http://", adapter)
        session.get(server.url + "/")
        session.get(server.url + "/", timeout=1.5)
    assert (seen[0].connect_timeout, seen[0].read_timeout) == (3.0, swu.DEFAULT_READ_TIMEOUT)
    assert (seen[1].connect_timeout, seen[1].read_timeout) == (1.5, 1.5)


def test_requests_through_proxy(server, proxy):
    with swreq.Session(policy=POLICY) as session:
        session.trust_env = False
        r = session.get(server.url + "/p", proxies={"http": proxy.url})
        assert r.text == "ok"
        manager = session.adapter.proxy_manager[proxy.url]
        assert isinstance(manager, swu.ProxyManager)
        (pool,) = manager.live_pools()
        assert read_socket_options(idle_conns(pool)[0].sock) == WITH_POLICY
    assert proxy.methods == ["GET"]


def test_requests_adapter_pickles():
    import pickle

    adapter = swreq.HTTPAdapter(policy=POLICY, idle_timeout=4.0)
    clone = pickle.loads(pickle.dumps(adapter))
    assert clone.policy == POLICY
    assert clone.poolmanager.idle_timeout == 4.0
    adapter.close()
    clone.close()


def test_httpx_client(server):
    with swhttpx.Client(policy=POLICY) as client:
        r = client.get(server.url + "/")
        assert r.text == "ok"
        sock = r.extensions["network_stream"].get_extra_info("socket")
        assert read_socket_options(sock) == WITH_POLICY
        assert client._transport._pool._keepalive_expiry == swu.DEFAULT_IDLE_TIMEOUT


def test_httpx_transport_merges_options(server):
    import socket

    transport = swhttpx.HTTPTransport(
        policy=POLICY, socket_options=[(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 8)]
    )
    import httpx

    with httpx.Client(transport=transport) as client:
        r = client.get(server.url + "/")
        opts = read_socket_options(r.extensions["network_stream"].get_extra_info("socket"))
    assert opts["TCP_KEEPCNT"] == 8
    assert opts["TCP_KEEPIDLE"] == WITH_POLICY["TCP_KEEPIDLE"]


def test_httpx_client_through_proxy(server, proxy):
    with swhttpx.Client(policy=POLICY, proxy=proxy.url, trust_env=False) as client:
        r = client.get(server.url + "/p")
        assert r.text == "ok"
        sock = r.extensions["network_stream"].get_extra_info("socket")
        assert read_socket_options(sock) == WITH_POLICY
    assert proxy.methods == ["GET"]


@pytest.mark.asyncio
async def test_httpx_async_client_through_proxy(server, proxy):
    async with swhttpx.AsyncClient(policy=POLICY, proxy=proxy.url, trust_env=False) as client:
        r = await client.get(server.url + "/p")
        assert r.text == "ok"
        sock = r.extensions["network_stream"].get_extra_info("socket")
        assert read_socket_options(sock) == WITH_POLICY
    assert proxy.methods == ["GET"]


@pytest.mark.asyncio
async def test_httpx_async_client(server):
    async with swhttpx.AsyncClient(policy=POLICY) as client:
        r = await client.get(server.url + "/")
        assert r.text == "ok"
        sock = r.extensions["network_stream"].get_extra_info("socket")
        assert read_socket_options(sock) == WITH_POLICY


def _aiohttp_idle_socket(connector):
    """The socket of the one keep-alive connection an aiohttp connector holds."""
    (entries,) = connector._conns.values()
    ((proto, _),) = entries
    return proto.transport.get_extra_info("socket")


@pytest.mark.asyncio
async def test_aiohttp_connector(server):
    import aiohttp

    connector = swaio.TCPConnector(policy=POLICY)
    assert connector._keepalive_timeout == swu.DEFAULT_IDLE_TIMEOUT
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(server.url + "/") as resp:
            assert await resp.text() == "ok"
        assert read_socket_options(_aiohttp_idle_socket(connector)) == WITH_POLICY


@pytest.mark.asyncio
async def test_aiohttp_socket_factory_on_plain_connector(server):
    import aiohttp

    connector = aiohttp.TCPConnector(socket_factory=swaio.socket_factory(POLICY))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(server.url + "/") as resp:
            await resp.read()
        assert read_socket_options(_aiohttp_idle_socket(connector)) == WITH_POLICY


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("sockwise.httpx", "httpx", "sockwise[httpx]"),
        ("sockwise.aiohttp", "aiohttp", "sockwise[aiohttp]"),
        ("sockwise.requests", "requests", "sockwise[requests]"),
        ("sockwise.urllib3", "urllib3", "sockwise[urllib3]"),
    ],
)
def test_missing_extra_names_it(module, blocked, extra):
    code = f"""
import sys
sys.modules[{blocked!r}] = None
import sockwise
try:
    import {module}
except ModuleNotFoundError as exc:
    print(exc.name, exc)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert out.startswith(blocked + " ")
    assert f"pip install {extra}" in out
