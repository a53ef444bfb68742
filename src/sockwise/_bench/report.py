"""README's benchmark table, generated from one results file (never typed by hand).

:func:`headline` turns a results file (:mod:`sockwise._bench.results`) into ``(what, measured)``
lines, one per figure, with its ratio; :func:`readme_block` makes the Markdown that goes between
``<!-- bench:start -->`` and ``<!-- bench:end -->`` in README.md, and the docs' benchmark page
renders the very same lines (``docs/_ext/sockwise_bench.py``, directive ``bench-headline``).
``sockwise bench --render-docs`` rewrites the README block; ``sockwise bench --check-docs`` (and
a test) fails when README disagrees with the results file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from sockwise._bench import results as _results

START: Final = "<!-- bench:start -->"
END: Final = "<!-- bench:end -->"
RESULTS_NAME: Final = "sockwise-bench.json"
REGENERATE: Final = "sockwise bench && sockwise bench --render-docs"

Line = tuple[str, str]


def _f(value: object, digits: int = 1) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "?"
    return f"{value:,.{digits}f}"


def _harden(r: Mapping[str, Any]) -> list[Line]:
    rows = {row["case"]: row for row in r["rows"]}
    bare = rows["bare"]
    floor = r["floor"]["floor_us"]
    measured = (
        f"bare {_f(bare['median_us'])} us (min {_f(bare['min_us'])}, p90 {_f(bare['p90_us'])}); "
        f"`harden(guard=False)` {rows['harden(guard=False)']['added_us']:+.1f} us"
    )
    if "harden()" in rows:
        measured += f", `harden()` {rows['harden()']['added_us']:+.1f} us"
    by_hand = next((c for c in rows if c.startswith("setsockopt x") and c != "setsockopt x6"), None)
    if by_hand is not None:
        measured += f"; by hand: `{by_hand}` {rows[by_hand]['added_us']:+.1f} us"
    guarded = rows.get("harden()", rows["harden(guard=False)"])
    measured += (
        f"; floor (the six `setsockopt` in a row, timed directly) {floor:.2f} us, "
        f"target at most +{2 * floor:.2f} us ({guarded['added_per_floor']:.2f}x the floor)"
    )
    return [
        (
            "`harden()` per loopback connect+close, added: median over paired rounds (RST close, "
            "one CPU)",
            measured,
        )
    ]


def _http(r: Mapping[str, Any]) -> list[Line]:
    out = []
    for scheme, variants in r["results"].items():
        sw, bare, fresh = variants["sockwise"], variants["urllib3"], variants["per-request"]
        out.append(
            (
                f"{scheme.upper()} keep-alive: sockwise pool vs bare urllib3 (same `Timeout`) "
                "vs a connection per request",
                f"{_f(sw['requests_per_s'], 0)} vs {_f(bare['requests_per_s'], 0)} vs "
                f"{_f(fresh['requests_per_s'], 0)} req/s ({sw['ratio_vs_urllib3']:.3f}x and "
                f"{fresh['ratio_vs_urllib3']:.3f}x); client CPU per request "
                f"{sw['cpu_ratio_vs_urllib3']:.3f}x; TIME_WAIT left {sw['time_wait']} vs "
                f"{bare['time_wait']} vs {fresh['time_wait']:,}",
            )
        )
    return out


def _postgres(r: Mapping[str, Any]) -> list[Line]:
    rows = {row["case"]: row for row in r["rows"]}
    sw, bare = rows["sockwise"], rows["psycopg_pool"]
    check, conn = rows["psycopg_pool+check"], rows["connect"]
    return [
        (
            "PostgreSQL `SELECT 1` per checkout: sockwise pool vs psycopg_pool without / with "
            "`check_connection` vs `connect()` per query",
            f"{_f(sw['queries_per_s'], 0)} vs {_f(bare['queries_per_s'], 0)} / "
            f"{_f(check['queries_per_s'], 0)} vs {_f(conn['queries_per_s'], 0)} q/s "
            f"({sw['ratio_to_psycopg_pool']:.3f}x, {check['ratio_to_psycopg_pool']:.3f}x, "
            f"{conn['ratio_to_psycopg_pool']:.3f}x); client CPU per query "
            f"{_f(sw['client_cpu_us_per_query'])} vs {_f(bare['client_cpu_us_per_query'])} us",
        )
    ]


def _gaps(r: Mapping[str, Any]) -> list[Line]:
    out = []
    d = r.get("defaults") or {}
    idle, ping = d.get("urllib3_idle_timeout_s"), d.get("psycopg_ping_after_s")
    names = {
        "HTTP": ("urllib3", f"sockwise idle_timeout {idle if idle is not None else '?'} s"),
        "HTTPS": ("urllib3", f"sockwise idle_timeout {idle if idle is not None else '?'} s"),
        "PostgreSQL": (
            "psycopg_pool",
            f"sockwise pings after {ping if ping is not None else '?'} s idle",
        ),
    }
    for library, (bare, what) in names.items():
        mine = [
            row
            for row in r["rows"]
            if row["library"] == library and row["client"] == "sockwise" and row["gap_s"] > 0
        ]
        if not mine:
            continue
        parts = [
            f"{row['gap_s']:g} s: {row['ratio_to_bare']:.2f}x ({row['added_us']:+.0f} us, "
            f"renewed {row['renewed']}/{row['calls']})"
            for row in mine
        ]
        skipped = r.get("skipped_gaps_s") or []
        parts += [f"{g:g} s: not measured (quick run)" for g in skipped]
        out.append(
            (
                f"{library}, first call after an idle gap: sockwise vs {bare} ({what}), "
                "median latency",
                "; ".join(parts),
            )
        )
    return out


def _nodelay(r: Mapping[str, Any]) -> list[Line]:
    return [("Nagle vs `TCP_NODELAY`; `http.server` without vs with `harden()`", str(r["summary"]))]


def _deadpeer(r: Mapping[str, Any]) -> list[Line]:
    shown = "; ".join(f"{row['case']}: {row['shown']}" for row in r["rows"])
    return [("Vanished peer (black-holed veth link): time until the blocked call fails", shown)]


def _guard(r: Mapping[str, Any]) -> list[Line]:
    out = []
    for s in r["sized"]:
        n = s["sockets"]
        if "psutil_all_ms" in s:
            out.append(
                (
                    f"Listing this process's {n:,} TCP sockets, same sockets on both sides: "
                    "psutil vs sockwise",
                    f"all states: {_f(s['psutil_all_ms'], 2)} vs {_f(s['sockwise_all_ms'], 2)} ms "
                    f"({s['speedup_all']:.2f}x, {s['sockwise_all_count']:,} returned); "
                    f"CLOSE_WAIT+LISTEN: {_f(s['psutil_filtered_ms'], 2)} vs "
                    f"{_f(s['sockwise_filtered_ms'], 2)} ms ({s['speedup_filtered']:.2f}x, "
                    f"{s['sockwise_filtered_count']:,} returned)",
                )
            )
    ticks = []
    for s in r["sized"]:
        tick = f"{s['sockets']:,} sockets {_f(s['guard_tick_ms'], 2)} ms"
        if "guard_tick_other_ms" in s:
            tick += f" ({_f(s['guard_tick_other_ms'], 2)} ms with {s['guard_other']})"
        ticks.append(tick)
    default = r["sized"][-1]["guard_default"] if r["sized"] else "?"
    hook = r["origin_recording"]
    out.append(
        (
            f"Guard tick (`Guard().check()`, defaults: {default})",
            "; ".join(ticks) + "; CPU share at the default "
            f"{r['default_interval_s']:g} s interval {r['cpu_share_at_default_interval']:.3%}; "
            f"origin recording {hook['overhead_us']:+.2f} us per connect",
        )
    )
    return out


RENDERERS: Final[dict[str, Callable[[Mapping[str, Any]], list[Line]]]] = {
    "http": _http,
    "postgres": _postgres,
    "gaps": _gaps,
    "nodelay": _nodelay,
    "deadpeer": _deadpeer,
    "harden": _harden,
    "guard": _guard,
}


def provenance(data: Mapping[str, Any], source: str = RESULTS_NAME) -> str:
    """One sentence: which run, where, with which versions."""
    m, v = data["machine"], data["versions"]
    kind = (
        "QUICK run (`--quick`: fewer rounds, some cases skipped)" if data["quick"] else "full run"
    )
    libs = ", ".join(f"{k} {v[k]}" for k in _results.VERSION_KEYS if v.get(k))
    return (
        f"{kind} `{data.get('command', 'sockwise bench')}` of {data['date']}, "
        f"{m['cpu_model']}, {m['cores']} cores, kernel {m['kernel']}, "
        f"load {m['loadavg_1m']}; {libs}; from `benchmarks/results/{source}`"
    )


def headline(data: Mapping[str, Any]) -> list[Line]:
    """``(what, measured)`` for every benchmark in the run (skips and errors say so)."""
    out: list[Line] = []
    for bench in data["benchmarks"]:
        name = str(bench["name"])
        if bench["status"] != "ok":
            out.append((f"`{name}`", f"{bench['status']}: {bench.get('note') or '?'}"))
            continue
        render = RENDERERS.get(name)
        try:
            lines = render(bench["result"]) if render else []
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            lines = [(f"`{name}`", f"(not rendered: {type(exc).__name__}: {exc})")]
        if not lines:
            lines = [(f"`{name}`", str(bench["result"].get("summary") or bench.get("note")))]
        out += lines
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def readme_block(data: Mapping[str, Any], source: str = RESULTS_NAME) -> str:
    """The Markdown between the README markers (markers included)."""
    lines = [
        START,
        f"<!-- generated by `sockwise bench --render-docs` from benchmarks/results/{source}; "
        "do not edit by hand -->",
        "",
        f"Measured in one {provenance(data, source)}.",
        "",
        "| what | measured |",
        "| --- | --- |",
        *(f"| {_cell(what)} | {_cell(measured)} |" for what, measured in headline(data)),
        END,
    ]
    return "\n".join(lines)


def missing_block(source: str = RESULTS_NAME) -> str:
    """The README block when no results file exists yet."""
    return "\n".join(
        [
            START,
            f"<!-- generated by `sockwise bench --render-docs` from benchmarks/results/{source}; "
            "do not edit by hand -->",
            "",
            f"No results recorded yet: run `{REGENERATE}`.",
            END,
        ]
    )


_BLOCK = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)


def current_block(readme_text: str) -> str | None:
    """The marked block of *readme_text*, or ``None`` when it has no markers."""
    found = _BLOCK.search(readme_text)
    return found.group(0) if found else None


def expected_block(results_path: str) -> str:
    """The README block the results file at *results_path* gives (a note when it is absent).

    Raises:
        ValueError: The file exists but is not a valid results file.

    """
    source = os.path.basename(results_path)
    if not os.path.exists(results_path):
        return missing_block(source)
    return readme_block(_results.load(results_path), source)


def render_readme(readme_path: str, results_path: str) -> bool:
    """Rewrite README's marked block from *results_path*; ``True`` if the file changed.

    Raises:
        ValueError: README has no ``bench:start``/``bench:end`` markers, or bad results.

    """
    with open(readme_path, encoding="utf-8") as f:
        text = f.read()
    if current_block(text) is None:
        raise ValueError(f"{readme_path}: no {START} ... {END} block to rewrite")
    block = expected_block(results_path)
    new = _BLOCK.sub(lambda _: block, text, count=1)
    if new == text:
        return False
    with open(readme_path, "w", encoding="utf-8") as f:
        f.write(new)
    return True


def readme_disagreement(readme_path: str, results_path: str) -> str | None:
    """Why README's block does not match *results_path* (``None`` when it does)."""
    with open(readme_path, encoding="utf-8") as f:
        block = current_block(f.read())
    if block is None:
        return f"{readme_path} has no {START} ... {END} block"
    expected = expected_block(results_path)
    if block == expected:
        return None
    import difflib

    diff = difflib.unified_diff(
        block.splitlines(), expected.splitlines(), "README.md", results_path, lineterm="", n=0
    )
    return "README's benchmark block disagrees with the results file:\n" + "\n".join(diff)
