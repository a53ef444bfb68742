"""Measure the guard's cost (used by ``benchmarks/bench_guard.py`` and ``sockwise bench``).

One sampling tick with N sockets open in this process and N TIME_WAIT rows on the machine,
against ``psutil.Process().net_connections()`` doing the same job, side by side in one run; the
guard's CPU share at its default interval; origin recording per connect against an untracked one.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import resource
import socket
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from sockwise.guard._guard import DEFAULT_INTERVAL, Guard
from sockwise.guard._netlink import NetlinkReader
from sockwise.guard._procfs import ProcfsReader, socket_fds
from sockwise.guard._sample import GUARD_MASK, sample
from sockwise.guard._source import machine_sockets, source_name
from sockwise.guard._stall import PASS_SHARE


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


def _make_time_wait(count: int) -> int:
    """Open and close *count* loopback connections (client first); return TIME_WAIT rows made."""
    with socket.create_server(("127.0.0.1", 0), backlog=512) as srv:
        dest = srv.getsockname()
        for start in range(0, count, 256):
            batch = [socket.create_connection(dest) for _ in range(min(256, count - start))]
            peers = [srv.accept()[0] for _ in batch]
            for c in batch:
                c.close()
            for p in peers:
                p.close()
    return sum(1 for r in machine_sockets(["TIME_WAIT"]) if r.remote == dest)


def _hook_cost(reps: int) -> dict[str, float]:
    """Per-connect cost: connect_ex to a closed port (no handshake), untracked vs recorded."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()  # bound, never listening: connects are refused at once

    def loop() -> float:
        with socket.socket() as s:
            t = time.perf_counter()
            for _ in range(reps):
                if s.connect_ex(closed) not in (errno.ECONNREFUSED, errno.EISCONN, 0):
                    break
            return (time.perf_counter() - t) / reps

    plain = min(loop() for _ in range(3))
    with _quiet(), Guard(interval=3600):
        tracked = min(loop() for _ in range(3))
    return {
        "untracked_us": plain * 1e6,
        "tracked_us": tracked * 1e6,
        "overhead_us": (tracked - plain) * 1e6,
    }


def _stall_costs(guard: Guard, reps: int) -> dict[str, float]:
    """The tick without stall detection, and the ticks of one whole pass over ``tcp_info``."""
    plain = Guard(stall_after=None)
    plain.check()
    plain_wall, plain_cpu = _median(plain.check, reps)
    stall = guard._stall
    assert stall is not None
    walls, cpus = [], []
    for _ in range(2):  # two whole passes over the ESTABLISHED dump
        start = stall.scans
        stall.pass_started = -math.inf  # a pass is due now (the guard waits 7.5 s between)
        for _ in range(10_000):
            w, c = time.perf_counter(), time.process_time()
            guard.check()
            cpus.append(time.process_time() - c)
            walls.append(time.perf_counter() - w)
            if stall.scans > start:
                break
    pass_ticks = len(walls) / 2
    period = max(pass_ticks, math.ceil(stall.stall_after * PASS_SHARE / DEFAULT_INTERVAL))
    average_cpu = (sum(cpus) / 2 + (period - pass_ticks) * plain_cpu) / period
    average_wall = (sum(walls) / 2 + (period - pass_ticks) * plain_wall) / period
    return {
        "guard_tick_stall_average_ms": average_wall * 1e3,
        "guard_tick_stall_average_cpu_ms": average_cpu * 1e3,
        "stall_pass_every_ticks": period,
        "guard_tick_no_stall_ms": plain_wall * 1e3,
        "guard_tick_no_stall_cpu_ms": plain_cpu * 1e3,
        "guard_tick_stall_median_ms": statistics.median(walls) * 1e3,
        "guard_tick_stall_median_cpu_ms": statistics.median(cpus) * 1e3,
        "guard_tick_stall_max_ms": max(walls) * 1e3,
        "guard_tick_stall_max_cpu_ms": max(cpus) * 1e3,
        "stall_pass_ticks": len(walls) / 2,
        "stall_rows_per_pass": stall.rows,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Run every measurement; return the results (see the module docstring).

    Args:
        quick: 1,000 sockets instead of 10,000 and fewer repetitions.

    """
    n = 1_000 if quick else 10_000
    reps = 5 if quick else 15
    _raise_nofile(n + 512)
    result: dict[str, Any] = {"sockets": n, "source": source_name()}
    with _quiet():
        # The default guard, running while this process makes the TIME_WAIT rows: it is
        # churning, so its ticks count TIME_WAIT -- toward its own destinations, in the kernel.
        churner = Guard(churn_rate=1e9, time_wait_fraction=1.0).start()
        result["time_wait_made"] = _make_time_wait(n)
        guard = Guard()  # started below, after the churn: this process is not churning
        full = Guard(churn_scope="namespace")  # always counts the namespace's TIME_WAIT rows
        try:
            with socket.create_server(("127.0.0.1", 0), backlog=1024) as srv:
                held: list[socket.socket] = []
                try:
                    for start in range(0, n // 2, 512):
                        batch = [
                            socket.create_connection(srv.getsockname())
                            for _ in range(min(512, n // 2 - start))
                        ]
                        held += batch
                        held += [srv.accept()[0] for _ in batch]
                    result["open_sockets"] = len(held)
                    result["time_wait_rows"] = len(machine_sockets(["TIME_WAIT"]))
                    guard.start()
                    guard.check()  # warm-up
                    tick_wall, tick_cpu = _median(guard.check, reps)
                    stall = _stall_costs(guard, reps)
                    churn_wall, churn_cpu = _median(churner.check, reps)
                    churn_counted = max((c for _, c in churner.check().time_wait), default=0)
                    full.start()
                    full_wall, full_cpu = _median(full.check, reps)
                    import psutil

                    proc = psutil.Process()
                    ps_wall, _ = _median(
                        lambda: proc.net_connections(kind="tcp"), max(3, reps // 3)
                    )
                    procfs_wall, _ = _median(lambda: sample(ProcfsReader(), 0, 5.0), reps)
                    diag_wall, _ = _median(lambda: list(NetlinkReader().raw_rows(GUARD_MASK)), reps)
                    fd_wall, _ = _median(socket_fds, max(3, reps // 3))
                finally:
                    for s in held:
                        s.close()
        finally:
            guard.stop()
            full.stop()
            churner.stop()
    result.update(
        {
            "guard_tick_ms": tick_wall * 1e3,
            "guard_tick_cpu_ms": tick_cpu * 1e3,
            "psutil_net_connections_ms": ps_wall * 1e3,
            "speedup_vs_psutil": ps_wall / tick_wall if tick_wall else float("inf"),
            "guard_tick_churning_ms": churn_wall * 1e3,
            "guard_tick_churning_cpu_ms": churn_cpu * 1e3,
            "guard_tick_churning_time_wait_counted": churn_counted,
            "speedup_vs_psutil_churning": ps_wall / churn_wall if churn_wall else float("inf"),
            "guard_tick_with_time_wait_ms": full_wall * 1e3,
            "guard_tick_with_time_wait_cpu_ms": full_cpu * 1e3,
            "speedup_vs_psutil_with_time_wait": ps_wall / full_wall if full_wall else float("inf"),
            "cpu_share_with_time_wait": full_cpu / DEFAULT_INTERVAL,
            "cpu_share_churning": churn_cpu / DEFAULT_INTERVAL,
            "procfs_sample_ms": procfs_wall * 1e3,
            "sock_diag_dump_ms": diag_wall * 1e3,
            "proc_self_fd_listing_ms": fd_wall * 1e3,
            "default_interval_s": DEFAULT_INTERVAL,
            "cpu_share_at_default_interval": tick_cpu / DEFAULT_INTERVAL,
            "guard_mask": GUARD_MASK,
        }
    )
    result.update(stall)
    result["origin_recording"] = _hook_cost(2_000 if quick else 20_000)
    return result


def table(result: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    hook = result["origin_recording"]
    rows = [
        ("sockets open in process", f"{result['open_sockets']:,}"),
        ("TIME_WAIT rows on machine", f"{result['time_wait_rows']:,}"),
        ("source", result["source"]),
        ("psutil net_connections()", f"{result['psutil_net_connections_ms']:.2f} ms"),
        ("guard tick, not churning", f"{result['guard_tick_ms']:.2f} ms"),
        ("guard tick without stall detection", f"{result['guard_tick_no_stall_ms']:.2f} ms"),
        (
            f"  with tcp_info (a pass over {result['stall_rows_per_pass']:,} rows "
            f"in {result['stall_pass_ticks']:g} ticks)",
            f"{result['guard_tick_stall_median_ms']:.2f} ms median, "
            f"{result['guard_tick_stall_max_ms']:.2f} ms max",
        ),
        (
            f"  averaged (a pass every {result['stall_pass_every_ticks']:g} ticks)",
            f"{result['guard_tick_stall_average_ms']:.2f} ms, "
            f"CPU {result['guard_tick_stall_average_cpu_ms']:.2f} ms "
            f"(without: {result['guard_tick_no_stall_cpu_ms']:.2f} ms)",
        ),
        ("  speed-up vs psutil", f"{result['speedup_vs_psutil']:.1f}x"),
        (
            "guard tick, churning (own TIME_WAIT, kernel filter)",
            f"{result['guard_tick_churning_ms']:.2f} ms "
            f"({result['guard_tick_churning_time_wait_counted']:,} rows counted)",
        ),
        ("  speed-up vs psutil", f"{result['speedup_vs_psutil_churning']:.1f}x"),
        (
            "guard tick, namespace scope (all TIME_WAIT)",
            f"{result['guard_tick_with_time_wait_ms']:.2f} ms",
        ),
        ("  speed-up vs psutil", f"{result['speedup_vs_psutil_with_time_wait']:.1f}x"),
        ("procfs sample (fallback)", f"{result['procfs_sample_ms']:.2f} ms"),
        ("sock_diag dump alone", f"{result['sock_diag_dump_ms']:.2f} ms"),
        ("/proc/self/fd listing (avoided)", f"{result['proc_self_fd_listing_ms']:.2f} ms"),
        (
            f"CPU share at {result['default_interval_s']:g} s, not churning",
            f"{result['cpu_share_at_default_interval']:.3%}",
        ),
        (
            f"CPU share at {result['default_interval_s']:g} s, churning",
            f"{result['cpu_share_churning']:.3%}",
        ),
        (
            f"CPU share at {result['default_interval_s']:g} s, namespace scope",
            f"{result['cpu_share_with_time_wait']:.3%}",
        ),
        ("connect, untracked", f"{hook['untracked_us']:.2f} us"),
        ("connect, origin recorded", f"{hook['tracked_us']:.2f} us"),
        ("origin recording overhead", f"{hook['overhead_us']:.2f} us/connect"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
