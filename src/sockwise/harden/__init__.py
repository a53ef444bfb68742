"""The process-wide drop-in: :func:`harden` and :func:`unharden`."""

from sockwise.harden._api import (
    Hardening,
    Unhardened,
    current_policy,
    harden,
    is_hardened,
    unharden,
)
from sockwise.harden._reach import installed_c_clients, unreached
from sockwise.harden._spawn import UnhardenedChildWarning

__all__ = [
    "Hardening",
    "Unhardened",
    "UnhardenedChildWarning",
    "current_policy",
    "harden",
    "installed_c_clients",
    "is_hardened",
    "unharden",
    "unreached",
]
