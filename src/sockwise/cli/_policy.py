"""``sockwise`` (no command) and ``sockwise policy``: the policy in force, in plain words."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Final

from sockwise.cli._render import dump_json, seconds, table
from sockwise.policy import Policy

#: ``--preset`` names: the same names ``SOCKWISE_PRESET`` takes (``nat:SECONDS`` too).
PRESETS: Final[dict[str, Callable[[], Policy]]] = {
    "default": Policy.default,
    "interactive": Policy.interactive,
    "kernel": Policy.kernel_defaults,
    "aws-nlb": Policy.aws_nlb,
    "azure-lb": Policy.azure_lb,
}

_MEANING: Final[dict[str, str]] = {
    "keepalive": "SO_KEEPALIVE: probe idle connections",
    "keepalive_idle": "seconds of silence before the first probe",
    "keepalive_interval": "seconds between probes",
    "keepalive_count": "unanswered probes before the peer is declared dead",
    "user_timeout": "TCP_USER_TIMEOUT: max seconds sent data may stay unacknowledged",
    "accepted_user_timeout": "TCP_USER_TIMEOUT of accepted sockets (slow readers); same: as above",
    "nodelay": "TCP_NODELAY: send small writes at once (no Nagle delay)",
    "backlog": "accept queue for listen() calls that name none",
    "connect_timeout": "seconds allowed to establish a connection",
}


class PolicyError(Exception):
    """A policy could not be built from the environment or the ``--preset`` value."""


def load_policy(preset: str | None = None) -> tuple[Policy, str]:
    """The effective policy and where it came from.

    Raises:
        PolicyError: A malformed ``SOCKWISE_*`` variable or an unknown preset.

    """
    if preset is not None:
        try:
            return Policy.preset(preset), f"--preset {preset}"
        except ValueError as exc:
            raise PolicyError(
                str(exc).replace("environment variable SOCKWISE_PRESET", "--preset")
            ) from None
    try:
        return Policy.from_env(), "SOCKWISE_* environment variables and defaults"
    except (TypeError, ValueError) as exc:
        raise PolicyError(str(exc)) from None


def _value(policy: Policy, name: str) -> str:
    value = getattr(policy, name)
    if value is None:
        return "OS default"
    if name == "user_timeout" and policy.user_timeout_derived:
        return f"{value:g} (auto)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render_policy(policy: Policy, origin: str) -> str:
    """The policy as a table of fields with their meaning, and its dead-peer bound."""
    rows = [(name, _value(policy, name), _MEANING[name]) for name in Policy.FIELDS]
    bound = policy.dead_peer_bound
    verdict = (
        f"a silent peer is declared dead within {seconds(bound)}"
        if bound is not None
        else "no bound: the kernel default is 7200 + 9 x 75 s = 2 h 11 min (keepalive unset)"
    )
    return "\n".join(
        [
            f"sockwise policy (from {origin})",
            table(("setting", "value", "meaning"), rows),
            "",
            f"  dead_peer_bound: {verdict}",
        ]
    )


def cmd_policy(args: argparse.Namespace) -> int:
    """``sockwise policy [--json] [--preset NAME]``."""
    policy, origin = load_policy(args.preset)
    if args.json:
        dump_json({"source": origin, **policy.describe(), "env": policy.to_env()}, sys.stdout)
    else:
        print(render_policy(policy, origin))
    return 0


def cmd_default(args: argparse.Namespace) -> int:
    """``sockwise`` with no command: the effective policy and what to run next."""
    policy, origin = load_policy(None)
    print(render_policy(policy, origin))
    print()
    print("  next: `sockwise doctor` checks this machine's kernel TCP settings;")
    print("        `sockwise bench --quick` measures what the policy changes (about a minute);")
    print("        `sockwise inspect PID` shows a process's sockets.  `sockwise --help` for more.")
    return 0
