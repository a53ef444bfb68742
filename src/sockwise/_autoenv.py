"""Whether start-up hardening (``sockwise run``, ``SOCKWISE_AUTO``) is in force: environment only.

A low-level module of its own, importing nothing of sockwise, so that both :mod:`sockwise.autorun`
(which hardens) and :mod:`sockwise.harden` (which warns about children that will not be hardened)
can ask without importing each other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

#: Set to a true value (``1``, ``true``, ``yes``, ``on``) to harden at interpreter start-up.
AUTO_VAR: Final = "SOCKWISE_AUTO"
#: Set to a false value to harden without starting the runtime guard; it runs by default.
GUARD_VAR: Final = "SOCKWISE_GUARD"

_SITE_DIR: Final = Path(__file__).resolve().parent / "autorun" / "_site"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


def path() -> str:
    """The directory to put first on ``PYTHONPATH``: it holds sockwise's ``sitecustomize.py``."""
    return str(_SITE_DIR)


def flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean environment variable (1/0, true/false, yes/no, on/off); malformed: ValueError."""
    raw = environ.get(name)
    if raw is None:
        return default
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(
        f"environment variable {name}={raw!r} is malformed: expected 1/0, true/false, yes/no "
        "or on/off"
    )


def on_path(environ: Mapping[str, str]) -> bool:
    """Whether :func:`path` is an entry of *environ*'s ``PYTHONPATH``."""
    entries = environ.get("PYTHONPATH", "").split(os.pathsep)
    here = os.path.normcase(path())
    return any(e and os.path.normcase(os.path.realpath(e)) == here for e in entries)


def active(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a Python child started with *environ* (default: ours) hardens itself at start-up.

    True when ``SOCKWISE_AUTO`` is set to a true value and :func:`path` is on ``PYTHONPATH``.
    A malformed ``SOCKWISE_AUTO`` counts as not active.
    """
    env = os.environ if environ is None else environ
    try:
        return flag(env, AUTO_VAR, False) and on_path(env)
    except ValueError:
        return False
