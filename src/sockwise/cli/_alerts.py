"""``sockwise alerts``: print the Prometheus rules or the Grafana dashboard sockwise ships."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sockwise alerts``."""
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--rules", action="store_true", help="print the Prometheus alerting rules")
    what.add_argument("--dashboard", action="store_true", help="print the Grafana dashboard JSON")
    what.add_argument(
        "--path", action="store_true", help="print where both files are installed (the default)"
    )


def cmd_alerts(args: argparse.Namespace) -> int:
    """Print the rules (``--rules``), the dashboard (``--dashboard``) or their paths."""
    from sockwise.metrics import alerts

    if args.rules:
        sys.stdout.write(alerts.read_rules())
    elif args.dashboard:
        sys.stdout.write(alerts.read_dashboard())
    else:
        print(alerts.rules_path())
        print(alerts.dashboard_path())
    return 0
