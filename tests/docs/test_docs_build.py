"""The documentation builds with warnings as errors, and documents every public name."""

from __future__ import annotations

import importlib
import json
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import sockwise_bench  # noqa: E402  (docs/_ext, put on the path above)
import sockwise_exports  # noqa: E402

#: Public modules whose ``__all__`` must appear in the API reference, when they exist.
PUBLIC_MODULES = (
    "sockwise",
    "sockwise.urllib3",
    "sockwise.psycopg",
    "sockwise.guard",
    "sockwise.metrics",
    "sockwise.metrics.prometheus",
    "sockwise.metrics.opentelemetry",
    "sockwise.cli",
    "sockwise.requests",
    "sockwise.httpx",
    "sockwise.aiohttp",
    "sockwise.testing",
)
NOT_DOCUMENTED = {"__version__"}  # in __all__, but a plain string, not API to describe


def read_inventory(path: Path) -> set[str]:
    """The object names in a Sphinx ``objects.inv`` (format version 2)."""
    raw = path.read_bytes()
    lines = raw.split(b"\n", 4)
    assert lines[0].startswith(b"# Sphinx inventory version 2"), lines[0]
    body = zlib.decompress(lines[4]).decode("utf-8")
    return {line.split(" ", 1)[0] for line in body.splitlines() if line.strip()}


@pytest.mark.slow
def test_docs_build_without_warnings(built_docs: Path) -> None:
    """sphinx-build -W succeeds and renders the pages and the autodoc reference."""
    assert (built_docs / "index.html").is_file()
    reference = (built_docs / "reference" / "sockwise.html").read_text(encoding="utf-8")
    assert "dead_peer_bound" in reference  # autodoc really ran
    for page in ("quickstart", "troubleshooting", "benchmarks", "concepts/keepalive"):
        assert (built_docs / f"{page}.html").is_file(), page


@pytest.mark.slow
def test_every_public_name_is_documented(built_docs: Path) -> None:
    """Each name in the ``__all__`` of each public module is in the API reference."""
    documented = read_inventory(built_docs / "objects.inv")
    missing: list[str] = []
    for modname in PUBLIC_MODULES:
        try:
            module = importlib.import_module(modname)
        except ImportError:
            continue  # not written yet, or its optional dependency is absent
        for name in getattr(module, "__all__", ()):
            if name not in NOT_DOCUMENTED and f"{modname}.{name}" not in documented:
                missing.append(f"{modname}.{name}")
    assert not missing, f"public names missing from docs/reference: {missing}"


def test_bench_results_single_file(tmp_path: Path) -> None:
    """Only ``FILE#NAME`` of one results file is rendered; an old per-benchmark file is refused."""
    (tmp_path / "harden.json").write_text(json.dumps({"rows": [{"variant": "bare", "us": 37.0}]}))
    with pytest.raises(ValueError, match="expected FILE#NAME"):
        sockwise_bench.load_result("harden.json", tmp_path)
    with pytest.raises(ValueError, match="not a sockwise benchmark results file"):
        sockwise_bench.load_result("harden.json#harden", tmp_path)
    assert sockwise_bench.load_result("absent.json#harden", tmp_path) is None


def test_bench_results_combined_file(tmp_path: Path) -> None:
    """``FILE#NAME`` picks one benchmark of a ``sockwise bench`` file, only when it succeeded."""
    from sockwise._bench import results

    payload = results.build(
        [
            {"name": "nodelay", "status": "ok", "note": "", "result": {"rows": [{"case": "x"}]}},
            {"name": "deadpeer", "status": "skipped", "note": "needs root", "result": {}},
        ],
        quick=True,
        command="sockwise bench --quick",
    )
    (tmp_path / "sockwise-bench.json").write_text(json.dumps(payload))
    found = sockwise_bench.load_result("sockwise-bench.json#nodelay", tmp_path)
    assert found is not None
    assert found[0]["rows"] == [{"case": "x"}]
    assert found[0]["quick"] is True  # run-wide fields are kept
    assert found[0]["machine"]["cores"] == payload["machine"]["cores"]
    assert sockwise_bench.load_result("sockwise-bench.json#deadpeer", tmp_path) is None
    assert sockwise_bench.load_result("sockwise-bench.json#guard", tmp_path) is None


def test_bench_table_formatting() -> None:
    """Cells are readable: thousands separated, small floats to four digits, lists left out."""
    assert sockwise_bench.format_value(4238.1) == "4,238"
    assert sockwise_bench.format_value(1.26634) == "1.266"
    assert sockwise_bench.format_value(2000) == "2,000"
    assert sockwise_bench.format_value(True) == "yes"
    assert sockwise_bench.format_value(None) == ""
    rows = [{"case": "a", "qps": 1.0, "round_qps": [1, 2]}, {"case": "b", "p99": 2.0}]
    assert sockwise_bench.table_columns(rows) == ["case", "qps", "p99"]


def test_exports_directive_lines() -> None:
    """Names only the package exports get autodoc; re-exports of a public module get an alias."""
    import sockwise.guard

    assert sockwise_exports.autodoc_lines("sockwise", ["harden"]) == [
        ".. autofunction:: sockwise.harden",
        "",
    ]
    assert sockwise_exports.autodoc_lines("sockwise", ["SockwiseWarning"])[0] == (
        ".. autoexception:: sockwise.SockwiseWarning"
    )
    guard = sockwise.guard.Guard
    homes = ["sockwise.urllib3", "sockwise.guard"]
    assert sockwise_exports.public_home("Guard", guard, homes) == "sockwise.guard"
    assert sockwise_exports.public_home("Guard", guard, ["sockwise.urllib3"]) is None
    lines = sockwise_exports.autodoc_lines("sockwise", ["Policy"], ["sockwise.policy"])
    assert lines[:2] == [".. py:class:: Policy", "   :module: sockwise"]
    assert "   Alias of :class:`sockwise.policy.Policy`." in lines
