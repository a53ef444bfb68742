"""The start-up hook without ``sockwise run``: SOCKWISE_AUTO=1 plus its directory on PYTHONPATH."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from run_support import clean_env

from sockwise import autorun

STATE = (
    "import sys, sockwise; from sockwise.guard import running_guards; "
    "print(sockwise.is_hardened(), len(running_guards()), sockwise.current_policy())"
)


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(env),
        check=False,
    )


def test_autorun_path_command_prints_the_hook_directory() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sockwise.autorun", "--path"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    path = Path(result.stdout.strip())
    assert path == Path(autorun.path())
    assert (path / "sitecustomize.py").is_file()
    assert sorted(p.name for p in path.iterdir() if p.suffix == ".py") == ["sitecustomize.py"]


def test_container_variables_harden_without_sockwise_run() -> None:
    env = {"SOCKWISE_AUTO": "1", "PYTHONPATH": autorun.path(), "SOCKWISE_KEEPALIVE_IDLE": "21"}
    result = _python(STATE, env)
    assert result.returncode == 0, result.stderr
    hardened, guards, policy = result.stdout.split(" ", 2)
    assert (hardened, guards) == ("True", "1")
    assert "keepalive_idle=21" in policy
    assert result.stderr == ""


@pytest.mark.parametrize("value", ["0", "off", ""])
def test_auto_off_leaves_the_process_alone(value: str) -> None:
    env = {"SOCKWISE_AUTO": value, "PYTHONPATH": autorun.path()}
    result = _python("import sys; print('sockwise' in sys.modules)", env)
    assert result.stdout.strip() == "False"  # the hook did not even import sockwise
    result = _python(STATE, env)
    assert result.stdout.split()[:2] == ["False", "0"]


def test_malformed_variable_is_reported_and_the_program_still_runs() -> None:
    env = {"SOCKWISE_AUTO": "1", "PYTHONPATH": autorun.path(), "SOCKWISE_NODELAY": "perhaps"}
    result = _python(STATE, env)
    assert result.returncode == 0
    assert result.stdout.split()[:2] == ["False", "0"]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("sockwise autorun: not hardened:")
    assert "SOCKWISE_NODELAY" in lines[0]


def test_an_existing_sitecustomize_still_runs(tmp_path: Path) -> None:
    """The hook shadows the next sitecustomize on the path and runs it (it comes first)."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nMARK = 'theirs'\nHARDENED_BEFORE = 'sockwise.harden' in sys.modules\n"
    )
    env = {"SOCKWISE_AUTO": "1", "PYTHONPATH": f"{autorun.path()}:{tmp_path}"}
    code = (
        "import sitecustomize as s, sockwise; "
        "print(s.MARK, s.HARDENED_BEFORE, sockwise.is_hardened())"
    )
    result = _python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["theirs", "False", "True"]


def test_a_failing_sitecustomize_does_not_stop_hardening(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("raise RuntimeError('theirs is broken')\n")
    env = {"SOCKWISE_AUTO": "1", "PYTHONPATH": f"{autorun.path()}:{tmp_path}"}
    result = _python(STATE, env)
    assert result.returncode == 0
    assert result.stdout.split()[:2] == ["True", "1"]
    assert "theirs is broken" in result.stderr  # reported by site.py as before


def test_child_environ_puts_the_hook_first_once() -> None:
    env = autorun.child_environ({"PYTHONPATH": "/a:/b"}, preset="interactive", guard=False)
    assert env["PYTHONPATH"] == f"{autorun.path()}:/a:/b"
    assert (env["SOCKWISE_AUTO"], env["SOCKWISE_PRESET"], env["SOCKWISE_GUARD"]) == (
        "1",
        "interactive",
        "0",
    )
    again = autorun.child_environ(env)
    assert again["PYTHONPATH"] == env["PYTHONPATH"]
    assert autorun.active(again)
    assert not autorun.active({**again, "SOCKWISE_AUTO": "0"})
    assert not autorun.active({"SOCKWISE_AUTO": "1"})
    with pytest.raises(ValueError, match="SOCKWISE_PRESET"):
        autorun.child_environ({}, preset="nope")
