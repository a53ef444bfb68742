"""``sockwise bench`` end to end: the runner, the table, the JSON and the plot."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
from cli_support import RunCli

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
    assert data["quick"] is True
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
    plot = tmp_path / "sockwise-bench-quick.png"
    assert plot.read_bytes().startswith(PNG_MAGIC)


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


@pytest.mark.netns
@pytest.mark.slow
def test_bench_deadpeer_quick(run_cli: RunCli, tmp_path: Path) -> None:
    """In namespaces the policy notices a black-holed peer; kernel defaults are still waiting."""
    require_or_skip(netns_unavailable_reason())
    result = run_cli(
        "bench", "--quick", "--only", "deadpeer", "--json", "d.json", "--no-plot", cwd=str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    (bench,) = json.loads((tmp_path / "d.json").read_text())["benchmarks"]
    rows = {r["case"]: r for r in bench["result"]["rows"]}
    cap = bench["result"]["cap_s"]
    assert rows["idle recv, kernel defaults"]["capped"] is True
    assert rows["send pending, kernel defaults"]["capped"] is True
    policy = [r for case, r in rows.items() if "policy" in case]
    assert len(policy) == 2
    for row in policy:
        assert row["capped"] is False
        assert row["detected_s"] < cap
        assert "ETIMEDOUT" in row["shown"]
    assert "> 12 s" in result.stdout
    assert not (tmp_path / "sockwise-bench-quick.png").exists()


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
    and land in the JSON and the plot.
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
    assert data["cpus"] == os.cpu_count()
