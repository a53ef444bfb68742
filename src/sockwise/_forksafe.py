"""Module-level locks that a forked child gets fresh: :func:`renew_after_fork`.

A thread of the parent may hold a module's lock at the moment another thread calls ``fork()``.
That thread does not exist in the child, so the lock stays held there forever and the child's
next sockwise call would hang. A module declares its lock once::

    _lock = threading.Lock()
    renew_after_fork(globals(), "_lock", threading.Lock)

and the child rebinds the name to a new lock right after the fork (``os.register_at_fork``),
before any of its code runs. Rebinding the name, rather than wrapping the lock, keeps ``with
_lock:`` as fast as a bare lock, and a ``with`` block the forking thread was inside releases the
lock it took. Standard library only: every layer may use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from typing import Any

_renewals: list[tuple[MutableMapping[str, Any], str, Callable[[], object]]] = []


def renew_after_fork(
    namespace: MutableMapping[str, Any], name: str, factory: Callable[[], object]
) -> None:
    """In a child forked from this process, set ``namespace[name] = factory()``.

    Args:
        namespace: The module's ``globals()``.
        name: The global holding the lock (it must exist already).
        factory: Makes the fresh lock, e.g. ``threading.Lock`` or ``threading.RLock``.

    Raises:
        KeyError: *namespace* has no *name* (a misspelt name fails at import, not at fork).

    """
    if name not in namespace:
        raise KeyError(f"renew_after_fork: no global {name!r} to renew")
    _renewals.append((namespace, name, factory))


def _after_fork_in_child() -> None:
    """Fresh locks: another thread of the parent may have held them at fork time."""
    for namespace, name, factory in _renewals:
        namespace[name] = factory()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
