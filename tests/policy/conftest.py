"""Fixtures of the policy area: a real local HTTP server and connected TCP socket pairs."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from sockwise._log import forget_once


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    """A real HTTP/1.1 server on 127.0.0.1; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected (client, server) pair of real TCP sockets on loopback."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    try:
        yield client, server
    finally:
        client.close()
        server.close()


@pytest.fixture(autouse=True)
def _fresh_log_once() -> Iterator[None]:
    """Let every test see the one-time 'option missing' messages afresh."""
    forget_once("missing-option:")
    yield
    forget_once("missing-option:")
