"""``sockwise doctor`` end to end, on the real /proc and on fake proc roots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli_support import RunCli

SETTINGS = {
    "sys/net/ipv4/tcp_keepalive_time": "7200",
    "sys/net/ipv4/tcp_keepalive_intvl": "75",
    "sys/net/ipv4/tcp_keepalive_probes": "9",
    "sys/net/ipv4/tcp_retries2": "15",
    "sys/net/core/somaxconn": "4096",
    "sys/net/ipv4/tcp_max_syn_backlog": "2048",
    "sys/net/ipv4/tcp_syncookies": "1",
    "sys/net/ipv4/ip_local_port_range": "32768\t60999",
    "sys/net/ipv4/tcp_tw_reuse": "2",
    "sys/net/ipv4/tcp_fin_timeout": "60",
    "net/netstat": "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n"
    "TcpExt: 0 0 0\nIpExt: InNoRoutes\nIpExt: 0\n",
}

EXPECTED_NAMES = {
    "sockwise policy",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_retries2",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_fin_timeout",
    "clients with C sockets",
}
CLIENTS = "clients with C sockets"


def make_proc(root: Path, **overrides: str | None) -> Path:
    """Write a fake proc tree; an override of None leaves that file out."""
    files = {**SETTINGS, **{k.replace("__", "/"): v for k, v in overrides.items()}}
    for rel, text in files.items():
        if text is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def checks(stdout: str) -> dict[str, dict[str, str]]:
    data = json.loads(stdout)
    return {c["name"]: c for c in data["checks"]}


def test_doctor_real_proc_json(run_cli: RunCli) -> None:
    """On the real /proc every check has a value, an allowed verdict and a meaning."""
    result = run_cli("doctor", "--json")
    assert result.returncode == 0, result.stderr
    found = checks(result.stdout)
    assert set(found) == EXPECTED_NAMES
    for check in found.values():
        assert check["verdict"] in {"ok", "warn", "info"}, check
        assert check["value"] is not None
        assert check["meaning"]
    with open("/proc/sys/net/core/somaxconn") as f:
        assert found["net.core.somaxconn"]["value"] == f.read().strip()


def test_doctor_text_table(run_cli: RunCli) -> None:
    """The text report has a verdict per line, meanings and a summary, and changes nothing."""
    before = Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text()
    result = run_cli("doctor")
    assert result.returncode == 0, result.stderr
    assert "nothing changed" in result.stdout
    assert "net.ipv4.tcp_keepalive_time = " in result.stdout
    assert " ok" in result.stdout.splitlines()[-1] or "ok," in result.stdout.splitlines()[-1]
    assert Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text() == before


def test_doctor_fake_root_verdicts(run_cli: RunCli, tmp_path: Path) -> None:
    """Bad settings give warnings with the fixing command; good ones are ok."""
    root = make_proc(
        tmp_path,
        sys__net__core__somaxconn="128",
        sys__net__ipv4__tcp_tw_reuse="0",
        sys__net__ipv4__tcp_syncookies="0",
        sys__net__ipv4__ip_local_port_range="60000 60999",
        net__netstat="TcpExt: ListenOverflows ListenDrops\nTcpExt: 17 19\n",
    )
    result = run_cli("doctor", "--json", "--proc-root", str(root))
    assert result.returncode == 0, result.stderr
    found = checks(result.stdout)
    assert found["net.core.somaxconn"]["verdict"] == "warn"
    assert found["net.core.somaxconn"]["fix"].startswith("sysctl -w net.core.somaxconn=4096")
    assert found["net.ipv4.tcp_tw_reuse"]["verdict"] == "warn"
    assert found["net.ipv4.tcp_syncookies"]["verdict"] == "warn"
    assert found["net.ipv4.ip_local_port_range"]["verdict"] == "warn"
    assert "1000 ephemeral ports" in found["net.ipv4.ip_local_port_range"]["meaning"]
    assert found["TcpExt.ListenOverflows"] == {**found["TcpExt.ListenOverflows"], "value": "17"}
    assert found["TcpExt.ListenOverflows"]["verdict"] == "warn"
    assert found["net.ipv4.tcp_fin_timeout"]["verdict"] == "ok"


def test_doctor_kernel_keepalive_warns_without_policy(run_cli: RunCli, tmp_path: Path) -> None:
    """With the kernel preset, the 2-hour keepalive is a warning (nothing covers it)."""
    root = make_proc(tmp_path)
    result = run_cli(
        "doctor", "--json", env={"SOCKWISE_PROC_ROOT": str(root), "SOCKWISE_PRESET": "kernel"}
    )
    assert result.returncode == 0, result.stderr
    found = checks(result.stdout)
    assert found["net.ipv4.tcp_keepalive_time"]["verdict"] == "warn"
    assert found["sockwise policy"]["verdict"] == "warn"
    assert found["net.ipv4.tcp_retries2"]["verdict"] == "warn"


def test_doctor_malformed_proc_gives_unknown(run_cli: RunCli, tmp_path: Path) -> None:
    """Malformed, missing and unreadable files give the verdict unknown, never a traceback."""
    root = make_proc(
        tmp_path,
        sys__net__core__somaxconn="lots",
        sys__net__ipv4__ip_local_port_range="32768",
        net__netstat="garbage\n\x00\x01",
        sys__net__ipv4__tcp_retries2=None,
    )
    unreadable = root / "sys/net/ipv4/tcp_keepalive_time"
    unreadable.unlink()
    unreadable.mkdir()  # reading a directory fails with EISDIR, like a permission error would
    result = run_cli("doctor", "--json", env={"SOCKWISE_PROC_ROOT": str(root)})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    found = checks(result.stdout)
    unknown = {name for name, c in found.items() if c["verdict"] == "unknown"}
    assert unknown == {
        "net.ipv4.tcp_keepalive_*",
        "net.ipv4.tcp_retries2",
        "net.core.somaxconn and SYN queue",
        "TcpExt counters",
        "ephemeral ports",
    }
    assert "'lots'" in found["net.core.somaxconn and SYN queue"]["meaning"]
    assert "tcp_retries2" in found["net.ipv4.tcp_retries2"]["meaning"]
    text = run_cli("doctor", "--proc-root", str(root))
    assert text.returncode == 0
    assert "unknown" in text.stdout
    assert "Traceback" not in text.stderr


DROP_PRIVILEGES = """
import os, sys
import sockwise.cli._app, sockwise.cli._bench, sockwise.cli._doctor, sockwise.cli._inspect
import sockwise.cli._policy
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
sys.exit(sockwise.cli.main(sys.argv[1:]))
"""


def test_doctor_permission_denied(tmp_path: Path) -> None:
    """Files the user may not read give unknown with the reason (run as nobody when root)."""
    root = make_proc(tmp_path)
    (root / "sys/net/core/somaxconn").chmod(0)
    (root / "sys").chmod(0o700)
    result = subprocess.run(
        [sys.executable, "-c", DROP_PRIVILEGES, "doctor", "--json", "--proc-root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = checks(result.stdout)
    meaning = found["net.core.somaxconn and SYN queue"]["meaning"]
    assert "Permission denied" in meaning
    assert found["net.core.somaxconn and SYN queue"]["verdict"] == "unknown"


def test_doctor_missing_proc_root(run_cli: RunCli, tmp_path: Path) -> None:
    """A proc root that does not exist makes every kernel check unknown."""
    result = run_cli("doctor", "--json", "--proc-root", str(tmp_path / "nope"))
    assert result.returncode == 0
    found = checks(result.stdout)
    kernel = {n: c for n, c in found.items() if n not in ("sockwise policy", CLIENTS)}
    assert [c["verdict"] for c in kernel.values()] == ["unknown"] * 5


def test_doctor_bad_environment_is_reported_not_raised(run_cli: RunCli, tmp_path: Path) -> None:
    """A malformed SOCKWISE_* variable is one warning line, the kernel checks still run."""
    result = run_cli(
        "doctor",
        "--json",
        "--proc-root",
        str(make_proc(tmp_path)),
        env={"SOCKWISE_NODELAY": "maybe"},
    )
    assert result.returncode == 0, result.stderr
    found = checks(result.stdout)
    assert found["sockwise policy"]["verdict"] == "warn"
    assert "SOCKWISE_NODELAY" in found["sockwise policy"]["meaning"]
    assert found["net.core.somaxconn"]["verdict"] == "ok"


def test_doctor_bad_flag(run_cli: RunCli) -> None:
    """An unknown flag is a usage error (status 2)."""
    result = run_cli("doctor", "--fix-everything")
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_proc_root_requires_value(run_cli: RunCli) -> None:
    """``--proc-root`` without a directory is a usage error."""
    result = run_cli("doctor", "--proc-root")
    assert result.returncode == 2
    assert "--proc-root: expected one argument" in result.stderr
    assert "Traceback" not in result.stderr
