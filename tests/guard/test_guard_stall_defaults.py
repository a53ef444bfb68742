"""Stalls under plain ``sockwise.harden()``: the guard's default settings, real peers.

* ``requests.get()`` without a timeout to a live server that never answers, in a named thread:
  reported within ``stall_after`` + one interval, naming the line and the thread.
* Data in flight to a peer black-holed in a network namespace: reported long before the
  policy's ``user_timeout`` aborts the connection, with the time left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest
import requests
from stall_support import SILENT, peer, wait_for

import sockwise
from sockwise.guard import DEFAULT_INTERVAL, DEFAULT_STALL_AFTER, GuardEvent, running_guards
from sockwise.guard._stall import RETRANSMIT_SHARE
from sockwise.testing import NetnsPair


def _tolerance(bound: float) -> float:
    return max(0.5, 0.1 * bound)


@pytest.fixture
def hardened() -> list[GuardEvent]:
    """Plain ``harden()``; the events of the guard it started; unhardened after."""
    sockwise.unharden()
    sockwise.harden()
    try:
        (guard,) = running_guards()
        events: list[GuardEvent] = []
        guard.callback = events.append
        yield events
    finally:
        sockwise.unharden()


@pytest.mark.slow
def test_requests_without_timeout_to_silent_server(hardened: list[GuardEvent]) -> None:
    """The commonest Python hang is reported with the line and the thread, in time."""
    warnings.simplefilter("ignore", sockwise.StallWarning)
    errors: list[BaseException] = []
    with peer(SILENT) as port:

        def fetch() -> None:
            try:
                requests.get(f"http://127.0.0.1:{port}/report")  # no timeout: the point
            except requests.RequestException as exc:
                errors.append(exc)

        line = fetch.__code__.co_firstlineno + 2
        thread = threading.Thread(target=fetch, name="report-fetcher", daemon=True)
        start = time.monotonic()
        thread.start()
        bound = DEFAULT_STALL_AFTER + DEFAULT_INTERVAL
        event = wait_for(
            hardened, lambda e: e.kind == "awaiting_reply", bound + _tolerance(bound) + 1
        )
        delay = time.monotonic() - start
    thread.join(10)  # the peer was killed: the request fails and the thread ends
    assert event is not None, [e.message for e in hardened]
    assert DEFAULT_STALL_AFTER - 0.5 <= delay <= bound + _tolerance(bound)
    assert event.origin is not None
    assert (event.origin.filename, event.origin.lineno) == (__file__, line)
    assert event.details["thread"] == "report-fetcher"
    assert event.details["blocked_at"] == f"{__file__}:{line} in {fetch.__qualname__}()"
    assert f"thread 'report-fetcher' is blocked reading it at {__file__}:{line}" in event.message
    assert f"127.0.0.1:{port}" in event.message
    assert not thread.is_alive()
    assert errors, "the request ended when the server was killed"


CLIENT = textwrap.dedent(
    r"""
    import json, socket, sys, time
    import sockwise
    from sockwise.guard import running_guards
    sockwise.harden()
    events = []
    running_guards()[0].callback = events.append
    sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    sock.sendall(b"ping")
    assert sock.recv(4) == b"ping"
    print("ready", flush=True)
    sys.stdin.readline()  # the parent black-holes the peer
    start = time.monotonic()
    sock.sendall(b"x" * 1000)
    for _ in range(3000):
        found = [e for e in events if e.kind == "retransmitting"]
        if found or time.monotonic() - start > 60:
            break
        time.sleep(0.02)
    out = {"delay": time.monotonic() - start, "events": [
        {"kind": e.kind, "message": e.message, "details": e.details} for e in events]}
    print(json.dumps(out, default=str), flush=True)
    sock.close()
    """
)

ECHO_ONCE = textwrap.dedent(
    r"""
    import socket, sys, time
    srv = socket.create_server((sys.argv[1], 7000))
    print("listening", flush=True)
    conn, _ = srv.accept()
    conn.sendall(conn.recv(4))
    time.sleep(3600)
    """
)


@pytest.mark.slow
def test_black_holed_peer_reported_before_user_timeout(netns_pair: NetnsPair) -> None:
    """Unacknowledged data to a vanished peer: reported with the time left before the abort."""
    server = netns_pair.popen_server(
        [sys.executable, "-c", ECHO_ONCE, netns_pair.server_addr],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "listening"
    client = netns_pair.popen_client(
        [sys.executable, "-c", CLIENT, netns_pair.server_addr, "7000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert client.stdin is not None and client.stdout is not None
    assert client.stdout.readline().strip() == "ready"
    netns_pair.blackhole()
    client.stdin.write("go\n")
    client.stdin.flush()
    out, err = client.communicate(timeout=90)
    result = json.loads(out.strip().splitlines()[-1])
    kinds = [e["kind"] for e in result["events"]]
    assert "retransmitting" in kinds, (kinds, err[-2000:])
    event = next(e for e in result["events"] if e["kind"] == "retransmitting")
    policy = sockwise.Policy()
    assert policy.user_timeout is not None
    threshold = DEFAULT_STALL_AFTER * RETRANSMIT_SHARE
    bound = threshold + DEFAULT_INTERVAL
    delay = result["delay"]
    assert threshold - _tolerance(threshold) <= delay <= bound + _tolerance(bound)
    assert delay < policy.user_timeout / 2  # long before the abort
    details = event["details"]
    assert details["user_timeout"] == policy.user_timeout
    expected_left = policy.user_timeout - delay
    assert abs(details["time_left"] - expected_left) <= _tolerance(expected_left)
    assert f"aborts it in about {details['time_left']:.0f} s" in event["message"]
    assert f"{netns_pair.server_addr}:7000" in event["message"]
