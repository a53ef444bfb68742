"""A/B of the HTTP pool hot path: client CPU and requests/s, sockwise pool vs bare urllib3.

Three pools with the *same* ``Timeout`` (``sockwise.urllib3.default_timeout(Policy())``), each
against its own port of ``sockwise bench``'s out-of-process keep-alive server: bare urllib3,
the sockwise pool, and bare urllib3 given the policy's socket options (to separate the kernel
cost of the options from the pool's Python code). Rounds are interleaved (order alternates) and
ratios are taken per round, then the median -- robust against load drift on a shared machine.

    python benchmarks/urllib3_pool_ab.py [ROUNDS] [REQUESTS_PER_ROUND]

It first times the pool's own work alone: checkout and return (``_get_conn`` + ``_put_conn``)
of an idle keep-alive connection, no request, 10 x 20,000 cycles per pool.
"""

from __future__ import annotations

import ssl
import statistics
import sys
import time
from typing import Any

import urllib3

import sockwise.urllib3 as swu
from sockwise._bench.cpus import pinned_client
from sockwise._bench.http import serving
from sockwise.policy import Policy


def checkout_return() -> None:
    """Print the median CPU of one checkout + return, bare urllib3 vs the sockwise pool."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    timeout = swu.default_timeout(Policy())
    pools: dict[str, Any] = {}
    classes = {"urllib3": urllib3.HTTPConnectionPool, "sockwise": swu.HTTPConnectionPool}
    for name, cls in classes.items():
        pool = cls("127.0.0.1", port, maxsize=1, timeout=timeout)
        conn = pool._get_conn()
        conn.connect()
        pool._put_conn(conn)
        pools[name] = pool
    cycles = 20_000
    cost: dict[str, list[float]] = {name: [] for name in pools}
    for _ in range(10):
        for name, pool in pools.items():
            get, put = pool._get_conn, pool._put_conn
            t0 = time.thread_time_ns()
            for _ in range(cycles):
                put(get())
            cost[name].append((time.thread_time_ns() - t0) / cycles / 1000)
    for name in pools:
        print(f"checkout+return {name:9} {statistics.median(cost[name]):.2f} us")
        pools[name].close()
    listener.close()


def main(rounds: int = 40, n: int = 400) -> None:
    ctx = ssl.create_default_context()
    with serving(3, ctx) as ports, pinned_client():
        _compare(ports, ctx, rounds, n)


def _compare(ports: dict[str, list[int]], ctx: ssl.SSLContext, rounds: int, n: int) -> None:
    timeout = swu.default_timeout(Policy())
    for scheme in ("http", "https"):
        kw: dict[str, Any] = {"ssl_context": ctx} if scheme == "https" else {}
        bare = urllib3.HTTPSConnectionPool if scheme == "https" else urllib3.HTTPConnectionPool
        ours = swu.HTTPSConnectionPool if scheme == "https" else swu.HTTPConnectionPool
        a, b, c = ports[scheme]
        pools = {
            "urllib3": bare("127.0.0.1", a, maxsize=1, timeout=timeout, **kw),
            "sockwise": ours("127.0.0.1", b, maxsize=1, timeout=timeout, **kw),
            "urllib3+options": bare(
                "127.0.0.1",
                c,
                maxsize=1,
                timeout=timeout,
                socket_options=Policy().socket_options(),
                **kw,
            ),
        }
        for pool in pools.values():
            for _ in range(50):
                pool.request("GET", "/")
        cpu: dict[str, list[float]] = {k: [] for k in pools}
        rate: dict[str, list[float]] = {k: [] for k in pools}
        names = list(pools)
        for r in range(rounds):
            for name in names if r % 2 else reversed(names):
                request = pools[name].request
                c0, t0 = time.thread_time(), time.perf_counter()
                for _ in range(n):
                    request("GET", "/")
                cpu[name].append((time.thread_time() - c0) * 1e6 / n)
                rate[name].append(n / (time.perf_counter() - t0))
        for name in names:
            cpu_ratio = statistics.median(
                x / y for x, y in zip(cpu[name], cpu["urllib3"], strict=True)
            )
            rate_ratio = statistics.median(
                x / y for x, y in zip(rate[name], rate["urllib3"], strict=True)
            )
            print(
                f"{scheme:5} {name:16} cpu {statistics.median(cpu[name]):6.1f} us/req "
                f"(x{cpu_ratio:.3f})  {statistics.median(rate[name]):6.0f} req/s "
                f"(x{rate_ratio:.3f})"
            )
        for pool in pools.values():
            pool.close()


if __name__ == "__main__":
    checkout_return()
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 40,
        int(sys.argv[2]) if len(sys.argv) > 2 else 400,
    )
