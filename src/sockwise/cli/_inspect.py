"""``sockwise inspect [PID]``: an ``ss``-like view of one process's TCP sockets.

Established sockets come from the same sock_diag dump with ``struct tcp_info`` the guard's stall
detector reads (``INET_DIAG_INFO``), so each row carries its stall kind; where netlink cannot see
the process (another network namespace, a sandbox, a fake ``--proc-root``), rows come from
``/proc/PID/net/tcp`` and the stall column says ``?``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from sockwise._net.addr import format_address
from sockwise.cli._render import dump_json, seconds, size, table
from sockwise.guard import DEFAULT_STALL_AFTER, established_sockets, stall_state
from sockwise.metrics import AgeTracker, Snapshot, take_snapshot


@dataclass(frozen=True, slots=True)
class Established:
    """One established socket of the inspected process.

    Attributes:
        fd: Its descriptor.
        local: ``ip:port``.
        peer: ``ip:port``.
        recv_q: Bytes received and not read by the process.
        send_q: Bytes not yet acknowledged by the peer (queued or in flight).
        age: Seconds since ``inspect`` first saw it (``--watch``), ``None`` on the first reading.
        stall: ``"awaiting_reply"``, ``"retransmitting"``, ``"zero_window"``, ``"unread"``,
            ``None`` (not stalled), or ``"?"`` (no ``tcp_info`` here).
        stall_seconds: How long the condition has lasted (stalled or on its way).
        unacked: Segments in flight (``None`` without ``tcp_info``).
        retransmits: Retransmissions of the current segment (``None`` without ``tcp_info``).
        snd_wnd: The peer's advertised window (``None`` when unknown).

    """

    fd: int | None
    local: str
    peer: str
    recv_q: int
    send_q: int
    age: float | None
    stall: str | None
    stall_seconds: float | None
    unacked: int | None
    retransmits: int | None
    snd_wnd: int | None


def read_established(
    pid: int | None,
    proc_root: str,
    ages: AgeTracker,
    stall_after: float = DEFAULT_STALL_AFTER,
    listen_ports: frozenset[int] = frozenset(),
) -> list[Established]:
    """The process's established sockets with queues, age and stall kind.

    Raises:
        ProcessLookupError: No process *pid*.
        PermissionError: Its descriptors cannot be read.

    """
    mine = established_sockets(pid, proc_root)
    seen = ages.ages(r.inode for r in mine)
    out = []
    for rec in sorted(mine, key=lambda r: r.fd or 0):
        info = rec.tcp_info
        kind: str | None = "?"
        since: float | None = None
        if info is not None:
            state = stall_state(rec, stall_after, listen_ports)
            kind = None
            if state is not None:
                name, since, limit = state
                kind = name if since >= limit else None
        out.append(
            Established(
                fd=rec.fd,
                local=format_address(rec.local),
                peer=format_address(rec.remote),
                recv_q=rec.rqueue,
                send_q=rec.wqueue,
                age=seen.get(rec.inode) or None,
                stall=kind,
                stall_seconds=None if since is None else round(since, 3),
                unacked=None if info is None else info.unacked,
                retransmits=None if info is None else info.retransmits,
                snd_wnd=None if info is None else info.snd_wnd,
            )
        )
    return out


def summary(snap: Snapshot, established: list[Established]) -> str:
    """The ``ss -s`` style line: sockets by state, queued bytes, stalls."""
    counts = snap.counts
    est = counts.get("ESTABLISHED", 0)
    other = snap.total - est - counts.get("CLOSE_WAIT", 0) - counts.get("LISTEN", 0)
    stalled = sum(1 for e in established if e.stall not in (None, "?"))
    tw = sum(snap.time_wait.values())
    return (
        f"TCP: {snap.total} (estab {est}, close_wait {counts.get('CLOSE_WAIT', 0)}, "
        f"listen {counts.get('LISTEN', 0)}, other {other}), "
        f"Recv-Q {size(sum(e.recv_q for e in established))}, "
        f"Send-Q {size(sum(e.send_q for e in established))}, stalled {stalled}; "
        f"namespace timewait {tw}"
    )


class InspectError(Exception):
    """The process cannot be inspected (the message is one line for the user)."""


@contextlib.contextmanager
def _reading(pid: int | None) -> Iterator[None]:
    """Turn the lookup and permission failures of reading *pid*'s sockets into InspectError."""
    who = "this process" if pid is None else f"PID {pid}"
    try:
        yield
    except ProcessLookupError:
        raise InspectError(f"no process with PID {pid} (it does not exist or has exited)") from None
    except PermissionError:
        raise InspectError(
            f"cannot read the sockets of {who}: permission denied (run as its user or root)"
        ) from None
    except OSError as exc:
        raise InspectError(f"cannot read the sockets of {who}: {exc.strerror or exc}") from None


def read(pid: int | None, proc_root: str, ages: AgeTracker) -> Snapshot:
    """Take a snapshot, turning lookup and permission failures into :class:`InspectError`."""
    with _reading(pid):
        return take_snapshot(pid, proc_root=proc_root, ages=ages)


def _stall_cell(e: Established) -> str:
    if e.stall is None:
        return "-"
    if e.stall == "?":
        return "?"
    return f"{e.stall.replace('_', ' ')} {seconds(round(e.stall_seconds or 0.0, 1))}"


def render(snap: Snapshot, established: list[Established] | None = None) -> str:
    """The snapshot as text: summary, counts, ESTABLISHED, CLOSE_WAIT, LISTEN, TIME_WAIT."""
    established = established or []
    head = f"sockwise inspect: PID {snap.pid} ({snap.name}), {snap.total} TCP sockets"
    out = [f"{head}, via {snap.source}", summary(snap, established)]
    if snap.counts:
        by_count: list[tuple[str, int]] = sorted(
            snap.counts.items(), key=lambda kv: (-kv[1], kv[0])
        )
        out += ["", table(("state", "count"), by_count)]
    if established:
        out += ["", f"  ESTABLISHED ({len(established)}):"]
        rows3 = [
            (
                e.fd,
                e.local,
                e.peer,
                e.recv_q,
                e.send_q,
                ">= " + seconds(round(e.age, 1)) if e.age else "-",
                _stall_cell(e),
            )
            for e in established
        ]
        out.append(
            table(
                ("fd", "local", "peer", "Recv-Q", "Send-Q", "age (seen)", "stall"),
                rows3,
                indent="    ",
            )
        )
    if snap.close_wait:
        out += [
            "",
            f"  CLOSE_WAIT: the peer closed, this process never did ({len(snap.close_wait)}):",
        ]
        rows = [
            (c.fd, c.local, c.peer, ">= " + seconds(round(c.age, 1)) if c.age else "-")
            for c in snap.close_wait
        ]
        out.append(table(("fd", "local", "peer", "age (seen)"), rows, indent="    "))
    if snap.listeners:
        out += ["", "  LISTEN: accept queue fill"]
        rows2 = [
            (x.fd, x.local, x.queued, x.backlog, f"{x.fill:.0%}" if x.fill is not None else "-")
            for x in snap.listeners
        ]
        out.append(table(("fd", "local", "queued", "backlog", "fill"), rows2, indent="    "))
    if snap.time_wait:
        out += ["", "  TIME_WAIT by destination (whole network namespace; these have no owner):"]
        top = list(snap.time_wait.items())[:10]
        out.append(table(("destination", "count"), top, indent="    "))
    if snap.port_range and snap.ports_in_use is not None:
        lo, hi = snap.port_range
        size = hi - lo + 1
        out += ["", f"  ephemeral ports in use: {snap.ports_in_use} of {size} ({lo}-{hi})"]
    return "\n".join(out)


def read_est(args: argparse.Namespace, ages: AgeTracker, snap: Snapshot) -> list[Established]:
    """:func:`read_established` for the command's arguments (errors become InspectError)."""
    stall_after = getattr(args, "stall_after", None) or DEFAULT_STALL_AFTER
    ports = frozenset(int(x.local.rsplit(":", 1)[1]) for x in snap.listeners)
    with _reading(args.pid):
        return read_established(args.pid, args.proc_root, ages, stall_after, ports)


def cmd_inspect(args: argparse.Namespace) -> int:
    """``sockwise inspect [PID] [--json] [--watch [SECONDS]] [--count N]``."""
    ages = AgeTracker()
    est_ages = AgeTracker()
    watching = args.watch is not None
    limit = args.count if args.count is not None else (None if watching else 1)
    done = 0
    try:
        while limit is None or done < limit:
            if done:
                time.sleep(args.watch)
            snap = read(args.pid, args.proc_root, ages)
            established = read_est(args, est_ages, snap)
            done += 1
            if args.json:
                data: dict[str, Any] = snap.to_dict()
                data["summary"] = summary(snap, established)
                data["established"] = [asdict(e) for e in established]
                dump_json(data, sys.stdout, lines=watching)
            else:
                if watching and sys.stdout.isatty():
                    sys.stdout.write("\x1b[H\x1b[2J")
                print(render(snap, established) + ("\n" if watching else ""), flush=True)
    except KeyboardInterrupt:
        return 0
    return 0
