"""``sockwise bench``: progress on stderr, a table at the end, JSON and a PNG plot saved."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import TextIO

from sockwise._bench.runner import (
    BENCHMARKS,
    Outcome,
    detail_table,
    repo_results_dir,
    result_rows,
    run_all,
    save_json,
    save_plot,
)
from sockwise.cli._render import table


class BenchUsageError(Exception):
    """Bad ``sockwise bench`` arguments (exit status 2)."""


class Progress:
    """Progress on one line: a live elapsed-time line on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, i: int, n: int, name: str, outcome: Outcome | None) -> None:
        """Report that benchmark *name* (number *i* of *n*) started or finished."""
        label = f"[{i}/{n}] {name}"
        if outcome is None:
            if self.live:
                self._start_ticker(label)
            else:
                print(f"{label}: running", file=self.stream, flush=True)
            return
        self._stop_ticker()
        done = f"{label}: {outcome.status} in {outcome.seconds:.1f} s"
        if outcome.note:
            done += f" - {outcome.note}"
        if self.live:
            self.stream.write("\r\x1b[2K")
        print(done, file=self.stream, flush=True)

    def _start_ticker(self, label: str) -> None:
        self._stop.clear()
        started = time.monotonic()
        bar = "|/-\\"

        def tick() -> None:
            k = 0
            while not self._stop.wait(0.25):
                elapsed = time.monotonic() - started
                self.stream.write(f"\r\x1b[2K{label} {bar[k % 4]} {elapsed:.0f} s")
                self.stream.flush()
                k += 1

        self._thread = threading.Thread(target=tick, name="sockwise-bench-progress", daemon=True)
        self._thread.start()

    def _stop_ticker(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None


def parse_only(text: str | None) -> list[str]:
    """The benchmarks named by ``--only`` (all when omitted).

    Raises:
        BenchUsageError: An unknown or empty name.

    """
    if text is None:
        return list(BENCHMARKS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown or not names:
        raise BenchUsageError(
            f"--only {text!r}: unknown benchmark(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {','.join(BENCHMARKS)}"
        )
    return list(dict.fromkeys(names))


def repo_root() -> str | None:
    """The sockwise checkout containing the current directory (``None`` outside one)."""
    results = repo_results_dir()
    if os.path.basename(results) != "results":
        return None
    return os.path.dirname(os.path.dirname(results))


def cmd_docs(args: argparse.Namespace) -> int:
    """``sockwise bench --render-docs|--check-docs [--results PATH]``: README from the results."""
    from sockwise._bench import report

    root = repo_root()
    if root is None:
        raise BenchUsageError(
            "--render-docs/--check-docs: run it inside a sockwise checkout (README.md and "
            "benchmarks/results/ not found above the current directory)"
        )
    readme = os.path.join(root, "README.md")
    results = args.results or os.path.join(root, "benchmarks", "results", report.RESULTS_NAME)
    try:
        if args.check_docs:
            problem = report.readme_disagreement(readme, results)
            if problem:
                print(problem)
                print(f"regenerate with: sockwise bench --render-docs --results {results}")
                return 1
            print(f"README's benchmark table matches {results}")
            return 0
        changed = report.render_readme(readme, results)
    except ValueError as exc:
        raise BenchUsageError(str(exc)) from None
    print(f"{'rewrote' if changed else 'unchanged:'} {readme} benchmark table from {results}")
    print("the docs' benchmark page renders the same file when built (make docs)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """``sockwise bench [--quick] [--json PATH] [--plot PATH] [--only NAMES]``."""
    if getattr(args, "render_docs", False) or getattr(args, "check_docs", False):
        return cmd_docs(args)
    names = parse_only(args.only)
    # Only a full run of every benchmark writes the results file the README and docs render;
    # --quick and --only runs write beside it (sockwise-bench-quick, sockwise-bench-harden...).
    stem = "sockwise-bench" + ("-quick" if args.quick else "")
    if args.only is not None:
        stem += "-" + "-".join(names)
    results = repo_results_dir()
    json_path = args.json or os.path.join(results, f"{stem}.json")
    plot_path = None if args.no_plot else (args.plot or os.path.join(results, f"{stem}.png"))
    mode = "quick" if args.quick else "full"
    print(f"sockwise bench ({mode}): {', '.join(names)}", file=sys.stderr, flush=True)
    outcomes = run_all(names, args.quick, Progress(sys.stderr))
    rows = [row for o in outcomes for row in result_rows(o)]
    print()
    print(table(("benchmark", "case", "result"), rows))
    for outcome in outcomes:
        detail = detail_table(outcome)
        if detail:
            print()
            print(f"== {outcome.name} ==")
            print(detail)
    summaries = [o for o in outcomes if o.status == "ok" and o.result.get("summary")]
    if summaries:
        print()
        for o in summaries:
            print(f"  {o.name}: {o.result['summary']}")
    print()
    save_json(json_path, outcomes, args.quick)
    print(f"  results: {json_path}")
    if plot_path is not None:
        from sockwise._bench.results import machine

        m = machine()
        caption = (
            f"sockwise bench ({mode}) {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; "
            f"{m['cpu_model']}, {m['cores']} cores, kernel {m['kernel']}"
        )
        why_not = save_plot(plot_path, outcomes, caption)
        print(f"  plot:    {plot_path}" if why_not is None else f"  plot:    not drawn: {why_not}")
    return 1 if any(o.status == "error" for o in outcomes) else 0
