"""Which reports were already made, shared by every guard of the process.

A second guard never repeats the first one's warnings: each report is claimed under a key
``(kind, subject)`` before it is made (``("cw", inode)``, ``("churn", destination)``,
``("acceptq", inode)``, ``("summary", "cw")``, ``("pool", pool key)``).
"""

from __future__ import annotations

import threading
from typing import Final

_MAX_CLAIMS: Final = 8192

_claims_lock = threading.Lock()
_claims: dict[tuple[str, object], float] = {}


def claim(key: tuple[str, object], now: float, every: float | None) -> bool:
    """Whether *key* may be reported now (and record that it is); ``every=None``: only once."""
    with _claims_lock:
        last = _claims.get(key)
        if last is not None and (every is None or now - last < every):
            return False
        _claims[key] = now
        if len(_claims) > _MAX_CLAIMS:
            del _claims[next(iter(_claims))]
        return True


def claimed(key: tuple[str, object]) -> bool:
    """Whether *key* was reported already."""
    return key in _claims


def forget_claims(kind: str, keep: set[object] | None = None) -> None:
    """Forget reports of *kind* except those whose subject is in *keep* (``None``: all)."""
    with _claims_lock:
        for key in [k for k in _claims if k[0] == kind and (keep is None or k[1] not in keep)]:
            del _claims[key]


def claims_size() -> int:
    """How many reports are remembered."""
    return len(_claims)


def after_fork_in_child() -> None:
    """Replace the lock, possibly held by another thread at fork time."""
    global _claims_lock
    _claims_lock = threading.Lock()
