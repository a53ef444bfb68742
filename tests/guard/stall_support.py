"""Peers for the stall tests, each in its own process: silent, not reading, chatty."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sockwise.guard import GuardEvent

#: Accepts, reads what comes, never writes (the "live server that never answers").
SILENT = r"""
import socket, sys
srv = socket.create_server((sys.argv[1], 0))
print(srv.getsockname()[1], flush=True)
held = []
while True:
    conn, _ = srv.accept()
    conn.recv(65536)
    held.append(conn)
"""

#: Accepts and never reads (its receive window closes: zero window).
NOT_READING = r"""
import socket, sys, time
srv = socket.create_server((sys.argv[1], 0))
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
time.sleep(3600)
"""

#: Accepts, sends 100 bytes at once, then keeps the connection open.
PUSHER = r"""
import socket, sys, time
srv = socket.create_server((sys.argv[1], 0))
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.sendall(b"p" * 100)
time.sleep(3600)
"""

#: Echoes every chunk at once (a healthy request/response peer).
ECHO = r"""
import socket, sys, threading
srv = socket.create_server((sys.argv[1], 0))
print(srv.getsockname()[1], flush=True)
def serve(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            conn.close()
            return
        conn.sendall(data)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


@contextmanager
def peer(script: str, host: str = "127.0.0.1") -> Iterator[int]:
    """Run *script* in a subprocess; yield the port it printed; kill it by PID after."""
    proc = subprocess.Popen([sys.executable, "-c", script, host], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"peer did not start: {line!r}"
        yield int(line)
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def wait_for(
    events: list[GuardEvent], pred: Callable[[GuardEvent], bool], timeout: float
) -> GuardEvent | None:
    """The first event matching *pred* within *timeout* seconds (polled every 20 ms)."""
    end = time.monotonic() + timeout
    for _ in range(int(timeout / 0.02) + 2):
        for event in list(events):
            if pred(event):
                return event
        if time.monotonic() >= end:
            return None
        time.sleep(0.02)
    return None


#: An HTTP server whose response is a stream: headers, 64 kB of events, then silence.
STREAMER = r"""
import socket, sys, time
srv = socket.create_server((sys.argv[1], 0))
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.recv(65536)
body = b"data: x\n\n" * 7000
conn.sendall(
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n" % len(body) + body + b"\r\n"
)
time.sleep(3600)
"""
