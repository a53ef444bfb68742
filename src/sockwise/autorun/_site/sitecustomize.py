"""sockwise's start-up hook (see :mod:`sockwise.autorun`): harden, then run the shadowed hook.

Python imports this module at start-up because its directory is first on ``PYTHONPATH``. It
runs the ``sitecustomize`` it shadows (the next one on ``sys.path``), then hardens the process
when ``SOCKWISE_AUTO`` is true. It writes nothing, and never stops the interpreter from starting.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def _chain(here: str) -> None:
    rest = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _activate() -> None:
    if os.environ.get("SOCKWISE_AUTO", "").strip().lower() in ("", "0", "false", "no", "off"):
        return
    try:
        from sockwise.autorun import activate
    except ImportError as exc:
        print(f"sockwise autorun: not hardened: {sys.executable}: {exc}", file=sys.stderr)
        return
    activate()


def _main() -> None:
    try:
        _chain(os.path.dirname(os.path.realpath(__file__)))
    finally:
        _activate()


_main()
