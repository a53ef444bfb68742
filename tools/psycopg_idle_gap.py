"""What the ping after an idle gap costs: checkout + ``SELECT 1`` after 0.2 s, 1 s, 2 s idle.

The pools idle together: after each gap every pool serves one checkout, in a shuffled order, so
they all saw the same gap and the same machine load. Cases:

* ``psycopg_pool``: psycopg_pool without a check (never pings; hands out dead connections);
* ``psycopg_pool+check``: with ``check_connection`` (a round trip on every checkout);
* ``sockwise``: :class:`sockwise.psycopg.ConnectionPool` with its defaults (``alive_bypass``);
* ``sockwise, bypass=B``: the same with ``alive_bypass`` set to *B* seconds (``--bypass``).

Usage::

    python tools/psycopg_idle_gap.py [--samples 15] [--gaps 0.2,1,2] [--bypass 2,5]

Prints the median and p90 latency per case and gap, and the added median latency against
psycopg_pool. The server is a throwaway cluster (``sockwise.testing.PostgresServer``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

import psycopg_pool

from sockwise.psycopg import ConnectionPool
from sockwise.testing import PostgresServer


def _one(pool: Any) -> tuple[float, float]:
    """``(checkout, checkout + query + return)`` in seconds."""
    t0 = time.perf_counter()
    with pool.connection() as conn:
        t1 = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
    return t1 - t0, time.perf_counter() - t0


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--gaps", default="0.2,1,2")
    parser.add_argument("--bypass", default="")
    args = parser.parse_args()
    gaps = [float(g) for g in args.gaps.split(",")]
    bypasses = [float(b) for b in args.bypass.split(",") if b]
    with PostgresServer.start() as pg:
        pools: dict[str, Any] = {
            "psycopg_pool": psycopg_pool.ConnectionPool(pg.dsn, min_size=1, open=True),
            "psycopg_pool+check": psycopg_pool.ConnectionPool(
                pg.dsn, min_size=1, open=True, check=psycopg_pool.ConnectionPool.check_connection
            ),
            "sockwise": ConnectionPool(pg.dsn, min_size=1, open=True),
        }
        for b in bypasses:
            pool = ConnectionPool(pg.dsn, min_size=1, open=True)
            pool.alive_bypass = b
            pools[f"sockwise, bypass={b:g}"] = pool
        try:
            for pool in pools.values():
                pool.wait(timeout=30)
                for _ in range(20):
                    _one(pool)
            lat: dict[tuple[str, float], list[float]] = {}
            co: dict[tuple[str, float], list[float]] = {}
            order = list(pools)
            rng = random.Random(7)
            for _ in range(args.samples):
                for gap in gaps:
                    time.sleep(gap)
                    rng.shuffle(order)
                    for name in order:
                        checkout, total = _one(pools[name])
                        lat.setdefault((name, gap), []).append(total)
                        co.setdefault((name, gap), []).append(checkout)
        finally:
            for pool in pools.values():
                pool.close()
    for title, data in (("checkout + SELECT 1 + return", lat), ("checkout alone", co)):
        print(f"\n{title}: median / p90 in us (+N: median added vs psycopg_pool, no check)")
        print(f"{'case':24s} " + " ".join(f"{f'gap {g:g} s':>24s}" for g in gaps))
        for name in pools:
            cells = []
            for gap in gaps:
                xs = sorted(data[(name, gap)])
                p50 = statistics.median(xs) * 1e6
                p90 = xs[min(len(xs) - 1, round(0.9 * (len(xs) - 1)))] * 1e6
                base = statistics.median(data[("psycopg_pool", gap)]) * 1e6
                cells.append(f"{p50:6.0f} / {p90:6.0f} ({p50 - base:+5.0f})")
            print(f"{name:24s} " + " ".join(f"{c:>24s}" for c in cells))


if __name__ == "__main__":
    main()
