"""Run urllib3's own test suite bare, under ``sockwise.harden()`` and with the drop-in classes.

urllib3's sdist ships its tests (``test/``) and their servers (``dummyserver/``). This script
fetches the sdist of the *installed* urllib3 version with ``pip download`` into a cache directory,
builds an isolated virtualenv there with urllib3's test requirements (its ``test`` dependency
group, plus ``trustme``/``cryptography``/``pyopenssl``/``idna`` of its ``dev`` group) and
sockwise, then runs the chosen tests three ways (see ``urllib3_suite_plugin.py``) and compares
the pass/fail sets with the bare run. Tests that fail only in one mode are re-run (both ways) to
rule out flakiness; the remaining differences must be exactly those listed, with their reason,
in ``docs/reference/differences.md``. Exit status 0 when they are, 1 otherwise, 2 when the suite
cannot be prepared.

Usage::

    python tests/compat/run_urllib3_suite.py [--subset ci|full] [--modes harden,dropin]
        [--cache DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DOCS = ROOT / "docs" / "reference" / "differences.md"
DEFAULT_CACHE = ROOT / ".cache" / "urllib3-suite"
MODES = ("harden", "dropin")

#: The tests CI runs: pools, pool managers, proxies and socket options.
CI_SUBSET = (
    "test/test_connectionpool.py",
    "test/test_poolmanager.py",
    "test/test_proxymanager.py",
    "test/with_dummyserver/test_connectionpool.py",
    "test/with_dummyserver/test_poolmanager.py",
    "test/with_dummyserver/test_proxy_poolmanager.py",
    "test/with_dummyserver/test_socketlevel.py",
)
#: Packages from urllib3's ``dev`` group its tests import, besides the ``test`` group.
DEV_EXTRAS = ("trustme", "cryptography", "pyopenssl", "idna")
#: Seconds a single urllib3 test may take (pytest-timeout) before it counts as failed.
TEST_TIMEOUT = 60
#: How many times a test that differs from the bare run is re-run (both ways) before it counts.
RERUNS = 2


class PrepareError(RuntimeError):
    """The sdist or the virtualenv could not be made (no network, pip failure, ...)."""


def _run(cmd: list[str], **kwargs: object) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise PrepareError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def prepare(cache: Path, version: str) -> tuple[Path, Path]:
    """The unpacked sdist directory and the virtualenv's python, made if missing."""
    cache.mkdir(parents=True, exist_ok=True)
    src = cache / f"urllib3-{version}"
    if not (src / "test").is_dir() or not (src / "dummyserver").is_dir():
        sdist = cache / f"urllib3-{version}.tar.gz"
        if not sdist.exists():
            _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
                  "--no-deps", f"urllib3=={version}", "-d", str(cache)])  # fmt: skip
        with tarfile.open(sdist) as tar:
            tar.extractall(cache, filter="data")
    venv = cache / f"venv-{version}"
    python = venv / "bin" / "python"
    stamp = venv / ".sockwise-ready"
    if not stamp.exists():
        groups = tomllib.loads((src / "pyproject.toml").read_text())["dependency-groups"]
        reqs = [r for r in groups["test"] if isinstance(r, str)]
        _run([sys.executable, "-m", "venv", "--clear", str(venv)])
        _run([str(python), "-m", "pip", "install", "--quiet", f"urllib3=={version}", *reqs,
              *DEV_EXTRAS, "-e", str(ROOT)])  # fmt: skip
        stamp.write_text(version)
    return src, python


def run_pytest(src: Path, python: Path, mode: str, tests: list[str]) -> dict[str, str]:
    """Run *tests* of urllib3's suite in *mode*; return ``{nodeid: outcome}``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKWISE_")}
        env.update(SWCOMPAT_MODE=mode, SWCOMPAT_OUT=str(out), PYTHONPATH=str(HERE))
        env.pop("PYTEST_ADDOPTS", None)
        # pytest-socket (a test requirement) resets socket.socket.connect after every test to
        # the method it saw at import, which would silently drop harden()'s hook: not loaded.
        cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:socket", "-p",
               "urllib3_suite_plugin", f"--timeout={TEST_TIMEOUT}", *tests]  # fmt: skip
        try:
            subprocess.run(cmd, cwd=src, env=env, capture_output=True, check=False, timeout=1800)
        except subprocess.TimeoutExpired as exc:
            raise PrepareError(f"pytest in mode {mode} did not finish: {' '.join(cmd)}") from exc
        if not out.exists():
            raise PrepareError(f"pytest in mode {mode} wrote no results: {' '.join(cmd)}")
        results: dict[str, str] = json.loads(out.read_text())
        return results


def documented_differences(path: Path = DOCS) -> dict[str, dict[str, str]]:
    """``{mode: {nodeid: reason}}`` from the table rows of the differences page."""
    found: dict[str, dict[str, str]] = {mode: {} for mode in MODES}
    row = re.compile(r"^\|\s*(harden|dropin)\s*\|\s*`([^`]+)`\s*\|(.+)\|\s*$")
    for line in path.read_text().splitlines():
        m = row.match(line)
        if m:
            found[m.group(1)][m.group(2)] = m.group(3).strip()
    return found


def _failing(results: dict[str, str]) -> set[str]:
    return {nodeid for nodeid, outcome in results.items() if outcome == "failed"}


def compare(
    src: Path, python: Path, tests: list[str], modes: list[str]
) -> tuple[dict[str, dict[str, list[str]]], dict[str, float]]:
    """Run bare and each mode; return per mode the confirmed differences and the timings."""
    timings: dict[str, float] = {}
    start = time.monotonic()
    bare = run_pytest(src, python, "bare", tests)
    timings["bare"] = time.monotonic() - start
    report: dict[str, dict[str, list[str]]] = {}
    for mode in modes:
        start = time.monotonic()
        got = run_pytest(src, python, mode, tests)
        timings[mode] = time.monotonic() - start
        lost = _failing(got) - _failing(bare)  # pass (or skip) bare, fail in mode
        gained = _failing(bare) - _failing(got)
        for _ in range(RERUNS):
            if not lost and not gained:
                break
            ids = sorted(lost | gained)
            again_bare = run_pytest(src, python, "bare", ids)
            again_mode = run_pytest(src, python, mode, ids)
            lost &= _failing(again_mode) - _failing(again_bare)
            gained &= _failing(again_bare) - _failing(again_mode)
        report[mode] = {"lost": sorted(lost), "gained": sorted(gained)}
    return report, timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", choices=("ci", "full"), default="ci")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", type=Path, help="write the comparison here")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes={args.modes!r}: allowed a comma-separated subset of {MODES}")
    version = importlib.metadata.version("urllib3")
    try:
        src, python = prepare(args.cache, version)
    except (PrepareError, OSError, KeyError) as exc:
        print(f"cannot prepare urllib3 {version}'s test suite: {exc}", file=sys.stderr)
        return 2
    tests = list(CI_SUBSET) if args.subset == "ci" else ["test"]
    report, timings = compare(src, python, tests, modes)
    expected = documented_differences()
    ok = True
    for mode in modes:
        lost = set(report[mode]["lost"])
        # A documented difference is expected only where the subset ran its test.
        wanted = {t for t in expected[mode] if any(t.startswith(p) for p in tests)}
        extra, missing = lost - wanted, wanted - lost
        print(f"{mode}: {len(lost)} test(s) fail only here, {len(wanted)} documented; "
              f"{len(report[mode]['gained'])} pass only here ({timings[mode]:.0f} s)")  # fmt: skip
        for t in sorted(extra):
            print(f"  UNDOCUMENTED: {t}")
        for t in sorted(missing):
            print(f"  documented but passes: {t}")
        for t in report[mode]["gained"]:
            print(f"  passes only under {mode}: {t}")
        ok = ok and not extra and not missing
    print(f"urllib3 {version}, subset {args.subset}, bare run {timings['bare']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(
            {"urllib3": version, "subset": args.subset, "report": report, "timings": timings},
            indent=2))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
