"""Helpers of the psycopg pool tests (imported by the test modules of this folder)."""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil
import pytest

from sockwise.testing import PostgresServer


def terminate(server: PostgresServer, app_name: str) -> int:
    """Terminate the backends whose ``application_name`` is *app_name*; return how many."""
    rows = server.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE application_name = '{app_name}'"
    )
    return int(str(rows[0][0]))


def socket_states(port: int) -> list[str]:
    """TCP states of this process's sockets connected to *port*."""
    return [
        c.status
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port
    ]


def wait_for(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll *pred* every 20 ms until true; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
