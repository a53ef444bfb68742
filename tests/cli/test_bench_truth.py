"""One truth: the results file's schema, README and docs generated from it, the floor check."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cli_support import RunCli

from sockwise import Guard, Policy
from sockwise._bench import harden as harden_bench
from sockwise._bench import report, results
from sockwise._bench.harden import FLOOR_MIN_US, floor_problem, measure_floor
from sockwise._bench.runner import ALIASES, BENCHMARKS
from sockwise.guard import _origin
from sockwise.harden import _stdlib as stdlib_hooks

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results" / report.RESULTS_NAME
README = REPO / "README.md"
DOCS_PAGE = REPO / "docs" / "benchmarks.md"


def _docs_ext() -> ModuleType:
    path = REPO / "docs" / "_ext" / "sockwise_bench.py"
    spec = importlib.util.spec_from_file_location("sockwise_bench_ext", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_floor_measured_directly_is_plausible() -> None:
    """Six setsockopt calls timed one by one: each is a system call, at least 0.1 us."""
    options = [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
    ] * 3
    floor = measure_floor(options, 500)
    assert len(floor["per_call_us"]) == 6
    assert floor_problem(floor["per_call_us"]) is None, floor
    assert floor["per_call_sum_us"] == pytest.approx(sum(floor["per_call_us"]), abs=0.01)
    assert 0 < floor["clock_us"] < min(floor["per_call_us"])
    # Timed together (one clock read instead of six): still six system calls, and no more
    # than the calls timed one by one, give or take the machine's noise.
    assert 6 * FLOOR_MIN_US <= floor["floor_us"] <= 1.5 * floor["per_call_sum_us"], floor


def test_bench_connect_loop_runs_as_application_code() -> None:
    """Under a guard, a connect of the harden benchmark's loop is attributed to the loop itself.

    The guard skips sockwise's own frames; a loop inside the package made it walk the whole
    benchmark harness on every connect, which no application's connect costs.
    """
    server = socket.create_server(("127.0.0.1", 0))
    try:
        with Guard(interval=3600) as guard:
            out: list[int] = []
            harden_bench._connect_loop(server.getsockname(), 1, (), (), out)
            guard.check()
            host, port = server.getsockname()
            sites = _origin.destination_sites((host, port))
    finally:
        server.close()
    assert len(out) == 1 and out[0] > 0
    assert [(o.filename, o.function) for o in sites] == [("<application>", "connect_loop")]


def test_bench_by_hand_calls_are_the_drop_ins() -> None:
    """``setsockopt x7`` makes the calls harden() makes for a blocking connect, in order."""
    for policy in (Policy(), Policy.interactive(), Policy(user_timeout=5)):
        before, after = harden_bench.by_hand_bounded(policy)
        resolved = stdlib_hooks.resolve(policy)
        assert tuple(before) == resolved.bounded_options
        assert tuple(after) == ((resolved.set_back,) if resolved.set_back else ())


def test_floor_sanity_check_flags_impossible_floors() -> None:
    """A floor below 0.1 us per call (the old "0.57 us for six calls") is flagged, naming it."""
    problem = floor_problem([0.57 / 6] * 6)
    assert problem is not None
    assert "implausible" in problem and "call 1: 0.095 us" in problem
    assert floor_problem([0.5, 0.6, FLOOR_MIN_US - 0.01, 0.5, 0.5, 0.5]) is not None
    assert floor_problem([float("nan")] * 6) is not None
    assert floor_problem([]) == "no setsockopt call was timed"
    assert floor_problem([FLOOR_MIN_US] * 6) is None


def _valid() -> dict[str, Any]:
    return results.build(
        [{"name": "harden", "status": "ok", "seconds": 1.0, "note": "", "result": {"rows": []}}],
        quick=True,
        command="sockwise bench --quick",
    )


def test_results_schema_names_every_problem() -> None:
    """build() follows the schema; every missing or wrong field is named by problems()."""
    good = _valid()
    assert results.problems(good) == []
    assert good["machine"]["cores"] and good["machine"]["kernel"] and good["machine"]["cpu_model"]
    assert good["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert good["date"].endswith("Z")
    bad = copy.deepcopy(good)
    del bad["machine"]["kernel"]
    del bad["versions"]["libpq"]
    bad["schema"] = "sockwise-bench/1"
    bad["benchmarks"][0]["status"] = "fine"
    found = results.problems(bad)
    assert "machine.kernel is missing" in found
    assert "versions.libpq is missing" in found
    assert any("schema" in p for p in found)
    assert any("status 'fine'" in p for p in found)
    assert results.problems([]) == ["expected a JSON object, got list"]


def test_committed_results_file_follows_the_schema() -> None:
    """The one committed results file loads; nothing else is committed beside it."""
    if RESULTS.exists():
        data = results.load(str(RESULTS))
        names = {b["name"] for b in data["benchmarks"]}
        assert names <= set(BENCHMARKS)
    else:  # README then says so (checked by the next test)
        assert "No results recorded yet" in report.expected_block(str(RESULTS))
    tracked = subprocess.run(
        ["git", "ls-files", "benchmarks/results"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if tracked.returncode == 0:
        files = {Path(line).name for line in tracked.stdout.split()}
        assert files <= {".gitignore", "sockwise-bench.json", "sockwise-bench.png"}, files


def test_readme_table_is_generated_from_the_results_file() -> None:
    """README's marked block equals what --render-docs makes from the results file."""
    problem = report.readme_disagreement(str(README), str(RESULTS))
    assert problem is None, problem + "\nregenerate: sockwise bench --render-docs"


def test_readme_check_fails_when_a_number_is_edited(tmp_path: Path) -> None:
    """Editing one figure of the block by hand makes the check fail, with a diff."""
    data = _valid()
    data["benchmarks"] = [
        {
            "name": "nodelay",
            "status": "ok",
            "seconds": 1.0,
            "note": "",
            "result": {"summary": "Nagle 44.0 ms vs 0.061 ms", "rows": []},
        },
        {"name": "deadpeer", "status": "skipped", "seconds": 0, "note": "not root", "result": {}},
    ]
    res = tmp_path / "r.json"
    results.write(str(res), data)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{report.START}\n{report.END}\n\ntail\n")
    assert report.render_readme(str(readme), str(res)) is True
    assert report.render_readme(str(readme), str(res)) is False
    text = readme.read_text()
    assert text.startswith("# x\n\n") and text.endswith("\n\ntail\n")
    assert "| Nagle vs `TCP_NODELAY`" in text and "Nagle 44.0 ms vs 0.061 ms" in text
    assert "| `deadpeer` | skipped: not root |" in text
    assert "QUICK run" in text
    assert report.readme_disagreement(str(readme), str(res)) is None
    readme.write_text(text.replace("44.0 ms", "40.0 ms"))
    problem = report.readme_disagreement(str(readme), str(res))
    assert problem is not None and "-| Nagle" in problem and "+| Nagle" in problem
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no <!-- bench:start -->"):
        report.render_readme(str(readme), str(res))


def test_check_docs_command(run_cli: RunCli) -> None:
    """``sockwise bench --check-docs`` exits 0 on this checkout (README matches the results)."""
    result = run_cli("bench", "--check-docs", cwd=str(REPO))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "matches" in result.stdout


def test_docs_page_renders_only_the_one_results_file() -> None:
    """Every table directive on the docs page names sockwise-bench.json, each benchmark once."""
    text = DOCS_PAGE.read_text()
    sources = re.findall(r"^```\{bench-(results|headline|plot)\} (.+)$", text, re.M)
    assert sources
    named = []
    for kind, args in sources:
        for arg in args.split():
            file, _, name = arg.partition("#")
            expected = "sockwise-bench.png" if kind == "plot" else report.RESULTS_NAME
            assert file == expected, (kind, arg)
            if name:
                named.append(name)
    measured = {n for n in BENCHMARKS if n not in ALIASES}
    assert sorted(named) == sorted(measured)


def test_docs_tables_come_from_the_results_file(tmp_path: Path) -> None:
    """The docs extension reads the rows and provenance of the same file, and rejects others."""
    ext = _docs_ext()
    data = _valid()
    data["benchmarks"][0]["result"] = {"rows": [{"case": "bare", "median_us": 30.0}]}
    results.write(str(tmp_path / report.RESULTS_NAME), data)
    found = ext.load_result(f"{report.RESULTS_NAME}#harden", tmp_path)
    assert found is not None
    result, path = found
    assert result["rows"] == [{"case": "bare", "median_us": 30.0}]
    assert result["date"] == data["date"] and path == tmp_path / report.RESULTS_NAME
    assert ext.load_result(f"{report.RESULTS_NAME}#guard", tmp_path) is None
    (tmp_path / "old.json").write_text(json.dumps({"rows": [{"case": "x"}]}))
    with pytest.raises(ValueError, match="not a sockwise benchmark results file"):
        ext.load_result("old.json#harden", tmp_path)
    with pytest.raises(ValueError, match="expected FILE#NAME"):
        ext.load_result("old.json", tmp_path)


def test_invalid_measurement_fails_the_benchmark() -> None:
    """A result marked invalid (an impossible floor) is an error, and its table still prints."""
    from sockwise._bench.runner import Outcome, classify, detail_table

    assert classify({"summary": "fine", "rows": []}) == ("ok", "fine")
    assert classify({"skipped": "no PostgreSQL"}) == ("skipped", "no PostgreSQL")
    assert classify({"error": "ValueError: x"}) == ("error", "ValueError: x")
    problem = floor_problem([0.05] * 6)
    assert problem is not None
    data = {
        "rows": [
            {
                "case": "bare",
                "min_us": 1.0,
                "median_us": 1.0,
                "p90_us": 1.0,
                "added_us": 0.0,
                "ratio_to_bare": 1.0,
                "added_per_floor": 0.0,
            },
        ],
        "floor": {"per_call_us": [0.05] * 6, "floor_us": 0.3, "clock_us": 0.03},
        "close": "RST",
        "time_wait_left": 0,
        "summary": "s",
        "invalid": problem,
    }
    status, note = classify(data)
    assert status == "error" and note.startswith("invalid: implausible setsockopt floor")
    shown = detail_table(Outcome("harden", status, 1.0, data, note))
    assert shown is not None and "INVALID: implausible" in shown


def test_guard_bench_feature_detects_the_stall_detector() -> None:
    """The guard benchmark works with or without ``Guard(stall_after)``, on by default or off."""
    from sockwise._bench.guard import STALL_AFTER, stall_variant
    from sockwise.guard import Guard

    class Old:
        def __init__(self, interval: float = 5.0) -> None: ...

    class OnByDefault:
        def __init__(self, interval: float = 5.0, stall_after: float | None = 30.0) -> None: ...

    class OffByDefault:
        def __init__(self, interval: float = 5.0, stall_after: float | None = None) -> None: ...

    assert stall_variant(Old) == ("no stall detector in this guard", None, "")
    label, kwargs, other = stall_variant(OnByDefault)
    assert label == "stall detector on, stall_after=30"
    assert kwargs == {"stall_after": None} and "off" in other
    label, kwargs, other = stall_variant(OffByDefault)
    assert kwargs == {"stall_after": STALL_AFTER} and "on" in other
    label, kwargs, _ = stall_variant(Guard)  # this version's guard: whichever it is
    if kwargs is not None:
        Guard(**kwargs).stop()  # the kwargs it would use are accepted


@pytest.mark.parametrize(
    "script", sorted(p.name for p in (REPO / "benchmarks").glob("*.py")), ids=str
)
def test_benchmark_scripts_import(script: str) -> None:
    """Every script in benchmarks/ imports (a renamed helper broke urllib3_pool_ab.py once)."""
    path = REPO / "benchmarks" / script
    spec = importlib.util.spec_from_file_location(f"bench_script_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # runs the imports, not the script (no __main__ name)
    entry = getattr(module, "main", None) or getattr(module, "script", None)
    assert callable(entry), f"{script} has neither main() nor the runner's script()"
