"""HTTP/HTTPS benchmark: sockwise pool vs bare urllib3 pool vs a new connection per request.

One run measures all three side by side against a server it starts on loopback (an asyncio
keep-alive HTTP/1.1 server in a subprocess, so it does not compete for this process's GIL),
over HTTP and HTTPS (certificates from trustme). The variants are interleaved finely -- in
every round each variant runs :data:`BLOCKS` short blocks of requests, taking turns -- so the
machine's slow and fast phases hit all of them alike.
Each variant talks to its own server port, so the TIME_WAIT sockets it leaves behind can be
counted from ``/proc/net/tcp`` (state ``06``, remote port = that port).

What it measures is the steady state of back-to-back requests (sparse traffic is the gap
benchmark's, :mod:`sockwise._bench.gaps`). So that the interleaving does not measure itself:

* The order of the variants in a round is balanced (a Williams design,
  :func:`~sockwise._bench.runner.balanced_orders`): each variant follows every other one equally
  often. With a rotation, ``sockwise`` always ran right after ``per-request`` (whose hundreds
  of closed connections the server may still be tearing down) and ``urllib3`` right after
  ``sockwise`` (the same urllib3 code, warm).
* Each turn starts with one untimed request: a pooled variant idle while the others ran (a
  second or more) finds its code paths cold, and the sockwise pool finds its connection
  past ``idle_timeout`` -- a handshake that belongs to the gap benchmark, not to this one.
* ``ratio_vs_urllib3`` and ``cpu_ratio_vs_urllib3`` are medians of per-round ratios (each
  variant to ``urllib3`` in the same round), so a burst of load on a shared machine that hits
  one round moves one ratio, not one variant's total.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sockwise._bench.cpus import pin_server, pinned_client
from sockwise._bench.runner import balanced_orders
from sockwise._net.proc import ProcfsReader
from sockwise._net.records import STATE_NUMBERS

#: ``urllib3`` gets the same timeout as the sockwise pool (the pool it wraps, configured
#: alike); ``urllib3-notimeout`` is urllib3's default, which has no timeout at all -- and saves
#: the ``poll()`` Python makes before each blocking call on a socket with a timeout.
VARIANTS = ("sockwise", "urllib3", "urllib3-notimeout", "per-request")

#: Turns per round: each variant runs a short block of requests in turn, BLOCKS times per round
#: (in balanced orders), and a round's figure for a variant is the sum of its blocks. Whole
#: rounds of 375 requests per variant left the client's CPU per request at +-11 % (standard
#: deviation of the per-round ratio between two pools doing the same work: the machine's slow
#: and fast phases last about as long as a round); blocks of 25 requests brought it to +-2.5 %.
BLOCKS = 15

#: The keep-alive HTTP and HTTPS server both HTTP benchmarks run in a subprocess:
#: ``python -c SERVER_SCRIPT COUNT CERT KEY`` prints ``{"http": [ports], "https": [ports]}``,
#: COUNT listeners of each scheme.
SERVER_SCRIPT = r"""
import asyncio, json, ssl, sys
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport; self.buf = b""
    def data_received(self, data):
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
            self.t.write(RESPONSE * n)
async def main(count, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop(); ports = {}
    for scheme in ("http", "https"):
        ports[scheme] = []
        for _ in range(count):
            srv = await loop.create_server(Http, "127.0.0.1", 0, backlog=4096,
                                           ssl=ctx if scheme == "https" else None)
            ports[scheme].append(srv.sockets[0].getsockname()[1])
    print(json.dumps(ports), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
"""


@contextlib.contextmanager
def serving(count: int, ctx: ssl.SSLContext) -> Iterator[dict[str, list[int]]]:
    """Run :data:`SERVER_SCRIPT` with *count* servers per scheme; yield their ports.

    The certificate comes from a fresh trustme CA that *ctx* is made to trust. The server stops
    when its stdin closes; it is killed if it has not exited 5 s later.
    """
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.configure_trust(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT, str(count), str(cert_path), str(key_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        pin_server(proc.pid)  # off the client's CPU (sockwise._bench.cpus)
        try:
            assert proc.stdout is not None
            ports: dict[str, list[int]] = json.loads(proc.stdout.readline())
            yield ports
        finally:
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _time_wait_toward(port: int) -> int:
    """TIME_WAIT sockets toward *port* (``/proc/net/tcp*``; -1 if unreadable)."""
    try:
        rows = ProcfsReader().dump(1 << STATE_NUMBERS["TIME_WAIT"])
    except OSError:  # not Linux
        return -1
    return sum(1 for r in rows if r.remote[1] == port)


def _make_runner(
    variant: str, scheme: str, port: int, ctx: ssl.SSLContext
) -> tuple[Callable[[], None], Callable[[], None]]:
    """Return (one request, cleanup) for *variant*."""
    import urllib3
    from urllib3.connection import HTTPConnection, HTTPSConnection

    import sockwise.urllib3 as swu
    from sockwise.policy import Policy

    kw: dict[str, Any] = {"ssl_context": ctx} if scheme == "https" else {}
    if variant == "per-request":

        def once() -> None:
            conn: HTTPConnection = (
                HTTPSConnection("127.0.0.1", port, ssl_context=ctx)
                if scheme == "https"
                else HTTPConnection("127.0.0.1", port)
            )
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()

        return once, lambda: None
    pool: urllib3.HTTPConnectionPool
    if variant == "sockwise":
        cls = swu.HTTPSConnectionPool if scheme == "https" else swu.HTTPConnectionPool
        pool = cls("127.0.0.1", port, maxsize=1, **kw)
    else:
        bare = urllib3.HTTPSConnectionPool if scheme == "https" else urllib3.HTTPConnectionPool
        if variant == "urllib3":
            kw["timeout"] = swu.default_timeout(Policy())
        pool = bare("127.0.0.1", port, maxsize=1, **kw)
    request = pool.request

    def pooled() -> None:
        request("GET", "/")

    return pooled, pool.close


def _measure(once: Callable[[], None], n: int) -> tuple[float, float, list[int]]:
    """Run *once* n times: (wall seconds, client CPU seconds, per-request latencies in ns).

    Client CPU is this process's (all threads: a pool's background work is counted too; the
    server runs in another process).
    """
    lat: list[int] = []
    clock = time.perf_counter_ns
    cpu0 = time.process_time()
    start = clock()
    for _ in range(n):
        t0 = clock()
        once()
        lat.append(clock() - t0)
    return (clock() - start) / 1e9, time.process_time() - cpu0, lat


def _pct(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000.0


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark and return JSON-ready results (``quick``: a few seconds)."""
    import urllib3

    # Many short rounds, a multiple of the four variants (whole cycles of balanced orders): a
    # burst of load from elsewhere spoils a few rounds' ratios, and the median ignores them.
    # Twelve rounds of 1,500 requests swung the sockwise ratio by +-10 % from run to run on a
    # loaded machine.
    rounds = 4 if quick else 48
    pooled_n = 15 if quick else 25  # per turn; BLOCKS turns per round
    fresh_n = {"http": 7 if quick else 17, "https": 3 if quick else 5}
    ctx = ssl.create_default_context()
    with serving(len(VARIANTS), ctx) as ports, pinned_client():
        results = _run_all(ports, ctx, rounds, pooled_n, fresh_n)
    return {
        "benchmark": "http",
        "quick": quick,
        "rounds": rounds,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "urllib3": urllib3.__version__,  # type: ignore[attr-defined]
        },
        "results": results,
    }


def _run_all(
    ports: dict[str, list[int]],
    ctx: ssl.SSLContext,
    rounds: int,
    pooled_n: int,
    fresh_n: dict[str, int],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scheme in ("http", "https"):
        port_of = dict(zip(VARIANTS, ports[scheme], strict=True))
        runners = {v: _make_runner(v, scheme, port_of[v], ctx) for v in VARIANTS}
        for once, _ in runners.values():  # warm-up: connections, TLS session, code paths
            for _ in range(20):
                once()
        before = {v: _time_wait_toward(port_of[v]) for v in VARIANTS}
        rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpus: dict[str, list[float]] = {v: [] for v in VARIANTS}
        lats: dict[str, list[int]] = {v: [] for v in VARIANTS}
        orders = balanced_orders(len(VARIANTS))
        block = {v: fresh_n[scheme] if v == "per-request" else pooled_n for v in VARIANTS}
        for r in range(rounds):
            elapsed = dict.fromkeys(VARIANTS, 0.0)
            cpu = dict.fromkeys(VARIANTS, 0.0)
            for b in range(BLOCKS):  # the variants take turns every few requests
                for v in (VARIANTS[i] for i in orders[(r * BLOCKS + b) % len(orders)]):
                    runners[v][0]()  # untimed: see the module's docstring
                    seconds, cpu_s, lat = _measure(runners[v][0], block[v])
                    elapsed[v] += seconds
                    cpu[v] += cpu_s
                    lats[v].extend(lat)
            for v in VARIANTS:
                n = BLOCKS * block[v]
                rates[v].append(n / elapsed[v])
                cpus[v].append(cpu[v] * 1e6 / n)
        for _, cleanup in runners.values():
            cleanup()
        scheme_out: dict[str, Any] = {}
        for v in VARIANTS:
            ordered = sorted(lats[v])
            scheme_out[v] = {
                "requests_per_s": statistics.median(rates[v]),
                "client_cpu_us_per_request": statistics.median(cpus[v]),
                "p50_us": _pct(ordered, 0.50),
                "p99_us": _pct(ordered, 0.99),
                "requests": len(ordered),
                "time_wait": _time_wait_toward(port_of[v]) - max(before[v], 0),
            }
        for v in VARIANTS:  # paired: each round's ratio to urllib3 in the same round
            scheme_out[v]["ratio_vs_urllib3"] = statistics.median(
                a / b for a, b in zip(rates[v], rates["urllib3"], strict=True)
            )
            scheme_out[v]["cpu_ratio_vs_urllib3"] = statistics.median(
                a / b for a, b in zip(cpus[v], cpus["urllib3"], strict=True)
            )
        out[scheme] = scheme_out
    return out


def table(data: dict[str, Any]) -> str:
    """The results as a fixed-width table."""
    head = (
        f"{'scheme':<6} {'variant':<17} {'req/s':>9} {'vs urllib3':>10} {'p50 us':>8} "
        f"{'p99 us':>8} {'cpu us/req':>10} {'cpu ratio':>9} {'TIME_WAIT':>9}"
    )
    lines = [head, "-" * len(head)]
    for scheme, variants in data["results"].items():
        for v, row in variants.items():
            lines.append(
                f"{scheme:<6} {v:<17} {row['requests_per_s']:>9.0f} "
                f"{row['ratio_vs_urllib3']:>10.3f} {row['p50_us']:>8.0f} {row['p99_us']:>8.0f} "
                f"{row['client_cpu_us_per_request']:>10.1f} {row['cpu_ratio_vs_urllib3']:>9.3f} "
                f"{row['time_wait']:>9d}"
            )
    m = data["machine"]
    lines.append(f"machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}")
    return "\n".join(lines)
