"""The Prometheus collector, scraped for real over HTTP on loopback."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

import sockwise
from sockwise.metrics import register_pool, unregister_pool
from sockwise.metrics.prometheus import SockwiseCollector

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def scrape() -> Iterator[callable]:
    """Serve a registry holding a SockwiseCollector on loopback; return a scraping function."""
    registry = CollectorRegistry()
    registry.register(SockwiseCollector())
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"

    def get() -> Samples:
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
        out: Samples = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    try:
        yield get
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_prometheus_scrape_sockets(scrape, held_sockets) -> None:
    """Socket counts, the CLOSE_WAIT leak and the listener's queue appear in a real scrape."""
    samples = scrape()
    assert samples[("sockwise_tcp_sockets", (("state", "CLOSE_WAIT"),))] >= 1
    assert samples[("sockwise_close_wait_sockets", ())] >= 1
    assert samples[("sockwise_tcp_sockets", (("state", "LISTEN"),))] >= 2  # ours + the exporter
    local = (("local", held_sockets.listen_local),)
    assert samples[("sockwise_listen_queue_length", local)] == 2
    if ("sockwise_listen_backlog", local) in samples:
        assert samples[("sockwise_listen_backlog", local)] == 7
    assert samples[("sockwise_ephemeral_port_range_size", ())] > 0
    assert 0 <= samples[("sockwise_ephemeral_port_use_ratio", ())] <= 1
    churn = samples[("sockwise_connection_churn_per_second", ())]
    assert churn == pytest.approx(samples[("sockwise_time_wait_sockets", ())] / 60)
    again = scrape()
    assert again[("sockwise_close_wait_oldest_seconds", ())] > 0  # seen since the first scrape


def test_prometheus_scrape_policy_info(scrape) -> None:
    """The policy in force is an info metric; under harden() its source is 'harden'."""
    samples = scrape()
    (info,) = [labels for (name, labels) in samples if name == "sockwise_policy_info"]
    assert dict(info)["source"] == "environment"
    assert dict(info)["keepalive_idle"] == "60"
    assert samples[("sockwise_policy_dead_peer_bound_seconds", ())] == 90
    with sockwise.harden(sockwise.Policy.interactive(), guard=False, urllib3=False, psycopg=False):
        hardened = scrape()
    (info,) = [labels for (name, labels) in hardened if name == "sockwise_policy_info"]
    assert dict(info)["source"] == "harden"
    assert dict(info)["keepalive_idle"] == "10"
    assert hardened[("sockwise_policy_dead_peer_bound_seconds", ())] == 20


def test_prometheus_scrape_pool_stats(scrape, http_origin) -> None:
    """A registered sockwise urllib3 pool's statistics are published with its name."""
    from sockwise.urllib3 import PoolManager

    with PoolManager() as pm:
        for _ in range(3):
            assert pm.request("GET", http_origin + "/").status == 200
        name = register_pool(pm, "origin")
        try:
            samples = scrape()
        finally:
            unregister_pool(name)
    stats = {
        dict(labels)["stat"]: value
        for (metric, labels), value in samples.items()
        if metric == "sockwise_pool_stat" and dict(labels)["pool"] == "origin"
    }
    assert stats["created"] == 1
    assert stats["reused"] == 2
    assert not any(
        dict(labels).get("pool") == "origin"
        for (metric, labels) in scrape()
        if metric == "sockwise_pool_stat"
    )


def test_prometheus_missing_extra_names_it() -> None:
    """Without prometheus-client, creating the collector says which extra to install."""
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from sockwise.metrics.prometheus import SockwiseCollector\n"
        "try:\n    SockwiseCollector()\n"
        "except ModuleNotFoundError as e:\n    print(e.name, '|', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("prometheus_client |")
    assert "pip install 'sockwise[prometheus]'" in out.stdout


def test_guard_findings_are_counted_by_kind(scrape) -> None:
    """A CLOSE_WAIT leak the guard reports adds one to sockwise_guard_events_total{kind}."""
    import socket
    import time

    from sockwise import CloseWaitLeakWarning, Guard

    key = ("sockwise_guard_events_total", (("kind", "close_wait"),))
    before = scrape()
    assert before[("sockwise_guard_events_total", (("kind", "awaiting_reply"),))] >= 0
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        try:
            conn, _ = listener.accept()
            conn.close()  # the peer closes: our client end goes to CLOSE_WAIT and stays

            def first_findings(guard: Guard) -> list[str]:
                for _ in range(50):  # until the FIN arrived and the leak was reported
                    kinds = [e.kind for e in guard.check().events]
                    if kinds:
                        return kinds
                    time.sleep(0.02)
                return []

            with Guard(interval=3600, close_wait_after=0) as guard:
                with pytest.warns(CloseWaitLeakWarning):
                    kinds = first_findings(guard)
            assert kinds == ["close_wait"]
        finally:
            client.close()
    assert scrape()[key] == before[key] + 1
