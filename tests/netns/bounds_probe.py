"""One hardened process measuring one bound; run by test_bounds.py inside a test namespace.

``python bounds_probe.py MODE HOST PORT [APP_TIMEOUT]``, with the policy in the ``SOCKWISE_*``
variables: the process calls plain ``sockwise.harden()``, as an application would. It prints one
JSON line ``{"ready": true}`` when the connection it watches is up (modes that wait for a fault)
and then waits for a line on stdin (the parent injects the fault), and finally one JSON line with
the outcome: ``elapsed`` seconds, ``error`` (repr), ``errno`` (``null`` for Python's own timeout).

Modes:

* ``connect``: ``socket.create_connection`` to an address whose SYNs are dropped (APP_TIMEOUT:
  the application's own ``timeout=``; none when omitted). Elapsed from the call.
* ``connect-async``: ``asyncio.open_connection`` there (non-blocking: no socket timeout).
* ``idle``: connect, wait for the fault, then ``recv``. Elapsed from connect() returning (the last
  packet received: the keepalive clock starts there).
* ``inflight``: connect, wait for the fault, ``sendall`` 1000 bytes then ``recv``. Elapsed from
  the send.
* ``stuck-reader``: connect to a peer that never reads and send until the kernel gives up.
  Elapsed from the start of the send (the windows fill within milliseconds).
* ``serve-slow-reader``: listen on HOST:PORT, accept one client (who pauses reading) and stream
  PAYLOAD bytes to it. Elapsed from the start of the stream; ``sent`` bytes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time

import sockwise

STREAM = 64 * 1024 * 1024
SETTLE = 2.0


def _result(started: float, error: BaseException | None, **extra: object) -> dict[str, object]:
    return {
        "elapsed": time.monotonic() - started,
        "error": None if error is None else repr(error),
        "errno": getattr(error, "errno", None),
        **extra,
    }


def _ready() -> None:
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()


def main(argv: list[str]) -> dict[str, object]:
    mode, host, port = argv[0], argv[1], int(argv[2])
    app_timeout = float(argv[3]) if len(argv) > 3 else None
    sockwise.harden()
    addr = (host, port)
    if mode == "connect":
        started = time.monotonic()
        try:
            if app_timeout is None:
                socket.create_connection(addr).close()
            else:
                socket.create_connection(addr, timeout=app_timeout).close()
        except OSError as exc:
            return _result(started, exc)
        return _result(started, None)
    if mode == "connect-async":

        async def attempt() -> None:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()

        started = time.monotonic()
        try:
            asyncio.run(attempt())
        except OSError as exc:
            return _result(started, exc)
        return _result(started, None)
    if mode in ("idle", "inflight"):
        sock = socket.create_connection(addr, timeout=10)
        connected = time.monotonic()
        sock.settimeout(None)
        with sock:
            _ready()
            started = connected
            try:
                if mode == "inflight":
                    # Past the initial 1 s retransmission timeout of a young connection (see
                    # Policy.unacked_data_bound): a pooled connection, as in real life.
                    time.sleep(max(0.0, connected + SETTLE - time.monotonic()))
                    started = time.monotonic()
                    sock.sendall(b"x" * 1000)
                data = sock.recv(16)
                return _result(started, AssertionError(f"recv returned {data!r}"))
            except OSError as exc:
                return _result(started, exc)
    if mode == "stuck-reader":
        with socket.create_connection(addr, timeout=10) as sock:
            sock.settimeout(None)
            started = time.monotonic()
            try:
                sock.sendall(b"x" * STREAM)
            except OSError as exc:
                return _result(started, exc)
            return _result(started, None)
    if mode == "serve-slow-reader":
        with socket.create_server(addr) as listener:
            _ready_listen = {"ready": True}
            print(json.dumps(_ready_listen), flush=True)
            conn, _ = listener.accept()
            with conn:
                started = time.monotonic()
                try:
                    conn.sendall(b"x" * STREAM)
                except OSError as exc:
                    return _result(started, exc)
                return _result(started, None, sent=STREAM)
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    outcome = main(sys.argv[1:])
    print(json.dumps(outcome), flush=True)
    sockwise.unharden()
