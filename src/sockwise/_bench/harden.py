"""What :func:`sockwise.harden` costs per connect: loopback connect+close, side by side.

Loopback connect+close is the worst case for the drop-in (no network latency hides anything),
so it bounds the overhead from above.

**No TIME_WAIT.** Every connection is closed with a RST (``SO_LINGER`` on, timeout 0, set after
``connect()`` and *outside* the timed part), on the client and on the accepted side, so no
TIME_WAIT socket is left anywhere: each connect finds a free ephemeral port at once instead of
searching a port range that fills up round after round (an earlier version closed the client
first and measured mostly that search). The result records the TIME_WAIT sockets left toward
the listener (expected: 0).

**Per connect, interleaved rounds.** Each connect is timed with ``perf_counter_ns`` around
``socket()`` + ``connect()`` and around ``close()``; a round is a batch of connects of one variant,
the variants run in rotating order every round, and min, median and p90 of the rounds' means
are reported per variant:

* ``bare``: no sockwise at all;
* ``setsockopt x6``: the bare loop plus the policy's six ``setsockopt`` calls done by hand;
* ``harden(guard=False)``: the drop-in's hooks;
* ``harden()``: the default -- hooks plus the runtime guard's origin recording.

**The floor, measured directly.** The same six ``setsockopt`` calls on a fresh socket, each timed
alone with ``perf_counter_ns`` (the clock read is included and reported): each is a system
call, so a call measuring under :data:`FLOOR_MIN_US` means the measurement is broken, and the
result is marked ``invalid`` (``sockwise bench`` then reports the benchmark as failed). The
target for the drop-in is an added cost of at most twice that floor per connect.
"""

from __future__ import annotations

import socket
import statistics
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import sockwise
from sockwise._net.proc import ProcfsReader
from sockwise._net.records import STATE_NUMBERS

#: A ``setsockopt`` is one system call: well above 0.1 us on any machine sockwise runs on.
FLOOR_MIN_US: Final = 0.1
#: ``SO_LINGER`` on with a zero timeout: ``close()`` sends a RST and leaves no TIME_WAIT.
LINGER_RST: Final = struct.pack("ii", 1, 0)
#: How each connection ends (said in the output and the docs).
CLOSE_MODE: Final = "RST (SO_LINGER on, timeout 0): no TIME_WAIT on either side"

_SOL = socket.SOL_SOCKET
_LINGER = socket.SO_LINGER


def _drain(listener: socket.socket) -> None:
    """Accept and reset every queued connection (no TIME_WAIT on the server side either)."""
    while True:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setsockopt(_SOL, _LINGER, LINGER_RST)
        conn.close()


def _loop(addr: tuple[str, int], n: int, options: Sequence[tuple[int, int, int]]) -> float:
    """Mean microseconds per connect+close over *n* connections (the RST option untimed)."""
    new_socket = socket.socket
    clock = time.perf_counter_ns
    total = 0
    for _ in range(n):
        t0 = clock()
        s = new_socket()
        for level, opt, value in options:
            s.setsockopt(level, opt, value)
        s.connect(addr)
        t1 = clock()
        s.setsockopt(_SOL, _LINGER, LINGER_RST)
        t2 = clock()
        s.close()
        total += clock() - t2 + t1 - t0
    return total / n / 1000.0


def measure_floor(options: Sequence[tuple[int, int, int]], reps: int) -> dict[str, Any]:
    """The policy's ``setsockopt`` calls on fresh sockets, each timed alone (median per call).

    Returns ``per_call_us`` (one median per option, clock read included), ``floor_us`` (their
    sum: the cost of applying the policy by hand) and ``clock_us`` (one ``perf_counter_ns``
    read, so a reader can subtract it).
    """
    clock = time.perf_counter_ns
    per: list[list[int]] = [[] for _ in options]
    for _ in range(reps):
        s = socket.socket()
        try:
            for i, (level, opt, value) in enumerate(options):
                t0 = clock()
                s.setsockopt(level, opt, value)
                per[i].append(clock() - t0)
        finally:
            s.close()
    clock_reads = []
    for _ in range(reps):
        t0 = clock()
        clock_reads.append(clock() - t0)
    per_call = [statistics.median(v) / 1000.0 for v in per]
    return {
        "per_call_us": [round(v, 3) for v in per_call],
        "floor_us": round(sum(per_call), 3),
        "clock_us": round(statistics.median(clock_reads) / 1000.0, 3),
        "calls": len(options),
        "reps": reps,
    }


def floor_problem(per_call_us: Sequence[float], minimum: float = FLOOR_MIN_US) -> str | None:
    """Why a measured floor cannot be right (a call below *minimum* us), or ``None`` if plausible.

    A ``setsockopt`` is a system call; measuring one below 0.1 us means the clock, the loop or
    the calls are not what they claim (an earlier version reported 0.57 us for all six).
    """
    if not per_call_us:
        return "no setsockopt call was timed"
    low = [(i, v) for i, v in enumerate(per_call_us) if not v >= minimum]
    if low:
        shown = ", ".join(f"call {i + 1}: {v:g} us" for i, v in low)
        return (
            f"implausible setsockopt floor ({shown}): a system call takes at least "
            f"{minimum:g} us, so this measurement is broken"
        )
    return None


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "min_us": round(ordered[0], 2),
        "median_us": round(statistics.median(ordered), 2),
        "p90_us": round(p90, 2),
    }


def _time_wait_at(port: int) -> int:
    """TIME_WAIT sockets with *port* at either end (``/proc/net/tcp*``; -1 if unreadable)."""
    try:
        rows = ProcfsReader().dump(1 << STATE_NUMBERS["TIME_WAIT"])
    except OSError:
        return -1
    return sum(1 for r in rows if port in (r.local[1], r.remote[1]))


def run(quick: bool = False) -> dict[str, Any]:
    """Measure the per-connect cost of harden(); return JSON-ready results."""
    rounds, batch, floor_reps = (9, 200, 2000) if quick else (25, 500, 20000)
    policy = sockwise.Policy()
    options = policy.socket_options()
    try:
        import sockwise.guard as _guard_module

        guard_available = hasattr(_guard_module, "Guard")
    except ImportError:
        guard_available = False

    was_hardened = sockwise.is_hardened()
    previous = sockwise.unharden()
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    listener.setblocking(False)
    addr = listener.getsockname()

    def plain(opts: Sequence[tuple[int, int, int]]) -> Callable[[], float]:
        return lambda: _loop(addr, batch, opts)

    def hardened(guard: bool) -> Callable[[], float]:
        def variant() -> float:
            with sockwise.harden(policy, guard=guard):
                time.sleep(0.02)  # a new guard takes its first sample outside the timing
                return _loop(addr, batch, ())

        return variant

    variants: dict[str, Callable[[], float]] = {
        "bare": plain(()),
        "setsockopt x6": plain(options),
        "harden(guard=False)": hardened(False),
    }
    if guard_available:
        variants["harden()"] = hardened(True)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    try:
        floor = measure_floor(options, floor_reps)
        for fn in variants.values():  # warm-up
            fn()
            _drain(listener)
        for round_no in range(rounds):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(variants[name]())
                _drain(listener)
        time_wait = _time_wait_at(addr[1])
    finally:
        listener.close()
        if was_hardened and previous.policy is not None:
            sockwise.harden(previous.policy)

    base = statistics.median(samples["bare"])
    floor_us = floor["floor_us"]
    rows = []
    for name, values in samples.items():
        spread = _spread(values)
        added = spread["median_us"] - base
        rows.append(
            {
                "case": name,
                **spread,
                "added_us": round(added, 2) + 0.0,
                "ratio_to_bare": round(spread["median_us"] / base, 3),
                "added_per_floor": round(added / floor_us, 2) + 0.0 if floor_us > 0 else None,
            }
        )
    by_case = {r["case"]: r for r in rows}
    problem = floor_problem(floor["per_call_us"])
    hooks = by_case["harden(guard=False)"]["added_us"]
    guarded = by_case["harden()"]["added_us"] if "harden()" in by_case else None
    summary = (
        f"per connect: bare {base:.1f} us; harden(guard=False) {hooks:+.1f} us"
        + (f", harden() {guarded:+.1f} us" if guarded is not None else "")
        + f"; the six setsockopt calls alone (floor, measured directly) {floor_us:.2f} us "
        f"-> target at most +{2 * floor_us:.2f} us"
    )
    result: dict[str, Any] = {
        "benchmark": "harden",
        "title": "harden(): added cost per loopback connect+close",
        "description": (
            f"loopback connect+close per connection, {rounds} interleaved rounds of {batch}; "
            f"min/median/p90 of the rounds' means; each connection closed by {CLOSE_MODE}"
        ),
        "quick": quick,
        "rounds": rounds,
        "batch": batch,
        "close": CLOSE_MODE,
        "metric": "median_us",
        "rows": rows,
        "floor": floor,
        "setsockopt_floor_us": floor_us,
        "harden_added_us": hooks,
        "harden_guard_added_us": guarded,
        "target_added_us": round(2 * floor_us, 2),
        "within_target": hooks <= 2 * floor_us,
        "within_target_with_guard": None if guarded is None else guarded <= 2 * floor_us,
        "time_wait_left": time_wait,
        "summary": summary,
    }
    if problem:
        result["invalid"] = problem
    return result


def table(result: dict[str, Any]) -> str:
    """The result as a plain-text table."""
    head = (
        f"{'variant':<22} {'min us':>8} {'median us':>9} {'p90 us':>8} {'added us':>9} "
        f"{'x bare':>7} {'x floor':>8}"
    )
    lines = [head, "-" * len(head)]
    for row in result["rows"]:
        per_floor = row.get("added_per_floor")
        lines.append(
            f"{row['case']:<22} {row['min_us']:>8.2f} {row['median_us']:>9.2f} "
            f"{row['p90_us']:>8.2f} {row['added_us']:>9.2f} {row['ratio_to_bare']:>7.3f} "
            f"{'' if per_floor is None else f'{per_floor:.2f}':>8}"
        )
    floor = result["floor"]
    calls = ", ".join(f"{v:.3f}" for v in floor["per_call_us"])
    lines.append(
        f"floor: the six setsockopt calls on a fresh socket, timed one by one: {calls} us "
        f"(sum {floor['floor_us']:.2f} us; one clock read {floor['clock_us']:.3f} us)"
    )
    lines.append(f"close: {result['close']}; TIME_WAIT left: {result['time_wait_left']}")
    lines.append(str(result["summary"]))
    if result.get("invalid"):
        lines.append(f"INVALID: {result['invalid']}")
    return "\n".join(lines)
