"""Run a stack's script in a fresh interpreter and read its JSON verdict (shared by the tests).

Monkey-patching libraries (gevent, eventlet) must patch before anything else imports
:mod:`socket`, so each case runs in its own ``python -c``. Every script prints one JSON object on
its last line of output; :data:`PRELUDE` gives it helpers to read a socket's options, the options
the policy applies, and the origin the guard recorded for a socket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
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
