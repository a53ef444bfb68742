"""sockwise: connection hygiene for Python.

TCP fails silently; sockwise turns its silent hangs into bounded, explicit, explained failures:
a validated socket :class:`Policy`, a process-wide drop-in (:func:`harden`), healthy pools for
urllib3 and psycopg, and a runtime guard that explains CLOSE_WAIT leaks, ephemeral-port churn
and listen-queue overflows.
"""

from sockwise._errors import (
    ConfigurationWarning,
    SockwiseError,
    SockwiseWarning,
    SomaxconnTruncationWarning,
)
from sockwise._version import __version__
from sockwise.guard import (
    AcceptQueueWarning,
    CloseWaitLeakWarning,
    Guard,
    GuardEvent,
    GuardReport,
    PortChurnWarning,
    SocketRecord,
    StallWarning,
    expect_silence,
)
from sockwise.harden import (
    Hardening,
    Unhardened,
    UnhardenedChildWarning,
    current_policy,
    harden,
    is_hardened,
    unharden,
)
from sockwise.policy import MIDDLEBOX_IDLE_TIMEOUTS, Policy

__all__ = [
    "MIDDLEBOX_IDLE_TIMEOUTS",
    "AcceptQueueWarning",
    "CloseWaitLeakWarning",
    "ConfigurationWarning",
    "Guard",
    "GuardEvent",
    "GuardReport",
    "Hardening",
    "Policy",
    "PortChurnWarning",
    "SocketRecord",
    "SockwiseError",
    "SockwiseWarning",
    "SomaxconnTruncationWarning",
    "StallWarning",
    "Unhardened",
    "UnhardenedChildWarning",
    "__version__",
    "current_policy",
    "expect_silence",
    "harden",
    "is_hardened",
    "unharden",
]
