"""The urllib3 part of :func:`sockwise.harden`.

urllib3 binds ``HTTPConnection.default_socket_options`` as the *default argument* of
``HTTPConnection.__init__`` when it is imported, so assigning the class attribute later changes
nothing for new connections. What does change them is the function's ``__kwdefaults__``: the
policy's options are merged into the default ``socket_options`` of ``HTTPConnection`` and
``HTTPSConnection`` (an explicit ``socket_options=`` argument still wins, since it replaces the
default), and restored on :func:`sockwise.unharden`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from sockwise.policy import Policy

_saved: list[tuple[Any, Any]] = []  # (function, original socket_options default)


def merged_options(
    defaults: list[tuple[int, int, int]] | None, policy: Policy
) -> list[tuple[int, int, int]]:
    """*defaults* with the policy's options added; the policy wins for the same option."""
    ours = policy.socket_options()
    taken = {(level, opt) for level, opt, _ in ours}
    kept = [t for t in (defaults or []) if (t[0], t[1]) not in taken]
    return kept + ours


def install(module: ModuleType, policy: Policy) -> list[str]:
    """Patch urllib3's connection classes (the ``urllib3`` package, once imported)."""
    from urllib3 import connection

    changed: list[str] = []
    for cls in (connection.HTTPConnection, connection.HTTPSConnection):
        init = cls.__init__
        kwdefaults = init.__kwdefaults__
        if not kwdefaults or "socket_options" not in kwdefaults:
            continue  # Defensive: an urllib3 whose signature we do not know
        if not any(func is init for func, _ in _saved):
            _saved.append((init, kwdefaults["socket_options"]))
        original = next(orig for func, orig in _saved if func is init)
        kwdefaults["socket_options"] = merged_options(original, policy)
        changed.append(f"urllib3.connection.{cls.__name__} socket_options")
    return changed


def uninstall() -> None:
    """Restore urllib3's default ``socket_options``."""
    while _saved:
        init, original = _saved.pop()
        init.__kwdefaults__["socket_options"] = original
