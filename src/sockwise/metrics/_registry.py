"""Pools whose statistics the metrics exporters publish: :func:`register_pool`.

A pool is anything with ``get_stats()`` (psycopg_pool style, a mapping of numbers) or
``stats()``/``stats`` (sockwise's urllib3 pools: a ``PoolStats`` with ``as_dict()``). Pools are
held by weak reference where possible, so registering one never keeps it alive.

sockwise's own pools need no registration: the live pools of :mod:`sockwise.urllib3` (labelled
``scheme://host:port``) and :mod:`sockwise.psycopg` (labelled with the pool's ``name``) are
published automatically, when those modules are in use.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

from sockwise._forksafe import renew_after_fork

_lock = threading.Lock()
_pools: dict[str, Callable[[], object | None]] = {}

renew_after_fork(globals(), "_lock", threading.Lock)


def _ref(pool: object) -> Callable[[], object | None]:
    try:
        return weakref.ref(pool)
    except TypeError:  # an object without __weakref__: hold it strongly
        return lambda: pool


def register_pool(pool: object, name: str | None = None) -> str:
    """Publish *pool*'s statistics under *name* (default: its ``name`` attribute) and return it.

    Args:
        pool: An object with ``get_stats()`` or ``stats``.
        name: The ``pool`` label in the metrics; must be unique among registered pools.

    Raises:
        TypeError: *pool* has neither ``get_stats`` nor ``stats``.
        ValueError: Another live pool is registered under *name*.

    """
    if not (hasattr(pool, "get_stats") or hasattr(pool, "stats")):
        raise TypeError(
            f"register_pool(pool={pool!r}): expected an object with get_stats() or stats"
        )
    label = name if name is not None else str(getattr(pool, "name", "") or f"pool-{id(pool):x}")
    with _lock:
        existing = _pools.get(label)
        if existing is not None and existing() not in (None, pool):
            raise ValueError(f"register_pool(name={label!r}): a different pool has this name")
        _pools[label] = _ref(pool)
    return label


def unregister_pool(name: str) -> None:
    """Stop publishing the pool registered under *name* (no error if there is none)."""
    with _lock:
        _pools.pop(name, None)


def _as_numbers(raw: object) -> dict[str, float]:
    if callable(raw):
        raw = raw()
    if hasattr(raw, "as_dict"):
        raw = raw.as_dict()
    elif is_dataclass(raw) and not isinstance(raw, type):
        raw = asdict(raw)
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(k): float(v)
        for k, v in raw.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _discovered() -> list[tuple[str, object]]:
    """The live pools of sockwise's integrations already imported (never imports one)."""
    found: list[tuple[str, object]] = []
    http = sys.modules.get("sockwise.urllib3")
    if http is not None:
        for pool in http.live_pools():
            found.append((f"{pool.scheme}://{pool.host}:{pool.port}", pool))
    pg = sys.modules.get("sockwise.psycopg")
    if pg is not None:
        for pool in pg.live_pools():
            found.append((str(pool.name), pool))
    return found


def pool_stats() -> dict[str, tuple[str, dict[str, float]]]:
    """``{name: (kind, {stat: value})}`` for every live registered pool; dead ones are dropped.

    A pool whose statistics raise is skipped (an exporter never fails because of one pool).
    """
    with _lock:
        items = list(_pools.items())
    pools: list[tuple[str, object]] = []
    for name, ref in items:
        pool = ref()
        if pool is None:
            unregister_pool(name)
            continue
        pools.append((name, pool))
    registered = {id(pool) for _, pool in pools}
    for _, pool in pools:  # a registered manager already publishes its pools (summed)
        members = getattr(pool, "live_pools", None)
        if callable(members):
            registered.update(id(member) for member in members())
    taken = {name for name, _ in pools}
    for name, pool in _discovered():
        if id(pool) in registered:
            continue
        label = name if name not in taken else f"{name}#{id(pool):x}"
        taken.add(label)
        pools.append((label, pool))
    out: dict[str, tuple[str, dict[str, float]]] = {}
    for name, pool in pools:
        getter: Any = getattr(pool, "get_stats", None) or getattr(pool, "stats", None)
        try:
            stats = _as_numbers(getter)
        except Exception:  # Defensive: a closed or broken pool
            continue
        kind = type(pool).__module__.split(".")[0] + "." + type(pool).__qualname__
        out[name] = (kind, stats)
    return out
