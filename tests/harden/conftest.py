"""Fixtures for the drop-in tests: an unhardened process and a local keep-alive HTTP server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

import sockwise


@pytest.fixture(autouse=True)
def _unhardened() -> Iterator[None]:
    """Every test starts and ends with the process unhardened."""
    sockwise.unharden()
    yield
    sockwise.unharden()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen_nodelay: list[int] = []

    def do_GET(self) -> None:
        import socket

        self.seen_nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[http.server.ThreadingHTTPServer]:
    """A keep-alive HTTP/1.1 server on 127.0.0.1, created *inside* the test's hardening state."""
    _Handler.seen_nodelay = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
