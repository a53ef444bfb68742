"""Policy.from_env / to_env: presets, overrides, and errors naming the variable and value."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator

import pytest

from sockwise import ConfigurationWarning, Policy
from sockwise.policy import ENV_VARS, OTHER_ENV_VARS
from sockwise.policy._env import forget_warnings


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    forget_warnings()
    yield
    forget_warnings()


def test_no_variables_gives_the_default_or_base() -> None:
    assert Policy.from_env({}) == Policy()
    base = Policy.interactive()
    assert Policy.from_env({}, base=base) == base
    assert Policy.from_env({"PATH": "/bin", "SOCKWISE_TEST_DSN": "host=x"}) == Policy()


def test_reads_os_environ_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("SOCKWISE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SOCKWISE_KEEPALIVE_IDLE", "33")
    assert Policy.from_env().keepalive_idle == 33


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SOCKWISE_PRESET": "interactive"}, Policy.interactive()),
        ({"SOCKWISE_PRESET": " Kernel "}, Policy.kernel_defaults()),
        ({"SOCKWISE_PRESET": "aws-nlb"}, Policy.aws_nlb()),
        ({"SOCKWISE_PRESET": "azure-lb"}, Policy.azure_lb()),
        ({"SOCKWISE_PRESET": "nat:30"}, Policy.behind_nat(30)),
        (
            {"SOCKWISE_PRESET": "interactive", "SOCKWISE_KEEPALIVE_COUNT": "4"},
            Policy.interactive().replace(keepalive_count=4),
        ),
        ({"SOCKWISE_KEEPALIVE": "off"}, Policy(keepalive=False)),
        ({"SOCKWISE_NODELAY": "NO"}, Policy(nodelay=False)),
        ({"SOCKWISE_NODELAY": "none"}, Policy(nodelay=None)),
        ({"SOCKWISE_USER_TIMEOUT": "2.5"}, Policy(user_timeout=2.5)),
        ({"SOCKWISE_USER_TIMEOUT": "default"}, Policy(user_timeout=None)),
        ({"SOCKWISE_CONNECT_TIMEOUT": "0"}, Policy(connect_timeout=0.0)),
        ({"SOCKWISE_BACKLOG": " 128 "}, Policy(backlog=128)),
        ({"SOCKWISE_ACCEPTED_USER_TIMEOUT": "same"}, Policy(accepted_user_timeout="same")),
        ({"SOCKWISE_ACCEPTED_USER_TIMEOUT": "30"}, Policy(accepted_user_timeout=30.0)),
        ({"SOCKWISE_ACCEPTED_USER_TIMEOUT": "none"}, Policy(accepted_user_timeout=None)),
    ],
)
def test_presets_and_overrides(env: dict[str, str], expected: Policy) -> None:
    assert Policy.from_env(env) == expected


def test_override_of_keepalive_rederives_auto_user_timeout() -> None:
    p = Policy.from_env({"SOCKWISE_KEEPALIVE_IDLE": "5"})
    assert p.user_timeout == 5 + 10 * 3
    assert p.user_timeout_derived
    pinned = Policy.from_env({"SOCKWISE_KEEPALIVE_IDLE": "5"}, base=Policy(user_timeout=9))
    assert pinned.user_timeout == 9


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SOCKWISE_KEEPALIVE_IDLE": "abc"}, "SOCKWISE_KEEPALIVE_IDLE='abc' is malformed"),
        ({"SOCKWISE_KEEPALIVE_IDLE": "1.5"}, "SOCKWISE_KEEPALIVE_IDLE='1.5' is malformed"),
        ({"SOCKWISE_KEEPALIVE": "maybe"}, "SOCKWISE_KEEPALIVE='maybe' is malformed: expected 1/0"),
        ({"SOCKWISE_USER_TIMEOUT": "inf"}, "SOCKWISE_USER_TIMEOUT='inf' is malformed"),
        ({"SOCKWISE_CONNECT_TIMEOUT": "10s"}, "SOCKWISE_CONNECT_TIMEOUT='10s' is malformed"),
        ({"SOCKWISE_PRESET": "fast"}, "SOCKWISE_PRESET='fast' is malformed: expected one of"),
        ({"SOCKWISE_PRESET": "nat:"}, "SOCKWISE_PRESET='nat:' is malformed"),
        (
            {"SOCKWISE_ACCEPTED_USER_TIMEOUT": "auto"},
            "SOCKWISE_ACCEPTED_USER_TIMEOUT='auto' is malformed: expected a number of seconds, "
            "0 (off), same or none",
        ),
    ],
)
def test_bad_variables_name_variable_and_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Policy.from_env(env)


def test_out_of_range_value_from_env_is_reported_by_validation() -> None:
    with pytest.raises(ValueError, match=r"Policy\.keepalive_count=500 is out of range"):
        Policy.from_env({"SOCKWISE_KEEPALIVE_COUNT": "500"})
    with pytest.raises(ValueError, match=r"idle_timeout=1\.0\) is out of range"):
        Policy.from_env({"SOCKWISE_PRESET": "nat:1"})


def test_to_env_names_every_field_and_marks_auto() -> None:
    env = Policy().to_env()
    assert env["SOCKWISE_USER_TIMEOUT"] == "auto"
    assert env["SOCKWISE_KEEPALIVE"] == "1"
    assert len(env) == len(Policy.FIELDS)
    assert set(Policy.kernel_defaults().to_env().values()) == {"none"}
    assert Policy(user_timeout=0.1).to_env()["SOCKWISE_USER_TIMEOUT"] == "0.1"


def test_unknown_variable_warns_once_with_did_you_mean() -> None:
    """A misspelt name is ignored with one warning naming the closest known name."""
    env = {"SOCKWISE_KEEPALIVE_IDEL": "5", "SOCKWISE_SRC": "/opt/app"}
    with pytest.warns(ConfigurationWarning) as record:
        policy = Policy.from_env(env)
    assert policy == Policy()  # ignored, not applied and not fatal
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    idel, src = messages
    assert "unknown environment variable SOCKWISE_KEEPALIVE_IDEL is ignored" in idel
    assert "Did you mean SOCKWISE_KEEPALIVE_IDLE?" in idel
    assert "Known: SOCKWISE_ACCEPTED_USER_TIMEOUT, SOCKWISE_AUTO" in idel
    assert "SOCKWISE_SRC is ignored. Known:" in src  # nothing close: no suggestion
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Policy.from_env(env) == Policy()  # once per process: no second warning


def test_unknown_variable_never_stops_the_application() -> None:
    """Under -W error the warning is logged instead of raised: harden() still starts."""
    code = (
        "import sockwise; h = sockwise.harden(guard=False); "
        "print(h.policy.keepalive_idle); sockwise.unharden()"
    )
    env = {"SOCKWISE_SRC": "/opt/app", "SOCKWISE_KEEPALIVE_IDLE": "42", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
    assert "unknown environment variable SOCKWISE_SRC is ignored" in done.stderr


def test_known_names_registry() -> None:
    """Names other parts of sockwise read are known, so they never warn."""
    for name in ("SOCKWISE_AUTO", "SOCKWISE_GUARD", "SOCKWISE_TEST_DSN", "SOCKWISE_PRESET"):
        assert name in OTHER_ENV_VARS
    assert set(OTHER_ENV_VARS) <= set(ENV_VARS)
    assert len(set(ENV_VARS)) == len(ENV_VARS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Policy.from_env(dict.fromkeys(OTHER_ENV_VARS[1:], "1")) == Policy()


def test_preset_by_name() -> None:
    assert Policy.preset(" Interactive ") == Policy.interactive()
    assert Policy.preset("nat:30") == Policy.behind_nat(30)
    with pytest.raises(ValueError, match="SOCKWISE_PRESET='fast' is malformed: expected one of"):
        Policy.preset("fast")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_while_the_warning_lock_is_held_does_not_hang_the_child() -> None:
    from sockwise.policy import _env

    with _env._warned_lock:  # another thread of the parent holds it at fork time
        pid = os.fork()
        if pid == 0:  # the child: must not deadlock on the inherited (held) lock
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    Policy.from_env({"SOCKWISE_FORKED": "1"})
            finally:
                os._exit(0)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # bounded: the child exits at once unless it hangs
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child hung on the unknown-variable warning lock")
