"""``sockwise bench``: run the benchmark modules that exist, each in its own subprocess.

Theory of operation: every benchmark is a module of :mod:`sockwise._bench` with
``run(quick: bool = False) -> dict``. The runner starts one child Python per benchmark
(``python -m sockwise._bench.runner --child NAME``), so a benchmark that patches the process
(``harden()``, the guard) or leaks a thread cannot affect the next one, and a hung one is killed
after its time limit. The child writes its result as JSON to a temporary file.

A module may also have ``table(result: dict) -> str``, its own side-by-side table (with the
ratios), which ``sockwise bench`` prints and ``benchmarks/bench_NAME.py`` (:func:`script`) uses.

A result dict is rendered best when it has ``"rows"`` (a list of dicts, each with a ``"case"``
and numbers), ``"metric"`` (the key of the row number to plot, e.g. ``"median_ms"``),
``"summary"`` (one sentence) and ``"notes"``; ``{"skipped": "reason"}`` marks a benchmark that
cannot run here (no PostgreSQL binaries, no network namespaces). Any other dict is shown as its
top-level numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

#: Benchmark name -> (module, function).
BENCHMARKS: Final[dict[str, tuple[str, str]]] = {
    "http": ("sockwise._bench.http", "run"),
    "https": ("sockwise._bench.http", "run"),
    "postgres": ("sockwise._bench.postgres", "run"),
    "nodelay": ("sockwise._bench.nodelay", "run"),
    "deadpeer": ("sockwise._bench.deadpeer", "run"),
    "harden": ("sockwise._bench.harden", "run"),
    "guard": ("sockwise._bench.guard", "run"),
    "gaps": ("sockwise._bench.gaps", "run"),
}

#: Names measured by another benchmark's run (the HTTP benchmark measures HTTP and HTTPS).
ALIASES: Final[dict[str, str]] = {"https": "http"}

Status = Literal["ok", "skipped", "error", "missing"]


@dataclass
class Outcome:
    """What one benchmark produced."""

    name: str
    status: Status
    seconds: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def balanced_orders(n: int) -> list[list[int]]:
    """Orders for interleaving *n* variants, one per round (cycle through the list).

    A Williams design: over the list each variant holds every position once and directly
    follows every other variant exactly once (odd *n*: twice, over ``2 * n`` orders). A plain
    rotation makes each variant always follow the same other one, and what a variant leaves
    behind -- warm caches for the same library's code, a server still busy closing
    connections -- then favours or penalises one variant every round.
    """
    if n <= 1:
        return [list(range(n))]
    first = [0]
    low, high = 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    rows = [[(i + r) % n for i in first] for r in range(n)]
    if n % 2:
        rows += [row[::-1] for row in rows]
    return rows


#: Where code compiled by :func:`application_function` says it lives: outside sockwise.
APPLICATION_FILE: Final = "<application>"


def application_function(source: str, name: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """Compile *source* as application code and return its function *name*.

    The guard names the first frame outside sockwise and the libraries it wraps, so a timed
    loop inside this package makes it walk the whole benchmark harness, up to the console
    script, on every connect -- a stack no application has. A loop compiled here (file
    :data:`APPLICATION_FILE`) is the application's own line, as a user's ``connect()`` call is.
    *namespace* holds the globals the source uses.
    """
    scope: dict[str, Any] = {"__name__": "__application__", **namespace}
    exec(compile(source, APPLICATION_FILE, "exec"), scope)  # our own source
    found: Callable[..., Any] = scope[name]
    return found


def locate(name: str) -> Callable[[bool], dict[str, Any]] | None:
    """The ``run`` function of benchmark *name*, or ``None`` when its module is not installed."""
    module_name, func = BENCHMARKS[name]
    if importlib.util.find_spec(module_name) is None:
        return None
    module = importlib.import_module(module_name)
    found = getattr(module, func, None)
    return found if callable(found) else None


def available(name: str) -> bool:
    """Whether benchmark *name* can be found (without importing heavy dependencies twice)."""
    try:
        return locate(name) is not None
    except Exception:  # a module that fails to import is reported when run
        return True


def run_one(name: str, quick: bool, timeout: float) -> Outcome:
    """Run benchmark *name* in a child process with a time limit."""
    start = time.monotonic()
    fd, out_path = tempfile.mkstemp(prefix=f"sockwise-bench-{name}-", suffix=".json")
    os.close(fd)
    argv = [sys.executable, "-m", "sockwise._bench.runner", "--child", name, "--out", out_path]
    if quick:
        argv.append("--quick")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        with open(out_path, encoding="utf-8") as f:
            raw = f.read()
        data: dict[str, Any] = json.loads(raw) if raw else {}
    except subprocess.TimeoutExpired:
        return Outcome(
            name, "error", time.monotonic() - start, note=f"timed out after {timeout:g} s"
        )
    except (OSError, ValueError) as exc:
        return Outcome(name, "error", time.monotonic() - start, note=f"no result: {exc}")
    finally:
        os.unlink(out_path)
    elapsed = time.monotonic() - start
    if proc.returncode != 0 and "error" not in data and "invalid" not in data:
        last = proc.stderr.strip().splitlines()[-1:] or ["?"]
        return Outcome(name, "error", elapsed, data, note=last[0][:300])
    status, note = classify(data)
    return Outcome(name, status, elapsed, normalize(data) if status == "ok" else data, note=note)


def classify(data: dict[str, Any]) -> tuple[Status, str]:
    """A benchmark's result dict as ``(status, note)``.

    ``{"error": ...}`` (it raised) and ``{"invalid": ...}`` (it measured something impossible,
    such as a ``setsockopt`` floor below one system call) are errors; ``{"skipped": ...}`` is
    skipped; anything else is ok, noted by its ``summary``.
    """
    if "error" in data:
        return "error", str(data["error"])[:300]
    if "invalid" in data:
        return "error", f"invalid: {data['invalid']}"[:300]
    if "skipped" in data:
        return "skipped", str(data["skipped"])
    return "ok", str(data.get("summary", ""))


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """Give a result ``rows`` with a ``case`` each, whatever shape the benchmark returned.

    ``rows`` whose label is under another key (``variant``) get a ``case``; nested
    ``results`` (``{group: {case: {metric: number}}}``) become rows named ``"group case"``.
    """
    rows = data.get("rows")
    if isinstance(rows, list):
        for row in rows:
            if isinstance(row, dict) and "case" not in row:
                label = next((v for v in row.values() if isinstance(v, str)), "?")
                row["case"] = label
        return data
    results = data.get("results")
    if not isinstance(results, dict):
        return data
    flat: list[dict[str, Any]] = []
    for group, cases in results.items():
        if not isinstance(cases, dict):
            continue
        if all(isinstance(v, dict) for v in cases.values()):
            flat += [{"case": f"{group} {case}", **vals} for case, vals in cases.items()]
        else:
            flat.append({"case": str(group), **cases})
    if flat:
        data = {**data, "rows": flat}
        if "metric" not in data:
            data["metric"] = _first_number_key(flat[0])
    return data


def run_all(
    names: Sequence[str],
    quick: bool,
    progress: Callable[[int, int, str, Outcome | None], None] | None = None,
) -> list[Outcome]:
    """Run *names* in order; *progress(i, n, name, outcome)* is called before and after each."""
    timeout = 240.0 if quick else 1800.0
    outcomes: list[Outcome] = []
    names = list(dict.fromkeys(ALIASES.get(n, n) for n in names))
    for i, name in enumerate(names, 1):
        if not available(name):
            outcome = Outcome(name, "missing", note="not installed in this version of sockwise")
        else:
            if progress:
                progress(i, len(names), name, None)
            outcome = run_one(name, quick, timeout)
        outcomes.append(outcome)
        if progress:
            progress(i, len(names), name, outcome)
    return outcomes


def result_rows(outcome: Outcome) -> list[tuple[str, str, str]]:
    """``(benchmark, case, value)`` lines summarising one outcome for the final table."""
    res = outcome.result
    if outcome.status != "ok":
        return [(outcome.name, outcome.status, outcome.note)]
    metric = res.get("metric")
    rows = res.get("rows")
    out: list[tuple[str, str, str]] = []
    if isinstance(rows, list) and rows:
        for row in rows:
            if not isinstance(row, dict):
                continue
            key = metric if metric in row else _first_number_key(row)
            value = row.get(key) if key else None
            shown = row.get("shown") or (f"{_num(value)} {_unit(key)}" if key else "")
            out.append((outcome.name, str(row.get("case", "?")), str(shown).strip()))
    else:
        for key, value in res.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append((outcome.name, key, _num(value)))
    return out or [(outcome.name, "ok", outcome.note)]


def detail_table(outcome: Outcome) -> str | None:
    """The benchmark module's own table of *outcome*, if it has one (``None`` otherwise)."""
    if outcome.status != "ok" and not outcome.result.get("invalid"):
        return None
    module_name, _ = BENCHMARKS[outcome.name]
    try:
        render = getattr(importlib.import_module(module_name), "table", None)
        if callable(render):
            return str(render(outcome.result))
        return rows_table(outcome.result)
    except Exception as exc:  # a table that cannot be drawn never hides the results
        return f"({outcome.name}: table not drawn: {type(exc).__name__}: {exc})"


def rows_table(result: dict[str, Any]) -> str | None:
    """Every column of a result's ``rows`` as a plain table (for modules without ``table``)."""
    rows = [r for r in result.get("rows", []) if isinstance(r, dict)]
    if not rows:
        return None
    keys = [k for k in rows[0] if k != "case"]
    header = ["case", *keys]
    body = [[str(r.get("case", "?")), *(_num(r.get(k, "")) for k in keys)] for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in [header, *body]
    ]
    lines.insert(1, "-" * len(lines[0]))
    if result.get("summary"):
        lines.append(str(result["summary"]))
    return "\n".join(lines)


def script(name: str, description: str | None = None) -> None:
    """Entry point of ``benchmarks/bench_NAME.py``: run one benchmark here, print, save results.

    ``--quick`` for a short run. The results file has the structure ``sockwise bench`` writes
    (:mod:`sockwise._bench.results`: machine, versions, date), with this one benchmark; it goes
    to ``--json PATH``, by default ``benchmarks/results/NAME.json`` of the checkout (see
    :func:`repo_results_dir`), which git ignores: only a full ``sockwise bench`` run's file is
    committed and rendered into README and the docs.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--json", metavar="PATH", help="where to save the results file")
    args = parser.parse_args()
    func = locate(name)
    if func is None:
        raise SystemExit(f"benchmark {name!r} is not installed in this version of sockwise")
    start = time.monotonic()
    result = normalize(func(args.quick))
    status, note = classify(result)
    outcome = Outcome(name, status, time.monotonic() - start, result=result, note=note)
    print(detail_table(outcome) or "\n".join(" ".join(r) for r in result_rows(outcome)))
    path = args.json or os.path.join(repo_results_dir(), f"{name}.json")
    command = f"python benchmarks/bench_{name}.py" + (" --quick" if args.quick else "")
    save_json(path, [outcome], args.quick, command)
    print(f"saved {path}")
    if status == "error":
        raise SystemExit(1)


def _first_number_key(row: dict[str, Any]) -> str | None:
    for key, value in row.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "n":
            return str(key)
    return None


def _unit(key: str | None) -> str:
    if not key:
        return ""
    for suffix, unit in (("_per_s", "/s"), ("_ms", "ms"), ("_us", "us"), ("_s", "s")):
        if key.endswith(suffix):
            return f"{unit} ({key.removesuffix(suffix)})"
    return f"({key})"


def _num(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def repo_results_dir(start: str | None = None) -> str:
    """``benchmarks/results`` of the sockwise checkout containing *start* (cwd), else *start*."""
    here = os.path.abspath(start or os.getcwd())
    probe = here
    for _ in range(10):
        pyproject = os.path.join(probe, "pyproject.toml")
        if os.path.isdir(os.path.join(probe, "benchmarks")) and os.path.isfile(pyproject):
            try:
                with open(pyproject, encoding="utf-8") as f:
                    if 'name = "sockwise"' in f.read():
                        return os.path.join(probe, "benchmarks", "results")
            except OSError:  # Defensive
                pass
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return here


def save_json(path: str, outcomes: Sequence[Outcome], quick: bool, command: str = "") -> None:
    """Write the run's one results file (:mod:`sockwise._bench.results`) to *path*."""
    from sockwise._bench import results

    command = command or ("sockwise bench --quick" if quick else "sockwise bench")
    results.write(path, results.build([asdict(o) for o in outcomes], quick, command))


def save_plot(path: str, outcomes: Sequence[Outcome], caption: str = "") -> str | None:
    """Draw one horizontal bar chart per benchmark with rows; return why not, or ``None``.

    *caption* (the run's date and machine) goes on top, so the plot names its run.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install sockwise[bench])"
    panels: list[tuple[Outcome, str, list[tuple[str, float, str]]]] = []
    for o in outcomes:
        rows = o.result.get("rows") if o.status == "ok" else None
        if not isinstance(rows, list) or not rows:
            continue
        key = o.result.get("metric") or _first_number_key(rows[0])
        pairs = [
            (str(r.get("case", "?")), float(r[key]), str(r.get("shown") or _num(r[key])))
            for r in rows
            if isinstance(r, dict) and isinstance(r.get(key), (int, float))
        ]
        if pairs:
            panels.append((o, str(key), pairs))
    if not panels:
        return "no numeric results to plot"
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(9, 1.2 + 0.5 * sum(len(p[2]) + 2 for p in panels))
    )
    axes_list = list(axes) if len(panels) > 1 else [axes]
    for ax, (o, key, pairs) in zip(axes_list, panels, strict=True):
        labels = [p[0] for p in pairs][::-1]
        values = [p[1] for p in pairs][::-1]
        shown = [p[2] for p in pairs][::-1]
        bars = ax.barh(labels, values, color="#4477aa")
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 50:
            ax.set_xscale("log")
        ax.bar_label(bars, labels=shown, padding=3, fontsize=8)
        ax.margins(x=0.25)
        ax.set_title(str(o.result.get("title", o.name)), fontsize=10, loc="left")
        ax.set_xlabel(f"{key} {'(log scale)' if ax.get_xscale() == 'log' else ''}", fontsize=8)
        ax.tick_params(labelsize=8)
    if caption:
        fig.suptitle(caption, fontsize=8, x=0.01, ha="left")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _child(name: str, quick: bool, out: str) -> int:
    """Run benchmark *name* here and write its JSON result to *out*."""
    try:
        func = locate(name)
        if func is None:
            data: dict[str, Any] = {"skipped": f"benchmark {name!r} is not installed"}
        else:
            data = func(quick)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        data = {"error": f"{type(exc).__name__}: {exc}"}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(data, f, default=str)
    return 1 if "error" in data else 0


if __name__ == "__main__":
    _p = argparse.ArgumentParser(prog="python -m sockwise._bench.runner")
    _p.add_argument("--child", required=True, choices=sorted(BENCHMARKS))
    _p.add_argument("--out", required=True)
    _p.add_argument("--quick", action="store_true")
    _a = _p.parse_args()
    sys.exit(_child(_a.child, _a.quick, _a.out))
