"""Nagle's algorithm vs ``TCP_NODELAY`` on small request/response exchanges, on loopback.

Two measurements, each side by side in one run:

* raw sockets: the client sends a request as two small writes, then reads a small reply. With
  Nagle on, the second write waits for the ACK of the first, and the server delays that ACK
  (delayed ACK, 40 ms minimum on Linux): each exchange stalls about 44 ms. ``TCP_NODELAY`` sends
  the second write at once.
* the standard library's ``http.server`` on a keep-alive connection: it writes the headers and
  the body separately, so the same stall hits every response -- unless the server is run under
  :func:`sockwise.harden`, which sets ``TCP_NODELAY`` on accepted sockets.

Each server runs in its own subprocess (so ``harden()`` touches only that server) and is stopped
by its PID. The first exchanges are discarded: Linux ACKs at once during a connection's first
round trips ("quick ACK" mode), which hides the stall.
"""

from __future__ import annotations

import http.client
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

PART: Final = 16  # bytes in each half of a request
REPLY: Final = 32  # bytes in a reply

_RAW_SERVER: Final = f"""
import socket, sys
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        while True:
            need, got = {2 * PART}, b""
            while len(got) < need:
                chunk = conn.recv(need - len(got))
                if not chunk:
                    break
                got += chunk
            if len(got) < need:
                break
            conn.sendall(b"r" * {REPLY})
"""

_HTTP_SERVER: Final = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
if sys.argv[1] == "harden":
    import sockwise
    sockwise.harden()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

srv = HTTPServer(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


@contextmanager
def _server(code: str, *args: str) -> Iterator[int]:
    """Start a server script in a subprocess; yield its port; stop it by PID."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
            raise RuntimeError(f"benchmark server did not start: {line!r} {err.strip()[-300:]}")
        yield int(line)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _stats(case: str, samples: list[float], **extra: Any) -> dict[str, Any]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "case": case,
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 4),
        "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        **extra,
    }


def _time(op: Callable[[], None], warmup: int, n: int, budget: float) -> list[float]:
    """Run *op* ``warmup`` times, then time up to *n* runs within *budget* seconds."""
    for _ in range(warmup):
        op()
    out: list[float] = []
    deadline = time.monotonic() + budget
    while len(out) < n and time.monotonic() < deadline:
        t0 = time.perf_counter()
        op()
        out.append(time.perf_counter() - t0)
    return out


def _recv_exact(sock: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise ConnectionError("benchmark server closed the connection")
        got += len(chunk)


def raw_exchanges(nodelay: bool, n: int, budget: float) -> list[float]:
    """Time *n* write-write-read exchanges with a raw socket, Nagle on or off."""
    with _server(_RAW_SERVER) as port, socket.create_connection(("127.0.0.1", port), 5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(nodelay))

        def exchange() -> None:
            s.sendall(b"a" * PART)
            s.sendall(b"b" * PART)
            _recv_exact(s, REPLY)

        return _time(exchange, warmup=8, n=n, budget=budget)


def http_requests(harden: bool, n: int, budget: float) -> list[float]:
    """Time *n* keep-alive GETs against ``http.server``, with or without ``harden()``."""
    with _server(_HTTP_SERVER, "harden" if harden else "plain") as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:

            def request() -> None:
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"http.server answered {resp.status}")

            return _time(request, warmup=8, n=n, budget=budget)
        finally:
            conn.close()


def _harden_available() -> str | None:
    try:
        import sockwise
    except ImportError as exc:  # Defensive
        return str(exc)
    return None if callable(getattr(sockwise, "harden", None)) else "sockwise.harden() not found"


def run(quick: bool = False) -> dict[str, Any]:
    """Measure both scenarios and return JSON-ready rows (see the module docstring).

    Args:
        quick: Fewer exchanges (about 5 s in all instead of about 30 s).

    """
    slow_n, fast_n, budget = (15, 300, 4.0) if quick else (100, 3000, 20.0)
    rows = [
        _stats("2 writes + read, Nagle on", raw_exchanges(False, slow_n, budget)),
        _stats("2 writes + read, TCP_NODELAY", raw_exchanges(True, fast_n, budget)),
        _stats("http.server keep-alive", http_requests(False, slow_n, budget)),
    ]
    notes = []
    missing = _harden_available()
    if missing is None:
        rows.append(_stats("http.server + sockwise.harden()", http_requests(True, fast_n, budget)))
    else:
        notes.append(f"http.server + harden() not measured: {missing}")
    nagle, nodelay = rows[0]["median_ms"], rows[1]["median_ms"]
    summary = f"Nagle + delayed ACK: {nagle:.1f} ms median vs {nodelay:.3f} ms with TCP_NODELAY"
    if len(rows) == 4:
        summary += (
            f"; http.server {rows[2]['median_ms']:.1f} ms -> {rows[3]['median_ms']:.3f} ms "
            "under harden()"
        )
    return {
        "name": "nodelay",
        "title": "Small request/response exchanges on loopback: Nagle vs TCP_NODELAY",
        "metric": "median_ms",
        "rows": rows,
        "summary": summary,
        "notes": notes,
    }
