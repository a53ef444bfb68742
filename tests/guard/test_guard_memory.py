"""Memory stays bounded: 10,000 sockets opened and closed leave no state behind."""

from __future__ import annotations

import resource
import socket
import warnings

from sockwise.guard import Guard, PortChurnWarning, register_pooled, unregister_pooled


def test_ten_thousand_sockets_leave_bounded_tables(listener: socket.socket) -> None:
    """Origins of closed sockets are swept; every table ends small."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    guard = Guard(interval=60, close_wait_after=3600).start()
    before = guard.sizes()  # the code and origin caches persist across guards: count growth
    peak = 0
    churn = 0
    try:
        address = listener.getsockname()
        for _batch in range(100):
            clients = [socket.create_connection(address) for _ in range(100)]
            servers = [listener.accept()[0] for _ in clients]
            for c in clients:
                register_pooled(c)
            peak = max(peak, guard.sizes()["tracked"])
            for c in clients:
                unregister_pooled(c)
                c.close()
            for s in servers:
                s.close()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PortChurnWarning)  # 10,000 connects ARE churn
                churn += sum(e.kind == "port_churn" for e in guard.check().events)
        for _ in range(5):
            assert guard.check().events == ()
        sizes = guard.sizes()
    finally:
        guard.stop()
    assert peak >= 100  # they were recorded while open
    assert sizes["tracked"] <= 64, sizes
    assert sizes["pooled"] == 0
    assert sizes["close_wait_ages"] <= 16
    assert sizes["code_cache"] - before["code_cache"] < 200
    assert sizes["origin_cache"] - before["origin_cache"] < 50
    assert sizes["history"] <= 512
    assert churn == 1
