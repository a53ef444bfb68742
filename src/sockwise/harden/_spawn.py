"""A one-time warning when a hardened process starts a ``spawn``/``forkserver`` child unhardened.

Theory of operation: a ``fork`` child inherits the parent's hardened interpreter, but a
``spawn`` or ``forkserver`` child is a fresh interpreter that runs only the main module's top
level (as ``__mp_main__``, so ``if __name__ == "__main__":`` blocks are skipped) and what the
child's target imports. When :func:`sockwise.harden` first runs, :func:`on_harden` notes where it
was called from; multiprocessing builds a spawn or forkserver child's start-up data with
``multiprocessing.spawn.get_preparation_data``, which is wrapped (once the module is imported)
to warn once per process if the child will not be hardened: this process is hardened, not under
``sockwise run``/``SOCKWISE_AUTO``, and the ``harden()`` call does not sit in the main module's
top level outside a ``__main__`` guard (where the child would run it again).
"""

from __future__ import annotations

import ast
import functools
import os
import sys
import threading
import warnings
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import Any, Final

from sockwise._errors import SockwiseWarning
from sockwise._log import logger
from sockwise.harden import _imports

__all__ = ["UnhardenedChildWarning", "on_harden"]

_STDLIB: Final = os.path.dirname(os.path.abspath(os.__file__))
_INTERNAL_DIRS: Final = tuple(
    os.path.join(_STDLIB, name) + os.sep for name in ("multiprocessing", "concurrent")
)


class UnhardenedChildWarning(SockwiseWarning):
    """A hardened process starts a ``spawn`` or ``forkserver`` child that will not be hardened.

    Emitted once per process, at the first such child. The child is a new interpreter that
    does not run the ``harden()`` call of its parent; see :doc:`/howto/zero-code` for where to
    call it for each start method, or run the program under ``sockwise run``.

    .. versionadded:: 0.1.0

    """

    __module__ = "sockwise"


_lock = threading.Lock()
_rerun: bool | None = None  # whether a spawn child runs the first harden() call again
_call_site: tuple[str, int] | None = None  # where in the main module harden() was called
_warned = False
_is_hardened: Callable[[], bool] = bool  # replaced by on_harden(); bool() is False


def _call_site_of(frame: FrameType | None) -> tuple[bool, tuple[str, int] | None]:
    """``(during_import, main_site)`` for the ``harden()`` call whose caller is *frame*.

    The innermost module-level frame decides: another module's import (a child that imports
    that module hardens itself too: assumed, so as not to cry wolf), or the main module's top
    level at some line (the child re-runs it unless it is inside a ``__main__`` guard).
    """
    main = sys.modules.get("__main__")
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            if main is None or frame.f_globals is not vars(main):
                return True, None
            path = getattr(main, "__file__", None)
            return False, (path, frame.f_lineno) if isinstance(path, str) else None
        frame = frame.f_back
    return False, None


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


def _spans(stmt: ast.stmt, line: int) -> bool:
    end = stmt.end_lineno if stmt.end_lineno is not None else stmt.lineno
    return stmt.lineno <= line <= end


def _guarded(body: list[ast.stmt], line: int) -> bool:
    """Whether *line* sits in the body of an ``if __name__ == "__main__":`` within *body*."""
    for stmt in body:
        if not _spans(stmt, line):
            continue
        main_guard = isinstance(stmt, ast.If) and _is_main_guard(stmt.test)
        if main_guard and any(_spans(s, line) for s in getattr(stmt, "body", [])):
            return True
        blocks: list[list[ast.stmt]] = [
            getattr(stmt, field)
            for field in ("body", "orelse", "finalbody")
            if isinstance(getattr(stmt, field, None), list)
        ]
        blocks += [h.body for h in getattr(stmt, "handlers", [])]
        return any(_guarded(block, line) for block in blocks)
    return False


def child_reruns_harden(call_site: tuple[str, int] | None) -> bool:
    """Whether a spawn child runs again the main module's line *call_site* (``(path, line)``)."""
    if call_site is None:
        return False
    path, line = call_site
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):  # cannot tell: do not cry wolf
        return True
    return not _guarded(tree.body, line)


def _stacklevel() -> int:
    """The level of the first frame outside multiprocessing, concurrent.futures and sockwise."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame: FrameType | None = sys._getframe(1)  # the caller of warnings.warn: level 1
    level = 1
    while frame is not None:
        if not os.path.abspath(frame.f_code.co_filename).startswith((here, *_INTERNAL_DIRS)):
            return level
        frame = frame.f_back
        level += 1
    return 2


def _check() -> None:
    global _warned
    from sockwise._autoenv import active

    if not _is_hardened() or active():
        return
    with _lock:
        if _warned:
            return
        _warned = True
        reruns = _rerun if _rerun is not None else child_reruns_harden(_call_site)
    if reruns:
        return
    warnings.warn(
        "sockwise: this process is hardened but the spawn/forkserver child it starts will not "
        "be: a spawned interpreter does not run harden() called under "
        "`if __name__ == '__main__':` or from a function. Call sockwise.harden() at the main "
        "module's top level or in the child's target, or run the program with `sockwise run`.",
        UnhardenedChildWarning,
        stacklevel=_stacklevel(),
    )


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_preparation_data(*args: Any, **kwargs: Any) -> Any:
        data = original(*args, **kwargs)
        try:
            _check()
        except Warning:
            raise
        except Exception:  # never keep a child from starting
            logger.exception("sockwise: checking a spawn child's hardening failed")
        return data

    get_preparation_data.__sockwise_wrapped__ = True  # type: ignore[attr-defined]
    return get_preparation_data


def _install(module: ModuleType) -> None:
    current = getattr(module, "get_preparation_data", None)
    if current is not None and not getattr(current, "__sockwise_wrapped__", False):
        setattr(module, "get_preparation_data", _wrap(current))  # noqa: B010 (a module attr)


def on_harden(is_hardened: Callable[[], bool]) -> None:
    """Note where :func:`sockwise.harden` was first called; watch for spawn children.

    *is_hardened* tells, at each spawn, whether the process is still hardened (passed in by
    :mod:`sockwise.harden._api`, which this module does not import).
    """
    global _call_site, _rerun, _is_hardened
    _is_hardened = is_hardened
    during_import, _call_site = _call_site_of(sys._getframe(1))
    _rerun = True if during_import else None
    _imports.when_imported("multiprocessing.spawn", _install)
