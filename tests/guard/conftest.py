"""Fixtures of the guard tests: local listeners and a clean guard state per test."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from sockwise import _log
from sockwise.guard import _claims, _source, running_guards


@pytest.fixture(autouse=True)
def _clean_guard_state() -> Iterator[None]:
    yield
    for guard in running_guards():
        guard.stop()
    _source.set_reader(None)
    _claims.forget_claims("cw")
    _claims.forget_claims("churn")
    _claims.forget_claims("acceptq")
    _claims.forget_claims("summary")
    _log.forget_once("guard")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback listener (backlog 128) that the test accepts from itself."""
    srv = socket.create_server(("127.0.0.1", 0), backlog=128)
    try:
        yield srv
    finally:
        srv.close()
