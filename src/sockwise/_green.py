"""Green threads patched in after the guard started: move the guard's thread to green threading.

A thread started before ``gevent.monkey.patch_all()`` patches :mod:`threading` is a real thread
that the patched module no longer knows (it fails on exit with a ``KeyError`` in
``threading._delete``). gevent announces ``patch_all`` with public events
(``gevent.events.GeventWillPatchAllEvent``/``GeventDidPatchAllEvent``): the running guards are
stopped just before gevent patches and started again right after, so their threads are then
gevent's, like every other thread of the application. eventlet has no such events: its
``eventlet.monkey_patch`` is wrapped to do the same.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

from sockwise._log import logger

_paused: list[Any] = []
_subscribed = False
#: The running guards; the guard package installs its ``running_guards`` at import (this module
#: sits below the guard and does not import it). No guard imported: none running.
_running_guards: Callable[[], list[Any]] = list


def set_guards_provider(provider: Callable[[], list[Any]]) -> None:
    """Tell this module how to list the running guards (called by :mod:`sockwise.guard`)."""
    global _running_guards
    _running_guards = provider


def _pause() -> None:
    for guard in _running_guards():
        try:
            guard.stop()
        except Exception:  # Defensive: never break the application's monkey-patching
            logger.log(logging.WARNING, "sockwise: pausing the guard failed", exc_info=True)
            continue
        _paused.append(guard)


def _resume() -> None:
    while _paused:
        guard = _paused.pop(0)
        try:
            guard.start()
        except Exception:  # Defensive
            logger.log(logging.WARNING, "sockwise: restarting the guard failed", exc_info=True)


def _on_event(event: object) -> None:
    name = type(event).__name__
    if name == "GeventWillPatchAllEvent":
        _pause()
    elif name == "GeventDidPatchAllEvent":
        _resume()


def watch_gevent(events: ModuleType) -> None:
    """Subscribe to *events* (``gevent.events``) once per process."""
    global _subscribed
    subscribers = getattr(events, "subscribers", None)
    if _subscribed or not isinstance(subscribers, list):
        return
    _subscribed = True
    subscribers.append(_on_event)


def watch_eventlet(eventlet: ModuleType) -> None:
    """Wrap ``eventlet.monkey_patch`` once: the guards pause around it."""
    original = getattr(eventlet, "monkey_patch", None)
    if original is None or getattr(original, "_sockwise", False):
        return

    @functools.wraps(original)
    def monkey_patch(*args: Any, **kwargs: Any) -> Any:
        _pause()
        try:
            return original(*args, **kwargs)
        finally:
            _resume()

    monkey_patch._sockwise = True  # type: ignore[attr-defined]
    eventlet.monkey_patch = monkey_patch  # type: ignore[attr-defined]
