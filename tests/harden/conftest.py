"""Fixtures for the drop-in tests: an unhardened process and a local keep-alive HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import sockwise
from sockwise.testing import LocalHTTPServer, serve_http


@pytest.fixture(autouse=True)
def _unhardened() -> Iterator[None]:
    """Every test starts and ends with the process unhardened."""
    sockwise.unharden()
    yield
    sockwise.unharden()


@pytest.fixture
def http_server() -> Iterator[LocalHTTPServer]:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 recording each accepted socket's options."""
    with serve_http() as server:
        yield server
