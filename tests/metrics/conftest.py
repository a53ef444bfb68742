"""Fixtures for the metrics tests: sockets in known states, held by this process."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Held:
    """Sockets the test process holds: a listener with 2 queued, one CLOSE_WAIT socket."""

    listen_local: str
    close_wait_local: str


@pytest.fixture
def held_sockets() -> Iterator[Held]:
    """A listener (backlog 7) with two connections never accepted, and a CLOSE_WAIT socket."""
    opened: list[socket.socket] = []
    try:
        lst = socket.create_server(("127.0.0.1", 0), backlog=7)
        opened.append(lst)
        opened += [socket.create_connection(lst.getsockname()) for _ in range(2)]
        with socket.create_server(("127.0.0.1", 0)) as closer:
            cw = socket.create_connection(closer.getsockname())
            opened.append(cw)
            peer, _ = closer.accept()
            peer.close()
        host, port = lst.getsockname()
        cw_host, cw_port = cw.getsockname()
        yield Held(f"{host}:{port}", f"{cw_host}:{cw_port}")
    finally:
        for s in opened:
            s.close()


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_origin() -> Iterator[str]:
    """A local HTTP/1.1 server answering ``ok``; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
