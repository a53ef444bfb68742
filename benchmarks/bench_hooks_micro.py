"""The hook layer's own Python cost per connect, without the connect: CPU ns per call.

On an unconnected TCP socket: the policy's ``setsockopt`` calls made directly (``floor``), the
hook layer's connect plan for a blocking connect (``plan``: what the ``connect`` replacement
does inline), the slow path for a socket with options of the application's own (``explicit``),
the recording of a connect from a call site seen before (``origin, known line``: inline in
``connect`` too) and from a new one (``origin, walk``). CPU time of this thread
(``thread_time_ns``), min and median of interleaved rounds. The whole connect, side by side
with a bare one, is ``sockwise bench --only harden``.

    python benchmarks/bench_hooks_micro.py
"""

from __future__ import annotations

import _socket
import json
import socket
import statistics
import sys
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
    calls = list(_stdlib._current.bounded_options or ()) if _stdlib._current else []
    raw = _socket.socket.setsockopt

    def floor() -> None:
        for level, opt, value in calls:
            raw(sock, level, opt, value)

    plan = _hooks._plan
    recorder = _hooks._recorder
    assert plan is not None
    assert recorder is not None

    def plan_inline() -> None:
        _hooks._apply_plan(plan, sock, address)

    def explicit() -> None:
        _stdlib._on_connect(sock, address)

    here = sys._getframe()

    def origin_known() -> None:
        _hooks._record(recorder, sock, address, here)

    def origin_walk() -> None:
        recorder.slow(sock, address, here)

    cases: dict[str, Callable[[], None]] = {
        "floor (same setsockopt calls)": floor,
        "plan (inline in connect)": plan_inline,
        "explicit options (slow path)": explicit,
        "origin, known line": origin_known,
        "origin, walk": origin_walk,
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
