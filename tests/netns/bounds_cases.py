"""The bounds sockwise states, as measurable cases: what test_bounds.py measures and the docs show.

Each :class:`Case` names a policy (through the ``SOCKWISE_*`` variables a deployment would set,
applied by plain ``sockwise.harden()``), a situation, and the bound the policy states for it,
computed from the policy itself (:meth:`sockwise.Policy.connect_bound`,
:attr:`~sockwise.Policy.dead_peer_bound`, ``user_timeout``, ``accepted_user_timeout``). The
measurements are saved in ``docs/_data/bounds.json``, from which the docs render their table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sockwise import Policy

DATA = Path(__file__).resolve().parents[2] / "docs" / "_data" / "bounds.json"
#: Regenerate DATA: ``SOCKWISE_UPDATE_BOUNDS=1 pytest tests/netns/test_bounds.py``.
UPDATE_VAR = "SOCKWISE_UPDATE_BOUNDS"
#: How long the surviving slow reader pauses, in multiples of the server's user timeout.
PAUSE_FACTOR = 3.0

# Small enough to watch, large enough that 10 % of the bound absorbs a loaded machine.
FAST = {"SOCKWISE_KEEPALIVE_IDLE": "6", "SOCKWISE_KEEPALIVE_INTERVAL": "2"}
FAST.update({"SOCKWISE_KEEPALIVE_COUNT": "2"})  # user_timeout auto: 6 + 2 x 2 = 10 s
TINY = {"SOCKWISE_KEEPALIVE_IDLE": "3", "SOCKWISE_KEEPALIVE_INTERVAL": "1"}
TINY.update({"SOCKWISE_KEEPALIVE_COUNT": "2"})  # user_timeout auto: 3 + 1 x 2 = 5 s


def tolerance(bound: float) -> float:
    """The project's tolerance for a measured bound: max(0.5 s, 10 %)."""
    return max(0.5, 0.1 * bound)


@dataclass(frozen=True)
class Case:
    """One bound to measure.

    Attributes:
        name: A stable identifier (the test id and the JSON key).
        situation: What happens, in the docs' words.
        label: How the docs name the policy.
        mode: The :mod:`bounds_probe` mode.
        fault: ``"blackhole-first"`` (SYNs dropped), ``"blackhole-later"`` (an established
            connection's peer vanishes) or ``"live"`` (a peer that is up but stops reading).
        env: The ``SOCKWISE_*`` variables of the hardened process.
        app_timeout: The application's own socket timeout, if any.

    """

    name: str
    situation: str
    label: str
    mode: str
    fault: str
    env: dict[str, str] = field(default_factory=dict)
    app_timeout: float | None = None

    def policy(self) -> Policy:
        """The policy the hardened process runs with."""
        return Policy.from_env(self.env)

    def stated(self) -> float | None:
        """The bound the policy states for this situation (``None``: it must survive)."""
        policy = self.policy()
        if self.mode == "connect":
            return policy.connect_bound(self.app_timeout)
        if self.mode == "idle":
            return policy.dead_peer_bound
        if self.mode == "connect-async":  # non-blocking: TCP_USER_TIMEOUT bounds the SYN
            return _positive(policy.user_timeout)
        return policy.unacked_data_bound(accepted=self.mode == "serve-slow-reader")

    def pause(self) -> float:
        """How long the slow reader pauses (serve-slow-reader): well past the user timeout."""
        timeout = self.policy().user_timeout
        assert isinstance(timeout, (int, float))
        return PAUSE_FACTOR * timeout


def _positive(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _preset(name: str, **extra: str) -> dict[str, str]:
    return {"SOCKWISE_PRESET": name, **extra}


CASES: tuple[Case, ...] = (
    # -- connect to an address that drops SYNs ----------------------------------------------------
    Case("connect-default", "connect, no timeout of its own", "Policy()", "connect",
         "blackhole-first", _preset("default")),
    Case("connect-interactive", "connect, no timeout of its own", "Policy.interactive()",
         "connect", "blackhole-first", _preset("interactive")),
    Case("connect-behind-nat-350", "connect, no timeout of its own", "Policy.behind_nat(350)",
         "connect", "blackhole-first", _preset("nat:350")),
    Case("connect-aws-nlb", "connect, no timeout of its own", "Policy.aws_nlb()", "connect",
         "blackhole-first", _preset("aws-nlb")),
    Case("connect-azure-lb", "connect, no timeout of its own", "Policy.azure_lb()", "connect",
         "blackhole-first", _preset("azure-lb")),
    Case("connect-default-app-2", "connect, application timeout 2 s (shorter)", "Policy()",
         "connect", "blackhole-first", _preset("default"), app_timeout=2.0),
    Case("connect-default-app-13", "connect, application timeout 13 s (longer)", "Policy()",
         "connect", "blackhole-first", _preset("default"), app_timeout=13.0),
    Case("connect-interactive-app-1.5", "connect, application timeout 1.5 s (shorter)",
         "Policy.interactive()", "connect", "blackhole-first", _preset("interactive"),
         app_timeout=1.5),
    Case("connect-interactive-app-9", "connect, application timeout 9 s (longer)",
         "Policy.interactive()", "connect", "blackhole-first", _preset("interactive"),
         app_timeout=9.0),
    Case("connect-async-interactive", "asyncio connect (non-blocking), no timeout",
         "Policy.interactive()", "connect-async", "blackhole-first", _preset("interactive")),
    # -- an established connection's peer vanishes ------------------------------------------------
    Case("dead-idle-interactive", "idle connection, peer vanishes", "Policy.interactive()",
         "idle", "blackhole-later", _preset("interactive")),
    Case("dead-idle-6-2-2", "idle connection, peer vanishes", "keepalive 6/2/2", "idle",
         "blackhole-later", dict(FAST)),
    Case("dead-inflight-6-2-2", "data in flight, peer vanishes", "keepalive 6/2/2", "inflight",
         "blackhole-later", dict(FAST)),
    Case("dead-inflight-interactive", "data in flight, peer vanishes", "Policy.interactive()",
         "inflight", "blackhole-later", _preset("interactive")),
    # -- a live peer that stops reading (zero window) ---------------------------------------------
    Case("stuck-reader-client", "client sending to a server that stops reading",
         "keepalive 3/1/2", "stuck-reader", "live", dict(TINY)),
    Case("slow-reader-server-default", "server streaming to a client that pauses reading",
         "keepalive 3/1/2", "serve-slow-reader", "live", dict(TINY)),
    Case("slow-reader-server-same", "server streaming to a client that pauses reading",
         "keepalive 3/1/2, accepted_user_timeout='same'", "serve-slow-reader", "live",
         {**TINY, "SOCKWISE_ACCEPTED_USER_TIMEOUT": "same"}),
)  # fmt: skip

BY_NAME = {case.name: case for case in CASES}


def row(case: Case, measured: dict[str, Any]) -> dict[str, Any]:
    """The saved record of one measurement (a row of the docs' table)."""
    stated = case.stated()
    error = measured.get("error")
    if error is None:
        outcome = "survived" if case.mode == "serve-slow-reader" else "succeeded"
    elif measured.get("errno") == 110:
        outcome = "ETIMEDOUT from the kernel"
    elif measured.get("errno") is None and "TimeoutError" in str(error):
        outcome = "socket timeout"
    else:
        outcome = str(error)
    return {
        "case": case.name,
        "situation": case.situation,
        "policy": case.label,
        "stated_s": stated,
        "measured_s": round(float(measured["elapsed"]), 2),
        "outcome": outcome,
    }


def load(path: Path = DATA) -> dict[str, Any]:
    """The saved measurements."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def within(stated: float, measured: float) -> bool:
    """Whether *measured* is *stated* within the tolerance."""
    return math.isclose(measured, stated, abs_tol=tolerance(stated), rel_tol=0.0)
