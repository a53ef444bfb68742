"""What :func:`sockwise.harden` cannot reach: clients whose sockets live in C, and unknown loops.

:func:`sockwise.harden` reaches every socket that Python code creates through ``socket.socket``
(the standard library, urllib3, asyncio, gevent, eventlet) and uvloop's. A client library whose
connections are opened by its own C core -- grpcio, librdkafka, libmysqlclient, libcurl, libzmq,
libpq through psycopg2 -- never calls into Python for them, and an event loop other than
asyncio's and uvloop's may not either. Each of those has its own settings for the same knobs;
:data:`C_CLIENTS` names them, and :func:`unreached` lists the ones present in this process (the
``Hardening`` report and ``sockwise doctor`` show them).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
from typing import Final

#: import name -> (distribution, what to set instead). psycopg 3 is reached (harden() passes the
#: policy's libpq keywords); psycopg2 is not.
C_CLIENTS: Final[dict[str, tuple[str, str]]] = {
    "grpc": (
        "grpcio",
        "channel options grpc.keepalive_time_ms, grpc.keepalive_timeout_ms "
        "(also its TCP_USER_TIMEOUT) and grpc.keepalive_permit_without_calls",
    ),
    "confluent_kafka": (
        "confluent-kafka",
        "librdkafka settings socket.keepalive.enable=true, socket.connection.setup.timeout.ms "
        "and socket.timeout.ms",
    ),
    "MySQLdb": (
        "mysqlclient",
        "connect(connect_timeout=..., read_timeout=..., write_timeout=...); keepalive only "
        "through the kernel's net.ipv4.tcp_keepalive_* defaults",
    ),
    "psycopg2": (
        "psycopg2",
        "the libpq keywords of Policy.libpq_params() in the DSN (keepalives, keepalives_idle, "
        "keepalives_interval, keepalives_count, tcp_user_timeout, connect_timeout)",
    ),
    "pycurl": (
        "pycurl",
        "TCP_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL and CONNECTTIMEOUT on each Curl handle",
    ),
    "zmq": (
        "pyzmq",
        "socket options zmq.TCP_KEEPALIVE, TCP_KEEPALIVE_IDLE, TCP_KEEPALIVE_INTVL, "
        "TCP_KEEPALIVE_CNT",
    ),
}

#: Event loop (policy) modules whose sockets harden() reaches.
_KNOWN_LOOPS: Final = ("asyncio", "uvloop")


def _loop_module(obj: object) -> str:
    return type(obj).__module__.split(".", 1)[0]


def unreached() -> tuple[str, ...]:
    """What this process uses that :func:`sockwise.harden` does not reach, each with the fix."""
    out = [
        f"{module} ({dist}): its C core opens its own sockets; set {advice}"
        for module, (dist, advice) in C_CLIENTS.items()
        if module in sys.modules
    ]
    loops: list[tuple[str, object]] = [("event loop policy", asyncio.get_event_loop_policy())]
    with contextlib.suppress(RuntimeError):  # no loop running in this thread
        loops.append(("running event loop", asyncio.get_running_loop()))
    for what, obj in loops:
        if _loop_module(obj) not in _KNOWN_LOOPS:
            name = f"{type(obj).__module__}.{type(obj).__qualname__}"
            out.append(
                f"{what} {name}: not asyncio's or uvloop's, so sockets its loop opens in C are "
                "not reached; apply sockwise.Policy.apply(sock) to sockets you can get"
            )
    return tuple(out)


def installed_c_clients() -> list[tuple[str, str, str]]:
    """``(import name, distribution, what to set)`` of the C clients installed here."""
    found = []
    for module, (dist, advice) in C_CLIENTS.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # Defensive: a broken install
            present = False
        if present:
            found.append((module, dist, advice))
    return found
