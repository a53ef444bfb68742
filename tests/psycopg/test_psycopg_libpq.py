"""``tcp_user_timeout`` only where libpq knows it (libpq 12+), in harden() and in the pools.

libpq older than 12 rejects a conninfo naming ``tcp_user_timeout`` ("invalid connection option");
the libpq here is newer, so an older one is stood in for by ``psycopg.pq.version`` (another
platform, the one thing tests may fake); every connection is still made to the real server.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Iterator

import psycopg
import pytest

import sockwise
from sockwise.harden._psycopg import supported
from sockwise.psycopg import ConnectionPool
from sockwise.psycopg._common import libpq_supported
from sockwise.testing import PostgresServer

pytestmark = pytest.mark.postgres
POLICY = sockwise.Policy(keepalive_idle=21, keepalive_interval=2, keepalive_count=3)


def _user_timeout(conn: psycopg.Connection) -> int:
    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)


@pytest.fixture
def libpq_11(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """psycopg reports libpq 11.22 for the duration of the test; unhardened before and after."""
    sockwise.unharden()
    monkeypatch.setattr(psycopg.pq, "version", lambda: 110022)
    yield
    sockwise.unharden()


def test_the_real_libpq_gets_the_keyword(postgres: PostgresServer) -> None:
    """The libpq in use (12+) keeps tcp_user_timeout: the policy reaches the socket."""
    assert psycopg.pq.version() >= 120000
    params = POLICY.libpq_params()
    assert supported(params) == params == libpq_supported(params)
    with psycopg.connect(postgres.dsn, **supported(params)) as conn:
        assert _user_timeout(conn) == params["tcp_user_timeout"] == 27000


def test_gate_by_version() -> None:
    """Below libpq 12 only tcp_user_timeout goes; every other keyword stays."""
    params = POLICY.libpq_params()
    for gate in (supported, libpq_supported):
        assert gate(params, 119999) == {k: v for k, v in params.items() if k != "tcp_user_timeout"}
        assert gate(params, 120000) == params


def test_harden_leaves_it_out_on_old_libpq(postgres: PostgresServer, libpq_11: None) -> None:
    """harden() on an old libpq: no tcp_user_timeout keyword, the rest of the policy applies."""
    sockwise.harden(POLICY, guard=False)
    with psycopg.connect(postgres.dsn) as conn:
        params = conn.info.get_parameters()
        assert "tcp_user_timeout" not in params
        assert params["keepalives_idle"] == "21"
        assert _user_timeout(conn) == 0


def test_pool_leaves_it_out_on_old_libpq(postgres: PostgresServer, libpq_11: None) -> None:
    """A sockwise pool on an old libpq: connections without tcp_user_timeout, keepalives set."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool: ConnectionPool = ConnectionPool(postgres.dsn, min_size=1, policy=POLICY, open=False)
    with pool, pool.connection(timeout=10) as conn:
        params = conn.info.get_parameters()
        assert "tcp_user_timeout" not in params
        assert params["keepalives_idle"] == "21"
        assert _user_timeout(conn) == 0
