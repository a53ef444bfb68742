"""Prometheus alerting rules and a Grafana dashboard for sockwise's metrics, shipped as files.

* ``sockwise.rules.yml`` (:func:`rules_path`): alerts for CLOSE_WAIT leaks and growth,
  ephemeral ports running out (time to exhaustion) or exhausted, full accept queues, pool
  connections stalled, pools exhausted and failing checkouts. Each alert has a ``runbook``
  annotation pointing at its section of the troubleshooting guide.
* ``sockwise-dashboard.json`` (:func:`dashboard_path`): a Grafana dashboard over the same
  metrics (import it, pick the Prometheus data source).

Both use only the metric names :class:`sockwise.metrics.prometheus.SockwiseCollector` publishes.
``sockwise alerts --rules`` and ``sockwise alerts --dashboard`` print them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["ALERTS", "dashboard_path", "read_dashboard", "read_rules", "rules_path"]

_HERE: Final = Path(__file__).resolve().parent

#: The names of the alerts in ``sockwise.rules.yml``.
ALERTS: Final = (
    "SockwiseCloseWaitLeak",
    "SockwiseCloseWaitGrowing",
    "SockwiseEphemeralPortsRunningOut",
    "SockwiseEphemeralPortsExhausted",
    "SockwiseAcceptQueueFull",
    "SockwiseConnectionsStalled",
    "SockwiseStallReported",
    "SockwisePoolExhausted",
    "SockwisePoolCheckoutErrors",
)


def rules_path() -> Path:
    """The Prometheus rules file (``rule_files:`` in ``prometheus.yml``)."""
    return _HERE / "sockwise.rules.yml"


def dashboard_path() -> Path:
    """The Grafana dashboard JSON (Dashboards > New > Import)."""
    return _HERE / "sockwise-dashboard.json"


def read_rules() -> str:
    """The text of :func:`rules_path`."""
    return rules_path().read_text(encoding="utf-8")


def read_dashboard() -> str:
    """The text of :func:`dashboard_path`."""
    return dashboard_path().read_text(encoding="utf-8")
