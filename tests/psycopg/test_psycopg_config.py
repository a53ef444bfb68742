"""sockwise.psycopg without a server: arguments, warnings, errors, repr, defaults."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import psycopg
import psycopg_pool
import pytest

import sockwise
from sockwise._errors import ConfigurationWarning, SockwiseError
from sockwise.psycopg import (
    DEFAULT_MAX_IDLE,
    DEFAULT_MAX_LIFETIME,
    MIDDLEBOX_MIN,
    AsyncConnectionPool,
    ConnectionPool,
    PoolTimeout,
)
from sockwise.psycopg._common import incoherences, merged_conninfo

DSN = "host=127.0.0.1 port=1 user=postgres dbname=postgres"


def test_defaults_are_below_the_strictest_middlebox() -> None:
    """The default max_idle sits below every known middlebox idle timeout."""
    assert DEFAULT_MAX_IDLE < min(sockwise.MIDDLEBOX_IDLE_TIMEOUTS.values()) == MIDDLEBOX_MIN
    assert DEFAULT_MAX_IDLE < DEFAULT_MAX_LIFETIME
    pool: ConnectionPool = ConnectionPool(DSN, open=False)
    assert (pool.max_idle, pool.max_lifetime) == (DEFAULT_MAX_IDLE, DEFAULT_MAX_LIFETIME)
    assert pool.policy == sockwise.Policy()


def test_subclasses_psycopg_pool() -> None:
    """The pools are psycopg_pool's pools, so isinstance checks keep working."""
    assert issubclass(ConnectionPool, psycopg_pool.ConnectionPool)
    assert issubclass(AsyncConnectionPool, psycopg_pool.AsyncConnectionPool)
    assert ConnectionPool.__module__ == AsyncConnectionPool.__module__ == "sockwise.psycopg"


def test_merged_conninfo_caller_wins() -> None:
    """Policy keywords fill in; keywords already in the conninfo string are kept."""
    params = sockwise.Policy().libpq_params()
    merged = psycopg.conninfo.conninfo_to_dict(
        merged_conninfo("host=h keepalives_idle=7 connect_timeout=3", params)
    )
    assert merged["keepalives_idle"] == "7"
    assert merged["connect_timeout"] == "3"
    assert merged["tcp_user_timeout"] == str(params["tcp_user_timeout"])
    assert merged["keepalives_count"] == str(params["keepalives_count"])
    uri = merged_conninfo("postgresql://u@h:5/db?keepalives=0", params)
    assert psycopg.conninfo.conninfo_to_dict(uri)["keepalives"] == "0"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"policy": "fast"}, "policy must be a sockwise.Policy or None, got 'fast'"),
        ({"max_idle": -1}, r"max_idle=-1 is out of range: allowed > 0 seconds"),
        ({"max_lifetime": "1h"}, "max_lifetime must be a number of seconds, got '1h'"),
        ({"check": "always"}, "check must be 'auto', None or a callable, got 'always'"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], match: str) -> None:
    """A bad argument raises an error naming the parameter and the value."""
    with pytest.raises((TypeError, ValueError), match=match):
        ConnectionPool(DSN, open=False, **kwargs)  # type: ignore[arg-type]


def test_malformed_conninfo_fails_at_construction() -> None:
    """A malformed conninfo string fails at once, not in every background reconnect."""
    with pytest.raises(psycopg.ProgrammingError):
        ConnectionPool("host=h = =", open=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"max_idle": 300, "policy": sockwise.Policy(keepalive=False)},
            r"max_idle=300 s is at or above the 240 s idle timeout of azure-lb",
        ),
        ({"max_idle": 100, "max_lifetime": 100}, r"max_idle=100 s can never act"),
        ({"max_idle": 2, "min_size": 4}, r"replaces its idle connections every few seconds"),
        (
            {"timeout": 60, "policy": sockwise.Policy.interactive()},
            r"timeout=60 s \(checkout\) is longer than the policy's dead_peer_bound=20 s",
        ),
        ({"max_idle": 2000}, r"max_idle=2000 s can never act: max_lifetime=1800 s"),
    ],
)
def test_incoherent_settings_warn_once(kwargs: dict[str, object], match: str) -> None:
    """Each incoherent combination gives one ConfigurationWarning, at construction."""
    with pytest.warns(ConfigurationWarning, match=match) as record:
        pool = ConnectionPool(DSN, open=False, name="cfg", **kwargs)  # type: ignore[arg-type]
    assert len(record) == 1
    assert "pool 'cfg'" in str(record[0].message)
    assert record[0].filename == __file__  # points at the caller's line
    assert len(incoherences(pool)) == 1


def test_coherent_defaults_do_not_warn() -> None:
    """The defaults (and psycopg_pool's max_idle with keepalive on) warn about nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConnectionPool(DSN, open=False)
        ConnectionPool(DSN, open=False, max_idle=600, max_lifetime=3600)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_lifetime": 120},  # the default max_idle=180 is not the caller's: no warning
        {"max_lifetime": 60, "max_idle": DEFAULT_MAX_IDLE},  # nor is the default constant
        {"reconnect_timeout": 2},  # the first reconnection attempt always runs to its end
        {"reconnect_timeout": 1, "policy": sockwise.Policy(connect_timeout=10)},
        {"policy": sockwise.Policy.interactive()},  # psycopg_pool's default timeout=30
        {"policy": sockwise.Policy(keepalive=False)},  # the default max_idle is below 240 s
        {"min_size": 20},
    ],
)
def test_no_warning_about_settings_the_caller_did_not_make(kwargs: dict[str, object]) -> None:
    """Defaults are never judged against each other, only what the caller set."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sync = ConnectionPool(DSN, open=False, **kwargs)  # type: ignore[arg-type]
        aio = AsyncConnectionPool(DSN, open=False, **kwargs)  # type: ignore[arg-type]
    assert sync.max_lifetime == kwargs.get("max_lifetime", DEFAULT_MAX_LIFETIME)
    assert type(sync.max_idle) is float and type(aio.timeout) is float  # plain numbers inside


def test_ordinary_pools_construct_under_w_error() -> None:
    """``python -W error``: ordinary pools (sync, async, harden()) construct without a warning."""
    code = (
        "import asyncio, sockwise\n"
        "from sockwise.psycopg import AsyncConnectionPool, ConnectionPool\n"
        f"dsn = {DSN!r}\n"
        "for kw in ({}, {'max_lifetime': 120}, {'timeout': 5}, {'max_idle': 60},\n"
        "           {'policy': sockwise.Policy.interactive()}, {'reconnect_timeout': 1}):\n"
        "    ConnectionPool(dsn, open=False, **kw)\n"
        "    AsyncConnectionPool(dsn, open=False, **kw)\n"
        "sockwise.harden(guard=False)\n"
        "ConnectionPool(dsn, open=False, max_lifetime=120)\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (out.returncode, out.stdout.strip(), out.stderr) == (0, "ok", "")


def test_async_pool_warns_too() -> None:
    """The asyncio pool runs the same construction checks."""
    with pytest.warns(ConfigurationWarning, match="can never act"):
        AsyncConnectionPool(DSN, open=False, max_idle=50, max_lifetime=40)


def test_repr_of_a_pool_not_open() -> None:
    """The repr names the class, the pool and its state."""
    pool: ConnectionPool = ConnectionPool(DSN, open=False, name="reprpool", min_size=2)
    assert repr(pool).startswith("<sockwise.psycopg.ConnectionPool 'reprpool' closed, 0 waiting")
    assert "size 2/2" in repr(pool)


def test_pool_timeout_is_both_kinds_and_pickles() -> None:
    """PoolTimeout is a psycopg_pool.PoolTimeout and a SockwiseError, with its attributes."""
    err = PoolTimeout("x", pool_name="p", timeout=1.5, size=2, max_size=3)
    assert isinstance(err, psycopg_pool.PoolTimeout)
    assert isinstance(err, psycopg.OperationalError)
    assert isinstance(err, SockwiseError)
    back = pickle.loads(pickle.dumps(err))
    assert (back.pool_name, back.timeout, back.size, back.max_size) == ("p", 1.5, 2, 3)
    assert str(back) == "x"


def test_stats_have_the_sockwise_keys_from_the_start() -> None:
    """get_stats() lists the sockwise counters at zero before anything happened."""
    stats = ConnectionPool(DSN, open=False).get_stats()
    for key in ("checkouts_fast", "checkouts_pinged", "connections_dead_poll",
                "connections_expired_idle", "connections_suspect_checked"):  # fmt: skip
        assert stats[key] == 0


def test_missing_extra_is_named() -> None:
    """Without psycopg_pool installed, importing sockwise.psycopg names the extra to install."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['psycopg_pool'] = None\n"
        "try:\n    import sockwise.psycopg\n"
        "except ModuleNotFoundError as e:\n    print(e.name, '|', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("psycopg_pool |")
    assert "pip install sockwise[psycopg]" in out.stdout
