"""The suite's throwaway PostgreSQL clusters never trust every local user (issue 8)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sockwise.testing import PostgresServer

pytestmark = pytest.mark.postgres


def _without_password(dsn: str) -> str:
    params = conninfo_to_dict(dsn)
    params.pop("password", None)
    return make_conninfo(**params, passfile="/nonexistent", connect_timeout=5)


def test_cluster_demands_a_password_over_tcp_and_unix(fresh_postgres: PostgresServer) -> None:
    """Only scram-sha-256 rules; no password means no connection, on TCP and the Unix socket."""
    rules = fresh_postgres.execute(
        "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE error IS NULL"
    )
    assert {r[0] for r in rules} == {"scram-sha-256"}
    assert fresh_postgres.password and f"password={fresh_postgres.password}" in fresh_postgres.dsn
    for dsn in (fresh_postgres.dsn, fresh_postgres.admin_dsn):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(_without_password(dsn)).close()
        with psycopg.connect(dsn, connect_timeout=5) as conn:  # with it: in
            assert conn.execute("SELECT 1").fetchone() == (1,)
    wrong = make_conninfo(fresh_postgres.dsn, password="not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5).close()
