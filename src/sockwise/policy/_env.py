"""Reading and writing policy settings as ``SOCKWISE_*`` environment variables.

This module only parses and formats text: it knows the variable names and their value syntax, not
the :class:`~sockwise.Policy` class (which imports it), so the dependency runs one way.

An unknown ``SOCKWISE_*`` name is never fatal: it gets one warning per process naming the closest
known variable and the known names (a deploy script's ``SOCKWISE_SRC`` must not stop an
application from starting). A malformed value of a *known* variable raises, naming the variable,
the value and what it accepts.
"""

from __future__ import annotations

import difflib
import math
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from sockwise._errors import ConfigurationWarning
from sockwise._forksafe import renew_after_fork
from sockwise._log import logger

PREFIX: Final = "SOCKWISE_"

#: Variable name -> Policy field, for the per-field overrides.
FIELD_VARS: Final[Mapping[str, str]] = {
    "SOCKWISE_KEEPALIVE": "keepalive",
    "SOCKWISE_KEEPALIVE_IDLE": "keepalive_idle",
    "SOCKWISE_KEEPALIVE_INTERVAL": "keepalive_interval",
    "SOCKWISE_KEEPALIVE_COUNT": "keepalive_count",
    "SOCKWISE_USER_TIMEOUT": "user_timeout",
    "SOCKWISE_ACCEPTED_USER_TIMEOUT": "accepted_user_timeout",
    "SOCKWISE_NODELAY": "nodelay",
    "SOCKWISE_BACKLOG": "backlog",
    "SOCKWISE_CONNECT_TIMEOUT": "connect_timeout",
}

#: The ``SOCKWISE_*`` variables that sockwise reads outside the policy's fields (the preset, the
#: guard, ``sockwise run``, the test helpers). A part of sockwise that reads a new variable adds
#: its name here, so :meth:`sockwise.Policy.from_env` knows it and does not warn about it.
OTHER_ENV_VARS: Final[tuple[str, ...]] = (
    "SOCKWISE_PRESET",
    "SOCKWISE_AUTO",
    "SOCKWISE_GUARD",
    "SOCKWISE_GUARD_INTERVAL",
    "SOCKWISE_HARDEN",
    "SOCKWISE_LOG_LEVEL",
    "SOCKWISE_PG_BIN",
    "SOCKWISE_PROC_ROOT",
    "SOCKWISE_PURE_PYTHON",
    "SOCKWISE_TEST_DSN",
    "SOCKWISE_UPDATE_BOUNDS",
)

#: Every ``SOCKWISE_*`` variable sockwise knows: the policy's fields, then :data:`OTHER_ENV_VARS`.
ENV_VARS: Final[tuple[str, ...]] = (*FIELD_VARS, *OTHER_ENV_VARS)

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_NONE: Final = frozenset({"none", "default", ""})
_PRESETS: Final = ("default", "interactive", "kernel", "aws-nlb", "azure-lb")

_warned: set[str] = set()
_warned_lock = threading.Lock()

renew_after_fork(globals(), "_warned_lock", threading.Lock)


class _Fields(Protocol):
    """What :func:`policy_to_env` reads from a policy."""

    @property
    def user_timeout_derived(self) -> bool: ...  # pragma: no cover - a protocol


def _bad(var: str, raw: str, allowed: str) -> ValueError:
    return ValueError(f"environment variable {var}={raw!r} is malformed: expected {allowed}")


def _parse_bool(var: str, raw: str) -> bool | None:
    low = raw.strip().lower()
    if low in _NONE:
        return None
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise _bad(var, raw, "1/0, true/false, yes/no, on/off or none")


def _parse_int(var: str, raw: str) -> int | None:
    low = raw.strip().lower()
    if low in _NONE:
        return None
    try:
        return int(low, 10)
    except ValueError:
        raise _bad(var, raw, "a whole number or none") from None


def _parse_seconds(var: str, raw: str) -> float | None:
    low = raw.strip().lower()
    if low in _NONE:
        return None
    try:
        value = float(low)
    except ValueError:
        raise _bad(var, raw, "a number of seconds or none") from None
    if not math.isfinite(value):
        raise _bad(var, raw, "a finite number of seconds or none")
    return value


def _parse_user_timeout(var: str, raw: str) -> float | str | None:
    if raw.strip().lower() == "auto":
        return "auto"
    return _parse_seconds(var, raw)


def _parse_accepted_user_timeout(var: str, raw: str) -> float | str | None:
    if raw.strip().lower() == "same":
        return "same"
    try:
        return _parse_seconds(var, raw)
    except ValueError:
        raise _bad(var, raw, "a number of seconds, 0 (off), same or none") from None


_PARSERS: Final[Mapping[str, Callable[[str, str], object]]] = {
    "keepalive": _parse_bool,
    "keepalive_idle": _parse_int,
    "keepalive_interval": _parse_int,
    "keepalive_count": _parse_int,
    "user_timeout": _parse_user_timeout,
    "accepted_user_timeout": _parse_accepted_user_timeout,
    "nodelay": _parse_bool,
    "backlog": _parse_int,
    "connect_timeout": _parse_seconds,
}


def parse_preset(raw: str) -> tuple[str, float | None]:
    """Parse ``SOCKWISE_PRESET``: the preset's name, and the seconds of ``nat:SECONDS``.

    Raises:
        ValueError: Not a known preset (the message lists them).

    """
    name = raw.strip().lower()
    if name in _PRESETS:
        return name, None
    if name.startswith("nat:"):
        seconds = _parse_seconds("SOCKWISE_PRESET", name[4:])
        if seconds is None:
            raise _bad("SOCKWISE_PRESET", raw, "nat:SECONDS with a number of seconds")
        return "nat", seconds
    raise _bad("SOCKWISE_PRESET", raw, f"one of {', '.join(_PRESETS)} or nat:SECONDS")


def _emit_warning(message: str) -> None:
    """A warning that never stops the application: with ``-W error`` it is logged instead."""
    try:
        warnings.warn(message, ConfigurationWarning, stacklevel=4)
    except Warning:  # the application's filters turned it into an error: still never fatal
        logger.warning("sockwise: %s", message)


def warn_unknown(names: list[str]) -> None:
    """Warn, once per process and name, about unknown ``SOCKWISE_*`` variables."""
    with _warned_lock:
        fresh = [n for n in names if n not in _warned]
        _warned.update(fresh)
    for name in fresh:
        # Compare what follows the prefix: every name shares "SOCKWISE_".
        suffixes = {known[len(PREFIX) :]: known for known in ENV_VARS}
        close = difflib.get_close_matches(name[len(PREFIX) :], suffixes, n=1, cutoff=0.7)
        hint = f" Did you mean {suffixes[close[0]]}?" if close else ""
        _emit_warning(
            f"unknown environment variable {name} is ignored.{hint} "
            f"Known: {', '.join(sorted(ENV_VARS))}"
        )


def policy_kwargs_from_env(
    environ: Mapping[str, str] | None,
) -> tuple[tuple[str, float | None] | None, dict[str, object]]:
    """Parse the ``SOCKWISE_*`` variables: the preset (if any) and the per-field overrides.

    An unknown ``SOCKWISE_*`` name is warned about (once) and ignored.

    Raises:
        ValueError: A malformed value of a known variable.

    """
    env = os.environ if environ is None else environ
    unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in ENV_VARS)
    if unknown:
        warn_unknown(unknown)
    preset = parse_preset(env["SOCKWISE_PRESET"]) if "SOCKWISE_PRESET" in env else None
    changes: dict[str, object] = {}
    for var, name in FIELD_VARS.items():
        if var in env:
            changes[name] = _PARSERS[name](var, env[var])
    return preset, changes


def _format(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def policy_to_env(policy: _Fields) -> dict[str, str]:
    """Return the variables that :func:`policy_kwargs_from_env` turns back into *policy*."""
    out: dict[str, str] = {}
    for var, name in FIELD_VARS.items():
        if name == "user_timeout" and policy.user_timeout_derived:
            out[var] = "auto"
        else:
            out[var] = _format(getattr(policy, name))
    return out


def forget_warnings() -> None:
    """Let the unknown-variable warnings be given again (tests)."""
    with _warned_lock:
        _warned.clear()
