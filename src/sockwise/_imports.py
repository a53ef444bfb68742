"""Run a callback once a module is imported -- now if it already is, else right after its import.

:func:`sockwise.harden` must cover urllib3 and psycopg whether the application imported them
before or after calling it, without importing them itself (that would cost start-up time and
drag in libraries the application may not use). A small ``sys.meta_path`` finder wraps the
loader of the watched modules and runs the callbacks after the module body has executed. The hook
layer uses it too, to patch gevent's, eventlet's and uvloop's classes when they arrive.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from sockwise._forksafe import renew_after_fork
from sockwise._log import logger

Callback = Callable[[ModuleType], None]

_lock = threading.RLock()
_pending: dict[str, list[Callback]] = {}

renew_after_fork(globals(), "_lock", threading.RLock)


class _Loader(importlib.abc.Loader):
    def __init__(self, wrapped: importlib.abc.Loader, name: str) -> None:
        self._wrapped = wrapped
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._wrapped.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._wrapped.exec_module(module)
        with _lock:
            callbacks = _pending.pop(self._name, [])
            _sync_finder()
        for callback in callbacks:
            _call(callback, module)

    def __getattr__(self, name: str) -> Any:  # resource readers and the like
        return getattr(self._wrapped, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


_finder = _Finder()


def _sync_finder() -> None:
    installed = _finder in sys.meta_path
    if _pending and not installed:
        sys.meta_path.insert(0, _finder)
    elif not _pending and installed:
        sys.meta_path.remove(_finder)


def _call(callback: Callback, module: ModuleType) -> None:
    try:
        callback(module)
    except Exception:  # never break the application's import
        logger.exception("sockwise: hardening %s after its import failed", module.__name__)


def when_imported(name: str, callback: Callback) -> bool:
    """Call *callback(module)* now if *name* is imported, else right after it is.

    Returns ``True`` if it ran now.
    """
    module = sys.modules.get(name)
    if module is not None:
        _call(callback, module)
        return True
    with _lock:
        _pending.setdefault(name, []).append(callback)
        _sync_finder()
    return False


def cancel(name: str, callback: Callback) -> None:
    """Forget a callback registered with :func:`when_imported` that has not run yet."""
    with _lock:
        callbacks = [c for c in _pending.get(name, []) if c != callback]
        if callbacks:
            _pending[name] = callbacks
        else:
            _pending.pop(name, None)
        _sync_finder()
