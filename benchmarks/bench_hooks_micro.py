"""The hook layer's own Python cost per connect, without the connect: CPU ns per call.

Calls the policy's connect hook on an unconnected TCP socket and compares it with the same
``setsockopt`` calls made directly (``floor``); ``runner`` is the hook layer's dispatch to one
no-op hook; ``origin`` is the guard's origin recording (owned by the guard). CPU time of this
thread (``thread_time_ns``), min and median of interleaved rounds.

    python benchmarks/bench_hooks_micro.py
"""

from __future__ import annotations

import _socket
import json
import socket
import statistics
import time
from collections.abc import Callable

import sockwise
from sockwise import _hooks
from sockwise.guard import _origin
from sockwise.harden import _stdlib


def main() -> None:
    sockwise.harden()
    sock = socket.socket()
    address = ("127.0.0.1", 9)
    calls = list(_stdlib._current.connect_options) if _stdlib._current else []
    raw = _socket.socket.setsockopt

    def floor() -> None:
        for level, opt, value in calls:
            raw(sock, level, opt, value)

    def policy_hook() -> None:
        _stdlib._on_connect(sock, address)

    def noop(s: object, a: object) -> None:
        pass

    def runner() -> None:
        _hooks._run_connect((noop,), sock, address)

    def origin() -> None:
        _origin._on_connect(sock, address)

    cases: dict[str, Callable[[], None]] = {
        "floor (same setsockopt calls)": floor,
        "policy hook": policy_hook,
        "runner + no-op hook": runner,
        "origin recording": origin,
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for _ in range(15):
            for name, func in cases.items():
                n = 5000
                started = time.thread_time_ns()
                for _ in range(n):
                    func()
                times[name].append((time.thread_time_ns() - started) / n)
                _origin.drain()
    finally:
        sockwise.unharden()
        sock.close()
    out = {
        "unit": "CPU nanoseconds per call",
        "setsockopt_calls": len(calls),
        "cases": {
            name: {"min": round(min(v)), "median": round(statistics.median(v))}
            for name, v in times.items()
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
