"""The ``sockwise`` logger and a helper that logs a given message only once per process."""

from __future__ import annotations

import logging
import threading

from sockwise._forksafe import renew_after_fork

logger = logging.getLogger("sockwise")

_seen: set[str] = set()
_seen_lock = threading.Lock()

renew_after_fork(globals(), "_seen_lock", threading.Lock)


def log_once(key: str, level: int, msg: str, *args: object) -> bool:
    """Log *msg* at *level* the first time *key* is seen; return whether it was logged."""
    with _seen_lock:
        if key in _seen:
            return False
        _seen.add(key)
    logger.log(level, msg, *args)
    return True


def forget_once(prefix: str = "") -> None:
    """Forget the keys starting with *prefix* so their messages may be logged again (tests)."""
    with _seen_lock:
        for key in [k for k in _seen if k.startswith(prefix)]:
            _seen.discard(key)
