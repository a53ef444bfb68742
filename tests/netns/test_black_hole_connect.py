"""connect_timeout bounds a connect to a black-holed server (SYNs vanish, nothing answers)."""

from __future__ import annotations

import errno
import select
import socket
import struct
import threading
import time

import pytest

from sockwise import Policy
from sockwise.testing import NetnsPair, PostgresServer, pg_unavailable_reason, require_or_skip

pytestmark = [pytest.mark.netns, pytest.mark.slow]

POLICY = Policy(connect_timeout=1.5)
#: The unbounded connect is watched this long (the kernel's own schedule runs ~131 s).
WINDOW = 4.5


def tolerance(bound: float) -> float:
    """The project's tolerance for a measured bound: max(0.5 s, 10 %)."""
    return max(0.5, 0.1 * bound)


TCP_SYN_SENT = 2


def test_plain_connect_is_bounded_and_unbounded_one_hangs(netns_pair: NetnsPair) -> None:
    netns_pair.blackhole()
    addr = (netns_pair.server_addr, 7002)
    assert POLICY.connect_timeout is not None
    window = WINDOW

    def unbounded() -> int:
        # No timeout (kernel defaults): the kernel retries SYNs for ~127 s. Watch it without
        # blocking: after the whole window it is still SYN_SENT, with no error.
        with socket.socket() as s:
            s.setblocking(False)
            assert s.connect_ex(addr) == errno.EINPROGRESS
            _, writable, _ = select.select([], [s], [], window)
            assert writable == [], "a black-holed connect completed"
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
            return int(struct.unpack("B", info)[0])

    def bounded() -> tuple[BaseException | None, float]:
        started = time.monotonic()
        try:
            socket.create_connection(addr, timeout=POLICY.connect_timeout).close()
        except OSError as exc:
            return exc, time.monotonic() - started
        return None, time.monotonic() - started

    states: list[int] = []
    watcher = threading.Thread(
        target=lambda: states.append(netns_pair.run_in_client(unbounded, timeout=60))
    )
    watcher.start()
    err, took = netns_pair.run_in_client(bounded, timeout=60)
    watcher.join(60)
    assert isinstance(err, TimeoutError), err  # silence, not refusal or unreachable
    assert abs(took - POLICY.connect_timeout) <= tolerance(POLICY.connect_timeout), took
    assert states == [TCP_SYN_SENT]


@pytest.mark.postgres
def test_libpq_connect_timeout_bounds_a_black_holed_database(netns_pair: NetnsPair) -> None:
    import psycopg

    require_or_skip(pg_unavailable_reason())
    policy = Policy(connect_timeout=2)
    with PostgresServer.start(netns=netns_pair.server_ns, host=netns_pair.server_addr) as pg:

        def connect() -> tuple[BaseException | None, float]:
            started = time.monotonic()
            try:
                psycopg.connect(pg.dsn, **policy.libpq_params()).close()
            except psycopg.OperationalError as exc:
                return exc, time.monotonic() - started
            return None, time.monotonic() - started

        assert netns_pair.run_in_client(connect, timeout=30)[0] is None  # reachable first
        netns_pair.blackhole()
        err, took = netns_pair.run_in_client(connect, timeout=60)
    assert isinstance(err, psycopg.OperationalError)
    assert "timeout expired" in str(err)
    # One address (no IPv6, no second host): one connect_timeout, as libpq_params states.
    assert abs(took - 2) <= tolerance(2), took
