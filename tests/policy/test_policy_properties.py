"""Property tests: validation is all-or-nothing and agrees with an independent reference."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sockwise import Policy

USER_TIMEOUT_MAX = 2_147_483.647

seconds = st.one_of(
    st.integers(min_value=0, max_value=10**7),
    st.floats(min_value=0, max_value=10**7, allow_nan=False, allow_infinity=False),
)

valid_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "keepalive": st.none() | st.booleans(),
        "keepalive_idle": st.none() | st.integers(1, 32767),
        "keepalive_interval": st.none() | st.integers(1, 32767),
        "keepalive_count": st.none() | st.integers(1, 127),
        "user_timeout": st.none()
        | st.just("auto")
        | st.integers(0, 2_147_483)
        | st.floats(0, USER_TIMEOUT_MAX, allow_nan=False),
        "accepted_user_timeout": st.none()
        | st.just("same")
        | st.integers(0, 2_147_483)
        | st.floats(0, USER_TIMEOUT_MAX, allow_nan=False),
        "nodelay": st.none() | st.booleans(),
        "backlog": st.none() | st.integers(1, 2**31 - 1),
        "connect_timeout": st.none() | seconds,
    },
)

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(),  # includes nan and +-inf
    st.text(max_size=5),
    st.just("auto"),
    st.just("same"),
    st.lists(st.integers(), max_size=2),
)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def reference_valid(field: str, v: object) -> bool:
    """An independent statement of what each field accepts."""
    if v is None:
        return True
    if field in ("keepalive", "nodelay"):
        return isinstance(v, bool)
    ranges = {
        "keepalive_idle": (1, 32767),
        "keepalive_interval": (1, 32767),
        "keepalive_count": (1, 127),
        "backlog": (1, 2**31 - 1),
    }
    if field in ranges:
        lo, hi = ranges[field]
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
    if field in ("user_timeout", "accepted_user_timeout"):
        if v == ("auto" if field == "user_timeout" else "same"):
            return True
        return _is_number(v) and math.isfinite(v) and 0 <= v <= USER_TIMEOUT_MAX  # type: ignore[operator, arg-type]
    assert field == "connect_timeout"
    return _is_number(v) and math.isfinite(v) and v >= 0  # type: ignore[operator, arg-type]


@given(valid_kwargs)
def test_valid_policies_round_trip_through_env(kwargs: dict[str, Any]) -> None:
    p = Policy(**kwargs)
    env = p.to_env()
    assert all(k.startswith("SOCKWISE_") for k in env)
    back = Policy.from_env(env)
    assert back == p
    assert back.user_timeout_derived == p.user_timeout_derived
    assert back.dead_peer_bound == p.dead_peer_bound


@settings(max_examples=300)
@given(st.sampled_from(Policy.FIELDS), anything)
def test_construction_accepts_exactly_the_valid_values(field: str, value: object) -> None:
    if not reference_valid(field, value):
        with pytest.raises((TypeError, ValueError), match=field):  # the message names the field
            Policy(**{field: value})
        return
    p = Policy(**{field: value})
    if not (field == "user_timeout" and value == "auto"):
        assert getattr(p, field) == value


@given(valid_kwargs, st.sampled_from(Policy.FIELDS), anything)
@example(  # a derived user_timeout beyond the kernel's INT_MAX ms is capped, not invalid
    {"keepalive_idle": 1, "keepalive_interval": 16910, "keepalive_count": 127},
    "user_timeout",
    "auto",
)
def test_replace_is_all_or_nothing(kwargs: dict[str, Any], field: str, value: object) -> None:
    p = Policy(**kwargs)
    before = p.describe()
    try:
        q = p.replace(**{field: value})
    except (TypeError, ValueError):
        assert not reference_valid(field, value)
    else:
        assert reference_valid(field, value)
        assert all(reference_valid(f, getattr(q, f)) for f in Policy.FIELDS)
    assert p.describe() == before  # the original never changes


@given(valid_kwargs)
def test_dead_peer_bound_is_never_before_the_first_probe(kwargs: dict[str, Any]) -> None:
    p = Policy(**kwargs)
    bound = p.dead_peer_bound
    if bound is None:
        return
    assert p.keepalive_idle is not None and p.keepalive_interval is not None
    assert bound >= p.keepalive_idle + p.keepalive_interval  # at least one probe goes out
    ut = p.user_timeout
    if isinstance(ut, (int, float)) and ut > 0:
        assert bound >= ut  # never declared dead before the user timeout
        assert bound < max(ut, p.keepalive_idle) + p.keepalive_interval + 1e-9


@given(st.floats(min_value=3, max_value=10**6, allow_nan=False))
def test_behind_nat_always_probes_in_time(idle_timeout: float) -> None:
    p = Policy.behind_nat(idle_timeout)
    assert p.keepalive_idle is not None and p.keepalive_interval is not None
    assert p.keepalive_idle + p.keepalive_interval < idle_timeout
