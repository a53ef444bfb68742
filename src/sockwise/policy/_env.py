"""Reading and writing a :class:`~sockwise.Policy` as ``SOCKWISE_*`` environment variables."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from sockwise.policy._model import Policy

PREFIX: Final = "SOCKWISE_"

#: Variable name -> Policy field, for the per-field overrides.
FIELD_VARS: Final[Mapping[str, str]] = {
    "SOCKWISE_KEEPALIVE": "keepalive",
    "SOCKWISE_KEEPALIVE_IDLE": "keepalive_idle",
    "SOCKWISE_KEEPALIVE_INTERVAL": "keepalive_interval",
    "SOCKWISE_KEEPALIVE_COUNT": "keepalive_count",
    "SOCKWISE_USER_TIMEOUT": "user_timeout",
    "SOCKWISE_NODELAY": "nodelay",
    "SOCKWISE_BACKLOG": "backlog",
    "SOCKWISE_CONNECT_TIMEOUT": "connect_timeout",
}

#: ``SOCKWISE_*`` variables that belong to other parts of sockwise, not to the policy; they are
#: accepted (ignored) by :meth:`Policy.from_env` so that it can reject misspelt names.
OTHER_VARS: Final = frozenset(
    {
        "SOCKWISE_PRESET",
        "SOCKWISE_AUTO",
        "SOCKWISE_GUARD",
        "SOCKWISE_GUARD_INTERVAL",
        "SOCKWISE_HARDEN",
        "SOCKWISE_TEST_DSN",
        "SOCKWISE_LOG_LEVEL",
        "SOCKWISE_PG_BIN",
        "SOCKWISE_PROC_ROOT",
    }
)

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_NONE: Final = frozenset({"none", "default", ""})


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


_PARSERS: Final[Mapping[str, Callable[[str, str], object]]] = {
    "keepalive": _parse_bool,
    "keepalive_idle": _parse_int,
    "keepalive_interval": _parse_int,
    "keepalive_count": _parse_int,
    "user_timeout": _parse_user_timeout,
    "nodelay": _parse_bool,
    "backlog": _parse_int,
    "connect_timeout": _parse_seconds,
}


def preset_from_name(raw: str) -> Policy:
    """Return the preset named by ``SOCKWISE_PRESET`` (``nat:SECONDS`` takes a timeout)."""
    from sockwise.policy._model import Policy

    name = raw.strip().lower()
    presets = {
        "default": Policy.default,
        "interactive": Policy.interactive,
        "kernel": Policy.kernel_defaults,
        "aws-nlb": Policy.aws_nlb,
        "azure-lb": Policy.azure_lb,
    }
    if name in presets:
        return presets[name]()
    if name.startswith("nat:"):
        seconds = _parse_seconds("SOCKWISE_PRESET", name[4:])
        if seconds is None:
            raise _bad("SOCKWISE_PRESET", raw, "nat:SECONDS with a number of seconds")
        return Policy.behind_nat(seconds)
    raise _bad("SOCKWISE_PRESET", raw, f"one of {', '.join(presets)} or nat:SECONDS")


def policy_kwargs_from_env(
    environ: Mapping[str, str] | None,
) -> tuple[Policy | None, dict[str, object]]:
    """Parse the ``SOCKWISE_*`` variables: the preset (if any) and the per-field overrides.

    Raises:
        ValueError: An unknown ``SOCKWISE_*`` variable or a malformed value.

    """
    env = os.environ if environ is None else environ
    unknown = sorted(
        k for k in env if k.startswith(PREFIX) and k not in FIELD_VARS and k not in OTHER_VARS
    )
    if unknown:
        known = ", ".join(sorted([*FIELD_VARS, "SOCKWISE_PRESET"]))
        raise ValueError(f"unknown environment variable(s) {', '.join(unknown)}; known: {known}")
    start = preset_from_name(env["SOCKWISE_PRESET"]) if "SOCKWISE_PRESET" in env else None
    changes: dict[str, object] = {}
    for var, name in FIELD_VARS.items():
        if var in env:
            changes[name] = _PARSERS[name](var, env[var])
    return start, changes


def _format(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def policy_to_env(policy: Policy) -> dict[str, str]:
    """Return the variables that :func:`policy_kwargs_from_env` turns back into *policy*."""
    out: dict[str, str] = {}
    for var, name in FIELD_VARS.items():
        value = getattr(policy, name)
        if name == "user_timeout" and policy.user_timeout_derived:
            out[var] = "auto"
        else:
            out[var] = _format(value)
    return out
