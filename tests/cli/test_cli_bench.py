"""``sockwise bench`` end to end: the runner, the table, the JSON and the plot."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import RunCli

from sockwise._bench import results
from sockwise._bench.runner import BENCHMARKS, repo_results_dir
from sockwise.testing import netns_unavailable_reason, require_or_skip

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_bench_quick_nodelay_saves_json_and_plot(run_cli: RunCli, tmp_path: Path) -> None:
    """A quick nodelay run prints a table and saves JSON (given path) and a PNG (default path)."""
    result = run_cli(
        "bench", "--quick", "--only", "nodelay", "--json", "out.json", cwd=str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "[1/1] nodelay: running" in result.stderr  # plain progress lines: not a terminal
    assert "[1/1] nodelay: ok in" in result.stderr
    assert "2 writes + read, Nagle on" in result.stdout
    assert "http.server keep-alive" in result.stdout
    data = json.loads((tmp_path / "out.json").read_text())
    assert results.problems(data) == []
    assert data["quick"] is True
    assert data["command"] == "sockwise bench --quick"
    (bench,) = data["benchmarks"]
    assert bench["name"] == "nodelay"
    assert bench["status"] == "ok"
    rows = {r["case"]: r for r in bench["result"]["rows"]}
    assert set(rows) >= {
        "2 writes + read, Nagle on",
        "2 writes + read, TCP_NODELAY",
        "http.server keep-alive",
        "http.server + sockwise.harden()",
    }
    for row in rows.values():
        assert row["n"] > 0
        assert 0 < row["median_ms"] <= row["p90_ms"]
    # A partial run never writes the file the README renders: its plot is named after it.
    plot = tmp_path / "sockwise-bench-quick-nodelay.png"
    assert plot.read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "sockwise-bench-quick.png").exists()
    assert not (tmp_path / "sockwise-bench.png").exists()


def test_bench_only_rejects_unknown_names(run_cli: RunCli, tmp_path: Path) -> None:
    """``--only`` with an unknown name is a usage error listing the choices."""
    result = run_cli("bench", "--only", "nodelay,warp", cwd=str(tmp_path))
    assert result.returncode == 2
    assert "unknown benchmark(s) warp" in result.stderr
    assert ",".join(BENCHMARKS) in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing saved
    empty = run_cli("bench", "--only", ",", cwd=str(tmp_path))
    assert empty.returncode == 2
    assert "(none given)" in empty.stderr


def test_bench_results_dir_in_repo(tmp_path: Path) -> None:
    """Inside a sockwise checkout results go to benchmarks/results, elsewhere to the cwd."""
    here = Path(__file__).resolve()
    repo = here.parents[2]
    assert repo_results_dir(str(here.parent)) == str(repo / "benchmarks" / "results")
    assert repo_results_dir(str(tmp_path)) == str(tmp_path)


def test_bench_normalize_result_shapes() -> None:
    """Rows labelled by another key, and nested results, become rows with a case."""
    from sockwise._bench.runner import Outcome, normalize, result_rows

    rows = normalize({"rows": [{"variant": "bare", "us_per_connection": 36.9}]})
    assert rows["rows"][0]["case"] == "bare"
    nested = normalize(
        {
            "results": {
                "http": {"pooled": {"requests_per_s": 3000.0}, "fresh": {"requests_per_s": 9.5}}
            }
        }
    )
    assert [r["case"] for r in nested["rows"]] == ["http pooled", "http fresh"]
    assert nested["metric"] == "requests_per_s"
    table = result_rows(Outcome("http", "ok", 1.0, nested))
    assert table[0] == ("http", "http pooled", "3000 /s (requests)")
    assert result_rows(Outcome("guard", "missing", note="not installed")) == [
        ("guard", "missing", "not installed")
    ]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_bench_balanced_orders(n: int) -> None:
    """Interleaved variants hold every position equally often and follow each other alike."""
    import itertools
    from collections import Counter

    from sockwise._bench.runner import balanced_orders

    orders = balanced_orders(n)
    assert all(sorted(order) == list(range(n)) for order in orders)
    positions = Counter((pos, v) for order in orders for pos, v in enumerate(order))
    assert set(positions.values()) == {len(orders) // n}
    follows = Counter((a, b) for order in orders for a, b in itertools.pairwise(order))
    if n > 1:  # every ordered pair of two variants, equally often (a rotation fails this)
        assert len(follows) == n * (n - 1)
        assert len(set(follows.values())) == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bench_progress_line_on_terminal() -> None:
    """On a terminal the progress line is redrawn in place; the final line is plain."""
    from sockwise._bench.runner import Outcome
    from sockwise.cli._bench import Progress

    out = _Terminal()
    progress = Progress(out)
    progress(1, 2, "nodelay", None)
    deadline = time.monotonic() + 10
    while "nodelay |" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    progress(1, 2, "nodelay", Outcome("nodelay", "ok", 1.5, note="fine"))
    text = out.getvalue()
    assert "\r\x1b[2K[1/2] nodelay | 0 s" in text
    assert text.endswith("\r\x1b[2K[1/2] nodelay: ok in 1.5 s - fine\n")
    assert progress._thread is None


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.netns
def test_bench_quick_runs_every_benchmark(run_cli: RunCli, tmp_path: Path) -> None:
    """The README's main job, `sockwise bench --quick`, runs every benchmark here, side by side.

    Each one must finish "ok" (none missing, none skipped, none failed), print its own table,
    and land in the JSON and the plot. One run checks them all (about 60 s here): the gaps
    benchmark renews exactly after the default idle limits, the dead-peer one in namespaces.
    """
    from sockwise.testing import pg_unavailable_reason

    require_or_skip(pg_unavailable_reason())
    require_or_skip(netns_unavailable_reason())
    result = run_cli(
        "bench",
        "--quick",
        "--json",
        "all.json",
        "--plot",
        "all.png",
        cwd=str(tmp_path),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((tmp_path / "all.json").read_text())
    statuses = {b["name"]: (b["status"], b["note"]) for b in data["benchmarks"]}
    expected = {n for n in BENCHMARKS if n != "https"}
    assert set(statuses) == expected
    assert {n: s for n, (s, _) in statuses.items() if s != "ok"} == {}, statuses
    for name in expected:
        assert f"== {name} ==" in result.stdout
    assert "vs urllib3" in result.stdout  # the HTTP table's ratio column
    assert "x bare" in result.stdout  # the harden() table's ratio column
    assert (tmp_path / "all.png").read_bytes().startswith(PNG_MAGIC)
    assert results.problems(data) == []
    assert data["machine"]["cores"] == os.cpu_count()
    gaps = results.benchmark(data, "gaps")
    assert gaps is not None
    _check_gaps(gaps)
    _check_harden_and_guard(data, result.stdout)
    deadpeer = results.benchmark(data, "deadpeer")
    assert deadpeer is not None
    _check_deadpeer(deadpeer)
    assert "> 12 s" in result.stdout


def _check_deadpeer(result: dict[str, Any]) -> None:
    """In namespaces the policy notices a black-holed peer; kernel defaults are still waiting."""
    rows = {r["case"]: r for r in result["rows"]}
    cap = result["cap_s"]
    assert rows["idle recv, kernel defaults"]["capped"] is True
    assert rows["send pending, kernel defaults"]["capped"] is True
    policy = [r for case, r in rows.items() if "policy" in case]
    assert len(policy) == 2
    for row in policy:
        assert row["capped"] is False
        assert row["detected_s"] < cap
        assert "ETIMEDOUT" in row["shown"]


def _check_gaps(gaps: dict[str, Any]) -> None:
    """After a gap longer than the default, every sockwise call renewed; shorter, none did."""
    assert gaps["skipped_gaps_s"] == [10.0]  # quick: said so in the table
    limits = {
        "HTTP": gaps["defaults"]["urllib3_idle_timeout_s"],
        "HTTPS": gaps["defaults"]["urllib3_idle_timeout_s"],
        "PostgreSQL": gaps["defaults"]["psycopg_ping_after_s"],
    }
    seen = set()
    for row in gaps["rows"]:
        assert row["calls"] > 0 and 0 < row["median_us"] <= row["p90_us"]
        if row["client"] != "sockwise" or row["gap_s"] == 0:
            continue
        seen.add((row["library"], row["gap_s"]))
        limit = limits[row["library"]]
        if limit is not None and row["gap_s"] > limit + 0.3:
            assert row["renewed"] == row["calls"], row
        elif limit is None or row["gap_s"] < limit - 0.3:
            assert row["renewed"] == 0, row
    assert {g for _, g in seen} == {0.2, 1.0, 2.0}
    assert {lib for lib, _ in seen} == {"HTTP", "HTTPS", "PostgreSQL"}


def _check_harden_and_guard(data: dict[str, Any], stdout: str) -> None:
    """harden: RST close leaves no TIME_WAIT, a plausible floor, every variant with min/median/p90;
    guard: psutil and sockwise return the same sockets at 1,000 and 10,000; ticks at both."""
    assert results.problems(data) == []
    harden = results.benchmark(data, "harden")
    assert harden is not None
    assert harden["time_wait_left"] == 0
    assert "invalid" not in harden
    assert all(v >= 0.1 for v in harden["floor"]["per_call_us"])
    cases = {r["case"]: r for r in harden["rows"]}
    assert set(cases) == {
        "bare",
        "setsockopt x6",
        "setsockopt x7",
        "harden(guard=False)",
        "harden()",
    }
    for row in cases.values():
        assert 0 < row["min_us"] <= row["median_us"] <= row["p90_us"]
    assert "RST" in stdout and "x floor" in stdout
    guard = results.benchmark(data, "guard")
    assert guard is not None
    assert [s["sockets"] for s in guard["sized"]] == [1000, 10000]
    for size in guard["sized"]:
        n = size["sockets"]
        assert size["psutil_all_count"] == size["sockwise_all_count"] == n + 1  # + listener
        assert size["psutil_filtered_count"] == size["sockwise_filtered_count"] == n // 20 + 1
        assert size["guard_tick_ms"] > 0
    assert guard["same_sockets"] is True


def test_bench_script_writes_the_same_structure(tmp_path: Path) -> None:
    """``python benchmarks/bench_harden.py --quick`` saves a results file of the run schema."""
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "h.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(repo / "benchmarks" / "bench_harden.py"),
            "--quick",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert results.problems(data) == []
    assert data["command"] == "python benchmarks/bench_harden.py --quick"
    assert [b["name"] for b in data["benchmarks"]] == ["harden"]
    assert f"saved {out}" in proc.stdout
