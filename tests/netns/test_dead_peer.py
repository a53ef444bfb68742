"""A peer that vanishes silently, for real: does the policy bound the wait, and by how much?

All scenarios share one namespace pair and one black hole and run in parallel threads, so the
whole module costs one observation window (about 10 s). Each client socket is created inside the
client namespace with its policy applied, then every client blocks in ``recv`` (or sends data
first), the server's link goes down (no FIN, RST or ICMP reaches the client), and each thread
records how the wait ended and when.

Times are measured from the last packet the client received (the kernel's keepalive clock starts
there: the SYN-ACK, i.e. when ``connect`` returned) for idle sockets, and from the ``send`` for
sockets with data in flight.
"""

from __future__ import annotations

import errno
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sockwise import Policy
from sockwise.testing import NetnsPair

pytestmark = [pytest.mark.netns, pytest.mark.slow]

#: How long the kernel-defaults sockets are watched: longer than every hardened bound below.
WINDOW = 10.5


def tolerance(bound: float) -> float:
    """The project's tolerance for a measured bound: max(0.5 s, 10 %)."""
    return max(0.5, 0.1 * bound)


#: Age of a connection before the in-flight scenarios send (past its initial RTO).
SETTLE = 2.0
#: Payload sent into the black hole by the in-flight scenarios.
PAYLOAD = b"x" * 1000

FAST = Policy(keepalive_idle=2, keepalive_interval=1, keepalive_count=2)


@dataclass(frozen=True)
class Scenario:
    policy: Policy
    send: bool = False


SCENARIOS: dict[str, Scenario] = {
    "idle-hardened": Scenario(FAST),
    "inflight-hardened": Scenario(FAST, send=True),
    "idle-kernel-defaults": Scenario(Policy.kernel_defaults()),
    "inflight-kernel-defaults": Scenario(Policy.kernel_defaults(), send=True),
    # user_timeout=0 switches TCP_USER_TIMEOUT off: the probe count decides (2 + 1 x 2 = 4 s).
    "user-timeout-off": Scenario(FAST.replace(user_timeout=0)),
    # user_timeout > idle + interval x count: the count is ignored, the timeout decides (7.5 s
    # rounds up to the next probe tick, 8 s), not the count rule's 4 s.
    "user-timeout-larger": Scenario(FAST.replace(user_timeout=7.5)),
    # user_timeout < idle + interval x count: dead at the first tick past it (3 s), not at 7 s.
    "user-timeout-smaller": Scenario(FAST.replace(keepalive_count=5, user_timeout=2.5)),
    # user_timeout below keepalive_idle: at least one probe must be out first (3 s, not 1 s).
    "user-timeout-below-idle": Scenario(FAST.replace(user_timeout=1)),
    # Ticks 3 s apart: 2, 5, 8 -> the first tick >= 6 s is 8 s (count rule: 14 s).
    "user-timeout-between-ticks": Scenario(
        Policy(keepalive_idle=2, keepalive_interval=3, keepalive_count=4, user_timeout=6)
    ),
    # No user timeout at all (None = OS default, 0 here): idle + interval x count = 8 s.
    "count-rule": Scenario(
        Policy(keepalive_idle=2, keepalive_interval=2, keepalive_count=3, user_timeout=None)
    ),
}


@dataclass
class Outcome:
    """How one client's wait ended."""

    error: BaseException | None
    since_last_rx: float  # seconds from connect() returning (the last received packet)
    since_send: float | None  # seconds from the send into the black hole (in-flight cases)
    tcp_state: int | None = None  # TCP_INFO state after a survived window (1 = ESTABLISHED)
    so_error: int | None = None


def _tcp_state(sock: socket.socket) -> int:
    return int(struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0])


def _wait(name: str, sock: socket.socket, connected_at: float, go: threading.Event) -> Outcome:
    scenario = SCENARIOS[name]
    go.wait(30)
    sent_at = None
    sock.settimeout(WINDOW)  # only the kernel-defaults sockets should ever reach this
    try:
        if scenario.send:
            # A connection younger than ~1 s still has the initial 1 s retransmission timeout
            # (see Policy.unacked_data_bound): send on an established one, as a pool would.
            time.sleep(max(0.0, connected_at + SETTLE - time.monotonic()))
            sent_at = time.monotonic()
            sock.sendall(PAYLOAD)
        data = sock.recv(16)
        error: BaseException | None = AssertionError(f"recv returned {data!r}")
    except OSError as exc:
        error = exc
    now = time.monotonic()
    out = Outcome(error, now - connected_at, None if sent_at is None else now - sent_at)
    if isinstance(error, TimeoutError) and error.errno is None:  # Python's timeout: survived
        out.tcp_state = _tcp_state(sock)
        out.so_error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return out


@pytest.fixture(scope="module")
def outcomes(module_netns_pair: NetnsPair, module_sink: Any) -> Iterator[dict[str, Outcome]]:
    pair, sink = module_netns_pair, module_sink
    socks: dict[str, socket.socket] = {}
    try:

        def connect_all() -> dict[str, tuple[socket.socket, float]]:
            out = {}
            for name, scenario in SCENARIOS.items():
                sock = sink.connect()
                scenario.policy.apply(sock, strict=True)
                out[name] = (sock, time.monotonic())
            return out

        connected = pair.run_in_client(connect_all, timeout=30)
        socks = {name: sock for name, (sock, _) in connected.items()}
        results: dict[str, Outcome] = {}
        go = threading.Event()

        def run(name: str) -> None:
            sock, at = connected[name]
            results[name] = _wait(name, sock, at, go)

        threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in SCENARIOS]
        for t in threads:
            t.start()
        pair.blackhole()
        go.set()
        deadline = time.monotonic() + WINDOW + 20
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        for name, o in results.items():  # shown with -s / on failure: the measured numbers
            sent = "" if o.since_send is None else f" since_send={o.since_send:.2f}"
            print(
                f"{name}: bound={SCENARIOS[name].policy.dead_peer_bound} "
                f"since_last_rx={o.since_last_rx:.2f}{sent} error={o.error!r}"
            )
        yield results
    finally:
        for sock in socks.values():
            sock.close()


def _assert_timed_out(outcome: Outcome) -> None:
    err = outcome.error
    assert isinstance(err, TimeoutError), f"expected ETIMEDOUT from the kernel, got {err!r}"
    assert err.errno == errno.ETIMEDOUT, f"expected ETIMEDOUT, got {err!r} (a Python timeout?)"


def test_idle_recv_fails_within_dead_peer_bound(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["idle-hardened"]
    bound = FAST.dead_peer_bound
    assert bound == 4.0
    _assert_timed_out(outcome)
    assert abs(outcome.since_last_rx - bound) <= tolerance(bound), outcome


def test_inflight_send_fails_within_user_timeout(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["inflight-hardened"]
    bound = FAST.unacked_data_bound()
    assert bound == 4.4  # user_timeout 4 s, counted from the first retransmission
    _assert_timed_out(outcome)
    assert outcome.since_send is not None
    assert abs(outcome.since_send - bound) <= tolerance(bound), outcome


@pytest.mark.parametrize("name", ["idle-kernel-defaults", "inflight-kernel-defaults"])
def test_kernel_defaults_do_not_notice_within_window(
    outcomes: dict[str, Outcome], name: str
) -> None:
    outcome = outcomes[name]
    err = outcome.error
    # Python's own socket timeout ended the wait (errno None), not the kernel.
    assert isinstance(err, TimeoutError), err
    assert err.errno is None, f"the kernel aborted the connection: {err!r}"
    assert outcome.since_last_rx >= WINDOW
    assert outcome.so_error == 0
    assert outcome.tcp_state == 1  # still ESTABLISHED: the connection looks alive


@pytest.mark.parametrize(
    "name",
    [
        "user-timeout-off",
        "user-timeout-larger",
        "user-timeout-smaller",
        "user-timeout-below-idle",
        "user-timeout-between-ticks",
        "count-rule",
    ],
)
def test_dead_peer_bound_matches_kernel(outcomes: dict[str, Outcome], name: str) -> None:
    policy = SCENARIOS[name].policy
    bound = policy.dead_peer_bound
    assert bound is not None
    outcome = outcomes[name]
    _assert_timed_out(outcome)
    # Kernel timers are exact to a few ms; the slack only absorbs a loaded machine waking the
    # Python thread late. Every alternative formula for these cases is >= 1 s away.
    assert abs(outcome.since_last_rx - bound) <= tolerance(bound), (name, bound, outcome)


def test_scenarios_tell_the_formulas_apart() -> None:
    """The scenarios above would catch a formula that ignored one of the kernel's rules."""
    naive = {  # idle + interval * count, ignoring TCP_USER_TIMEOUT
        name: s.policy.keepalive_idle + s.policy.keepalive_interval * s.policy.keepalive_count
        for name, s in SCENARIOS.items()
        if s.policy.keepalive_idle is not None
        and s.policy.keepalive_interval is not None
        and s.policy.keepalive_count is not None
    }
    bounds = {n: SCENARIOS[n].policy.dead_peer_bound for n in naive}
    assert bounds["user-timeout-larger"] == 8.0 and naive["user-timeout-larger"] == 4
    assert bounds["user-timeout-smaller"] == 3.0 and naive["user-timeout-smaller"] == 7
    assert bounds["user-timeout-below-idle"] == 3.0
    assert bounds["user-timeout-between-ticks"] == 8.0 and naive["user-timeout-between-ticks"] == 14
    assert bounds["count-rule"] == 8.0
    assert bounds["user-timeout-off"] == 4.0
