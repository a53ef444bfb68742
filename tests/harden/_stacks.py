"""Run a stack's script in a fresh interpreter and read its JSON verdict (shared by the tests).

Monkey-patching libraries (gevent, eventlet) must patch before anything else imports
:mod:`socket`, so each case runs in its own ``python -c``. Every script prints one JSON object on
its last line of output; :data:`PRELUDE` gives it helpers to read a socket's options, the options
the policy applies, and the origin the guard recorded for a socket.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import textwrap
import time
from typing import Any

PRELUDE = textwrap.dedent(
    """
    import json as _json, os as _os, socket as _socket_mod

    def _opts(sock):
        from sockwise.testing import read_socket_options
        return read_socket_options(sock)

    def _expected(kind):
        # What the policy's own hook sets on a fresh TCP socket: the reference to compare with.
        from sockwise._hooks import native_classes
        from sockwise.harden import _stdlib
        raw = native_classes()[0](_socket_mod.AF_INET, _socket_mod.SOCK_STREAM)
        try:
            if kind == "accept":
                _stdlib._on_accept(raw)
            else:
                # A blocking socket: the hook bounds the handshake (TCP_USER_TIMEOUT lowered)
                # and names the value the hook layer sets back once connected.
                set_back = _stdlib._on_connect(raw, ("127.0.0.1", 9))
                if set_back:
                    raw.setsockopt(*set_back)
            return _opts(raw)
        finally:
            raw.close()

    def _origin_of(sock):
        from sockwise.guard import _origin
        found = _origin.lookup(_os.fstat(sock.fileno()).st_ino)
        if found is None or found[1] is None:
            return None
        origin = found[1]
        return {"kind": origin.kind, "file": origin.filename, "function": origin.function}

    def _done(**result):
        print(_json.dumps(result), flush=True)
    """
)


def run_stack(body: str, *, timeout: float = 60.0, first: str = "") -> dict[str, Any]:
    """Run *first* (the monkey-patching), then the prelude, then *body*; return its verdict."""
    code = textwrap.dedent(first) + PRELUDE + textwrap.dedent(body)
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, (
        f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-3000:]}"
    )
    result: dict[str, Any] = json.loads(lines[-1])
    result["stderr"] = proc.stderr
    return result


class AppServer:
    """A web server command (gunicorn, uvicorn) run for one test: its port, one GET, its log.

    The server logs to stderr (piped here) and its application answers ``GET /`` with a JSON
    object. Call :meth:`stop` in a ``finally``: it ends the server and returns its log.
    """

    def __init__(
        self, argv: list[str], *, cwd: os.PathLike[str], env: dict[str, str] | None = None
    ) -> None:
        self.lines: list[str] = []  # the log lines read while waiting for the port
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for_port(self, pattern: str, timeout: float = 60.0) -> int:
        """Read the log until a line matches *pattern* (its group 1 is the port)."""
        stderr = self.proc.stderr
        assert stderr is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([stderr], [], [], left)[0]:
                break
            line = stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if match := re.search(pattern, line):
                return int(match.group(1))
        raise AssertionError(f"{self.proc.args[:4]} did not start:\n" + "".join(self.lines))

    def get_json(self, port: int, *, attempts: int = 1) -> dict[str, Any]:
        """``GET /`` on *port* and the JSON body; retries a refused connect *attempts* times."""
        for attempt in range(attempts):
            data = b""
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
                    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    while chunk := client.recv(65536):
                        data += chunk
                break
            except ConnectionRefusedError:  # a worker may still be booting
                if attempt == attempts - 1:
                    raise
                time.sleep(0.1)
        result: dict[str, Any] = json.loads(data.split(b"\r\n\r\n", 1)[1])
        return result

    def stop(self, timeout: float = 10.0) -> str:
        """Terminate the server (kill it after *timeout* seconds) and return its whole log."""
        self.proc.terminate()
        try:
            _, rest = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, rest = self.proc.communicate(timeout=10)
        return "".join(self.lines) + rest
