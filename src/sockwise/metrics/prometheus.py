"""A Prometheus collector for sockwise: ``SockwiseCollector`` (needs ``prometheus-client``).

Register it once per process::

    from prometheus_client import REGISTRY, start_http_server
    from sockwise.metrics.prometheus import SockwiseCollector

    REGISTRY.register(SockwiseCollector())
    start_http_server(9100)

Each scrape reads the process's TCP sockets (counts by state, CLOSE_WAIT leaks and the age of the
oldest, TIME_WAIT churn, ephemeral port use, accept-queue fill), the statistics of pools
registered with :func:`sockwise.metrics.register_pool`, and the policy in force (an info metric).
All names start with ``sockwise_``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sockwise.metrics._families import PREFIX, Family, gather
from sockwise.metrics._snapshot import AgeTracker

__all__ = ["SockwiseCollector"]


def _client() -> Any:
    try:
        import prometheus_client.core
    except ImportError as exc:
        raise ModuleNotFoundError(
            "sockwise.metrics.prometheus needs prometheus-client: "
            "pip install 'sockwise[prometheus]'",
            name="prometheus_client",
        ) from exc
    return prometheus_client.core


class SockwiseCollector:
    """A ``prometheus_client`` custom collector publishing sockwise's socket and pool metrics.

    Args:
        pid: The process to describe; ``None`` (default) for the calling process.

    Raises:
        ModuleNotFoundError: ``prometheus-client`` is not installed (the message names the
            extra to install).

    .. versionadded:: 0.1.0

    """

    def __init__(self, pid: int | None = None) -> None:
        self._core = _client()
        self.pid = pid
        self._ages = AgeTracker()

    def __repr__(self) -> str:
        return f"<SockwiseCollector pid={self.pid if self.pid is not None else 'self'}>"

    def describe(self) -> list[Any]:
        """Nothing: the metric set depends on what is found, so the registry must not cache it."""
        return []

    def collect(self) -> Iterator[Any]:
        """Read the sockets, pools and policy now and yield the metric families."""
        for fam in gather(self.pid, self._ages):
            yield self._convert(fam)

    def _convert(self, fam: Family) -> Any:
        core = self._core
        name = PREFIX + fam.name
        if fam.kind == "info":
            out = core.InfoMetricFamily(name, fam.doc, labels=fam.labels)
            for values, _ in fam.samples:
                out.add_metric([], dict(zip(fam.labels, values, strict=True)))
            return out
        cls = core.CounterMetricFamily if fam.kind == "counter" else core.GaugeMetricFamily
        out = cls(name, fam.doc, labels=fam.labels, unit=fam.unit)
        for values, value in fam.samples:
            out.add_metric(list(values), value)
        return out
