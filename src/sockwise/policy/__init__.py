"""The socket policy: :class:`Policy`, its presets, and its exports (sockets, urllib3, libpq)."""

from sockwise.policy._model import MIDDLEBOX_IDLE_TIMEOUTS, Policy
from sockwise.policy._resolve import resolve_policy

__all__ = ["MIDDLEBOX_IDLE_TIMEOUTS", "Policy", "resolve_policy"]
