"""redis-py under plain ``sockwise.harden()`` and the guard's defaults, against a real redis-server.

* An idle pooled connection that the server closed (``CLIENT KILL``, as ``timeout`` in
  redis.conf does) is no leak: no warning, at most one INFO notice for the pool.
* A connection checked out with ``get_connection()`` and never released is a leak, reported
  within the detection bound, naming the line that checked it out and saying to return it.
"""

from __future__ import annotations

import logging
import time
import warnings

import pytest

import sockwise
from sockwise.guard import DETECTION_BOUND, CloseWaitLeakWarning, GuardEvent, running_guards

redis = pytest.importorskip("redis")


def test_redis_idle_member_is_no_leak_and_a_kept_checkout_is(
    redis_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    events: list[GuardEvent] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sockwise.harden()
        try:
            (guard,) = running_guards()
            guard.callback = events.append
            idle_client = redis.Redis(host="127.0.0.1", port=redis_port)
            kept_client = redis.Redis(host="127.0.0.1", port=redis_port)
            admin = redis.Redis(host="127.0.0.1", port=redis_port)
            try:
                assert idle_client.ping()  # its connection goes back to the pool, idle
                kept = kept_client.connection_pool.get_connection("PING")  # LEAK:checkout
                kept.send_command("PING")
                assert kept.read_response() in (b"PONG", "PONG", True)
                # the server closes every other client connection (as redis.conf's timeout)
                assert admin.client_kill_filter(_type="normal", skipme=True) >= 2
                closed = time.monotonic()
                deadline = closed + DETECTION_BOUND + 3
                leaks: list[GuardEvent] = []
                while time.monotonic() < deadline and not leaks:
                    time.sleep(0.1)
                    leaks = [e for e in events if e.category is CloseWaitLeakWarning]
                delay = time.monotonic() - closed
            finally:
                kept_client.connection_pool.disconnect()
                idle_client.close()
                kept_client.close()
                admin.close()
        finally:
            sockwise.unharden()
    assert len(leaks) == 1, [e.message for e in events]
    (leak,) = leaks
    assert delay <= DETECTION_BOUND + max(0.5, DETECTION_BOUND * 0.1), delay
    assert leak.origin is not None
    assert (leak.origin.filename, leak.origin.lineno) == (__file__, _line("LEAK:checkout"))
    assert "pool" in leak.message
    warned = [w for w in caught if w.category is CloseWaitLeakWarning]
    assert len(warned) == 1  # the kept checkout only: the idle member is no leak
    notices = [
        r.getMessage() for r in caplog.records if "closed idle connections" in r.getMessage()
    ]
    assert len(notices) <= 1
    assert all("Not a leak" in n for n in notices)


def _line(tag: str) -> int:
    with open(__file__) as f:
        return next(i for i, text in enumerate(f, 1) if f"# {tag}" in text)
