"""Fleet view: sockwise's socket and pool metrics for Prometheus and OpenTelemetry.

* :class:`sockwise.metrics.prometheus.SockwiseCollector` (``pip install sockwise[prometheus]``)
* :func:`sockwise.metrics.opentelemetry.instrument` (``pip install sockwise[opentelemetry]``)
* :func:`register_pool` / :func:`unregister_pool`: publish a pool's statistics.

Importing this package needs neither library; each exporter module names its extra when it is
missing.
"""

from sockwise.metrics._registry import pool_stats, register_pool, unregister_pool

__all__ = ["pool_stats", "register_pool", "unregister_pool"]
