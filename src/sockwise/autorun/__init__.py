"""Zero-code hardening: every Python process started with this package's start-up hook on its path.

Theory of operation: the directory :func:`path` names holds one file, ``sitecustomize.py``.
Python imports ``sitecustomize`` at start-up from the first directory of ``sys.path`` that has
one, and ``PYTHONPATH`` comes first; the environment is inherited by every child (``subprocess``,
``multiprocessing`` with any start method, gunicorn and uvicorn workers). With ``SOCKWISE_AUTO``
set to a true value, the hook calls :func:`activate`, which runs :func:`sockwise.harden` with the
policy the ``SOCKWISE_*`` variables describe (``SOCKWISE_GUARD=0`` leaves the guard out). The hook
then imports the next ``sitecustomize`` on the path (the one it shadows), so an existing one
still runs. Nothing is written anywhere.

``sockwise run -- CMD`` sets both variables and replaces itself with *CMD*. In a container, set
them in the image instead::

    ENV SOCKWISE_AUTO=1
    ENV PYTHONPATH=/path/printed/by/python -m sockwise.autorun --path

Interpreters started with ``-I``, ``-E`` or ``-S`` ignore ``PYTHONPATH`` or ``sitecustomize``
and are not hardened.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sockwise._autoenv import AUTO_VAR, GUARD_VAR, active, path
from sockwise._autoenv import flag as _flag
from sockwise.policy import Policy

__all__ = [
    "AUTO_VAR",
    "GUARD_VAR",
    "AutoSettings",
    "activate",
    "active",
    "child_environ",
    "path",
    "settings_from_env",
]

# Variables of this module that Policy.from_env must not see (it rejects unknown names today).
_OWN_VARS: Final = frozenset({AUTO_VAR})


@dataclass(frozen=True)
class AutoSettings:
    """What start-up hardening does: the policy, and whether the guard runs.

    Attributes:
        enabled: ``SOCKWISE_AUTO`` is true.
        policy: The policy from the ``SOCKWISE_*`` variables.
        guard: Start the runtime guard (``SOCKWISE_GUARD``, default true).

    """

    enabled: bool
    policy: Policy
    guard: bool


def settings_from_env(environ: Mapping[str, str] | None = None) -> AutoSettings:
    """Read ``SOCKWISE_AUTO``, ``SOCKWISE_GUARD`` and the policy variables.

    Raises:
        ValueError: A malformed or unknown variable (the message names it and its value).

    """
    env = os.environ if environ is None else environ
    enabled = _flag(env, AUTO_VAR, False)
    guard = _flag(env, GUARD_VAR, True)
    policy = Policy.from_env({k: v for k, v in env.items() if k not in _OWN_VARS})
    return AutoSettings(enabled=enabled, policy=policy, guard=guard)


def child_environ(
    environ: Mapping[str, str] | None = None,
    *,
    preset: str | None = None,
    guard: bool | None = None,
) -> dict[str, str]:
    """The environment for a command whose Python processes all harden themselves at start-up.

    A copy of *environ* (default: ours) with ``SOCKWISE_AUTO=1``, :func:`path` first on
    ``PYTHONPATH`` (once), and, when given, ``SOCKWISE_PRESET`` and ``SOCKWISE_GUARD``.

    Raises:
        ValueError: The resulting variables are malformed (nothing is started with them).

    """
    env = dict(os.environ if environ is None else environ)
    if preset is not None:
        env["SOCKWISE_PRESET"] = preset
    if guard is not None:
        env[GUARD_VAR] = "1" if guard else "0"
    env[AUTO_VAR] = "1"
    here = path()
    rest = [e for e in env.get("PYTHONPATH", "").split(os.pathsep) if e and e != here]
    env["PYTHONPATH"] = os.pathsep.join([here, *rest])
    settings_from_env(env)
    return env


def activate() -> bool:
    """Harden this process as the ``SOCKWISE_*`` variables say, if ``SOCKWISE_AUTO`` is true.

    Called by the start-up hook; never raises: a malformed variable is reported as one line on
    standard error and the process runs unhardened.

    Returns:
        Whether this process is hardened afterwards.

    """
    from sockwise.harden import harden, is_hardened

    try:
        settings = settings_from_env()
        if settings.enabled and not is_hardened():
            harden(settings.policy, guard=settings.guard)
    except Exception as exc:  # never keep the application from starting
        print(f"sockwise autorun: not hardened: {exc}", file=sys.stderr)
        return False
    return is_hardened()
