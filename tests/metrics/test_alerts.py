"""The shipped alerting rules and dashboard: promtool checks them, and they use real metrics.

``promtool`` comes from Debian's ``prometheus`` package (``.ci/run`` installs it); without it
these tests skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sockwise import Guard
from sockwise.metrics.alerts import (
    ALERTS,
    dashboard_path,
    read_dashboard,
    read_rules,
    rules_path,
)
from sockwise.metrics.prometheus import SockwiseCollector
from sockwise.testing import require_or_skip

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
UNIT_TESTS = HERE / "promtool" / "sockwise.rules.test.yml"
METRIC = re.compile(r"\bsockwise_[a-z_]+[a-z]\b")
STAT = re.compile(r'stat\s*=~?\s*\\?"([^"\\]+)\\?"')


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    require_or_skip(None if path else "promtool not found (apt-get install prometheus)")
    assert path is not None
    return path


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def test_promtool_check_rules(promtool: str) -> None:
    result = _run([promtool, "check", "rules", str(rules_path())])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_cover_every_alert(promtool: str, tmp_path: Path) -> None:
    """Synthetic series make each alert fire (and a healthy twin stay quiet)."""
    shutil.copy(rules_path(), tmp_path / "sockwise.rules.yml")
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    result = _run([promtool, "test", "rules", UNIT_TESTS.name], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == set(ALERTS)


def test_promtool_rejects_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The check is real: a typo in an expression fails it."""
    broken = tmp_path / "broken.yml"
    broken.write_text(read_rules().replace("sockwise_close_wait_oldest_seconds > 300", "> 300"))
    assert _run([promtool, "check", "rules", str(broken)]).returncode != 0


def test_rules_list_alerts_with_runbooks_that_exist() -> None:
    rules = yaml.safe_load(read_rules())["groups"][0]["rules"]
    assert tuple(r["alert"] for r in rules) == ALERTS
    labels = set(
        re.findall(r"^\((.+)\)=$", (ROOT / "docs" / "troubleshooting.md").read_text(), re.M)
    )
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description", "runbook"} <= set(rule["annotations"])
        url, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert url == "https://sockwise.readthedocs.io/en/latest/troubleshooting.html"
        assert anchor in labels, (rule["alert"], anchor)


def test_dashboard_is_valid_grafana_json() -> None:
    dash = json.loads(read_dashboard())
    assert dash["uid"] == "sockwise"
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert METRIC.search(target["expr"]), (panel["title"], target["expr"])
    assert dashboard_path().parent == rules_path().parent


@pytest.fixture
def live_exporter(http_origin: str, postgres) -> dict[str, set[str]]:
    """A real scrape with a guard, a listener, an HTTP pool and a PostgreSQL pool in use.

    Returns ``{metric name: the values of its stat label}``.
    """
    from psycopg_pool import PoolTimeout

    from sockwise.psycopg import ConnectionPool
    from sockwise.urllib3 import PoolManager

    guard = Guard().start()
    try:
        with (
            socket.create_server(("127.0.0.1", 0), backlog=5),
            PoolManager() as pm,
            ConnectionPool(postgres.dsn, min_size=1, max_size=1, name="alerts-db") as pg,
        ):
            assert pm.request("GET", http_origin + "/").status == 200
            with pg.connection() as conn:
                conn.execute("SELECT 1")
                with pytest.raises(PoolTimeout):
                    pg.getconn(timeout=0.2)  # the only connection is taken: a checkout error
            registry = CollectorRegistry()
            registry.register(SockwiseCollector())
            text = generate_latest(registry).decode()
    finally:
        guard.stop()
    emitted: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            stats = emitted.setdefault(sample.name, set())
            if "stat" in sample.labels:
                stats.add(sample.labels["stat"])
    return emitted


@pytest.mark.postgres
def test_rules_and_dashboard_use_only_emitted_metrics(live_exporter) -> None:
    """Every ``sockwise_*`` name and ``stat`` value in the two files is in a real scrape."""
    emitted = live_exporter
    for name, text in (("rules", read_rules()), ("dashboard", read_dashboard())):
        used = set(METRIC.findall(text))
        assert used, name
        assert used <= set(emitted), (name, sorted(used - set(emitted)))
        stats = {s for group in STAT.findall(text) for s in group.split("|")}
        assert stats, name
        assert stats <= emitted["sockwise_pool_stat"], (
            name,
            sorted(stats - emitted["sockwise_pool_stat"]),
        )
