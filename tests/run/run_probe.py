"""Loaded inside every process started under ``sockwise run``: report what that process sees.

:func:`record` opens a connection to itself on loopback and appends one JSON line to the file
named by ``RUN_PROBE_OUT``: the PID, whether sockwise is hardened, how many guards
run, and ``getsockopt`` of the TCP options on both the client and the accepted socket.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

OPTIONS = [
    ("SO_KEEPALIVE", socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    ("TCP_KEEPIDLE", socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    ("TCP_KEEPINTVL", socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    ("TCP_KEEPCNT", socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    ("TCP_USER_TIMEOUT", socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
    ("TCP_NODELAY", socket.IPPROTO_TCP, socket.TCP_NODELAY),
]


def options(sock: socket.socket) -> dict[str, int]:
    """The TCP options of *sock*, keyed ``"level:option"``."""
    return {f"{level}:{opt}": sock.getsockopt(level, opt) for _, level, opt in OPTIONS}


def snapshot(tag: str, extra: socket.socket | None = None) -> dict[str, Any]:
    """What this process looks like now (sockets opened here are closed before returning)."""
    import sockwise
    from sockwise.guard import running_guards

    with socket.create_server(("127.0.0.1", 0)) as srv:
        with socket.create_connection(srv.getsockname(), timeout=10) as cli:
            acc, _ = srv.accept()
            with acc:
                out: dict[str, Any] = {
                    "tag": tag,
                    "pid": os.getpid(),
                    "ppid": os.getppid(),
                    "hardened": sockwise.is_hardened(),
                    "guards": sum(g.running for g in running_guards()),
                    "client": options(cli),
                    "accepted": options(acc),
                }
    if extra is not None:
        out["request"] = options(extra)
    return out


def record(tag: str, extra: socket.socket | None = None, **fields: Any) -> dict[str, Any]:
    """Append :func:`snapshot` (and *fields*) as a JSON line to ``$RUN_PROBE_OUT``."""
    out = {**snapshot(tag, extra), **fields}
    line = (json.dumps(out) + "\n").encode()
    fd = os.open(os.environ["RUN_PROBE_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return out
