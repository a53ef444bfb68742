"""The socket policy: :class:`Policy`, its presets, and its exports to sockets, urllib3 and libpq."""

from sockwise.policy._model import MIDDLEBOX_IDLE_TIMEOUTS, Policy

__all__ = ["MIDDLEBOX_IDLE_TIMEOUTS", "Policy"]
