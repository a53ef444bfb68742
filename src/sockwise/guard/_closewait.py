"""The CLOSE_WAIT detector: sockets whose peer closed while this process keeps them open.

Per socket, only those currently in CLOSE_WAIT (or that left it for CLOSE by a reset while the
descriptor stays open) are remembered, with the time they were first seen; a socket of this
process older than ``close_wait_after`` is reported once, with what to do about it by the library
that opened it. Idle members of a pool are not leaks (the pool checks them before handing them
out): they are said once per pool, at INFO. A peer on this machine that only half-closed
(``shutdown(SHUT_WR)``) still waits for our answer: no leak either.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from sockwise._log import logger
from sockwise._net.addr import Address, format_address
from sockwise._net.records import SocketRecord
from sockwise.guard import _origin, _pools
from sockwise.guard._claims import claim, claimed, forget_claims
from sockwise.guard._detect import Thresholds, Tick
from sockwise.guard._events import CloseWaitLeakWarning, GuardEvent, redact
from sockwise.guard._explain import socket_event, where
from sockwise.guard._origin import Origin
from sockwise.guard._owners import Owners
from sockwise.guard._pools import PoolVerdict

_MAX_RESET: Final = 4096

#: What to do about a leak, by the library the socket was opened through (``Origin.via``).
_ADVICE: Final = {
    "requests": (
        "Close the response when done with it (response.close(), or `with requests.get(..., "
        "stream=True) as response:`), or read it to the end: a streamed response keeps its "
        "connection until then."
    ),
    "urllib3": (
        "Release the response (response.release_conn() or response.close(), or read it to the "
        "end); with preload_content=False the connection stays checked out until then."
    ),
    "http": (
        "Close the http.client connection when done (conn.close()), or reconnect per use: "
        "servers close idle keep-alive connections, and a cached connection sits half-dead."
    ),
    "httpx": "Close the response or the client (use `with client.stream(...)` / `with Client()`).",
    "httpcore": "Close the response or the client (use `with client.stream(...)`).",
    "psycopg": "Close the connection (conn.close(), or `with psycopg.connect(...) as conn:`).",
    "psycopg_pool": (
        "Return the connection to its pool (pool.putconn(conn)), or use `with pool.connection() "
        "as conn:`."
    ),
    "redis": "Close the client (client.close()) or use a shared connection pool.",
    "aiohttp": "Close the response and the session (`async with session.get(...) as resp:`).",
    "asyncpg": "Close the connection or release it to its pool (`async with pool.acquire()`).",
}
_RAW_ADVICE: Final = (
    "Close the socket when a read returns b'' (use a with-block), or let a pool that drops "
    "peer-closed connections own it."
)


def _advice(origin: Origin | None, verdict: PoolVerdict | None) -> str:
    if origin is not None and origin.kind == "checkout":
        return _ADVICE["psycopg_pool"]
    if verdict is not None and verdict.lib == "psycopg_pool":
        return _ADVICE["psycopg_pool"]
    via = origin.via if origin is not None else ""
    if via in _ADVICE:
        return _ADVICE[via]
    if verdict is not None and verdict.lib in _ADVICE:
        return _ADVICE[verdict.lib]
    if origin is not None and origin.kind in ("accept", "served"):
        return (
            "Close the accepted connection once the client has closed its side (a read "
            "returned b''): the handler never did."
        )
    return _RAW_ADVICE


def _leak_event(
    rec: SocketRecord, age: float, origin: Origin | None, verdict: PoolVerdict | None
) -> GuardEvent:
    if rec.state == "CLOSE":
        what = (
            f"CLOSE_WAIT leak: socket fd {rec.fd} {format_address(rec.local)} -> "
            f"{format_address(rec.remote)}: the peer closed the connection {age:.0f} s ago and "
            "has since reset it, but this process still holds the descriptor"
        )
    else:
        what = (
            f"CLOSE_WAIT leak: socket fd {rec.fd} {format_address(rec.local)} -> "
            f"{format_address(rec.remote)} has been in CLOSE_WAIT for {age:.0f} s: the peer "
            "closed the connection and this process never closed its end"
        )
    held = ""
    if verdict is not None and verdict.state == "in_use" and verdict.pool:
        held = f"; it is checked out of the {verdict.pool}, not idle in it"
    msg = f"{what} ({where(origin)}{held}). {_advice(origin, verdict)}"
    details: dict[str, object] = {"age": age, "inode": rec.inode, "state": rec.state}
    return socket_event("close_wait", CloseWaitLeakWarning, msg, rec, origin, details)


class CloseWaitDetector:
    """Per-guard state of the CLOSE_WAIT detector.

    Args:
        th: The guard's thresholds.
        owners: Which sockets are this process's (shared with the accept-queue detector).

    """

    def __init__(self, th: Thresholds, owners: Owners) -> None:
        self.th = th
        self.owners = owners
        self.cw_first: dict[int, float] = {}
        self.cw_rec: dict[int, SocketRecord] = {}  # our CLOSE_WAIT sockets, last seen
        self.reset: dict[int, SocketRecord] = {}  # ours that left CLOSE_WAIT, fd still open
        #: When the next socket reaches ``close_wait_after`` (the guard wakes then).
        self.due: float | None = None
        #: This process's CLOSE_WAIT sockets of the last sample, with their ages.
        self.found: list[tuple[SocketRecord, float]] = []

    def detect(self, tick: Tick) -> list[GuardEvent]:
        """The leak events of this tick's sample (and :attr:`found` updated)."""
        self.found, events = self.close_wait(
            tick.sample.close_wait, tick.present, tick.now, tick.half_open
        )
        return events

    def sizes(self) -> dict[str, int]:
        """Entries in the detector's tables."""
        return {"close_wait_ages": len(self.cw_first)}

    def close_wait(
        self,
        rows: list[SocketRecord],
        present_all: set[int],
        now: float,
        half_open: set[tuple[Address, Address]] | None = None,
    ) -> tuple[list[tuple[SocketRecord, float]], list[GuardEvent]]:
        """Age the CLOSE_WAIT rows; return this process's ones and the leak events.

        Args:
            rows: This uid's CLOSE_WAIT rows.
            present_all: Inodes of every row of the sample (to keep per-socket state).
            now: The sample's time.
            half_open: ``(local, remote)`` of our CLOSE_WAIT sockets whose peer, on this
                machine, still holds its socket open: it half-closed (``shutdown(SHUT_WR)``)
                and waits for our answer, so our CLOSE_WAIT is no leak.

        """
        th = self.th
        present = {r.inode for r in rows}
        rows = rows + self._reset_rows(present)
        present |= self.reset.keys()
        self.cw_first = {i: t for i, t in self.cw_first.items() if i in present}
        forget_claims("cw", set(present))
        due: float | None = None
        ours: list[tuple[SocketRecord, float]] = []
        leaks: list[tuple[SocketRecord, float, Origin | None]] = []
        unknown: list[int] = []
        for rec in rows:
            self.cw_first.setdefault(rec.inode, now)
            if self.owners.owner(rec.inode) is None:
                unknown.append(rec.inode)
        self.owners.resolve(unknown, present_all, now)
        idle_pooled: dict[object, tuple[PoolVerdict, SocketRecord]] = {}
        for rec in rows:
            owner = self.owners.owner(rec.inode)
            if not isinstance(owner, tuple):
                continue
            fd, origin = owner
            age = now - self.cw_first[rec.inode]
            rec = replace(rec, fd=fd)
            ours.append((rec, age))
            if rec.state == "CLOSE_WAIT":
                self.cw_rec[rec.inode] = rec
            if _origin.is_pooled(rec.inode) or claimed(("cw", rec.inode)):
                continue
            if half_open and (rec.local, rec.remote) in half_open:
                self.cw_first[rec.inode] = now  # the peer still waits: age from its full close
                continue
            if age < th.close_wait_after:
                limit = self.cw_first[rec.inode] + th.close_wait_after
                due = limit if due is None else min(due, limit)
                continue
            verdict = _pools.judge(_origin.holder(rec.inode))
            if verdict is not None and verdict.state == "idle":
                idle_pooled.setdefault(verdict.key, (verdict, rec))
                continue
            leaks.append((rec, age, origin))
        self.cw_rec = {i: r for i, r in self.cw_rec.items() if i in present}
        self.due = due
        self._pool_notices(idle_pooled, now)
        return ours, self._leak_events(leaks, now)

    def _reset_rows(self, present: set[int]) -> list[SocketRecord]:
        """Our sockets seen in CLOSE_WAIT that left it (reset) while we hold the descriptor.

        A peer that closed forgets the connection after ``tcp_fin_timeout``; the next segment we
        send (a keepalive probe) meets a RST and our socket leaves CLOSE_WAIT for CLOSE, where
        no dump shows it -- but the descriptor is still open: the leak goes on.
        """
        for ino, rec in self.cw_rec.items():
            if ino not in present and ino not in self.reset:
                self.reset[ino] = replace(rec, state="CLOSE")
        alive = {}
        for ino, rec in self.reset.items():
            if ino not in present and rec.fd is not None and _origin._alive(rec.fd, ino):
                alive[ino] = rec
        self.reset = dict(list(alive.items())[-_MAX_RESET:])
        return list(self.reset.values())

    def _pool_notices(
        self, idle: dict[object, tuple[PoolVerdict, SocketRecord]], now: float
    ) -> None:
        """Say once per pool that the server closed idle members (no warning: not a leak)."""
        for key, (verdict, rec) in idle.items():
            if claim(("pool", key), now, None):
                logger.info(
                    "sockwise guard: the server %s closed idle connections held by the %s "
                    "(e.g. fd %s); the pool discards them when it next hands one out. Not a "
                    "leak; nothing to do (to close them sooner, close pools no longer used; "
                    "a pool whose idle timeout is shorter than the server's keep-alive, as "
                    "sockwise's pools, closes them first).",
                    format_address(rec.remote),
                    verdict.pool or verdict.lib,
                    rec.fd,
                )

    def _leak_events(
        self, leaks: list[tuple[SocketRecord, float, Origin | None]], now: float
    ) -> list[GuardEvent]:
        events: list[GuardEvent] = []
        extra: list[tuple[SocketRecord, float, Origin | None]] = []
        for rec, age, origin in leaks:
            if not claim(("cw", rec.inode), now, None):
                continue
            if len(events) >= self.th.max_reports:
                extra.append((rec, age, origin))
                continue
            verdict = _pools.judge(_origin.holder(rec.inode))
            events.append(_leak_event(rec, age, origin, verdict))
        if extra and claim(("summary", "cw"), now, self.th.report_every):
            sites: dict[str, int] = {}
            for _, _, origin in extra:
                key = str(origin) if origin else "origin not recorded"
                sites[key] = sites.get(key, 0) + 1
            top = ", ".join(
                f"{k} (x{n})" for k, n in sorted(sites.items(), key=lambda x: -x[1])[:5]
            )
            msg = f"CLOSE_WAIT leak: {len(extra)} more sockets in CLOSE_WAIT, opened at: {top}"
            events.append(
                GuardEvent(
                    kind="summary",
                    category=CloseWaitLeakWarning,
                    message=redact(msg),
                    origin=next((o for _, _, o in extra if o is not None), None),
                    details={"count": len(extra), "sites": sites},
                )
            )
        return events
