"""``sockwise run``: exit status and signals pass through; bad input starts nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from cli_support import RunCli, assert_one_line_error

PRINT_STATE = "import sockwise, sys; print(sockwise.is_hardened(), sys.argv[1:])"


def test_run_hardens_the_command_and_passes_arguments(run_cli: RunCli) -> None:
    result = run_cli("run", "--", sys.executable, "-c", PRINT_STATE, "a", "--b")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True ['a', '--b']"
    assert result.stderr == ""


def test_run_without_double_dash(run_cli: RunCli) -> None:
    result = run_cli("run", sys.executable, "-c", PRINT_STATE, "x")
    assert result.stdout.strip() == "True ['x']"


def test_run_exit_status_passes_through(run_cli: RunCli) -> None:
    for code in (0, 3, 255):
        result = run_cli("run", "--", sys.executable, "-c", f"import sys; sys.exit({code})")
        assert result.returncode == code


def _start(*code: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKWISE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "sockwise", "run", "--", sys.executable, "-c", *code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"


def test_run_sigterm_reaches_the_command() -> None:
    """The command's own handler gets SIGTERM sent to sockwise run's PID; its status is kept."""
    code = textwrap.dedent(
        """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda n, f: (print("got", n, flush=True), sys.exit(7)))
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = _start(code)
    try:
        _ready(proc)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert out.strip() == f"got {int(signal.SIGTERM)}"
        assert proc.returncode == 7
    finally:
        proc.kill()
        proc.communicate()


def test_run_death_by_signal_passes_through() -> None:
    """Killed by SIGTERM (no handler): the parent sees death by signal (a shell's 128+15)."""
    proc = _start("import time; print('ready', flush=True); time.sleep(60)")
    try:
        _ready(proc)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        assert proc.returncode == -signal.SIGTERM
    finally:
        proc.kill()
        proc.communicate()
    shell = subprocess.run(
        ["sh", "-c", f"{sys.executable} -m sockwise run -- sh -c 'kill -TERM $$'; echo $?"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shell.stdout.strip() == "143"


def test_run_bad_input_is_one_line_and_starts_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    cmd = ["--", sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    cases = [
        ((), {"SOCKWISE_KEEPALIVE_IDLE": "abc"}, ("SOCKWISE_KEEPALIVE_IDLE", "'abc'")),
        ((), {"SOCKWISE_KEEPIDLE": "30"}, ("SOCKWISE_KEEPIDLE",)),
        ((), {"SOCKWISE_GUARD": "maybe"}, ("SOCKWISE_GUARD", "'maybe'")),
        ((), {"SOCKWISE_KEEPALIVE_COUNT": "0"}, ("keepalive_count",)),
        (("--policy", "bogus"), {}, ("--policy", "'bogus'", "nat:SECONDS")),
        (("--bogus",), {}, ("--bogus",)),
    ]
    for flags, env, needles in cases:
        result = run_cli("run", *flags, *cmd, env=env)
        assert result.returncode == 2, (flags, env, result.stderr)
        assert_one_line_error(result, "sockwise run: error:", *needles)
        assert not marker.exists()
    result = run_cli("run", "--")
    assert result.returncode == 2
    assert_one_line_error(result, "no command")


def test_run_command_not_found_or_not_executable(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("run", "--", "sockwise-no-such-command")
    assert result.returncode == 127
    assert_one_line_error(result, "command not found: sockwise-no-such-command")
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    result = run_cli("run", "--", str(script))
    assert result.returncode == 126
    assert_one_line_error(result, "cannot execute")


def test_run_help_lists_the_command(run_cli: RunCli) -> None:
    assert "run" in run_cli("--help").stdout
    result = run_cli("run", "--help")
    assert result.returncode == 0
    assert "--no-guard" in result.stdout


def test_run_writes_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    """No temporary directory, no file in the working, home or temp directory."""
    dirs = {name: tmp_path / name for name in ("cwd", "home", "tmp")}
    for d in dirs.values():
        d.mkdir()
    env = {"HOME": str(dirs["home"]), "TMPDIR": str(dirs["tmp"])}
    result = run_cli("run", "--", sys.executable, "-c", PRINT_STATE, env=env, cwd=str(dirs["cwd"]))
    assert result.stdout.strip() == "True []", result.stderr
    assert [p for d in dirs.values() for p in d.iterdir()] == []


def test_run_reaches_python_behind_a_shell(run_cli: RunCli) -> None:
    """A non-Python command passes the environment on: the Python it starts is hardened."""
    script = f"{sys.executable} -c '{PRINT_STATE}' via-sh; exit 5"
    result = run_cli("run", "--", "sh", "-c", script)
    assert result.returncode == 5
    assert result.stdout.strip() == "True ['via-sh']", result.stderr
