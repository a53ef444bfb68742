"""The import watcher :func:`sockwise.harden` uses (it lives in :mod:`sockwise._imports`)."""

from __future__ import annotations

from sockwise._imports import Callback, cancel, when_imported

__all__ = ["Callback", "cancel", "when_imported"]
