"""sockwise.testing.LocalHTTPServer: keep-alive, recording, handlers and a clean close."""

from __future__ import annotations

import http.client
import socket

import pytest

from sockwise.testing import LocalHTTPServer, RecordedRequest, Reply, serve_http


def _get(sock: socket.socket) -> bytes:
    """Send a raw keep-alive GET and read the whole ``ok`` answer (bounded by the timeout)."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_keep_alive_requests_share_one_connection_and_are_recorded() -> None:
    with serve_http() as server:
        client = http.client.HTTPConnection(server.host, server.port, timeout=5)
        try:
            client.request("GET", "/a")
            assert client.getresponse().read() == b"ok"
            client.request("POST", "/b?x=1", body=b"payload")
            assert client.getresponse().read() == b"ok"
        finally:
            client.close()
        got = server.requests
    assert [(r.method, r.path, r.body, r.connection) for r in got] == [
        ("GET", "/a", b"", 0),
        ("POST", "/b?x=1", b"payload", 0),
    ]
    assert server.accepted == 1
    assert got[0].client[0] == "127.0.0.1"
    assert got[1].headers["Content-Length"] == "7"


def test_handler_decides_the_answer_and_its_errors_become_500() -> None:
    def handler(request: RecordedRequest) -> Reply:
        if request.path == "/boom":
            raise RuntimeError("boom")
        return Reply(201, b"made", headers={"X-Test": "1"}, close=True)

    with serve_http(handler) as server:
        client = http.client.HTTPConnection(server.host, server.port, timeout=5)
        try:
            client.request("GET", "/")
            resp = client.getresponse()
            assert (resp.status, resp.read(), resp.getheader("X-Test")) == (201, b"made", "1")
            assert resp.getheader("Connection") == "close"
            client.request("GET", "/boom")  # http.client reconnects after the close
            resp = client.getresponse()
            assert resp.status == 500 and b"boom" in resp.read()
        finally:
            client.close()
        assert server.accepted == 2
        assert [type(e) for e in server.errors] == [RuntimeError]


@pytest.mark.parametrize("nodelay", [False, True])
def test_accepted_socket_options_are_recorded(nodelay: bool) -> None:
    with serve_http(nodelay=nodelay) as server:
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            assert _get(sock).startswith(b"HTTP/1.1 200 ")
        (request,) = server.requests
    assert request.socket_options["TCP_NODELAY"] == int(nodelay)
    assert request.socket_options["SO_KEEPALIVE"] == 0


def test_close_ends_connections_a_client_still_holds() -> None:
    server = LocalHTTPServer()
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        assert _get(sock).startswith(b"HTTP/1.1 200 ")
        server.close()  # the handler thread was waiting for the next request
        assert sock.recv(4096) == b""
    server.close()  # idempotent
    assert "closed" in repr(server)


def test_only_loopback_addresses() -> None:
    with pytest.raises(ValueError, match=r"host='0\.0\.0\.0'.*loopback"):
        LocalHTTPServer(host="0.0.0.0")
    with pytest.raises(ValueError, match=r"host='example\.com'"):
        LocalHTTPServer(host="example.com")


def test_ipv6_url() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        server = LocalHTTPServer(host="::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    with server:
        assert server.url == f"http://[::1]:{server.port}"
