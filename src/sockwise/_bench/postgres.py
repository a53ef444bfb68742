"""PostgreSQL checkouts: sockwise's pool vs psycopg_pool (with and without a check) vs connect().

Every case runs ``SELECT 1`` on a connection it checks out (or opens) for that one query, from
one thread, against the same server. The cases run in interleaved rounds (in balanced orders),
so a burst of load on this shared machine hits them all alike; throughput is the total over
all rounds, latency percentiles pool every round's samples. Ratios are to psycopg_pool without
a check, the pool sockwise wraps, as the median of per-round ratios:

* ``sockwise``: :class:`sockwise.psycopg.ConnectionPool` with its defaults (a free socket poll
  per checkout, a round trip only after 0.5 s idle), so it never hands out a killed connection;
* ``psycopg_pool``: ``psycopg_pool.ConnectionPool`` without ``check`` (hands out dead ones);
* ``psycopg_pool+check``: with ``check=ConnectionPool.check_connection`` (a round trip each);
* ``connect``: ``psycopg.connect()`` per query, no pool.

The server is ``SOCKWISE_TEST_DSN`` when set, else a throwaway cluster started here on loopback.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import Any, Final

from sockwise._bench.cpus import pin_server, pinned_client
from sockwise._bench.runner import balanced_orders

CASES: Final = ("sockwise", "psycopg_pool", "psycopg_pool+check", "connect")
BASELINE: Final = "psycopg_pool"
POOL_SIZE: Final = 2


def machine() -> dict[str, Any]:
    """Cores, CPU model, load, OS and library versions of the machine measuring."""
    import psycopg
    import psycopg_pool

    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "psycopg_pool": psycopg_pool.__version__,
        "libpq": psycopg.pq.version(),
    }


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def _pooled(pool: Any) -> Callable[[], None]:
    def one() -> None:
        with pool.connection() as conn:
            conn.execute("SELECT 1").fetchone()

    return one


def _unpooled(dsn: str) -> Callable[[], None]:
    import psycopg

    def one() -> None:
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT 1").fetchone()

    return one


def _open_pools(dsn: str, stack: ExitStack) -> dict[str, Callable[[], None]]:
    import psycopg_pool

    from sockwise.psycopg import ConnectionPool

    pools: dict[str, Any] = {
        "sockwise": ConnectionPool(dsn, min_size=POOL_SIZE, open=False, name="bench-sockwise"),
        "psycopg_pool": psycopg_pool.ConnectionPool(
            dsn, min_size=POOL_SIZE, open=False, name="bench-psycopg-pool"
        ),
        "psycopg_pool+check": psycopg_pool.ConnectionPool(
            dsn,
            min_size=POOL_SIZE,
            open=False,
            name="bench-psycopg-pool-check",
            check=psycopg_pool.ConnectionPool.check_connection,
        ),
    }
    ops: dict[str, Callable[[], None]] = {}
    for case, pool in pools.items():
        stack.enter_context(pool)
        pool.wait(timeout=30)
        ops[case] = _pooled(pool)
    ops["connect"] = _unpooled(dsn)
    return ops


def _server() -> AbstractContextManager[Any]:
    from sockwise.testing import PostgresServer, pg_unavailable_reason

    dsn = os.environ.get("SOCKWISE_TEST_DSN")
    if dsn:
        return _nullcontext(PostgresServer.from_dsn(dsn))
    reason = pg_unavailable_reason()
    if reason:
        raise _Skip(reason)
    return PostgresServer.start()


class _Skip(Exception):
    pass


class _nullcontext(AbstractContextManager[Any]):
    def __init__(self, value: Any) -> None:
        self.value = value

    def __enter__(self) -> Any:
        return self.value

    def __exit__(self, *exc: object) -> None:
        return None


def _rounds(
    ops: dict[str, Callable[[], None]], rounds: int, per_round: dict[str, int]
) -> Iterator[tuple[str, float, float, list[float]]]:
    """Yield ``(case, seconds, cpu seconds, latencies)`` per case per round.

    The rounds cycle through balanced orders (:func:`~sockwise._bench.runner.balanced_orders`):
    each case follows every other case equally often. A fixed rotation made one case follow
    ``connect`` three rounds in four (a backend exiting after ``connect`` still uses the CPU
    when the next case starts), and a random order is only balanced on average. A short
    untimed pause after ``connect`` lets the exit finish.
    """
    names = list(ops)
    orders = balanced_orders(len(names))
    for r in range(rounds):
        for case in (names[i] for i in orders[r % len(orders)]):
            op, n = ops[case], per_round[case]
            lat: list[float] = []
            cpu0 = time.process_time()
            start = time.perf_counter()
            for _ in range(n):
                t0 = time.perf_counter()
                op()
                lat.append(time.perf_counter() - t0)
            yield case, time.perf_counter() - start, time.process_time() - cpu0, lat
            if case == "connect":
                time.sleep(0.005)  # untimed: the closed backend's exit settles


def run(quick: bool = False) -> dict[str, Any]:
    """Measure the four cases side by side and return JSON-ready results.

    Args:
        quick: Fewer, shorter rounds (a smoke run of a few seconds).

    """
    # Many tiny rounds (~10 ms per case): other work on a shared machine comes in bursts, and
    # a burst should land on every case alike, not on one case's whole measurement.
    rounds = 60 if quick else 300
    per_round = dict.fromkeys(CASES, 50)
    per_round["connect"] = 1
    try:
        server_cm = _server()
    except _Skip as skip:
        return {"skipped": str(skip)}
    rates: dict[str, list[float]] = {c: [] for c in CASES}
    busy: dict[str, float] = dict.fromkeys(CASES, 0.0)
    samples: dict[str, list[float]] = {c: [] for c in CASES}
    cpu: dict[str, float] = dict.fromkeys(CASES, 0.0)
    with server_cm as server, ExitStack() as stack:
        pid = getattr(server, "postmaster_pid", None)
        if pid is not None:  # backends are forked from it, after this: off the client's CPU
            pin_server(pid)
        stack.enter_context(pinned_client())
        ops = _open_pools(server.dsn, stack)
        for op in ops.values():  # warm-up: connections, caches, code paths
            for _ in range(20):
                op()
        for case, seconds, cpu_s, lat in _rounds(ops, rounds, per_round):
            rates[case].append(len(lat) / seconds)
            busy[case] += seconds
            cpu[case] += cpu_s
            samples[case].extend(lat)
        server_desc = "SOCKWISE_TEST_DSN" if server.external else "throwaway cluster, loopback"
    base_p50 = _percentile(sorted(samples[BASELINE]), 50)
    rows = []
    for case in CASES:
        lat = sorted(samples[case])
        qps = len(lat) / busy[case]
        # Paired: each round's rate over psycopg_pool's in the same round, then the median; a
        # burst of load on a shared machine moves a few rounds' ratios, not one case's total.
        ratio = statistics.median(a / b for a, b in zip(rates[case], rates[BASELINE], strict=True))
        rows.append(
            {
                "case": case,
                "queries_per_s": round(qps, 1),
                "ratio_to_psycopg_pool": round(ratio, 3),
                "p50_us": round(_percentile(lat, 50) * 1e6, 1),
                "p50_ratio_to_psycopg_pool": round(_percentile(lat, 50) / base_p50, 3),
                "p99_us": round(_percentile(lat, 99) * 1e6, 1),
                "client_cpu_us_per_query": round(cpu[case] / len(lat) * 1e6, 1),
                "queries": len(lat),
                "best_round_qps": round(max(rates[case]), 1),
                "median_round_qps": round(statistics.median(rates[case]), 1),
            }
        )
    by_case = {row["case"]: row for row in rows}
    sw = by_case["sockwise"]
    summary = (
        f"sockwise pool: {sw['queries_per_s']:.0f} SELECT 1/s, "
        f"{sw['ratio_to_psycopg_pool']:.2f}x psycopg_pool without a check "
        f"(p50 latency {sw['p50_ratio_to_psycopg_pool']:.2f}x) "
        f"vs {by_case['psycopg_pool+check']['ratio_to_psycopg_pool']:.2f}x for check_connection, "
        f"{by_case['connect']['ratio_to_psycopg_pool']:.3f}x for a connect() per query"
    )
    return {
        "benchmark": "postgres",
        "quick": quick,
        "rounds": rounds,
        "pool_size": POOL_SIZE,
        "server": server_desc,
        "machine": machine(),
        "metric": "queries_per_s",
        "rows": rows,
        "summary": summary,
        "notes": (
            "One thread, SELECT 1 per checkout, many tiny interleaved rounds in balanced orders "
            "(each case follows every other equally often); queries_per_s is all queries over "
            "all the time spent in the case; ratio_to_psycopg_pool is the median of per-round "
            "ratios (the same round's rates); p50/p99 pool every sample; "
            "client_cpu_us_per_query is this process's CPU time (user+sys, all threads, "
            "including the pools' background workers) per query."
        ),
    }


def table(result: dict[str, Any]) -> str:
    """Render *result* as a plain-text table."""
    if "skipped" in result:
        return f"postgres benchmark skipped: {result['skipped']}"
    m = result["machine"]
    lines = [
        f"PostgreSQL checkouts ({result['server']}; {m['cores']} cores, {m['cpu_model']}; "
        f"load {m['loadavg_1m']})",
        f"{'case':<20} {'queries/s':>10} {'ratio':>7} {'p50 us':>9} {'p99 us':>9} {'cpu us/q':>9}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['case']:<20} {row['queries_per_s']:>10.0f} "
            f"{row['ratio_to_psycopg_pool']:>7.3f} {row['p50_us']:>9.1f} {row['p99_us']:>9.1f} "
            f"{row['client_cpu_us_per_query']:>9.1f}"
        )
    lines.append(result["summary"])
    return "\n".join(lines)
