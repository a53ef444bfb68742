"""A peer that stops acknowledging is explained: which peer, after how long, under which setting."""

from __future__ import annotations

import socket
import time

import pytest
import urllib3
from urllib3.exceptions import ProtocolError

import sockwise.urllib3 as swu
from sockwise import Policy
from sockwise._errors import SockwiseError

# On loopback the peer's kernel acknowledges everything its application has not read until the
# receive window is full; a server that stops reading then advertises a zero window, and
# TCP_USER_TIMEOUT aborts the sender (ETIMEDOUT) -- the same error a black-holed peer produces.
SMALL_BUF = [(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)]
BODY = b"x" * (4 * 1024 * 1024)


def _hang(conn_index, request_index, method, path):
    return "hang"


def test_kernel_timeout_is_explained(make_server):
    server = make_server(_hang, rcvbuf=4096)
    policy = Policy(keepalive_idle=1, keepalive_interval=1, keepalive_count=2, user_timeout=1.0)
    with swu.HTTPConnectionPool(
        "127.0.0.1", server.port, policy=policy, socket_options=SMALL_BUF, retries=False
    ) as pool:
        started = time.monotonic()
        with pytest.raises(ProtocolError) as info:
            pool.request("POST", "/upload", body=BODY)
        elapsed = time.monotonic() - started
    err = info.value
    assert isinstance(err, swu.DeadPeerProtocolError)
    assert isinstance(err, swu.DeadPeerError)
    assert isinstance(err, SockwiseError)
    assert err.peer == f"127.0.0.1:{server.port}"
    assert 0.5 < err.elapsed < 15
    assert elapsed < 15
    message = str(err)
    assert f"peer 127.0.0.1:{server.port} stopped answering" in message
    assert "policy.user_timeout=1 s (TCP_USER_TIMEOUT" in message
    assert "ETIMEDOUT" in message
    assert isinstance(err.__cause__, TimeoutError)


def test_bare_urllib3_reports_plain_error(make_server):
    """What sockwise improves on: urllib3 says only 'Connection aborted.' with TimeoutError."""
    server = make_server(_hang, rcvbuf=4096)
    opts = [*Policy(user_timeout=1.0).socket_options(), *SMALL_BUF]
    with (
        urllib3.HTTPConnectionPool(
            "127.0.0.1", server.port, socket_options=opts, retries=False, timeout=15
        ) as pool,
        pytest.raises(ProtocolError) as info,
    ):
        pool.request("POST", "/upload", body=BODY)
    assert not isinstance(info.value, swu.DeadPeerError)
    assert "stopped answering" not in str(info.value)


def test_python_socket_timeout_is_not_called_dead_peer(make_server):
    server = make_server(lambda c, r, m, p: "hang")
    with (
        swu.HTTPConnectionPool("127.0.0.1", server.port, timeout=0.3, retries=False) as pool,
        pytest.raises(urllib3.exceptions.ReadTimeoutError) as info,
    ):
        pool.request("GET", "/")
    assert not isinstance(info.value, swu.DeadPeerError)


@pytest.mark.parametrize(
    ("policy", "text"),
    [
        (Policy(user_timeout=None), "policy keepalive (first probe after keepalive_idle=60 s"),
        (Policy.kernel_defaults(), "net.ipv4.tcp_retries2"),
        (Policy(), "policy.user_timeout=90 s"),
    ],
)
def test_setting_descriptions(policy, text):
    from sockwise.urllib3._dead import describe_setting

    assert text in describe_setting(policy)
