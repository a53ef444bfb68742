"""Traffic with idle gaps: what ``idle_timeout`` and the idle ping cost, sockwise vs bare.

Back-to-back benchmarks hide exactly what sockwise changes for sparse traffic:

* sockwise's urllib3 pool closes a connection idle longer than ``idle_timeout`` (1.5 s by
  default) instead of reusing it, so the first request after a longer gap pays a new TCP
  handshake; bare urllib3 reuses the old connection (and risks the server's keep-alive race);
* sockwise's psycopg pool sends a round trip (a ping) before handing out a connection idle for
  more than 0.5 s; psycopg_pool without ``check`` hands it out as it is.

One request (``GET /`` on a keep-alive HTTP or HTTPS server in a subprocess, certificates from
trustme: over TLS a renewal is a full TLS handshake) or one query (``SELECT 1``
on a pooled connection) is timed after each idle gap of 0.2 s, 1 s, 2 s and 10 s. One sleep
serves every client: after it, each client makes its one timed call, so all of them were idle
for the gap (plus the few milliseconds the others took). The order changes every round and is
balanced (a Williams design,
:func:`~sockwise._bench.runner.balanced_orders`): each client is first after the sleep equally
often *and* follows each other client equally often. The call after a sleep is slow mostly
because caches and branch predictors are cold -- a call that follows the same library's other
client finds that library's code warm and is ~100-200 us faster. A plain rotation had every bare
client follow its sockwise twin and made sockwise look ~+200 us slower after any gap.
The pools have one connection each, so the call after the gap always meets the idle one. A
``0 s (back-to-back)`` row is the steady state for reference. Ratios are sockwise over the bare
library at the same gap; ``renewed`` counts the timed calls that opened a new connection (HTTP)
or paid a ping (PostgreSQL), from the pools' own counters.

``--quick`` uses fewer rounds and skips the 10 s gap (the table says so). PostgreSQL rows need
the server binaries or ``SOCKWISE_TEST_DSN``; without them only the HTTP rows are measured.
"""

from __future__ import annotations

import os
import ssl
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, Final

from sockwise._bench.cpus import pin_server, pinned_client
from sockwise._bench.http import serving
from sockwise._bench.runner import balanced_orders

#: Gaps in seconds and rounds at each (full run, quick run; 0 rounds: skipped). A full run's
#: rounds are multiples of the six clients, so the balanced orders (``balanced_orders``) come round
#: whole.
GAPS: Final = (0.2, 1.0, 2.0, 10.0)
ROUNDS_FULL: Final = {0.2: 24, 1.0: 12, 2.0: 12, 10.0: 6}
ROUNDS_QUICK: Final = {0.2: 6, 1.0: 3, 2.0: 3, 10.0: 0}
BACK_TO_BACK: Final = 200  # calls per client for the 0 s reference row
CHUNK: Final = 10  # back-to-back calls of one client before the next client's turn

#: The sockwise defaults in force while measuring (filled in by the clients' set-up).
_DEFAULTS: dict[str, float | None] = {}


class _Client:
    """One timed operation and a counter of renewals (new connections or pings)."""

    def __init__(self, library: str, client: str, op: Callable[[], None]) -> None:
        self.library = library
        self.client = client
        self.op = op
        self.renewals: Callable[[], int] = lambda: 0

    @property
    def key(self) -> str:
        return f"{self.library} {self.client}"


def _http_clients(port: int, stack: ExitStack, ctx: ssl.SSLContext | None = None) -> list[_Client]:
    """The pools of sockwise and bare urllib3 (one connection each); HTTPS with *ctx*."""
    import urllib3

    import sockwise.urllib3 as swu
    from sockwise.policy import Policy

    library = "HTTP" if ctx is None else "HTTPS"
    kw: dict[str, Any] = {} if ctx is None else {"ssl_context": ctx}
    sw_cls = swu.HTTPConnectionPool if ctx is None else swu.HTTPSConnectionPool
    bare_cls = urllib3.HTTPConnectionPool if ctx is None else urllib3.HTTPSConnectionPool
    sw = sw_cls("127.0.0.1", port, maxsize=1, **kw)
    bare = bare_cls("127.0.0.1", port, maxsize=1, timeout=swu.default_timeout(Policy()), **kw)
    stack.callback(sw.close)
    stack.callback(bare.close)

    def sw_get() -> None:
        sw.request("GET", "/")

    def bare_get() -> None:
        bare.request("GET", "/")

    sw_client = _Client(library, "sockwise", sw_get)
    sw_client.renewals = lambda: int(sw.stats().created)
    bare_client = _Client(library, "urllib3", bare_get)
    bare_client.renewals = lambda: int(bare.num_connections)
    _DEFAULTS["urllib3_idle_timeout_s"] = getattr(sw, "idle_timeout", swu.DEFAULT_IDLE_TIMEOUT)
    return [sw_client, bare_client]


def _pg_clients(stack: ExitStack) -> tuple[list[_Client], str]:
    """The PostgreSQL clients, or none and the reason."""
    try:
        import psycopg_pool

        from sockwise.psycopg import ConnectionPool
        from sockwise.testing import PostgresServer, pg_unavailable_reason
    except ImportError as exc:
        return [], f"PostgreSQL rows skipped: {exc}"
    dsn = os.environ.get("SOCKWISE_TEST_DSN")
    if not dsn:
        reason = pg_unavailable_reason()
        if reason:
            return [], f"PostgreSQL rows skipped: {reason}"
        server = stack.enter_context(PostgresServer.start())
        pid = server.postmaster_pid
        if pid is not None:  # backends are forked from it: off the client's CPU
            pin_server(pid)
        dsn = server.dsn
    sw = ConnectionPool(dsn, min_size=1, max_size=1, open=False, name="bench-gaps-sockwise")
    bare = psycopg_pool.ConnectionPool(
        dsn, min_size=1, max_size=1, open=False, name="bench-gaps-psycopg-pool"
    )
    clients = []
    for library_name, pool in (("sockwise", sw), ("psycopg_pool", bare)):
        stack.enter_context(pool)
        pool.wait(timeout=30)

        def query(pool: Any = pool) -> None:
            with pool.connection() as conn:
                conn.execute("SELECT 1").fetchone()

        clients.append(_Client("PostgreSQL", library_name, query))
    clients[0].renewals = lambda: int(sw.get_stats().get("checkouts_pinged", 0))
    from sockwise.psycopg import ALIVE_BYPASS

    _DEFAULTS["psycopg_ping_after_s"] = getattr(sw, "alive_bypass", ALIVE_BYPASS)
    return clients, ""


def _spread(ns: list[int]) -> dict[str, float]:
    ordered = sorted(ns)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median_us": round(statistics.median(ordered) / 1e3, 1), "p90_us": round(p90 / 1e3, 1)}


def run(quick: bool = False) -> dict[str, Any]:
    """Time one call after each idle gap for every client; return JSON-ready results."""
    rounds = ROUNDS_QUICK if quick else ROUNDS_FULL
    clock = time.perf_counter_ns
    ctx = ssl.create_default_context()
    # {"http": [port], "https": [port]}; the servers run off the client's CPU
    with serving(1, ctx) as ports, ExitStack() as stack, pinned_client():
        port, tls_port = ports["http"][0], ports["https"][0]
        clients = _http_clients(port, stack) + _http_clients(tls_port, stack, ctx)
        pg, pg_note = _pg_clients(stack)
        clients += pg
        for c in clients:  # warm-up: connections, code paths
            for _ in range(20):
                c.op()
        samples: dict[tuple[float, str], list[int]] = {}
        renewed: dict[tuple[float, str], int] = {}
        for c in clients:
            samples[(0.0, c.key)] = []
            renewed[(0.0, c.key)] = 0
        sequence = [[clients[i] for i in row] for row in balanced_orders(len(clients))]
        # Back-to-back, interleaved in chunks (a burst of load hits every client alike);
        # no client waits longer than the others' chunks (milliseconds) between calls.
        for r in range(BACK_TO_BACK // CHUNK):
            for c in sequence[r % len(sequence)]:
                key = (0.0, c.key)
                before = c.renewals()
                for _ in range(CHUNK):
                    t0 = clock()
                    c.op()
                    samples[key].append(clock() - t0)
                renewed[key] += c.renewals() - before
        for gap in GAPS:
            for c in clients:
                samples[(gap, c.key)] = []
                renewed[(gap, c.key)] = 0
                if rounds[gap]:
                    c.op()  # untimed: every client starts the series just used
            for r in range(rounds[gap]):
                time.sleep(gap)
                for c in sequence[r % len(sequence)]:
                    before = c.renewals()
                    t0 = clock()
                    c.op()
                    samples[(gap, c.key)].append(clock() - t0)
                    renewed[(gap, c.key)] += c.renewals() - before
    bare_of = {"HTTP": "urllib3", "HTTPS": "urllib3", "PostgreSQL": "psycopg_pool"}
    rows: list[dict[str, Any]] = []
    for gap in (0.0, *GAPS):
        for c in clients:
            values = samples.get((gap, c.key)) or []
            if not values:
                continue
            spread = _spread(values)
            base_values = samples[(gap, f"{c.library} {bare_of[c.library]}")]
            base = statistics.median(base_values) / 1e3
            rows.append(
                {
                    "case": f"{'back-to-back' if gap == 0 else f'{gap:g} s gap'}, {c.key}",
                    "gap_s": gap,
                    "library": c.library,
                    "client": c.client,
                    **spread,
                    "ratio_to_bare": round(spread["median_us"] / base, 2) if base else None,
                    "added_us": round(spread["median_us"] - base, 1) + 0.0,
                    "renewed": renewed[(gap, c.key)],
                    "calls": len(values),
                }
            )
    skipped_gaps = [g for g in GAPS if not rounds[g]]
    defaults = dict(_DEFAULTS)
    notes = [
        "Latency of the one call made after each idle gap; sockwise pools at their defaults "
        f"(urllib3 idle_timeout {defaults.get('urllib3_idle_timeout_s')} s, psycopg ping after "
        f"{defaults.get('psycopg_ping_after_s')} s idle), the bare libraries with the same "
        "timeout and no check. renewed: timed calls that opened a new connection (HTTP) or "
        "paid a ping (PostgreSQL)."
    ]
    if skipped_gaps:
        notes.append(
            f"Quick run: gaps of {', '.join(f'{g:g} s' for g in skipped_gaps)} skipped; "
            "run `sockwise bench --only gaps` for every gap."
        )
    if pg_note:
        notes.append(pg_note)
    return {
        "benchmark": "gaps",
        "title": "The first call after an idle gap, sockwise vs the bare library",
        "quick": quick,
        "gaps_s": [g for g in GAPS if rounds[g]],
        "skipped_gaps_s": skipped_gaps,
        "rounds": {f"{g:g}": rounds[g] for g in GAPS},
        "defaults": defaults,
        "metric": "median_us",
        "rows": rows,
        "summary": summary(rows),
        "notes": " ".join(notes),
    }


def _gap_label(gap: float) -> str:
    return "0 s" if gap == 0 else f"{gap:g} s"


def summary(rows: list[dict[str, Any]]) -> str:
    """One sentence: the sockwise/bare latency ratio after each gap, per library."""
    parts = []
    for library in ("HTTP", "HTTPS", "PostgreSQL"):
        mine = [r for r in rows if r["library"] == library and r["client"] == "sockwise"]
        if mine:
            ratios = ", ".join(f"{_gap_label(r['gap_s'])} {r['ratio_to_bare']:.2f}x" for r in mine)
            parts.append(f"{library} sockwise/bare after a gap of {ratios}")
    return "; ".join(parts)


def table(result: dict[str, Any]) -> str:
    """The result as a plain-text table."""
    head = (
        f"{'gap':<13} {'client':<24} {'median us':>10} {'p90 us':>9} {'x bare':>7} "
        f"{'added us':>9} {'renewed':>8} {'calls':>6}"
    )
    lines = [head, "-" * len(head)]
    for row in result["rows"]:
        gap = "back-to-back" if row["gap_s"] == 0 else f"{row['gap_s']:g} s"
        ratio = row["ratio_to_bare"]
        lines.append(
            f"{gap:<13} {row['library'] + ' ' + row['client']:<24} {row['median_us']:>10.1f} "
            f"{row['p90_us']:>9.1f} {'' if ratio is None else f'{ratio:.2f}':>7} "
            f"{row['added_us']:>9.1f} {row['renewed']:>8} {row['calls']:>6}"
        )
    for gap in result.get("skipped_gaps_s", []):
        lines.append(f"{gap:g} s        (skipped in a quick run)")
    lines.append(str(result["summary"]))
    return "\n".join(lines)
