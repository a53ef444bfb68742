"""The guard's warning classes, its events and the report :meth:`Guard.check` returns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from sockwise._errors import SockwiseWarning
from sockwise._net.records import SocketRecord
from sockwise.guard._origin import Origin


class CloseWaitLeakWarning(SockwiseWarning):
    """A socket of this process has sat in CLOSE_WAIT too long: the peer closed, we never did."""

    __module__ = "sockwise"


class PortChurnWarning(SockwiseWarning):
    """New connections toward one destination fast enough to run out of ephemeral ports."""

    __module__ = "sockwise"


class AcceptQueueWarning(SockwiseWarning):
    """A listening socket's accept queue is full: the kernel is dropping new connections."""

    __module__ = "sockwise"


class StallWarning(SockwiseWarning):
    """A connection of this process is stalled: no reply, no acknowledgement, or no reader.

    The event's ``kind`` says which: ``"awaiting_reply"``, ``"retransmitting"``,
    ``"zero_window"`` or ``"unread"`` (see :ref:`guard-stalls`).
    """

    __module__ = "sockwise"


EventKind = Literal[
    "close_wait",
    "port_churn",
    "accept_queue",
    "summary",
    "awaiting_reply",
    "retransmitting",
    "zero_window",
    "unread",
]
#: Every :data:`EventKind`, in a stable order (metrics emit a series for each, zero included).
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)


@dataclass(frozen=True, slots=True)
class GuardEvent:
    """One finding of the guard, as sent to :mod:`warnings`, the log and the callback.

    Attributes:
        kind: ``"close_wait"``, ``"port_churn"``, ``"accept_queue"`` or ``"summary"`` (several
            findings of one kind folded into one, see ``details["count"]``); for a
            :class:`StallWarning`, ``"awaiting_reply"``, ``"retransmitting"``,
            ``"zero_window"`` or ``"unread"``.
        category: The warning class.
        message: The full, credential-free message.
        local: Local address of the socket concerned (``None`` for a destination-wide finding).
        remote: The peer or destination.
        fd: The descriptor, when known.
        origin: The code that opened the socket, when recorded.
        details: Numbers behind the finding (ages, rates, queue lengths...).

    """

    kind: EventKind
    category: type[SockwiseWarning]
    message: str
    local: tuple[str, int] | None = None
    remote: tuple[str, int] | None = None
    fd: int | None = None
    origin: Origin | None = None
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GuardReport:
    """The result of one sample (:meth:`Guard.check`).

    Attributes:
        source: The socket source used (``"netlink"``, ``"procfs"``, ``"psutil"``).
        duration: Seconds the sample took.
        close_wait: This process's sockets in CLOSE_WAIT, with their age in seconds.
        listeners: This process's listening sockets (``rqueue``: accept queue, ``wqueue``:
            backlog).
        time_wait: TIME_WAIT sockets per destination (largest first, at most 20
            destinations), counted only in samples where churn is possible: with
            ``churn_scope="process"`` only toward destinations this process connected to within
            the TIME_WAIT period, with ``"namespace"`` toward every destination.
        events: The events this sample emitted.
        error: Why the sample could not be taken, or ``None``.

    """

    source: str
    duration: float
    close_wait: tuple[tuple[SocketRecord, float], ...] = ()
    listeners: tuple[SocketRecord, ...] = ()
    time_wait: tuple[tuple[tuple[str, int], int], ...] = ()
    events: tuple[GuardEvent, ...] = ()
    error: str | None = None


# The password runs to the *last* "@" before the host (as urllib's own parser reads it).
_URL_CRED: Final = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^\s'\"]*@")
# A key (also prefixed, e.g. PGPASSWORD, and quoted as a dict key), then a value: quoted (with
# spaces, as libpq allows) or bare.
_KV_CRED: Final = re.compile(
    r"(?P<head>\b\w*?(?:password|passwd|pwd|secret|token|api_key|apikey)['\"]?\s*[=:]\s*)"
    r"(?:(?P<q>['\"])(?:(?!(?P=q)).)*(?P=q)|[^\s'\"&;,)]+)",
    re.IGNORECASE,
)


def _kv_sub(match: re.Match[str]) -> str:
    quote = match.group("q") or ""
    return f"{match.group('head')}{quote}***{quote}"


def redact(text: str) -> str:
    """*text* with URL passwords and ``password=...`` style values replaced by ``***``."""
    text = _URL_CRED.sub(r"\g<head>***@", text)
    return _KV_CRED.sub(_kv_sub, text)
