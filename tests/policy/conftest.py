"""Fixtures of the policy area: a real local HTTP server and connected TCP socket pairs."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from sockwise._log import forget_once
from sockwise.testing import serve_http


@pytest.fixture
def http_server() -> Iterator[str]:
    """A real HTTP/1.1 server on 127.0.0.1; yields its base URL."""
    with serve_http() as server:
        yield server.url


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
    forget_once("unverified-platform:")
    yield
    forget_once("missing-option:")
    forget_once("unverified-platform:")
