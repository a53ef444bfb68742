"""What harden() cannot reach is said, and is true: psycopg2's libpq socket, a foreign loop."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap

import pytest

import sockwise
from sockwise.testing import read_socket_options

SCRIPT = textwrap.dedent(
    """
    import json, os, socket, sys
    import psycopg2
    import sockwise
    from sockwise.testing import read_socket_options

    dsn = sys.argv[1]
    hardening = sockwise.harden(guard=False)

    def options(conn):
        with socket.socket(fileno=os.dup(conn.fileno())) as probe:
            return read_socket_options(probe)

    plain = psycopg2.connect(dsn)
    advised = psycopg2.connect(dsn, **sockwise.Policy().libpq_params())
    print(json.dumps({
        "unreached": list(hardening.unreached),
        "plain": options(plain),
        "advised": options(advised),
    }))
    plain.close()
    advised.close()
    """
)


@pytest.mark.postgres
def test_psycopg2_is_listed_and_really_not_reached(postgres):
    """The report names psycopg2; its socket keeps libpq's defaults; the advice works."""
    pytest.importorskip("psycopg2")
    import json

    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, postgres.dsn],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert any(item.startswith("psycopg2 (psycopg2)") for item in got["unreached"]), got
    assert any("libpq_params" in item for item in got["unreached"])
    policy = sockwise.Policy()
    with open("/proc/sys/net/ipv4/tcp_keepalive_time") as f:
        kernel_idle = int(f.read())
    assert kernel_idle != policy.keepalive_idle
    assert got["plain"]["TCP_USER_TIMEOUT"] == 0 and got["plain"]["TCP_KEEPIDLE"] == kernel_idle
    assert got["advised"]["SO_KEEPALIVE"] == 1
    assert got["advised"]["TCP_KEEPIDLE"] == policy.keepalive_idle
    assert got["advised"]["TCP_USER_TIMEOUT"] == int(policy.user_timeout * 1000)


class ForeignPolicy(asyncio.DefaultEventLoopPolicy):
    """An event loop policy from outside asyncio and uvloop (like a Rust-based loop's)."""


def test_a_foreign_event_loop_policy_is_reported():
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(ForeignPolicy())
    try:
        hardening = sockwise.harden(guard=False)
        assert any("ForeignPolicy" in item for item in hardening.unreached), hardening.unreached
    finally:
        asyncio.set_event_loop_policy(previous)
    sockwise.unharden()
    assert not any("ForeignPolicy" in item for item in sockwise.harden(guard=False).unreached)


def test_nothing_unreached_in_a_plain_process():
    code = "import sockwise; print(repr(sockwise.harden(guard=False).unreached))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    assert out.strip() == "()"


def test_listener_options_reach_sockets_accepted_below_python():
    """Linux copies a listener's options to accepted sockets: what covers C-level accepts."""
    sockwise.harden(guard=False)
    with socket.create_server(("127.0.0.1", 0)) as server:
        fd = os.dup(server.fileno())
    sockwise.unharden()
    # Accept with the C method on a fresh object: no sockwise hook runs for this accept.
    with socket.socket(fileno=fd) as listener, socket.create_connection(listener.getsockname()):
        new_fd, _ = listener._accept()
        with socket.socket(fileno=new_fd) as accepted:
            got = read_socket_options(accepted)
    assert got["SO_KEEPALIVE"] == 1
    assert got["TCP_KEEPIDLE"] == sockwise.Policy().keepalive_idle
