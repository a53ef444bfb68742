"""``sockwise inspect [PID]``: an ``ss``-like view of one process's TCP sockets."""

from __future__ import annotations

import argparse
import sys
import time

from sockwise.cli._render import dump_json, seconds, table
from sockwise.metrics._snapshot import AgeTracker, Snapshot, take_snapshot


class InspectError(Exception):
    """The process cannot be inspected (the message is one line for the user)."""


def read(pid: int | None, proc_root: str, ages: AgeTracker) -> Snapshot:
    """Take a snapshot, turning lookup and permission failures into :class:`InspectError`."""
    who = "this process" if pid is None else f"PID {pid}"
    try:
        return take_snapshot(pid, proc_root=proc_root, ages=ages)
    except ProcessLookupError:
        raise InspectError(f"no process with PID {pid} (it does not exist or has exited)") from None
    except PermissionError:
        raise InspectError(
            f"cannot read the sockets of {who}: permission denied (run as its user or root)"
        ) from None
    except OSError as exc:
        raise InspectError(f"cannot read the sockets of {who}: {exc.strerror or exc}") from None


def render(snap: Snapshot) -> str:
    """The snapshot as text: counts by state, CLOSE_WAIT, LISTEN and TIME_WAIT sections."""
    head = f"sockwise inspect: PID {snap.pid} ({snap.name}), {snap.total} TCP sockets"
    out = [f"{head}, via {snap.source}"]
    if snap.counts:
        by_count: list[tuple[str, int]] = sorted(
            snap.counts.items(), key=lambda kv: (-kv[1], kv[0])
        )
        out += ["", table(("state", "count"), by_count)]
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


def cmd_inspect(args: argparse.Namespace) -> int:
    """``sockwise inspect [PID] [--json] [--watch [SECONDS]] [--count N]``."""
    ages = AgeTracker()
    watching = args.watch is not None
    limit = args.count if args.count is not None else (None if watching else 1)
    done = 0
    try:
        while limit is None or done < limit:
            if done:
                time.sleep(args.watch)
            snap = read(args.pid, args.proc_root, ages)
            done += 1
            if args.json:
                dump_json(snap.to_dict(), sys.stdout, lines=watching)
            else:
                if watching and sys.stdout.isatty():
                    sys.stdout.write("\x1b[H\x1b[2J")
                print(render(snap) + ("\n" if watching else ""), flush=True)
    except KeyboardInterrupt:
        return 0
    return 0
