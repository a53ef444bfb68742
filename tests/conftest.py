"""Root fixtures: real PostgreSQL clusters and real network namespaces for every test area.

* ``postgres`` (session): ``SOCKWISE_TEST_DSN`` when set, else a throwaway cluster.
* ``fresh_postgres`` (function): an own cluster, for tests that stop, restart or crash it.
* ``netns_pair`` (function): two namespaces joined by a veth pair (``NetnsPair``).
* ``redis_port`` (function): a redis-server (Debian's package) on loopback; its port.

A missing prerequisite skips with a clear reason, and fails when ``CI=true``
(:func:`sockwise.testing.require_or_skip`; a ``pytest.importorskip`` of a module that is not
installed fails under ``CI=true`` too). Everything started here is cleaned up by finalizers
even when a test fails, and once more at session end. Area conftests may add fixtures but should
not redefine these names.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockwise.testing import (
    NetnsPair,
    PostgresServer,
    close_all_pairs,
    close_all_servers,
    netns_unavailable_reason,
    pg_unavailable_reason,
    remove_stale_namespaces,
    require_or_skip,
)

# The pytest-plugin tests (tests/plugin) run inner pytest sessions with pytester; pytest only
# accepts ``pytest_plugins`` in the top-level conftest.
pytest_plugins = ["pytester"]


def pytest_sessionstart(session: pytest.Session) -> None:
    # Namespaces left behind by an earlier run that was killed (its PID no longer exists).
    if os.path.isdir("/run/netns") and hasattr(os, "geteuid") and os.geteuid() == 0:
        remove_stale_namespaces("sw")


def _missing_module_on_ci(report: pytest.CollectReport | pytest.TestReport) -> bool:
    """A skip by ``pytest.importorskip`` (a module not installed) while ``CI=true``."""
    return (
        os.environ.get("CI") == "true"
        and report.skipped
        and "could not import" in str(report.longrepr)
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collectreport(report: pytest.CollectReport) -> None:
    # A module-level importorskip skips the whole file at collection: on CI that is a failure.
    if _missing_module_on_ci(report):
        report.outcome = "failed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if _missing_module_on_ci(report):
        report.outcome = "failed"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    close_all_servers()
    close_all_pairs()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server shared by the session (do not stop or restart it)."""
    dsn = os.environ.get("SOCKWISE_TEST_DSN")
    if dsn:
        yield PostgresServer.from_dsn(dsn)
        return
    yield from own_postgres()


@pytest.fixture
def fresh_postgres() -> Iterator[PostgresServer]:
    """A cluster of this test's own: stop, restart, crash or terminate backends freely."""
    yield from own_postgres()


@pytest.fixture
def netns_pair() -> Iterator[NetnsPair]:
    """A client and a server network namespace joined by a veth pair (deleted afterwards)."""
    yield from own_netns_pair()


def _free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """A redis-server (Debian's package) on loopback, started for this test; yields its port."""
    binary = shutil.which("redis-server")
    require_or_skip(
        None if binary else "redis-server is not installed (apt-get install redis-server)"
    )
    assert binary is not None
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:  # bounded: until the port answers or the deadline
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"redis-server did not start: {proc.stderr}") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def own_postgres() -> Iterator[PostgresServer]:
    """Start a throwaway cluster (skip, or fail under CI, when impossible); close it after."""
    require_or_skip(pg_unavailable_reason())
    with PostgresServer.start() as server:
        yield server


def own_netns_pair() -> Iterator[NetnsPair]:
    """Create a namespace pair (skip, or fail under CI, when impossible); delete it after."""
    require_or_skip(netns_unavailable_reason())
    with NetnsPair.create() as pair:
        yield pair
