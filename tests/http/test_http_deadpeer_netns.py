"""A real HTTP server vanishes behind a black hole: sockwise pools fail in bounded time, explained.

The server is a small ``http.server`` (HTTP/1.1 keep-alive) running in the server namespace of a
:class:`~sockwise.testing.NetnsPair`; every client runs inside the client namespace (through
``run_in_client``) and is a :class:`sockwise.urllib3.PoolManager`. ``blackhole()`` takes the
server's link down: no FIN, RST or ICMP ever reaches the client, so only the policy (keepalive,
``TCP_USER_TIMEOUT``) or a timeout can end a wait. Scenarios of one test share one black hole and
run in parallel threads, so each test costs one observation window.

The policy is keepalive 2/1/2 with ``user_timeout`` derived (4 s): ``dead_peer_bound`` is 4 s.
"""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ReadTimeoutError

import sockwise.urllib3 as swu
from sockwise import Policy
from sockwise.testing import NetnsPair

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PORT = 8080  # the server namespace is fresh: nothing else listens there
FAST = Policy(keepalive_idle=2, keepalive_interval=1, keepalive_count=2)
#: Seconds a hardened client may take beyond ``dead_peer_bound`` (the machine is loaded).
MARGIN = 5.0
#: How long the kernel-defaults client is watched after the black hole: longer than the bound
#: plus the margin, so "no failure within the window" means something.
WINDOW = FAST.dead_peer_bound + MARGIN  # type: ignore[operator]

SERVER = r"""
import os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def say(line):
    # One write(2) per line: handler threads print at the same moment, and print() writes the
    # text and its newline separately, so two lines could interleave ("GOT /aGOT /b").
    os.write(1, (line + "\n").encode())

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        say("GOT " + self.path)
        if self.path.startswith("/slow"):
            time.sleep(30)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
say("READY")
server.serve_forever()
"""


class HttpServer:
    """The ``http.server`` subprocess in the server namespace, and the lines it prints."""

    def __init__(self, pair: NetnsPair) -> None:
        self.proc: subprocess.Popen[str] = pair.popen_server(
            [sys.executable, "-c", SERVER, pair.server_addr, str(PORT)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pair = pair
        self.base = f"http://{pair.server_addr}:{PORT}"
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.expect("READY", timeout=15)
        # The path client -> server works before any scenario relies on it.
        pair.run_in_client(self._probe, timeout=30)
        self.expect("GOT /probe", timeout=5)

    def _probe(self) -> None:
        deadline = time.monotonic() + 15
        last: object = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.pair.server_addr, PORT), timeout=2) as s:
                    s.sendall(b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    last = s.recv(64)
            except OSError as exc:
                last = exc
            if isinstance(last, bytes) and last.startswith(b"HTTP/1.1 200"):
                return
            time.sleep(0.1)
        pytest.fail(f"no answer from the server in the other namespace within 15 s: {last!r}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # ends at EOF, when the process is killed
            self.lines.put(line.strip())

    def expect(self, *wanted: str, timeout: float) -> None:
        """Wait (bounded) until the server has printed every line in *wanted*."""
        missing, other = list(wanted), []
        deadline = time.monotonic() + timeout
        while missing:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                pytest.fail(
                    f"server did not print {missing} within {timeout} s (it printed {other});"
                    f" sockets:\n{self.pair.sockets_report()}\nthreads:\n{thread_stacks()}"
                )
            if line in missing:
                missing.remove(line)
            else:
                other.append(line)


def thread_stacks() -> str:
    """Where every thread of this process is, for a failure message."""
    names = {t.ident: t.name for t in threading.enumerate()}
    return "\n".join(
        f"--- {names.get(ident, ident)}\n{''.join(traceback.format_stack(frame))}"
        for ident, frame in sys._current_frames().items()
    )


@pytest.fixture
def http_server(netns_pair: NetnsPair) -> Iterator[HttpServer]:
    server = HttpServer(netns_pair)
    yield server
    # netns_pair.close() kills the process by PID; drain its pipe here.
    netns_pair.close()
    server._reader.join(10)
    if server.proc.stdout is not None:
        server.proc.stdout.close()


@dataclass
class Outcome:
    """How one client's request ended: the error (or response status) and when (monotonic)."""

    error: BaseException | None = None
    status: int | None = None
    at: float = 0.0
    stats: swu.PoolStats | None = None


def in_client(pair: NetnsPair, pool: ThreadPoolExecutor, fn: Callable[[], Any]) -> Future[Any]:
    return pool.submit(pair.run_in_client, fn, timeout=60)


def request(pm: swu.PoolManager, url: str, **kw: Any) -> Outcome:
    """One GET; never raises: the error or the status is recorded with its time."""
    try:
        resp = pm.request("GET", url, **kw)
    except Exception as exc:
        return Outcome(error=exc, at=time.monotonic())
    return Outcome(status=resp.status, at=time.monotonic())


def assert_explained(err: BaseException, pair: NetnsPair, policy: Policy) -> None:
    """The dead-peer error names the peer, the elapsed time and the policy setting."""
    peer = f"{pair.server_addr}:{PORT}"
    text = "\n".join([str(err), *getattr(err, "__notes__", [])])
    assert f"peer {peer} stopped answering" in text
    assert "ETIMEDOUT" in text
    assert f"policy.user_timeout={policy.user_timeout:g} s (TCP_USER_TIMEOUT" in text
    assert f"declared dead within {policy.dead_peer_bound:g} s by keepalive" in text
    assert isinstance(err, swu.DeadPeerError)
    assert err.peer == peer
    assert f"after {err.elapsed:.1f} s of this request" in text


def test_inflight_request_fails_within_policy_bound(
    netns_pair: NetnsPair, http_server: HttpServer
) -> None:
    """/slow is sent and waiting for its answer when the peer vanishes.

    sockwise policy: DeadPeerReadTimeoutError (a ReadTimeoutError) within dead_peer_bound +
    margin, long before the pool's 300 s default read timeout. Kernel defaults: nothing at all
    happens within the window; only the caller's read timeout ends the wait, as a plain
    ReadTimeoutError.
    """
    pair, base = netns_pair, http_server.base
    kernel_read_timeout = WINDOW + 1.5

    def hardened() -> Outcome:
        with swu.PoolManager(policy=FAST, retries=False) as pm:
            return request(pm, f"{base}/slow?hardened")

    def kernel_defaults() -> Outcome:
        with swu.PoolManager(policy=Policy.kernel_defaults(), retries=False) as pm:
            return request(
                pm, f"{base}/slow?kernel", timeout=urllib3.Timeout(read=kernel_read_timeout)
            )

    with ThreadPoolExecutor(2) as ex:
        f_hard = in_client(pair, ex, hardened)
        f_kern = in_client(pair, ex, kernel_defaults)
        http_server.expect("GOT /slow?hardened", "GOT /slow?kernel", timeout=15)
        time.sleep(0.2)  # the server's ACK of the request reaches the client: nothing unsent
        pair.blackhole()
        t0 = time.monotonic()
        hard, kern = f_hard.result(timeout=60), f_kern.result(timeout=60)

    # sockwise policy: the dead peer is detected and explained.
    err = hard.error
    assert isinstance(err, swu.DeadPeerReadTimeoutError), repr(err)
    assert isinstance(err, ReadTimeoutError)  # urllib3's own class: existing handlers work
    hard_after = hard.at - t0
    assert 1.0 < hard_after < FAST.dead_peer_bound + MARGIN, hard_after  # type: ignore[operator]
    assert_explained(err, pair, FAST)
    assert swu.DEFAULT_READ_TIMEOUT == 300.0  # the pool's own bound, which did not fire
    assert err.elapsed < 30
    assert isinstance(err.__cause__, ReadTimeoutError)

    # Kernel defaults: no failure within the window, then the caller's read timeout, unexplained.
    kern_after = kern.at - t0
    assert kern_after >= WINDOW, kern_after
    assert isinstance(kern.error, ReadTimeoutError), repr(kern.error)
    assert not isinstance(kern.error, swu.DeadPeerError)
    assert f"read timeout={kernel_read_timeout}" in str(kern.error)
    print(f"\nin-flight: hardened failed {hard_after:.2f} s after the black hole "
          f"(elapsed in request {err.elapsed:.2f} s); kernel defaults ran {kern_after:.2f} s "
          f"until its {kernel_read_timeout} s read timeout")  # fmt: skip


def test_idle_pooled_connection_to_vanished_peer(
    netns_pair: NetnsPair, http_server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An idle keep-alive connection whose peer vanished: the next request is bounded.

    * reused at once: the request goes out on the dead connection, TCP_USER_TIMEOUT aborts it,
      and the caller gets DeadPeerReadTimeoutError (no replay on ETIMEDOUT);
    * left idle: keepalive declares the connection dead, the reaper closes it (``closed_peer``)
      without any request, and the next request opens a new connection, which times out
      connecting (urllib3's ConnectTimeoutError, ``connect_timeout`` from the policy);
    * with urllib3's default ``Retry`` (a GET is retried on read errors): the dead-peer failure
      is retried on new connections, each bounded by ``connect_timeout``; the caller gets
      MaxRetryError after ``dead_peer_bound + retries x connect_timeout``.
    """
    pair, url = netns_pair, f"{http_server.base}/fast"
    policy = FAST.replace(connect_timeout=1.0)
    bound: float = policy.dead_peer_bound  # type: ignore[assignment]
    ready = threading.Barrier(4, timeout=20)
    blackholed = threading.Event()

    def warm(pm: swu.PoolManager) -> None:
        first = request(pm, url)
        if first.status != 200:
            ready.abort()  # let the main thread report this instead of waiting at the barrier
            raise AssertionError(f"warm-up request failed: {first}")
        ready.wait()
        assert blackholed.wait(20)

    def reused_at_once() -> Outcome:
        with swu.PoolManager(policy=policy, idle_timeout=30, retries=False) as pm:
            warm(pm)
            out = request(pm, url)
            out.stats = pm.stats()
            return out

    def left_idle() -> tuple[float | None, Outcome]:
        with swu.PoolManager(policy=policy, idle_timeout=30, retries=False) as pm:
            warm(pm)
            deadline = time.monotonic() + bound + MARGIN + 2.0
            retired_at = None
            while time.monotonic() < deadline:  # bounded: the reaper sweeps every second
                if pm.stats().closed_peer == 1:
                    retired_at = time.monotonic()
                    break
                time.sleep(0.05)
            out = request(pm, url)
            out.stats = pm.stats()
            return retired_at, out

    def default_retries() -> Outcome:
        with swu.PoolManager(policy=policy, idle_timeout=30) as pm:
            warm(pm)
            out = request(pm, url)
            out.stats = pm.stats()
            return out

    with ThreadPoolExecutor(3) as ex:
        f_reused = in_client(pair, ex, reused_at_once)
        f_idle = in_client(pair, ex, left_idle)
        f_retry = in_client(pair, ex, default_retries)
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            for f in (f_reused, f_idle, f_retry):
                f.result(timeout=30)  # re-raises the worker's own failure
            raise
        pair.blackhole()
        t0 = time.monotonic()
        blackholed.set()
        reused, (retired_at, idle), retried = (
            f_reused.result(timeout=60),
            f_idle.result(timeout=60),
            f_retry.result(timeout=60),
        )

    # Reused at once: the request is sent into the black hole; TCP_USER_TIMEOUT ends it.
    err = reused.error
    assert isinstance(err, swu.DeadPeerReadTimeoutError), repr(err)
    assert isinstance(err, ReadTimeoutError)
    reused_after = reused.at - t0
    assert reused_after < bound + MARGIN, reused_after
    assert_explained(err, pair, policy)
    assert reused.stats is not None
    assert (reused.stats.created, reused.stats.reused, reused.stats.retried) == (1, 1, 0)

    # Left idle: retired by keepalive + reaper, then the new connection cannot be established.
    assert retired_at is not None, "keepalive + reaper did not retire the dead idle connection"
    retired_after = retired_at - t0
    assert retired_after < bound + MARGIN, retired_after
    assert isinstance(idle.error, ConnectTimeoutError), repr(idle.error)
    assert not isinstance(idle.error, swu.DeadPeerError)
    assert f"Connection to {pair.server_addr} timed out. (connect timeout=1.0)" in str(idle.error)
    connect_took = idle.at - retired_at
    assert 0.8 < connect_took < 1.0 + MARGIN, connect_took
    assert idle.stats is not None
    assert (idle.stats.created, idle.stats.reused, idle.stats.closed_peer) == (2, 0, 1)

    # Default Retry: 1 dead-peer read error + 3 connect timeouts, then MaxRetryError.
    assert isinstance(retried.error, MaxRetryError), repr(retried.error)
    assert isinstance(retried.error.reason, ConnectTimeoutError), repr(retried.error.reason)
    retried_after = retried.at - t0
    assert retried_after < bound + 3 * 1.0 + MARGIN, retried_after
    assert retried.stats is not None
    assert (retried.stats.created, retried.stats.reused) == (4, 1)
    # The final error names the last cause (connecting); the dead-peer explanation of the first
    # attempt survives only in urllib3's "Retrying ..." warning.
    retry_logs = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    assert any("DeadPeerReadTimeoutError" in m and "stopped answering" in m for m in retry_logs)
    print(f"\nMaxRetryError: {retried.error}")
    print(f"\nidle: reused-at-once failed {reused_after:.2f} s after the black hole; "
          f"reaper retired the idle one at {retired_after:.2f} s, its next request failed "
          f"connecting after {connect_took:.2f} s; default Retry gave MaxRetryError at "
          f"{retried_after:.2f} s")  # fmt: skip
