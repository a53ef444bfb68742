"""Fleet view: sockwise's socket and pool metrics for Prometheus and OpenTelemetry.

* :class:`sockwise.metrics.prometheus.SockwiseCollector` (``pip install sockwise[prometheus]``)
* :func:`sockwise.metrics.opentelemetry.instrument` (``pip install sockwise[opentelemetry]``)
* :func:`register_pool` / :func:`unregister_pool`: publish a pool's statistics.
* :func:`take_snapshot`: one reading of a process's TCP sockets (:class:`Snapshot`) -- what
  both exporters and ``sockwise inspect`` publish; an :class:`AgeTracker` kept across readings
  gives CLOSE_WAIT sockets an age.

Importing this package needs neither library; each exporter module names its extra when it is
missing.
"""

from sockwise.metrics._registry import pool_stats, register_pool, unregister_pool
from sockwise.metrics._snapshot import AgeTracker, CloseWait, Listener, Snapshot, take_snapshot

__all__ = [
    "AgeTracker",
    "CloseWait",
    "Listener",
    "Snapshot",
    "pool_stats",
    "register_pool",
    "take_snapshot",
    "unregister_pool",
]
