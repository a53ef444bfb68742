"""A pytest plugin loaded into urllib3's own test suite by ``run_urllib3_suite.py`` (``-p``).

``SWCOMPAT_MODE`` picks what runs under urllib3's tests:

* ``bare``: nothing (the baseline);
* ``harden``: plain :func:`sockwise.harden` (default policy, guard on), as an application would;
* ``dropin``: the ``sockwise.urllib3`` classes substituted for urllib3's ``PoolManager``,
  ``ProxyManager``, ``HTTPConnectionPool`` and ``HTTPSConnectionPool`` everywhere urllib3 and its
  tests look them up.

``SWCOMPAT_OUT`` names a JSON file that receives ``{nodeid: "passed" | "failed" | "skipped"}``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

_results: dict[str, str] = {}


def _substitute_classes() -> None:
    import urllib3
    import urllib3.connectionpool as connectionpool
    import urllib3.poolmanager as poolmanager

    import sockwise.urllib3 as swu

    names = ("PoolManager", "ProxyManager", "HTTPConnectionPool", "HTTPSConnectionPool")
    for name in names:
        ours = getattr(swu, name)
        for module in (urllib3, connectionpool, poolmanager):
            if hasattr(module, name):
                setattr(module, name, ours)
    poolmanager.pool_classes_by_scheme["http"] = swu.HTTPConnectionPool
    poolmanager.pool_classes_by_scheme["https"] = swu.HTTPSConnectionPool


def pytest_configure(config: pytest.Config) -> None:
    mode = os.environ.get("SWCOMPAT_MODE", "bare")
    if mode == "harden":
        import sockwise

        sockwise.harden()
    elif mode == "dropin":
        _substitute_classes()
    elif mode != "bare":
        raise pytest.UsageError(f"SWCOMPAT_MODE={mode!r}: allowed bare, harden, dropin")


def pytest_runtest_logreport(report: Any) -> None:
    nodeid = report.nodeid
    if report.failed:
        _results[nodeid] = "failed"
    elif report.skipped and _results.get(nodeid) != "failed":
        _results[nodeid] = "skipped"
    elif report.when == "call" and report.passed and nodeid not in _results:
        _results[nodeid] = "passed"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    out = os.environ.get("SWCOMPAT_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(_results, f, indent=0, sort_keys=True)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # A test that failed may leave a thread blocked for ever (urllib3's HTTP/2 probe tests do);
    # the results are written: do not wait for it at interpreter exit.
    if os.environ.get("SWCOMPAT_OUT"):
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
