"""Ask a socket's pool whether the socket is idle in it (so a server-closed member is no leak).

Theory of operation: when a library opens a connection for a pool, the pool's own frame is on the
stack; :mod:`._origin` keeps weak references to that pool and connection object (the *holder*).
When the socket later sits in CLOSE_WAIT, the detector asks here, once per suspicious socket and
without the garbage collector, whether the pool holds the connection idle (the server closed an
idle keep-alive connection: the pool discards it at the next checkout) or whether it is checked
out (the application holds it: a leak). Each library is asked through the least private surface
it offers:

* urllib3 (and requests): the pool's ``pool`` queue of idle connections (``None`` once the pool
  is closed: then nothing is idle in it);
* httpcore (httpx): the connection's public ``is_idle()``;
* psycopg_pool: the pool's deque of idle connections (``_pool``; psycopg_pool 3.2-3.3);
* redis-py: the pool's list of available connections (``_available_connections``).

Anything unexpected answers "unknown", and the socket is judged as if no pool were known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["idle", "in_use", "unknown"]


@dataclass(frozen=True, slots=True)
class PoolVerdict:
    """Whether a socket is idle in its pool, and how to name that pool in a message.

    Attributes:
        state: ``"idle"``, ``"in_use"`` (checked out, or its pool is closed) or ``"unknown"``.
        lib: The library (``"urllib3"``, ``"httpcore"``, ``"psycopg_pool"``, ``"redis"``...).
        pool: A description of the pool for messages (``""`` when not known).
        key: Identifies the pool for "once per pool" notices.

    """

    state: Verdict
    lib: str
    pool: str = ""
    key: object = None


def _contains(items: Any, conn: object) -> bool:
    for _ in range(3):  # another thread may mutate the pool's container while we copy it
        try:
            return any(item is conn for item in list(items))
        except RuntimeError:
            continue
    raise RuntimeError("the pool kept changing")  # Defensive: judged "unknown" by the caller


def _urllib3(pool: Any, conn: Any) -> PoolVerdict:
    queue = getattr(pool, "pool", None)
    desc = f"urllib3 pool for {getattr(pool, 'host', '?')}:{getattr(pool, 'port', '?')}"
    if queue is None:
        return PoolVerdict("in_use", "urllib3", desc + " (closed)", id(pool))
    idle = _contains(getattr(queue, "queue", ()), conn)
    return PoolVerdict("idle" if idle else "in_use", "urllib3", desc, id(pool))


def _httpcore(pool: Any, conn: Any) -> PoolVerdict:
    origin = getattr(conn, "_origin", None)
    desc = f"httpx/httpcore pool for {origin}" if origin is not None else "httpx/httpcore pool"
    key = id(pool) if pool is not None else ("httpcore", str(origin))
    idle = conn.is_idle()
    return PoolVerdict("idle" if idle else "in_use", "httpcore", desc, key)


def _psycopg_pool(pool: Any, conn: Any) -> PoolVerdict:
    desc = f"psycopg_pool {type(pool).__name__} {getattr(pool, 'name', '')!r}"
    idle = _contains(getattr(pool, "_pool", ()), conn)
    return PoolVerdict("idle" if idle else "in_use", "psycopg_pool", desc, id(pool))


def _redis(pool: Any, conn: Any) -> PoolVerdict:
    desc = f"redis-py pool {pool!r}"[:120]
    idle = _contains(getattr(pool, "_available_connections", ()), conn)
    return PoolVerdict("idle" if idle else "in_use", "redis", desc, id(pool))


def judge(holder: dict[str, Any] | None) -> PoolVerdict | None:
    """Ask the holder's pool about its connection; ``None`` when no pool was recorded."""
    if not holder:
        return None
    lib = str(holder.get("lib", ""))
    pool_ref = holder.get("pool")
    conn_ref = holder.get("conn")
    pool = pool_ref() if pool_ref is not None else None
    conn = conn_ref() if conn_ref is not None else None
    try:
        if lib == "urllib3" and pool is not None and conn is not None:
            return _urllib3(pool, conn)
        if lib == "httpcore" and conn is not None:
            return _httpcore(pool, conn)
        if lib == "psycopg_pool" and pool is not None and conn is not None:
            return _psycopg_pool(pool, conn)
        if lib == "redis" and pool is not None and conn is not None:
            return _redis(pool, conn)
    except Exception:  # Defensive: a library changed shape; judge the socket without its pool
        return PoolVerdict("unknown", lib)
    if lib in ("urllib3", "psycopg_pool", "redis") and pool_ref is not None and pool is None:
        return PoolVerdict("in_use", lib, f"{lib} pool (since collected)")
    return PoolVerdict("unknown", lib) if lib else None
