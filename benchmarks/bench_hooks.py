"""Per-connect cost of the hook layer: harden() with and without the guard, vs the setsockopt floor.

Each connect is a loopback ``socket(); connect(); close()``; every variant closes with RST
(``SO_LINGER`` 0, set by hand in all of them with the C method, so it is not an option
the hooks track), so no TIME_WAIT socket is left and the kernel's
ephemeral-port search stays as fast in the last round as in the first. The listener's queue is
drained between batches. Variants run in interleaved rounds (bare, floor, hooks, hooks+guard,
bare, ...), so the machine's noise hits them alike; min, median and p90 of the per-round means
are reported, in microseconds per connect, both in wall time (``perf_counter_ns``) and in CPU
time of the connecting thread (``thread_time_ns``: steadier on a shared machine, and it
includes the system calls):

* ``bare``: no sockwise;
* ``floor``: bare plus the policy's six ``setsockopt`` calls by hand -- what any applier pays;
* ``harden(guard=False)``: sockwise's hooks;
* ``harden()``: the hooks plus the guard's origin recording (the default).

The target (issue 10): ``harden()`` adds at most twice the floor's own cost (``floor - bare``).

    python benchmarks/bench_hooks.py [--rounds 21] [--batch 2000] [--profile]
"""

from __future__ import annotations

import _socket
import argparse
import cProfile
import json
import pstats
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable

import sockwise

RST: bytes = struct.pack("ii", 1, 0)


def drain(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.close()


def loop(addr: tuple[str, int], n: int, options: list[tuple[int, int, int]]) -> tuple[float, float]:
    """Wall and CPU nanoseconds per connect for *n* connects (*options* set by hand first)."""
    new_socket = socket.socket
    sol, linger = socket.SOL_SOCKET, socket.SO_LINGER
    raw_setsockopt = _socket.socket.setsockopt  # the RST close is not the application's option
    started = time.perf_counter_ns()
    cpu = time.thread_time_ns()
    for _ in range(n):
        s = new_socket()
        for level, opt, value in options:
            s.setsockopt(level, opt, value)
        s.connect(addr)
        raw_setsockopt(s, sol, linger, RST)
        s.close()
    return (time.perf_counter_ns() - started) / n, (time.thread_time_ns() - cpu) / n


def variant(name: str, policy: sockwise.Policy) -> Callable[[], None]:
    def enter() -> None:
        sockwise.unharden()
        if name == "harden(guard=False)":
            sockwise.harden(policy, guard=False)
        elif name == "harden()":
            sockwise.harden(policy)

    return enter


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "min": round(ordered[0] / 1000, 2),
        "median": round(statistics.median(ordered) / 1000, 2),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))] / 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="cProfile harden() connects")
    args = parser.parse_args()
    policy = sockwise.Policy()
    options = list(policy.socket_options())
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    listener.setblocking(False)
    addr = listener.getsockname()
    names = ["bare", "floor", "harden(guard=False)", "harden()"]
    results: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    try:
        for name in names:  # warm-up
            variant(name, policy)()
            loop(addr, 200, options if name == "floor" else [])
            drain(listener)
        for _ in range(args.rounds):
            for name in names:
                variant(name, policy)()
                wall, used = loop(addr, args.batch, options if name == "floor" else [])
                results[name].append(wall)
                cpu[name].append(used)
                drain(listener)
        if args.profile:
            sockwise.harden(policy)
            profiler = cProfile.Profile()
            profiler.enable()
            loop(addr, args.batch, [])
            profiler.disable()
            drain(listener)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(12)
    finally:
        sockwise.unharden()
        drain(listener)
        listener.close()
    out: dict[str, object] = {"rounds": args.rounds, "batch": args.batch}
    for clock, data in (("perf_counter_ns", results), ("thread_time_ns", cpu)):
        table = {name: summary(values) for name, values in data.items()}
        bare = table["bare"]["median"]
        floor_cost = round(table["floor"]["median"] - bare, 2)
        out[clock] = {
            "unit": "microseconds per connect",
            "variants": table,
            "setsockopt_floor_cost": floor_cost,
            "added": {name: round(table[name]["median"] - bare, 2) for name in names[2:]},
            "added_over_floor": {
                name: round((table[name]["median"] - bare) / floor_cost, 2)
                if floor_cost > 0
                else None
                for name in names[2:]
            },
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
