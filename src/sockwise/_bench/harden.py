"""What :func:`sockwise.harden` costs per connection: loopback connect+close, side by side.

Loopback connect+close is the worst case for the drop-in (no network latency hides anything),
so it bounds the overhead from above. Rounds of each variant are interleaved so the machine's
noise hits them alike, and the median of the rounds is reported:

* ``bare``: no sockwise at all;
* ``setsockopt x6``: the bare loop plus the six ``setsockopt`` calls done by hand -- the floor
  any policy applier pays;
* ``harden(guard=False)``: the drop-in's hooks;
* ``harden()``: the hooks plus the runtime guard's origin recording, when the guard exists.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

import sockwise

_TCP = socket.IPPROTO_TCP


def _drain(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.close()


def _loop(addr: tuple[str, int], n: int, options: list[tuple[int, int, int]] | None) -> float:
    """Seconds for *n* connect+close on loopback (options set by hand when given)."""
    new_socket = socket.socket
    started = time.perf_counter()
    if options is None:
        for _ in range(n):
            s = new_socket()
            s.connect(addr)
            s.close()
    else:
        for _ in range(n):
            s = new_socket()
            for level, opt, value in options:
                s.setsockopt(level, opt, value)
            s.connect(addr)
            s.close()
    return time.perf_counter() - started


def run(quick: bool = False) -> dict[str, Any]:
    """Measure the per-connection cost of harden(); return JSON-ready results."""
    rounds, batch = (5, 300) if quick else (15, 1000)
    policy = sockwise.Policy()
    options = policy.socket_options()
    guard_available = True
    try:
        import sockwise.guard as _guard_module

        guard_available = hasattr(_guard_module, "Guard")
    except ImportError:
        guard_available = False

    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    listener.setblocking(False)
    addr = listener.getsockname()
    was_hardened = sockwise.is_hardened()
    previous = sockwise.unharden()

    def bare() -> float:
        return _loop(addr, batch, None)

    def by_hand() -> float:
        return _loop(addr, batch, options)

    def hardened(guard: bool) -> Callable[[], float]:
        def variant() -> float:
            with sockwise.harden(policy, guard=guard):
                time.sleep(0.05)  # let a new guard take its first sample outside the timing
                return _loop(addr, batch, None)

        return variant

    variants: dict[str, Callable[[], float]] = {
        "bare": bare,
        "setsockopt x6": by_hand,
        "harden(guard=False)": hardened(False),
    }
    if guard_available:
        variants["harden()"] = hardened(True)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    try:
        for fn in variants.values():  # warm-up
            fn()
            _drain(listener)
        for round_no in range(rounds):
            # Rotate the order each round: TIME_WAIT rows pile up toward the listener within a
            # round, and no variant should always run last.
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(variants[name]() / batch * 1e6)
                _drain(listener)
    finally:
        listener.close()
        if was_hardened and previous.policy is not None:
            sockwise.harden(previous.policy)

    base = statistics.median(samples["bare"])
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        rows.append(
            {
                "variant": name,
                "us_per_connection": round(median, 2),
                "added_us": round(median - base, 2),
                "ratio_to_bare": round(median / base, 3),
            }
        )
    syscalls = statistics.median(samples["setsockopt x6"]) - base
    hooks = statistics.median(samples["harden(guard=False)"]) - base
    return {
        "benchmark": "harden",
        "description": "loopback connect+close per connection, median of interleaved rounds",
        "rounds": rounds,
        "batch": batch,
        "rows": rows,
        "setsockopt_us": round(syscalls, 2),
        "harden_added_us": round(hooks, 2),
        "target_added_us": round(max(2 * syscalls, 0.0), 2),
        "within_target": hooks <= 2 * syscalls if syscalls > 0 else None,
    }


def table(result: dict[str, Any]) -> str:
    """The result as a plain-text table."""
    lines = [
        f"{'variant':<22} {'us/conn':>9} {'added us':>9} {'x bare':>7}",
        "-" * 50,
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['variant']:<22} {row['us_per_connection']:>9.2f} {row['added_us']:>9.2f} "
            f"{row['ratio_to_bare']:>7.3f}"
        )
    lines.append(
        f"harden() adds {result['harden_added_us']} us per connection; the six setsockopt calls "
        f"alone cost {result['setsockopt_us']} us (target: at most twice that)."
    )
    return "\n".join(lines)
