"""OpenTelemetry instruments, read by a real InMemoryMetricReader."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from sockwise.metrics.opentelemetry import FAMILY_NAMES, instrument

Points = dict[str, list[tuple[dict[str, object], float]]]


@pytest.fixture
def read_points() -> Iterator[callable]:
    """A MeterProvider with an in-memory reader, instrumented; returns a function to collect."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    inst = instrument(meter_provider=provider)
    assert len(inst.instruments) == len(FAMILY_NAMES)

    def collect() -> Points:
        inst._cache = None  # a fresh reading per collection in tests
        data = reader.get_metrics_data()
        out: Points = {}
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                assert sm.scope.name == "sockwise"
                for metric in sm.metrics:
                    out[metric.name] = [
                        (dict(p.attributes or {}), p.value) for p in metric.data.data_points
                    ]
        return out

    try:
        yield collect
    finally:
        provider.shutdown()


def test_otel_socket_gauges(read_points, held_sockets) -> None:
    """Socket states, CLOSE_WAIT and the listener's queue are observed."""
    points = read_points()
    states = {attrs["state"]: value for attrs, value in points["sockwise.tcp_sockets"]}
    assert states["CLOSE_WAIT"] >= 1
    assert states["LISTEN"] >= 1
    ((_, close_wait),) = points["sockwise.close_wait_sockets"]
    assert close_wait >= 1
    queues = {attrs["local"]: v for attrs, v in points["sockwise.listen_queue_length"]}
    assert queues[held_sockets.listen_local] == 2
    assert "sockwise.connection_churn_per_second" in points
    again = read_points()
    ((_, age),) = again["sockwise.close_wait_oldest_seconds"]
    assert age > 0


def test_otel_policy_and_bound(read_points) -> None:
    """The policy is observed as attributes of a constant 1, with its dead-peer bound."""
    points = read_points()
    ((attrs, value),) = points["sockwise.policy"]
    assert value == 1
    assert attrs["source"] == "environment"
    assert attrs["nodelay"] == "True"
    ((_, bound),) = points["sockwise.policy_dead_peer_bound_seconds"]
    assert bound == 90


def test_otel_missing_extra_names_it() -> None:
    """Without opentelemetry-api, instrument() says which extra to install."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from sockwise.metrics.opentelemetry import instrument\n"
        "try:\n    instrument()\n"
        "except ModuleNotFoundError as e:\n    print(e.name, '|', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("opentelemetry |")
    assert "pip install 'sockwise[opentelemetry]'" in out.stdout
