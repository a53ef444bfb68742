"""Policy construction: validation messages, presets, replace() and dead_peer_bound."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from sockwise import MIDDLEBOX_IDLE_TIMEOUTS, Policy


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("keepalive_idle", 0, "Policy.keepalive_idle=0 is out of range: allowed 1..32767 seconds"),
        ("keepalive_idle", 32768, "Policy.keepalive_idle=32768 is out of range: allowed 1..32767"),
        (
            "keepalive_interval",
            -5,
            "Policy.keepalive_interval=-5 is out of range: allowed 1..32767",
        ),
        (
            "keepalive_count",
            128,
            "Policy.keepalive_count=128 is out of range: allowed 1..127 probes",
        ),
        ("keepalive_count", 0, "Policy.keepalive_count=0 is out of range: allowed 1..127 probes"),
        ("backlog", 0, "Policy.backlog=0 is out of range: allowed 1..2147483647"),
        ("connect_timeout", -0.5, "Policy.connect_timeout=-0.5 is out of range"),
        ("connect_timeout", math.inf, "Policy.connect_timeout=inf is out of range"),
        ("connect_timeout", math.nan, "Policy.connect_timeout=nan is out of range"),
        ("user_timeout", -1, "Policy.user_timeout=-1 is out of range: allowed 0 <= user_timeout"),
        ("user_timeout", 2_147_484, "Policy.user_timeout=2147484 is out of range"),
        ("user_timeout", "never", "Policy.user_timeout='never' is not allowed: use 'auto'"),
    ],
)
def test_out_of_range_names_field_value_and_range(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Policy(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("keepalive_idle", True),  # a bool is an int to Python, never to sockwise
        ("keepalive_count", False),
        ("backlog", True),
        ("connect_timeout", True),
        ("user_timeout", False),
        ("keepalive_idle", 5.0),  # whole seconds only
        ("keepalive_interval", "10"),
        ("keepalive", 1),  # an int is not a bool
        ("nodelay", "yes"),
        ("connect_timeout", "3"),
        ("backlog", 10.0),
    ],
)
def test_wrong_type_raises_type_error_naming_field(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=rf"Policy\.{field} must be .*got {re.escape(repr(value))}"):
        Policy(**{field: value})


def test_policy_is_frozen_and_hashable() -> None:
    p = Policy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.keepalive_idle = 5  # type: ignore[misc]
    assert hash(p) == hash(Policy())
    assert {p, Policy()} == {p}


def test_user_timeout_auto_is_derived_from_keepalive() -> None:
    p = Policy(keepalive_idle=20, keepalive_interval=4, keepalive_count=5)
    assert p.user_timeout == 40.0
    assert p.user_timeout_derived
    explicit = Policy(user_timeout=12.5)
    assert explicit.user_timeout == 12.5
    assert not explicit.user_timeout_derived
    # Keepalive off or incomplete: nothing to derive from, so no user timeout is set.
    assert Policy(keepalive=False).user_timeout is None
    assert Policy(keepalive_count=None).user_timeout is None


def test_presets() -> None:
    default = Policy.default()
    assert default == Policy()
    assert (default.keepalive_idle, default.keepalive_interval, default.keepalive_count) == (
        60,
        10,
        3,
    )
    assert default.dead_peer_bound == 90.0
    assert default.nodelay is True
    assert default.backlog == 4096
    interactive = Policy.interactive()
    assert interactive.dead_peer_bound == 20.0
    assert interactive.connect_timeout == 3.0
    kernel = Policy.kernel_defaults()
    assert all(getattr(kernel, f) is None for f in Policy.FIELDS)
    assert kernel.dead_peer_bound is None
    assert kernel.socket_options() == []
    assert kernel.libpq_params() == {}


@pytest.mark.parametrize(
    ("preset", "key"), [(Policy.aws_nlb, "aws-nlb"), (Policy.azure_lb, "azure-lb")]
)
def test_middlebox_presets_probe_before_the_flow_is_forgotten(preset, key: str) -> None:
    p = preset()
    assert p == Policy.behind_nat(MIDDLEBOX_IDLE_TIMEOUTS[key])
    assert p.keepalive_idle is not None
    assert p.keepalive_interval is not None
    # The first probe and one retry both arrive before the middlebox forgets the flow.
    assert p.keepalive_idle + p.keepalive_interval < MIDDLEBOX_IDLE_TIMEOUTS[key]


@pytest.mark.parametrize(
    ("idle_timeout", "idle", "interval"),
    [(3, 1, 1), (30, 10, 3), (100, 33, 10), (350, 60, 10), (1200, 60, 10)],
)
def test_behind_nat_numbers(idle_timeout: float, idle: int, interval: int) -> None:
    p = Policy.behind_nat(idle_timeout)
    assert (p.keepalive_idle, p.keepalive_interval, p.keepalive_count) == (idle, interval, 3)


@pytest.mark.parametrize(
    ("value", "exc", "message"),
    [
        (2, ValueError, "idle_timeout=2) is out of range: allowed >= 3 seconds"),
        (math.nan, ValueError, "idle_timeout=nan) is out of range"),
        (True, TypeError, "must be a number of seconds, got True"),
        ("350", TypeError, "must be a number of seconds, got '350'"),
    ],
)
def test_behind_nat_rejects_bad_timeouts(value: object, exc: type[Exception], message: str) -> None:
    with pytest.raises(exc, match=re.escape(message)):
        Policy.behind_nat(value)  # type: ignore[arg-type]


def test_replace_rederives_a_derived_user_timeout() -> None:
    p = Policy()
    q = p.replace(keepalive_idle=30)
    assert q.user_timeout == 60.0
    assert q.user_timeout_derived
    assert p.user_timeout == 90.0  # the original is untouched


def test_replace_keeps_an_explicit_user_timeout() -> None:
    p = Policy(user_timeout=5)
    q = p.replace(keepalive_idle=30, keepalive_count=9)
    assert q.user_timeout == 5
    assert not q.user_timeout_derived
    # Setting it explicitly in replace() wins, and "auto" switches derivation back on.
    assert Policy().replace(keepalive_idle=30, user_timeout=7).user_timeout == 7
    again = q.replace(user_timeout="auto")
    assert again.user_timeout == 30 + 10 * 9
    assert again.user_timeout_derived


def test_replace_validates_and_names_unknown_fields() -> None:
    p = Policy()
    with pytest.raises(TypeError, match=r"unknown field\(s\) \['keepalive_idel'\]"):
        p.replace(keepalive_idel=5)
    with pytest.raises(ValueError, match="keepalive_count=0 is out of range"):
        p.replace(keepalive_count=0)
    assert p == Policy()


@pytest.mark.parametrize(
    ("kwargs", "bound"),
    [
        ({}, 90.0),  # derived: idle + interval * count
        ({"user_timeout": 0}, 90.0),  # TCP_USER_TIMEOUT off: the count decides
        ({"user_timeout": None}, 90.0),  # left to the OS (0): the count decides
        ({"user_timeout": 200}, 200.0),  # larger: the count is ignored, 60 + 14 * 10
        ({"user_timeout": 195}, 200.0),  # between ticks: the next tick
        ({"user_timeout": 75}, 80.0),  # smaller: the first tick past it, not 90
        ({"user_timeout": 5}, 70.0),  # below idle: one probe must be out first
        ({"keepalive": False}, None),
        ({"keepalive": None}, None),
        ({"keepalive_interval": None}, None),
    ],
)
def test_dead_peer_bound(kwargs: dict[str, object], bound: float | None) -> None:
    assert Policy(**kwargs).dead_peer_bound == bound


def test_describe_is_plain_data() -> None:
    d = Policy.interactive().describe()
    assert d["dead_peer_bound"] == 20.0
    assert d["user_timeout_derived"] is True
    assert set(Policy.FIELDS) <= set(d)
    assert "_user_timeout_derived" not in d
