"""The runtime guard: CLOSE_WAIT leaks, port churn, full accept queues and stalls, explained.

Public names (re-exported from :mod:`sockwise`): :class:`Guard`, :class:`GuardReport`,
:class:`GuardEvent` and the warning classes. The socket reading layer (:func:`process_sockets`,
:func:`machine_sockets`, :func:`established_sockets`, :func:`stall_state`, :func:`source_name`,
:class:`SocketRecord`) serves the CLI and metrics;
:func:`register_pooled`/:func:`unregister_pooled` let sockwise pools mark idle members
(:func:`recording_origins` tells whether a guard wants them), and
:func:`note_origin` records the application's line for a socket the ``socket`` hooks cannot see
(libpq's, uvloop's) or that a pool hands out again.
"""

from sockwise._net.records import TCP_STATES, SocketRecord, TcpInfo
from sockwise.guard._events import (
    AcceptQueueWarning,
    CloseWaitLeakWarning,
    GuardEvent,
    GuardReport,
    PortChurnWarning,
    StallWarning,
    redact,
)
from sockwise.guard._guard import (
    DEFAULT_CLOSE_WAIT_AFTER,
    DEFAULT_INTERVAL,
    DEFAULT_REPORT_EVERY,
    DETECTION_BOUND,
    Guard,
    event_counts,
    running_guards,
)
from sockwise.guard._origin import Origin, note_origin, register_pooled, unregister_pooled
from sockwise.guard._origin import recording as recording_origins
from sockwise.guard._silence import expect_silence
from sockwise.guard._source import (
    NoSourceError,
    established_sockets,
    machine_sockets,
    process_sockets,
    source_name,
)
from sockwise.guard._stall import DEFAULT_STALL_AFTER, stall_state

__all__ = [
    "DEFAULT_CLOSE_WAIT_AFTER",
    "DEFAULT_INTERVAL",
    "DEFAULT_REPORT_EVERY",
    "DEFAULT_STALL_AFTER",
    "DETECTION_BOUND",
    "TCP_STATES",
    "AcceptQueueWarning",
    "CloseWaitLeakWarning",
    "Guard",
    "GuardEvent",
    "GuardReport",
    "NoSourceError",
    "Origin",
    "PortChurnWarning",
    "SocketRecord",
    "StallWarning",
    "TcpInfo",
    "established_sockets",
    "event_counts",
    "expect_silence",
    "machine_sockets",
    "note_origin",
    "process_sockets",
    "recording_origins",
    "redact",
    "register_pooled",
    "running_guards",
    "source_name",
    "stall_state",
    "unregister_pooled",
]
