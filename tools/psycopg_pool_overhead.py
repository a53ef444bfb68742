"""sockwise's psycopg pool vs psycopg_pool without a check: checkout/return cost and throughput.

Two measurements, both interleaved (the order alternates every round):

* ``checkout``: ``with pool.connection(): pass`` -- the pool's own code, no query. Reported as
  client CPU time per checkout + return (``process_time``), which a loaded machine disturbs far
  less than wall time.
* ``query``: checkout + ``SELECT 1`` + return. Fresh pools (fresh backends) every round: where
  the kernel places a backend relative to the client moves one connection's throughput by
  +-30 % on 2 shared cores, so each round gets new ones and the ratio is the median of the
  per-round ratios (quartiles printed too).

Usage::

    python tools/psycopg_pool_overhead.py [--rounds 15] [--checkouts 4000] [--queries 500]
    python tools/psycopg_pool_overhead.py --profile   # cProfile of 20,000 checkouts each
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from typing import Any

import psycopg_pool

from sockwise.psycopg import ConnectionPool
from sockwise.testing import PostgresServer


def _checkouts(pool: Any, n: int) -> float:
    c0 = time.process_time_ns()
    for _ in range(n):
        with pool.connection():
            pass
    return (time.process_time_ns() - c0) / n / 1000


def _queries(pool: Any, n: int) -> tuple[float, float]:
    c0, t0 = time.process_time_ns(), time.perf_counter_ns()
    for _ in range(n):
        with pool.connection() as conn:
            conn.execute("SELECT 1").fetchone()
    return n / ((time.perf_counter_ns() - t0) / 1e9), (time.process_time_ns() - c0) / n / 1000


def _pools(dsn: str) -> dict[str, Any]:
    pools: dict[str, Any] = {
        "sockwise": ConnectionPool(dsn, min_size=1, open=True),
        "psycopg_pool": psycopg_pool.ConnectionPool(dsn, min_size=1, open=True),
    }
    for pool in pools.values():
        pool.wait(timeout=30)
    return pools


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--checkouts", type=int, default=4000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with PostgresServer.start() as pg:
        pools = _pools(pg.dsn)
        try:
            if args.profile:
                for name, pool in pools.items():
                    prof = cProfile.Profile()
                    prof.runcall(_checkouts, pool, 20000)
                    print(f"===== {name}")
                    pstats.Stats(prof).sort_stats("tottime").print_stats(15)
                return
            cpu: dict[str, list[float]] = {name: [] for name in pools}
            for r in range(args.rounds):
                for name in sorted(pools, reverse=bool(r % 2)):
                    cpu[name].append(_checkouts(pools[name], args.checkouts))
        finally:
            for pool in pools.values():
                pool.close()
        sw, pp = statistics.median(cpu["sockwise"]), statistics.median(cpu["psycopg_pool"])
        print(f"checkout + return, client CPU us (median of {args.rounds} rounds):")
        print(f"  sockwise {sw:.2f}  psycopg_pool {pp:.2f}  added {sw - pp:+.2f}")
        ratios: list[float] = []
        qcpu: dict[str, list[float]] = {"sockwise": [], "psycopg_pool": []}
        for r in range(args.rounds):
            pools = _pools(pg.dsn)
            try:
                got = {}
                for name in sorted(pools, reverse=bool(r % 2)):
                    _queries(pools[name], 50)  # warm-up
                    got[name] = _queries(pools[name], args.queries)
            finally:
                for pool in pools.values():
                    pool.close()
            ratios.append(got["sockwise"][0] / got["psycopg_pool"][0])
            for name, (_, c) in got.items():
                qcpu[name].append(c)
        q1, q2, q3 = statistics.quantiles(ratios, n=4)
        print(f"checkout + SELECT 1 + return, fresh pools each of {args.rounds} rounds:")
        print(f"  queries/s sockwise / psycopg_pool: median {q2:.3f} ({q1:.3f}..{q3:.3f})")
        print(
            f"  client CPU us/query: sockwise {statistics.median(qcpu['sockwise']):.1f}, "
            f"psycopg_pool {statistics.median(qcpu['psycopg_pool']):.1f}"
        )


if __name__ == "__main__":
    main()
