"""Pin the benchmark's client and its servers to separate CPUs (Linux), for repeatable runs.

On the 2-vCPU machines the benchmarks run on, a process migrating between CPUs shifts a whole
batch by ~15 % (the vCPUs differ), and a server sharing the client's CPU takes its time from the
client's measurement. The client runs on the highest CPU this process may use, the servers on
the others; with one CPU, or where affinity cannot be set, nothing is pinned and the result
says so (``None``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def _allowed() -> set[int] | None:
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:  # Defensive: not Linux
        return None
    try:
        return set(getter(0))
    except OSError:  # Defensive
        return None


def client_cpu() -> int | None:
    """The CPU the client is pinned to: the highest allowed one (``None``: cannot pin)."""
    allowed = _allowed()
    return max(allowed) if allowed else None


def server_cpus() -> set[int] | None:
    """The CPUs servers are pinned to: every allowed one but the client's (``None``: only one)."""
    allowed = _allowed()
    if not allowed or len(allowed) < 2:
        return None
    return allowed - {max(allowed)}


def pin_server(pid: int) -> set[int] | None:
    """Pin process *pid* (a server the benchmark started) off the client's CPU; return where."""
    cpus = server_cpus()
    setter = getattr(os, "sched_setaffinity", None)
    if cpus is None or setter is None:
        return None
    try:
        setter(pid, cpus)
    except OSError:  # Defensive: exited already, or a restricted container
        return None
    return cpus


@contextlib.contextmanager
def pinned_client() -> Iterator[int | None]:
    """Run this thread (and threads it starts) on :func:`client_cpu`; yield it, or ``None``."""
    allowed = _allowed()
    setter = getattr(os, "sched_setaffinity", None)
    cpu = client_cpu()
    if allowed is None or cpu is None or setter is None:
        yield None
        return
    try:
        setter(0, {cpu})
    except OSError:  # Defensive: a restricted container
        yield None
        return
    try:
        yield cpu
    finally:
        with contextlib.suppress(OSError):
            setter(0, allowed)
