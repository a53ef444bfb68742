"""What the detectors' messages share: where a socket came from, and the event they build."""

from __future__ import annotations

import linecache

from sockwise._errors import SockwiseWarning
from sockwise._net.records import SocketRecord
from sockwise.guard._events import EventKind, GuardEvent, redact
from sockwise.guard._origin import Origin


def where(origin: Origin | None, opened: str = "opened") -> str:
    """How the socket was opened, and the application's line that did it (when recorded)."""
    if origin is None:
        return (
            "origin not recorded: opened before the guard started, or by code the guard does "
            "not see (C extensions; a library's own thread)"
        )
    line = linecache.getline(origin.filename, origin.lineno).strip()
    if len(line) > 120:
        line = line[:117] + "..."
    if origin.kind == "checkout":
        opened = "checked out of its pool"
    elif origin.kind == "accept":
        opened = "accepted"
    elif origin.kind == "served":
        if origin.via == "socketserver":
            opened = "accepted by a socketserver thread for the handler"
        elif origin.via == "uvicorn":
            opened = "accepted by uvicorn, serving the application set up"
        else:
            opened = "accepted by the server set up"
    text = f"{opened} at {origin}"
    return f"{text}: {line}" if line else text


def socket_event(
    kind: EventKind,
    category: type[SockwiseWarning],
    message: str,
    rec: SocketRecord,
    origin: Origin | None,
    details: dict[str, object],
    *,
    fd: int | None = None,
    peer: bool = True,
) -> GuardEvent:
    """The event about one socket *rec*: the message redacted, its addresses and descriptor.

    Args:
        kind: The event's kind.
        category: The warning class.
        message: The message (credentials are redacted here).
        rec: The socket.
        origin: Where it was opened, when recorded.
        details: The numbers behind the finding.
        fd: The descriptor (``None``: the record's).
        peer: Whether the event names the peer (a listener has none).

    """
    return GuardEvent(
        kind=kind,
        category=category,
        message=redact(message),
        local=rec.local,
        remote=rec.remote if peer else None,
        fd=rec.fd if fd is None else fd,
        origin=origin,
        details=details,
    )
