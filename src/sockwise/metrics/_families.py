"""The metric families both exporters publish, computed once per collection.

Theory of operation: :func:`gather` reads a :class:`~sockwise.metrics._snapshot.Snapshot` of the
process's sockets, the registered pools and the policy in force, and turns them into neutral
:class:`Family` objects (name, type, help, samples with labels). The Prometheus collector and the
OpenTelemetry callbacks only translate those; the numbers are the same in both.

Churn: Linux keeps a closed connection in TIME_WAIT for exactly 60 s (``TCP_TIMEWAIT_LEN``), so
the number of TIME_WAIT sockets divided by 60 is the rate of connections closed (by this side)
per second over the last minute, for the whole network namespace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final, Literal

from sockwise._log import log_once
from sockwise.metrics._registry import pool_stats
from sockwise.metrics._snapshot import AgeTracker, Snapshot, take_snapshot
from sockwise.policy import Policy

TIME_WAIT_SECONDS: Final = 60.0
PREFIX: Final = "sockwise_"


@dataclass
class Family:
    """One metric: its name (without the ``sockwise_`` prefix), type, help and samples."""

    name: str
    kind: Literal["gauge", "counter", "info"]
    doc: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)


def policy_in_force() -> tuple[Policy | None, str]:
    """The policy :func:`sockwise.harden` applies, else the one the environment describes."""
    try:
        from sockwise.harden import current_policy

        hardened = current_policy()
    except ImportError:  # Defensive: a partial installation
        hardened = None
    if hardened is not None:
        return hardened, "harden"
    try:
        return Policy.from_env(), "environment"
    except (TypeError, ValueError) as exc:
        log_once("metrics-policy-env", logging.WARNING, "sockwise metrics: %s", exc)
        return None, "invalid"


def _socket_families(snap: Snapshot) -> list[Family]:
    states = Family("tcp_sockets", "gauge", "TCP sockets this process holds, by state.", ("state",))
    states.samples = [((state,), float(n)) for state, n in snap.counts.items()]
    for state in ("ESTABLISHED", "CLOSE_WAIT", "LISTEN"):
        if state not in snap.counts:
            states.samples.append(((state,), 0.0))
    oldest = max((c.age or 0.0 for c in snap.close_wait), default=0.0)
    tw = float(sum(snap.time_wait.values()))
    out = [
        states,
        Family(
            "close_wait_sockets",
            "gauge",
            "Sockets whose peer closed while this process keeps them open (a leak if they stay).",
            samples=[((), float(len(snap.close_wait)))],
        ),
        Family(
            "close_wait_oldest_seconds",
            "gauge",
            "Age of the oldest CLOSE_WAIT socket, seen from the first scrape that found it.",
            unit="seconds",
            samples=[((), oldest)],
        ),
        Family(
            "time_wait_sockets",
            "gauge",
            "TIME_WAIT sockets in this network namespace (closed connections held 60 s).",
            samples=[((), tw)],
        ),
        Family(
            "connection_churn_per_second",
            "gauge",
            "Connections closed per second over the last minute (TIME_WAIT sockets / 60 s).",
            samples=[((), tw / TIME_WAIT_SECONDS)],
        ),
    ]
    if snap.port_range is not None and snap.ports_in_use is not None:
        lo, hi = snap.port_range
        size = float(hi - lo + 1)
        out += [
            Family(
                "ephemeral_port_range_size",
                "gauge",
                "Ports in net.ipv4.ip_local_port_range.",
                samples=[((), size)],
            ),
            Family(
                "ephemeral_ports_in_use",
                "gauge",
                "Ephemeral ports held by TCP sockets of this network namespace.",
                samples=[((), float(snap.ports_in_use))],
            ),
            Family(
                "ephemeral_port_use_ratio",
                "gauge",
                "Share of the ephemeral port range in use (0..1).",
                samples=[((), snap.ports_in_use / size if size > 0 else 0.0)],
            ),
        ]
    queue = Family(
        "listen_queue_length",
        "gauge",
        "Connections waiting in a listener's accept queue.",
        ("local",),
    )
    backlog = Family(
        "listen_backlog", "gauge", "A listener's accept queue size (its backlog).", ("local",)
    )
    for x in snap.listeners:
        queue.samples.append(((x.local,), float(x.queued)))
        if x.backlog is not None:
            backlog.samples.append(((x.local,), float(x.backlog)))
    return [*out, queue, backlog]


def _pool_families() -> list[Family]:
    fam = Family(
        "pool_stat",
        "gauge",
        "Statistics of registered sockwise pools (counters since creation, or since pop_stats).",
        ("pool", "kind", "stat"),
    )
    for name, (kind, stats) in sorted(pool_stats().items()):
        fam.samples.extend(((name, kind, key), value) for key, value in sorted(stats.items()))
    return [fam]


def _guard_families() -> list[Family]:
    from sockwise.guard import event_counts

    fam = Family(
        "guard_events",
        "counter",
        "Findings the guard reported since the process started, by kind (close_wait, "
        "port_churn, accept_queue, summary; stalls: awaiting_reply, retransmitting, "
        "zero_window, unread).",
        ("kind",),
    )
    fam.samples = [((kind,), float(n)) for kind, n in event_counts().items()]
    return [fam]


def _policy_families() -> list[Family]:
    policy, source = policy_in_force()
    if policy is None:
        return []
    info = Family(
        "policy",
        "info",
        "The socket policy in force (source: harden or environment).",
        ("source", *Policy.FIELDS),
    )
    values = tuple(
        "none" if getattr(policy, f) is None else str(getattr(policy, f)) for f in Policy.FIELDS
    )
    info.samples = [((source, *values), 1.0)]
    out = [info]
    if policy.dead_peer_bound is not None:
        out.append(
            Family(
                "policy_dead_peer_bound_seconds",
                "gauge",
                "Seconds within which the policy declares a silent peer dead.",
                unit="seconds",
                samples=[((), policy.dead_peer_bound)],
            )
        )
    return out


def gather(pid: int | None = None, ages: AgeTracker | None = None) -> list[Family]:
    """Every family for *pid* (default: this process).

    The socket families are left out, with a one-time warning, when the sockets cannot be read.
    """
    families: list[Family] = []
    try:
        families += _socket_families(take_snapshot(pid, ages=ages))
    except OSError as exc:
        log_once(f"metrics-read:{type(exc).__name__}", logging.WARNING, "sockwise metrics: %s", exc)
    families += _pool_families()
    families += _guard_families()
    families += _policy_families()
    return families
