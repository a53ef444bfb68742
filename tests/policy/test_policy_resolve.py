"""resolve_policy(): what a pool or client without a policy= argument uses."""

from __future__ import annotations

import pytest

import sockwise
from sockwise.policy import resolve_policy


@pytest.fixture(autouse=True)
def _unhardened():
    sockwise.unharden()
    yield
    sockwise.unharden()


def test_explicit_policy_is_used_as_is():
    """A Policy passed explicitly is returned unchanged."""
    p = sockwise.Policy(keepalive_idle=7)
    assert resolve_policy(p) is p


def test_none_reads_the_environment(monkeypatch):
    """Not hardened: None means Policy.from_env()."""
    monkeypatch.setenv("SOCKWISE_KEEPALIVE_IDLE", "33")
    assert resolve_policy(None).keepalive_idle == 33
    monkeypatch.setenv("SOCKWISE_KEEPALIVE_IDLE", "zero")
    with pytest.raises(ValueError, match="SOCKWISE_KEEPALIVE_IDLE='zero'"):
        resolve_policy(None)


def test_none_follows_harden(monkeypatch):
    """Hardened: None means the policy harden() put in force, not the environment."""
    monkeypatch.setenv("SOCKWISE_KEEPALIVE_IDLE", "33")
    hardened = sockwise.Policy.interactive()
    with sockwise.harden(hardened, guard=False):
        assert resolve_policy(None) is hardened
    assert resolve_policy(None).keepalive_idle == 33


def test_wrong_type_names_the_parameter():
    """Anything else is a TypeError naming the parameter and the value."""
    with pytest.raises(TypeError, match=r"pool\(policy=\) must be a sockwise.Policy or None"):
        resolve_policy({"keepalive_idle": 5}, "pool(policy=)")


def test_pools_without_a_policy_follow_harden():
    """sockwise's urllib3 and psycopg pools built under harden(p) use p."""
    from sockwise.psycopg import ConnectionPool
    from sockwise.urllib3 import PoolManager

    hardened = sockwise.Policy.behind_nat(240)
    with sockwise.harden(hardened, guard=False):
        with PoolManager() as pm:
            assert pm.policy is hardened
        pool = ConnectionPool("host=127.0.0.1 port=1", open=False)
        try:
            assert pool.policy is hardened
        finally:
            pool.close()
