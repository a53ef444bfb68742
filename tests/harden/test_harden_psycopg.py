"""The drop-in on psycopg 3 (sync, async, pool), checked on libpq's real socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import psycopg
import pytest

import sockwise
from sockwise.testing import read_socket_options

pytestmark = pytest.mark.postgres
TCP = socket.IPPROTO_TCP
POLICY = sockwise.Policy(keepalive_idle=21, keepalive_interval=2, keepalive_count=3)


def libpq_opts(conn: psycopg.Connection | psycopg.AsyncConnection) -> dict[str, int]:
    """Options of the socket libpq opened (libpq sets TCP_NODELAY itself: left out)."""
    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
        options = read_socket_options(sock)
    del options["TCP_NODELAY"]
    return options


HARDENED = {
    "SO_KEEPALIVE": 1,
    "TCP_KEEPIDLE": 21,
    "TCP_KEEPINTVL": 2,
    "TCP_KEEPCNT": 3,
    "TCP_USER_TIMEOUT": 27000,
}


def test_connect_follows_policy_until_unharden(postgres):
    """psycopg.connect (bound at import) gets the policy's keywords; unharden removes them."""
    sockwise.harden(POLICY, guard=False)
    with psycopg.connect(postgres.dsn) as conn:
        assert libpq_opts(conn) == HARDENED
        assert conn.info.get_parameters()["keepalives_idle"] == "21"
        assert conn.execute("select 1").fetchone() == (1,)
    sockwise.unharden()
    with psycopg.connect(postgres.dsn) as conn:
        got = libpq_opts(conn)
    assert got["TCP_KEEPIDLE"] != 21
    assert got["TCP_USER_TIMEOUT"] == 0


def test_caller_keywords_win(postgres):
    """Keywords the caller set (as kwargs or in the conninfo string) win over the policy."""
    sockwise.harden(POLICY, guard=False)
    with psycopg.connect(postgres.dsn, keepalives_idle=44) as conn:
        assert libpq_opts(conn)["TCP_KEEPIDLE"] == 44
        assert libpq_opts(conn)["TCP_KEEPINTVL"] == 2
    with psycopg.connect(postgres.dsn + " tcp_user_timeout=1234") as conn:
        assert libpq_opts(conn)["TCP_USER_TIMEOUT"] == 1234


def test_pgconnect_timeout_env_wins(postgres, monkeypatch):
    """PGCONNECT_TIMEOUT set by the operator is not overridden by the policy's connect_timeout."""
    sockwise.harden(POLICY, guard=False)
    params = psycopg.Connection._get_connection_params(postgres.dsn)
    assert params["connect_timeout"] == 10
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "3")
    params = psycopg.Connection._get_connection_params(postgres.dsn)
    assert "connect_timeout" not in params


@pytest.mark.asyncio
async def test_async_connect_follows_policy(postgres):
    """psycopg.AsyncConnection.connect gets the policy too."""
    sockwise.harden(POLICY, guard=False)
    conn = await psycopg.AsyncConnection.connect(postgres.dsn)
    try:
        assert libpq_opts(conn) == HARDENED
    finally:
        await conn.close()


def test_psycopg_pool_connections_follow_policy(postgres):
    """Connections made by a plain psycopg_pool pool are hardened too."""
    from psycopg_pool import ConnectionPool

    sockwise.harden(POLICY, guard=False)
    with ConnectionPool(postgres.dsn, min_size=1, max_size=1, open=True) as pool:
        with pool.connection(timeout=10) as conn:
            assert libpq_opts(conn) == HARDENED


def test_exact_restore():
    """unharden() puts psycopg's own class methods back."""
    before = (
        psycopg.Connection.__dict__["_get_connection_params"],
        psycopg.AsyncConnection.__dict__["_get_connection_params"],
    )
    sockwise.harden(guard=False)
    assert psycopg.Connection.__dict__["_get_connection_params"] is not before[0]
    sockwise.unharden()
    after = (
        psycopg.Connection.__dict__["_get_connection_params"],
        psycopg.AsyncConnection.__dict__["_get_connection_params"],
    )
    assert after == before


def test_psycopg_imported_after_harden(postgres):
    """harden() first, psycopg imported later (fresh interpreter): the import is patched."""
    code = textwrap.dedent(
        f"""
        import os, socket, sys
        import sockwise
        sockwise.harden(sockwise.Policy(keepalive_idle=29), guard=False)
        assert "psycopg" not in sys.modules
        from psycopg import connect
        with connect({postgres.dsn!r}) as conn:
            with socket.socket(fileno=os.dup(conn.pgconn.socket)) as s:
                print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "29"
