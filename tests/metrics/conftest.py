"""Fixtures for the metrics tests: sockets in known states, held by this process."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sockwise.testing import serve_http


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


@pytest.fixture
def http_origin() -> Iterator[str]:
    """A local HTTP/1.1 server answering ``ok``; yields its base URL."""
    with serve_http() as server:
        yield server.url
