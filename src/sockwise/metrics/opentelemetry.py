"""OpenTelemetry metrics for sockwise: :func:`instrument` (needs ``opentelemetry-api``).

::

    from sockwise.metrics.opentelemetry import instrument

    instrument()  # uses the global MeterProvider; or instrument(meter_provider=provider)

Registers observable gauges on a meter named ``sockwise``; each collection reads the process's
TCP sockets once (the instruments share the reading), the statistics of pools registered with
:func:`sockwise.metrics.register_pool`, and the policy in force. Instrument names are the
Prometheus names with dots: ``sockwise.tcp_sockets`` (attribute ``state``),
``sockwise.close_wait_sockets``, ``sockwise.connection_churn_per_second``,
``sockwise.listen_queue_length`` (attribute ``local``), ``sockwise.pool_stat`` (attributes
``pool``, ``kind``, ``stat``), ``sockwise.policy`` (value 1, the policy as attributes), ...
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sockwise._version import __version__
from sockwise.metrics._families import Family, gather
from sockwise.metrics._snapshot import AgeTracker

__all__ = ["Instrumentation", "instrument"]

#: The metric families, in the order their instruments are created.
FAMILY_NAMES: Final = (
    "tcp_sockets",
    "close_wait_sockets",
    "close_wait_oldest_seconds",
    "time_wait_sockets",
    "connection_churn_per_second",
    "ephemeral_port_range_size",
    "ephemeral_ports_in_use",
    "ephemeral_port_use_ratio",
    "listen_queue_length",
    "listen_backlog",
    "pool_stat",
    "guard_events",
    "policy",
    "policy_dead_peer_bound_seconds",
)


def _api() -> Any:
    try:
        from opentelemetry import metrics
    except ImportError as exc:
        raise ModuleNotFoundError(
            "sockwise.metrics.opentelemetry needs opentelemetry-api: "
            "pip install 'sockwise[opentelemetry]'",
            name="opentelemetry",
        ) from exc
    return metrics


@dataclass
class Instrumentation:
    """What :func:`instrument` registered: the meter and its observable instruments."""

    meter: Any
    instruments: list[Any] = field(default_factory=list)
    pid: int | None = None
    _ages: AgeTracker = field(default_factory=AgeTracker, repr=False)
    _cache: tuple[float, dict[str, Family]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def families(self, max_age: float = 0.5) -> dict[str, Family]:
        """The families of one reading, shared by the instruments of one collection."""
        with self._lock:
            now = time.monotonic()
            if self._cache is None or now - self._cache[0] > max_age:
                self._cache = (now, {f.name: f for f in gather(self.pid, self._ages)})
            return self._cache[1]

    def _observe(self, name: str) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        fam = self.families().get(name)
        if fam is None:
            return []
        return [
            Observation(value, dict(zip(fam.labels, labels, strict=True)))
            for labels, value in fam.samples
        ]


def instrument(meter_provider: Any = None, *, pid: int | None = None) -> Instrumentation:
    """Register sockwise's observable gauges with OpenTelemetry.

    Args:
        meter_provider: The ``MeterProvider`` to use; the global one when ``None``.
        pid: The process to describe; ``None`` (default) for the calling process.

    Raises:
        ModuleNotFoundError: ``opentelemetry-api`` is not installed (the message names the
            extra to install).

    .. versionadded:: 0.1.0

    """
    metrics = _api()
    meter = metrics.get_meter("sockwise", __version__, meter_provider=meter_provider)
    inst = Instrumentation(meter=meter, pid=pid)
    docs = {f.name: f for f in gather(pid)}  # help texts and units, from a first reading
    for name in FAMILY_NAMES:
        fam = docs.get(name)

        def callback(options: Any, name: str = name) -> Iterable[Any]:
            return inst._observe(name)

        create = (
            meter.create_observable_counter
            if fam is not None and fam.kind == "counter"
            else meter.create_observable_gauge
        )
        inst.instruments.append(
            create(
                f"sockwise.{name}",
                callbacks=[callback],
                unit="s" if name.endswith("_seconds") else "1",
                description=fam.doc if fam is not None else name.replace("_", " "),
            )
        )
    return inst
