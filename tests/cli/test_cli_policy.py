"""``sockwise`` (no command), ``sockwise policy`` and generic options, end to end."""

from __future__ import annotations

import json

from cli_support import RunCli, assert_one_line_error

from sockwise import Policy


def test_no_command_shows_policy_and_next_steps(run_cli: RunCli) -> None:
    """Without a command the effective policy, its dead-peer bound and a hint are printed."""
    result = run_cli()
    assert result.returncode == 0, result.stderr
    assert "keepalive_idle" in result.stdout
    assert "dead within 90 s" in result.stdout
    assert "sockwise doctor" in result.stdout
    assert "sockwise bench --quick" in result.stdout


def test_no_command_honours_environment(run_cli: RunCli) -> None:
    """SOCKWISE_* variables change the policy shown."""
    result = run_cli(env={"SOCKWISE_PRESET": "interactive"})
    assert result.returncode == 0, result.stderr
    assert "dead within 20 s" in result.stdout


def test_policy_json_matches_the_library(run_cli: RunCli) -> None:
    """``policy --json`` is Policy.from_env().describe() plus the env round trip."""
    result = run_cli("policy", "--json", env={"SOCKWISE_KEEPALIVE_IDLE": "30"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    expected = Policy(keepalive_idle=30).describe()
    assert {k: data[k] for k in expected} == expected
    assert data["env"]["SOCKWISE_KEEPALIVE_IDLE"] == "30"
    assert data["dead_peer_bound"] == 60.0


def test_policy_preset(run_cli: RunCli) -> None:
    """``--preset kernel`` shows a policy that leaves everything to the OS, without a bound."""
    result = run_cli("policy", "--preset", "kernel")
    assert result.returncode == 0, result.stderr
    assert "OS default" in result.stdout
    assert "no bound" in result.stdout
    nat = json.loads(run_cli("policy", "--json", "--preset", "nat:30").stdout)
    assert nat["keepalive_idle"] == 10


def test_policy_unknown_preset_is_one_line_error(run_cli: RunCli) -> None:
    """An unknown preset names the option, the value and the allowed names."""
    result = run_cli("policy", "--preset", "bogus")
    assert result.returncode == 1
    assert_one_line_error(result, "sockwise policy: error:", "--preset", "'bogus'", "interactive")


def test_policy_malformed_environment_is_one_line_error(run_cli: RunCli) -> None:
    """A malformed SOCKWISE_* variable is reported by name, without a traceback."""
    result = run_cli("policy", env={"SOCKWISE_KEEPALIVE_IDLE": "soon"})
    assert result.returncode == 1
    assert_one_line_error(result, "SOCKWISE_KEEPALIVE_IDLE", "'soon'")
    out_of_range = run_cli(env={"SOCKWISE_KEEPALIVE_COUNT": "500"})
    assert out_of_range.returncode == 1
    assert_one_line_error(out_of_range, "keepalive_count", "1..127")


def test_policy_bad_flag_is_usage_error(run_cli: RunCli) -> None:
    """An unknown flag exits with status 2 and argparse's usage message."""
    result = run_cli("policy", "--frobnicate")
    assert result.returncode == 2
    assert "unrecognized arguments: --frobnicate" in result.stderr
    assert "Traceback" not in result.stderr


def test_policy_unknown_command_and_version(run_cli: RunCli) -> None:
    """An unknown command is a usage error; ``--version`` prints the version."""
    bad = run_cli("frobnicate")
    assert bad.returncode == 2
    assert "invalid choice" in bad.stderr
    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("sockwise ")


def test_policy_console_script_help(run_cli: RunCli) -> None:
    """``--help`` lists every command."""
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("policy", "doctor", "inspect", "bench"):
        assert command in result.stdout
