"""sockwise.testing.PostgresServer itself: restart, crash, terminate, netns, external DSNs."""

from __future__ import annotations

import os

import pytest

from sockwise.testing import (
    NetnsPair,
    PostgresServer,
    PostgresUnavailableError,
    find_pg_bin,
    pg_unavailable_reason,
    require_or_skip,
)

pytestmark = pytest.mark.postgres


def test_find_pg_bin_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    require_or_skip(pg_unavailable_reason())
    found = find_pg_bin()
    assert found is not None and os.path.isfile(os.path.join(found, "initdb"))
    monkeypatch.setenv("SOCKWISE_PG_BIN", str(tmp_path))
    assert find_pg_bin() is None
    assert "not found in" in (pg_unavailable_reason() or "")


def test_restart_crash_and_terminate(fresh_postgres: PostgresServer) -> None:
    import psycopg

    pg = fresh_postgres
    assert pg.datadir is not None and not pg.external
    with psycopg.connect(pg.dsn) as a, psycopg.connect(pg.dsn) as b:
        assert pg.terminate_backends() == 2
        for conn in (a, b):
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
    old_pid = pg.postmaster_pid
    pg.restart("fast")
    assert pg.postmaster_pid not in (None, old_pid)
    pg.stop("immediate")
    assert pg.postmaster_pid is None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.dsn, connect_timeout=2).close()
    pg.start_again()
    with psycopg.connect(pg.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(ValueError, match="mode='sideways'"):
        pg.stop("sideways")
    root = os.path.dirname(pg.datadir)
    pg.close()
    pg.close()
    assert not os.path.exists(root)


def test_external_server_cannot_be_stopped(postgres: PostgresServer) -> None:
    ext = PostgresServer.from_dsn(postgres.dsn)
    assert ext.external and ext.port == postgres.port
    assert ext.execute("SELECT 2") == [(2,)]
    with pytest.raises(PostgresUnavailableError, match=r"stop\(\) needs a cluster started by"):
        ext.stop()
    with pytest.raises(ValueError, match="not key=value"):
        PostgresServer.from_dsn("postgresql://localhost/db")


@pytest.mark.netns
def test_cluster_inside_a_network_namespace(netns_pair: NetnsPair) -> None:
    import psycopg

    require_or_skip(pg_unavailable_reason())
    with PostgresServer.start(netns=netns_pair.server_ns, host=netns_pair.server_addr) as pg:

        def query() -> object:
            with psycopg.connect(pg.dsn, connect_timeout=5) as conn:
                row = conn.execute("SELECT inet_client_addr()::text").fetchone()
                assert row is not None
                return row[0]

        assert netns_pair.run_in_client(query, timeout=30) == f"{netns_pair.client_addr}/32"
        assert pg.execute("SELECT 1") == [(1,)]  # admin path: the Unix socket, from the host
