"""The guard's cost, for ``sockwise bench`` (and ``benchmarks/bench_guard.py``).

Benchmark code only (no part of the guard). With N TCP sockets open in this process (N/2
loopback connections, both ends; a tenth of the clients left in CLOSE_WAIT, as a leak would):

* **like for like** -- the same work on both sides, the same sockets returned:
  ``psutil.Process().net_connections(kind="tcp")`` against sockwise's
  :func:`~sockwise.guard.process_sockets` (the guard's socket source plus this process's
  descriptor table), both returning *all* N connections of the process; then both returning only
  the CLOSE_WAIT and LISTEN ones -- psutil filters in Python after fetching everything, sockwise
  asks the kernel for those states only. The counts returned are recorded and must match;
* **the guard's tick** -- one :meth:`Guard.check` at its defaults, at 1,000 and 10,000 sockets
  (``--quick``: the same sizes, fewer repetitions). When the guard has a stall detector
  (``Guard(stall_after=...)``, which reads ``tcp_info`` of the process's connections in the
  tick), the tick is measured with it on too; without one the row says so;
* the guard's CPU share at its default interval, and origin recording per connect: the hot
  path (interleaved rounds with and without a guard) and, apart, the drain that the guard's tick
  does later for each recorded connect.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import logging
import resource
import socket
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Final

from sockwise._bench.runner import application_function
from sockwise.guard import DEFAULT_INTERVAL, Guard, process_sockets, source_name

#: States of the filtered like-for-like comparison (the per-process states the guard watches).
FILTER_STATES: Final = ("CLOSE_WAIT", "LISTEN")
#: A tenth of the client ends are left in CLOSE_WAIT (their peer closed).
CLOSE_WAIT_EVERY: Final = 10
#: ``stall_after`` for the tick with the stall detector when it is off by default.
STALL_AFTER: Final = 30.0


def _median(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    """Median wall and CPU seconds of *fn* over *reps* calls."""
    walls, cpus = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    return statistics.median(walls), statistics.median(cpus)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    log = logging.getLogger("sockwise")
    handler = logging.NullHandler()
    log.addHandler(handler)
    propagate, log.propagate = log.propagate, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.propagate = propagate
        log.removeHandler(handler)


def _raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def stall_variant(cls: type = Guard) -> tuple[str, dict[str, Any] | None, str]:
    """How the guard's stall detector figures in the ticks (feature-detected on *cls*).

    Returns ``(default_label, other_kwargs, other_label)``: what the default tick includes, and
    the keyword arguments (``None``: no such variant) of a second tick with the detector
    switched the other way -- off when it is on by default, on (``stall_after=30``) when not.
    """
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # Defensive
        params = {}  # type: ignore[assignment]
    param = params.get("stall_after")
    if param is None:
        return "no stall detector in this guard", None, ""
    default = param.default
    if isinstance(default, (int, float)) and not isinstance(default, bool) and default > 0:
        return (
            f"stall detector on, stall_after={default:g}",
            {"stall_after": None},
            "stall detector off, stall_after=None",
        )
    return (
        "stall detector off by default",
        {"stall_after": STALL_AFTER},
        f"stall detector on, stall_after={STALL_AFTER:g}",
    )


# The timed loop of _hook_cost, compiled as application code (see
# sockwise._bench.runner.application_function): connects from inside this package would make
# the guard walk the benchmark harness on every one.
_LOOP_SOURCE: Final = """
def refused_loop(closed, batch, expected):
    with socket.socket() as s:
        clock = time.perf_counter_ns
        t = clock()
        for _ in range(batch):
            if s.connect_ex(closed) not in expected:
                break
        return (clock() - t) / batch / 1000.0
"""


def _hook_cost(rounds: int, batch: int) -> dict[str, float]:
    """Per-connect cost of origin recording, in interleaved rounds (median of the round means).

    ``connect_ex`` to a bound port nobody listens on (refused at once: no handshake), made by
    application code (as a user's connect is), with no
    guard and with a guard whose thread never ticks during the round, alternating; the batch
    stays far below the guard's early-drain mark, so the hot path alone is timed. The drain of
    the recorded batch (what the guard's tick does later, off the hot path) is timed apart: a
    :meth:`Guard.check` right after the batch minus one right after it (nothing left to drain).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()  # bound, never listening: connects are refused at once

    timed = application_function(_LOOP_SOURCE, "refused_loop", {"socket": socket, "time": time})

    def loop() -> float:
        return float(timed(closed, batch, (errno.ECONNREFUSED, errno.EISCONN, 0)))

    def timed_check(guard: Guard) -> int:
        t = time.perf_counter_ns()
        guard.check()
        return time.perf_counter_ns() - t

    plain: list[float] = []
    tracked: list[float] = []
    drained: list[float] = []
    with _quiet():
        for _ in range(rounds):
            plain.append(loop())
            with Guard(interval=3600) as guard:
                guard.check()  # the first sample's set-up is not the drain's
                tracked.append(loop())
                with_drain = timed_check(guard)
                drained.append((with_drain - timed_check(guard)) / batch / 1000.0)
    untracked_us = statistics.median(plain)
    tracked_us = statistics.median(tracked)
    return {
        "untracked_us": untracked_us,
        "tracked_us": tracked_us,
        "overhead_us": tracked_us - untracked_us,
        "drain_us": statistics.median(drained),
        "rounds": rounds,
        "batch": batch,
    }


def _open(n: int, srv: socket.socket) -> list[socket.socket]:
    """*n* sockets (n/2 connections, both ends); every tenth client end left in CLOSE_WAIT."""
    held: list[socket.socket] = []
    pairs = n // 2
    for start in range(0, pairs, 512):
        batch = [
            socket.create_connection(srv.getsockname()) for _ in range(min(512, pairs - start))
        ]
        peers = [srv.accept()[0] for _ in batch]
        for i, peer in enumerate(peers):
            if (start + i) % CLOSE_WAIT_EVERY == 0:
                peer.shutdown(socket.SHUT_WR)  # the client end goes to CLOSE_WAIT
        held += batch
        held += peers
    return held


def _measure_size(n: int, reps: int, psutil_reps: int) -> dict[str, Any]:
    default_label, other_kwargs, other_label = stall_variant()
    out: dict[str, Any] = {
        "sockets": n,
        "guard_default": default_label,
        "guard_other": other_label or None,
    }
    with socket.create_server(("127.0.0.1", 0), backlog=1024) as srv:
        held = _open(n, srv)
        try:
            time.sleep(0.05)  # FINs delivered: CLOSE_WAIT settled
            wanted = set(FILTER_STATES)
            try:
                import psutil
            except ImportError:
                psutil = None  # type: ignore[assignment]
            if psutil is not None:
                proc = psutil.Process()
                out["psutil_all_count"] = len(proc.net_connections(kind="tcp"))
                wall, _ = _median(lambda: proc.net_connections(kind="tcp"), psutil_reps)
                out["psutil_all_ms"] = wall * 1e3

                def psutil_filtered() -> list[Any]:
                    return [c for c in proc.net_connections(kind="tcp") if c.status in wanted]

                out["psutil_filtered_count"] = len(psutil_filtered())
                wall, _ = _median(psutil_filtered, psutil_reps)
                out["psutil_filtered_ms"] = wall * 1e3
            out["sockwise_all_count"] = len(process_sockets())
            wall, _ = _median(process_sockets, reps)
            out["sockwise_all_ms"] = wall * 1e3
            out["sockwise_filtered_count"] = len(process_sockets(states=FILTER_STATES))
            wall, _ = _median(lambda: process_sockets(states=FILTER_STATES), reps)
            out["sockwise_filtered_ms"] = wall * 1e3
            with _quiet():
                guard = Guard().start()
                try:
                    guard.check()  # warm-up
                    wall, cpu = _median(guard.check, reps)
                finally:
                    guard.stop()
                out["guard_tick_ms"], out["guard_tick_cpu_ms"] = wall * 1e3, cpu * 1e3
                if other_kwargs is not None:
                    other = Guard(**other_kwargs).start()
                    try:
                        other.check()
                        wall, cpu = _median(other.check, reps)
                    finally:
                        other.stop()
                    out["guard_tick_other_ms"] = wall * 1e3
                    out["guard_tick_other_cpu_ms"] = cpu * 1e3
        finally:
            for s in held:
                s.close()
    if "psutil_all_ms" in out:
        out["speedup_all"] = out["psutil_all_ms"] / out["sockwise_all_ms"]
        out["speedup_filtered"] = out["psutil_filtered_ms"] / out["sockwise_filtered_ms"]
        out["same_sockets"] = (
            out["psutil_all_count"] == out["sockwise_all_count"]
            and out["psutil_filtered_count"] == out["sockwise_filtered_count"]
        )
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Run every measurement; return the results (see the module docstring).

    Args:
        quick: Fewer repetitions (the same sizes: about 4 s instead of 15 s).

    """
    sizes = (1_000, 10_000)
    reps = 3 if quick else 15
    _raise_nofile(max(sizes) + 512)
    sized = [_measure_size(n, reps, 2 if quick else 7) for n in sizes]
    hook = _hook_cost(9 if quick else 25, 500 if quick else 2_000)
    rows: list[dict[str, Any]] = []
    for s in sized:
        n = s["sockets"]
        if "psutil_all_ms" in s:
            rows += [
                _row(n, "psutil, all states", s["psutil_all_ms"], s["psutil_all_count"], 1.0),
                _row(
                    n,
                    "sockwise, all states",
                    s["sockwise_all_ms"],
                    s["sockwise_all_count"],
                    s["speedup_all"],
                ),
                _row(
                    n,
                    "psutil, CLOSE_WAIT+LISTEN (Python filter)",
                    s["psutil_filtered_ms"],
                    s["psutil_filtered_count"],
                    1.0,
                ),
                _row(
                    n,
                    "sockwise, CLOSE_WAIT+LISTEN (kernel filter)",
                    s["sockwise_filtered_ms"],
                    s["sockwise_filtered_count"],
                    s["speedup_filtered"],
                ),
            ]
        rows.append(
            _row(n, f"guard tick, defaults ({s['guard_default']})", s["guard_tick_ms"], None, None)
        )
        if "guard_tick_other_ms" in s:
            rows.append(
                _row(n, f"guard tick, {s['guard_other']}", s["guard_tick_other_ms"], None, None)
            )
    last = sized[-1]
    same = all(s.get("same_sockets", True) for s in sized)
    summary = (
        f"at {last['sockets']:,} sockets: guard tick {last['guard_tick_ms']:.2f} ms "
        f"({last['guard_default']})"
    )
    if "guard_tick_other_ms" in last:
        summary += f", {last['guard_tick_other_ms']:.2f} ms with {last['guard_other']}"
    if "speedup_all" in last:
        summary += (
            f"; same work as psutil (all {last['sockwise_all_count']:,} connections): "
            f"{last['speedup_all']:.1f}x faster, filtered to CLOSE_WAIT+LISTEN "
            f"{last['speedup_filtered']:.1f}x"
        )
    result: dict[str, Any] = {
        "benchmark": "guard",
        "title": "The guard's cost: like-for-like listing vs psutil, tick at 1,000/10,000 sockets",
        "quick": quick,
        "source": source_name(),
        "sizes": list(sizes),
        "sized": sized,
        "metric": "ms",
        "rows": rows,
        "same_sockets": same,
        "default_interval_s": DEFAULT_INTERVAL,
        "cpu_share_at_default_interval": last["guard_tick_cpu_ms"] / 1e3 / DEFAULT_INTERVAL,
        "origin_recording": hook,
        "summary": summary,
        "notes": (
            "Both sides list this process's TCP sockets (N/2 loopback connections, both ends, "
            "every tenth client in CLOSE_WAIT) and return the same sockets (count column). "
            "The guard tick is Guard().check() at its defaults."
            + (" Quick run: 3 repetitions per figure (15 in a full run)." if quick else "")
        ),
    }
    if not same:
        result["invalid"] = "psutil and sockwise returned different numbers of sockets"
    return result


def _row(n: int, case: str, ms: float, count: int | None, speedup: float | None) -> dict[str, Any]:
    return {
        "case": f"{n:,} sockets: {case}",
        "sockets": n,
        "ms": round(ms, 3),
        "returned": count,
        "speedup_vs_psutil": None if speedup is None else round(speedup, 2),
    }


def table(result: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    width = max(len(r["case"]) for r in result["rows"])
    head = f"{'case':<{width}}  {'ms':>9}  {'returned':>8}  {'x psutil':>8}"
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        count = "" if r["returned"] is None else f"{r['returned']:,}"
        speed = "" if r["speedup_vs_psutil"] is None else f"{r['speedup_vs_psutil']:.2f}"
        lines.append(f"{r['case']:<{width}}  {r['ms']:>9.3f}  {count:>8}  {speed:>8}")
    hook = result["origin_recording"]
    lines.append(
        f"source {result['source']}; CPU share at {result['default_interval_s']:g} s: "
        f"{result['cpu_share_at_default_interval']:.3%}; origin recording "
        f"{hook['overhead_us']:.2f} us/connect ({hook['untracked_us']:.2f} -> "
        f"{hook['tracked_us']:.2f} us, median of interleaved rounds)"
        + (
            f", drained later {hook['drain_us']:.2f} us/connect (the guard's tick)"
            if "drain_us" in hook
            else ""
        )
    )
    lines.append(str(result["summary"]))
    if result.get("invalid"):
        lines.append(f"INVALID: {result['invalid']}")
    return "\n".join(lines)
