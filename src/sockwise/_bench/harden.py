"""What :func:`sockwise.harden` costs per connect: loopback connect+close, side by side.

Loopback connect+close is the worst case for the drop-in (no network latency hides anything),
so it bounds the overhead from above.

**No TIME_WAIT.** Every connection is closed with a RST (``SO_LINGER`` on, timeout 0, set after
``connect()`` and *outside* the timed part, with the C method so that sockwise does not track
the benchmark's own option as the application's), on the client and on the accepted side, so no
TIME_WAIT socket is left anywhere: each connect finds a free ephemeral port at once instead of
searching a port range that fills up round after round (an earlier version closed the client
first and measured mostly that search). The result records the TIME_WAIT sockets left toward
the listener (expected: 0).

**The connect is the application's.** The timed loop is compiled as application code (file
``<application>``), as a user's own ``connect()`` call is. The guard names the first frame
outside sockwise and the libraries it wraps, so a loop inside this package made it walk the
whole benchmark harness up to the console script (8 frames) on every connect -- a stack no
application has. A connect made through library code (urllib3, ``http.client``...) costs more
per frame walked; the ``http``/``gaps`` benchmarks measure those stacks whole.

**Paired, interleaved rounds on one CPU.** The process is pinned to one CPU for the run (on this
machine kind the two vCPUs differ by ~15 % per connect, and a migration shifts a whole batch). A
round times a short batch of each variant, in rotating order; each connect is timed with
``perf_counter_ns`` around ``socket()`` + ``connect()`` and around ``close()``, and a batch is
summed up by its median connect (an interrupt or a page fault in one connect does not move it).
min, median and p90 of the rounds' medians are reported per variant, and the cost a variant
*adds* is the median over rounds of its batch minus the bare batch of the same round (slow
drifts of the machine, which move whole rounds, cancel):

* ``bare``: no sockwise at all;
* ``setsockopt x6``: the bare loop plus the policy's six ``setsockopt`` calls done by hand;
* ``setsockopt x7``: what the drop-in's calls amount to for a blocking connect with no timeout:
  the six with ``TCP_USER_TIMEOUT`` at the handshake bound, and the policy's value set back
  after the connect (the seventh);
* ``harden(guard=False)``: the drop-in's hooks;
* ``harden()``: the default -- hooks plus the runtime guard's origin recording.

**The floor, measured directly.** The same six ``setsockopt`` calls on a fresh socket, each timed
alone with ``perf_counter_ns`` (the clock read is included and reported): each is a system
call, so a call measuring under :data:`FLOOR_MIN_US` means the measurement is broken, and the
result is marked ``invalid`` (``sockwise bench`` then reports the benchmark as failed). The
target for the drop-in is an added cost of at most twice that floor per connect.
"""

from __future__ import annotations

import _socket
import socket
import statistics
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import sockwise
from sockwise._bench.cpus import pinned_client
from sockwise._bench.runner import APPLICATION_FILE, application_function
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
_c_setsockopt: Final = _socket.socket.setsockopt

_Option = tuple[int, int, int]

# The timed loop, compiled as application code (see the module docstring). ``before`` are set
# by hand before the connect, ``after`` after it (both with the C method, like sockwise does).
_LOOP_SOURCE: Final = """
def connect_loop(addr, n, before, after, out):
    new_socket = socket_class
    clock = perf_counter_ns
    c_setsockopt = setsockopt
    record = out.append
    for _ in range(n):
        t0 = clock()
        s = new_socket()
        for level, opt, value in before:
            c_setsockopt(s, level, opt, value)
        s.connect(addr)
        for level, opt, value in after:
            c_setsockopt(s, level, opt, value)
        t1 = clock()
        c_setsockopt(s, SOL, LINGER, LINGER_RST)
        t2 = clock()
        s.close()
        record(clock() - t2 + t1 - t0)
"""


def _compile_loop() -> Callable[..., None]:
    return application_function(
        _LOOP_SOURCE,
        "connect_loop",
        {
            "socket_class": socket.socket,
            "perf_counter_ns": time.perf_counter_ns,
            "setsockopt": _c_setsockopt,
            "SOL": _SOL,
            "LINGER": _LINGER,
            "LINGER_RST": LINGER_RST,
        },
    )


_connect_loop: Final = _compile_loop()


def _drain(listener: socket.socket) -> None:
    """Accept and reset every queued connection (no TIME_WAIT on the server side either)."""
    while True:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        _c_setsockopt(conn, _SOL, _LINGER, LINGER_RST)
        conn.close()


def _batch(
    addr: tuple[str, int], n: int, before: Sequence[_Option] = (), after: Sequence[_Option] = ()
) -> float:
    """Median microseconds per connect+close over *n* connections (the RST option untimed)."""
    out: list[int] = []
    _connect_loop(addr, n, before, after, out)
    return statistics.median(out) / 1000.0


def measure_floor(
    options: Sequence[tuple[int, int, int]], reps: int, together: bool = True
) -> dict[str, Any]:
    """The policy's ``setsockopt`` calls on fresh sockets: each timed alone, and all together.

    Returns ``per_call_us`` (one median per option, each timed alone, clock read included),
    ``floor_us`` (with *together*: the median time of all of them made in a row on one socket,
    timed as one -- the cost of applying the policy by hand, with one clock read instead of
    one per call; a caller that measures it its own way passes ``together=False``),
    ``per_call_sum_us`` (the sum of ``per_call_us``) and ``clock_us`` (one ``perf_counter_ns``
    read, so a reader can subtract it).
    """
    clock = time.perf_counter_ns
    per: list[list[int]] = [[] for _ in options]
    for _ in range(reps):
        s = socket.socket()
        try:
            for i, (level, opt, value) in enumerate(options):
                t0 = clock()
                _c_setsockopt(s, level, opt, value)
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
        "per_call_sum_us": round(sum(per_call), 3),
        **({"floor_us": round(floor_batch(options, reps), 3)} if together else {}),
        "clock_us": round(statistics.median(clock_reads) / 1000.0, 3),
        "calls": len(options),
        "reps": reps,
    }


def floor_batch(options: Sequence[tuple[int, int, int]], n: int) -> float:
    """Median microseconds of the *options* calls made in a row on each of *n* fresh sockets."""
    clock = time.perf_counter_ns
    out: list[int] = []
    new_socket = socket.socket
    for _ in range(n):
        s = new_socket()
        t0 = clock()
        for level, opt, value in options:
            _c_setsockopt(s, level, opt, value)
        out.append(clock() - t0)
        s.close()
    return statistics.median(out) / 1000.0


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


def by_hand_bounded(policy: sockwise.Policy) -> tuple[list[_Option], list[_Option]]:
    """The calls the drop-in makes for a blocking connect with no timeout, done by hand.

    Returns ``(before, after)``: the policy's options with ``TCP_USER_TIMEOUT`` at
    ``connect_timeout`` (the handshake bound) before the connect, and the policy's own value
    set back after it -- when the policy's value is longer than the bound (else nothing after).
    """
    options = list(policy.socket_options())
    name = getattr(socket, "TCP_USER_TIMEOUT", None)
    if name is None or not policy.connect_timeout:
        return options, []
    bound_ms = max(1, round(policy.connect_timeout * 1000))
    key = (socket.IPPROTO_TCP, name)
    own = next((v for lv, opt, v in options if (lv, opt) == key), 0)
    if 0 < own <= bound_ms:
        return options, []
    before = [(lv, opt, bound_ms if (lv, opt) == key else v) for lv, opt, v in options]
    if not own:
        before.append((*key, bound_ms))
    return before, [(*key, own)]


def run(quick: bool = False) -> dict[str, Any]:
    """Measure the per-connect cost of harden(); return JSON-ready results."""
    rounds, batch, floor_reps = (40, 50, 2000) if quick else (200, 50, 20000)
    policy = sockwise.Policy()
    options = policy.socket_options()
    before, after = by_hand_bounded(policy)
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

    def plain(opts: Sequence[_Option], post: Sequence[_Option] = ()) -> Callable[[], float]:
        return lambda: _batch(addr, batch, opts, post)

    def hardened(guard: bool) -> Callable[[], float]:
        def variant() -> float:
            with sockwise.harden(policy, guard=guard):
                if guard:
                    time.sleep(0.002)  # the guard's new thread reaches its wait outside the timing
                return _batch(addr, batch)

        return variant

    variants: dict[str, Callable[[], float]] = {
        "bare": plain(()),
        "setsockopt x6": plain(options),
        f"setsockopt x{len(before) + len(after)}": plain(before, after),
        "harden(guard=False)": hardened(False),
    }
    if guard_available:
        variants["harden()"] = hardened(True)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    floors: list[float] = []  # the floor, measured again in every round
    names = list(variants)
    with pinned_client() as cpu:
        try:
            floor = measure_floor(options, floor_reps, together=False)  # per round, below
            for fn in variants.values():  # warm-up
                fn()
                _drain(listener)
            for round_no in range(rounds):
                shift = round_no % len(names)
                for name in names[shift:] + names[:shift]:
                    samples[name].append(variants[name]())
                    _drain(listener)
                floors.append(floor_batch(options, batch))
            time_wait = _time_wait_at(addr[1])
        finally:
            listener.close()
            if was_hardened and previous.policy is not None:
                sockwise.harden(previous.policy)

    bare = samples["bare"]
    base = statistics.median(bare)
    floor["floor_us"] = floor_us = round(statistics.median(floors), 3)
    floor["floor_rounds"] = _spread(floors)
    rows: list[dict[str, Any]] = []
    for name, values in samples.items():
        spread = _spread(values)
        added = statistics.median(v - b for v, b in zip(values, bare, strict=True))
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
    hooks: float = by_case["harden(guard=False)"]["added_us"]
    guarded: float | None = by_case["harden()"]["added_us"] if "harden()" in by_case else None
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
            f"loopback connect+close per connection, {rounds} interleaved rounds of {batch} "
            f"per variant on one CPU; min/median/p90 of the rounds' median connects; added: "
            f"median over rounds of variant minus bare in the same round; each connection "
            f"closed by {CLOSE_MODE}; the loop runs as application code"
        ),
        "quick": quick,
        "rounds": rounds,
        "batch": batch,
        "pinned_cpu": cpu,
        "close": CLOSE_MODE,
        "caller": APPLICATION_FILE,
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
        f"floor: the six setsockopt calls in a row on a fresh socket, timed together: "
        f"{floor['floor_us']:.2f} us (median of the rounds; one clock read "
        f"{floor['clock_us']:.3f} us); timed one by one: {calls} us "
        f"(sum {floor.get('per_call_sum_us', 0.0):.2f} us)"
    )
    lines.append(f"close: {result['close']}; TIME_WAIT left: {result['time_wait_left']}")
    lines.append(str(result["summary"]))
    if result.get("invalid"):
        lines.append(f"INVALID: {result['invalid']}")
    return "\n".join(lines)
