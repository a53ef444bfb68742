"""``sockwise alerts``: the shipped rules and dashboard, printed or located."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from cli_support import RunCli

from sockwise.metrics.alerts import ALERTS, dashboard_path, rules_path


def test_alerts_prints_the_paths(run_cli: RunCli) -> None:
    result = run_cli("alerts")
    assert result.returncode == 0, result.stderr
    rules, dashboard = (Path(p) for p in result.stdout.splitlines())
    assert (rules, dashboard) == (rules_path(), dashboard_path())
    assert rules.is_file() and dashboard.is_file()
    assert run_cli("alerts", "--path").stdout == result.stdout


def test_alerts_rules_and_dashboard_contents(run_cli: RunCli) -> None:
    rules = yaml.safe_load(run_cli("alerts", "--rules").stdout)
    assert [r["alert"] for r in rules["groups"][0]["rules"]] == list(ALERTS)
    dashboard = json.loads(run_cli("alerts", "--dashboard").stdout)
    assert dashboard["uid"] == "sockwise"


def test_alerts_options_exclude_each_other(run_cli: RunCli) -> None:
    result = run_cli("alerts", "--rules", "--dashboard")
    assert result.returncode == 2
    assert "not allowed with" in result.stderr
