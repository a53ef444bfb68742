"""The socket policy: :class:`Policy`, its presets, and its exports (sockets, urllib3, libpq)."""

from sockwise.policy._env import ENV_VARS, OTHER_ENV_VARS
from sockwise.policy._model import MIDDLEBOX_IDLE_TIMEOUTS, Policy
from sockwise.policy._resolve import resolve_policy, set_policy_provider

__all__ = [
    "ENV_VARS",
    "MIDDLEBOX_IDLE_TIMEOUTS",
    "OTHER_ENV_VARS",
    "Policy",
    "resolve_policy",
    "set_policy_provider",
]
