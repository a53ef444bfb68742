"""The optional C extension ``sockwise._speedups``, and the switch that turns it off.

The extension is built at install time when a C compiler and the Python headers are there
(``setup.py``: ``optional=True``); without it, sockwise runs the Python version of the same code
with the same behaviour, a little slower per connect. ``SOCKWISE_PURE_PYTHON=1`` in the
environment, read at import, makes sockwise ignore a built extension (to compare the two, or to
rule the extension out while debugging).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Final

PURE_PYTHON_ENV: Final = "SOCKWISE_PURE_PYTHON"


def speedups() -> ModuleType | None:
    """The C extension module, or ``None`` when it is not built or is switched off."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    try:
        from sockwise import _speedups
    except Exception:  # not built, or refused (a warning made an error under -W error, a
        return None  # subinterpreter that cannot load it): the Python version runs instead
    return _speedups


def status() -> str:
    """``"built"``, ``"switched off"`` (by the environment variable) or ``"not built"``."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return f"switched off ({PURE_PYTHON_ENV})"
    return "built" if speedups() is not None else "not built"
