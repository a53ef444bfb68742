"""``sockwise inspect`` end to end, against a child process holding known sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from cli_support import RunCli, assert_one_line_error, child_holding


def test_inspect_json_sees_listener_and_close_wait(
    run_cli: RunCli, socket_holder: tuple[int, int, int]
) -> None:
    """Counts by state, the CLOSE_WAIT socket with its peer, the listener with its queue."""
    pid, lport, cwport = socket_holder
    result = run_cli("inspect", str(pid), "--json")
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    assert snap["pid"] == pid
    assert snap["counts"]["CLOSE_WAIT"] == 1
    assert snap["counts"]["LISTEN"] == 1
    assert snap["counts"]["ESTABLISHED"] == 2  # the two queued client sockets
    assert snap["total"] == 4
    (cw,) = snap["close_wait"]
    assert cw["local"] == f"127.0.0.1:{cwport}"
    assert cw["peer"].startswith("127.0.0.1:")
    assert isinstance(cw["fd"], int)
    (listener,) = snap["listeners"]
    assert listener["local"] == f"127.0.0.1:{lport}"
    assert listener["queued"] == 2
    if listener["backlog"] is not None:  # sock_diag knows it; /proc/net/tcp does not
        assert listener["backlog"] == 7
        assert listener["fill"] == pytest.approx(2 / 7)


def test_inspect_text_sections(run_cli: RunCli, socket_holder: tuple[int, int, int]) -> None:
    """The text view names the process and shows the CLOSE_WAIT and LISTEN sections."""
    pid, lport, cwport = socket_holder
    result = run_cli("inspect", str(pid))
    assert result.returncode == 0, result.stderr
    assert f"PID {pid} (python" in result.stdout
    assert "CLOSE_WAIT: the peer closed" in result.stdout
    assert f"127.0.0.1:{cwport}" in result.stdout
    assert "LISTEN: accept queue fill" in result.stdout
    assert f"127.0.0.1:{lport}" in result.stdout


def test_inspect_watch_gives_ages(run_cli: RunCli, socket_holder: tuple[int, int, int]) -> None:
    """``--watch`` with ``--count`` prints one JSON line per reading; CLOSE_WAIT ages grow."""
    pid, _, _ = socket_holder
    result = run_cli("inspect", str(pid), "--json", "--watch", "0.3", "--count", "3")
    assert result.returncode == 0, result.stderr
    readings = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(readings) == 3
    ages = [r["close_wait"][0]["age"] for r in readings]
    assert ages[0] == 0
    assert 0.2 < ages[2] - ages[1] < 30
    assert ages[2] > ages[1]


def test_inspect_watch_text_bounded(run_cli: RunCli, socket_holder: tuple[int, int, int]) -> None:
    """The text watch mode also stops after ``--count`` readings."""
    pid, _, _ = socket_holder
    result = run_cli("inspect", str(pid), "--watch", "0.2", "--count", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("sockwise inspect: PID") == 2
    assert ">= " in result.stdout  # the second reading knows an age


def test_inspect_without_pid_is_this_process(run_cli: RunCli) -> None:
    """Without a PID the CLI inspects itself (no TCP sockets of its own)."""
    result = run_cli("inspect", "--json")
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    assert snap["total"] == 0
    assert snap["name"].startswith("python")


def test_inspect_unknown_pid(run_cli: RunCli) -> None:
    """A PID that does not exist: one line on stderr, exit status 1."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    result = run_cli("inspect", str(proc.pid))
    assert result.returncode == 1
    assert_one_line_error(result, "sockwise inspect: error:", f"no process with PID {proc.pid}")
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("arg", "needle"),
    [("abc", "PID must be a whole number, got 'abc'"), ("0", "PID must be >= 1, got 0")],
)
def test_inspect_bad_pid_is_usage_error(run_cli: RunCli, arg: str, needle: str) -> None:
    """A PID that is not a positive number is a usage error (status 2)."""
    result = run_cli("inspect", arg)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--watch", "-1"], "--watch SECONDS must be > 0"),
        (["--count", "x"], "--count must be a number"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_inspect_bad_flags(run_cli: RunCli, args: list[str], needle: str) -> None:
    """Bad flag values are usage errors naming the flag."""
    result = run_cli("inspect", *args)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_unreadable_proc(run_cli: RunCli, tmp_path) -> None:
    """A proc root without the process gives a one-line error."""
    result = run_cli("inspect", str(os.getpid()), "--proc-root", str(tmp_path))
    assert result.returncode == 1
    assert_one_line_error(result, f"no process with PID {os.getpid()}")


def test_inspect_process_gone_between_readings_says_so_in_one_way() -> None:
    """The snapshot and the established sockets turn a vanished PID into the same message."""
    from argparse import Namespace

    from sockwise.cli._inspect import InspectError, read, read_est
    from sockwise.metrics._snapshot import AgeTracker

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        snap = read(proc.pid, "/proc", AgeTracker())
    finally:
        proc.kill()
        proc.wait()
    expected = f"^no process with PID {proc.pid} \\(it does not exist or has exited\\)$"
    with pytest.raises(InspectError, match=expected):
        read(proc.pid, "/proc", AgeTracker())
    args = Namespace(pid=proc.pid, proc_root="/proc", stall_after=None)
    with pytest.raises(InspectError, match=expected):
        read_est(args, AgeTracker(), snap)


DROP_PRIVILEGES = """
import os, sys
import sockwise.cli._app, sockwise.cli._bench, sockwise.cli._doctor, sockwise.cli._inspect
import sockwise.cli._policy, sockwise.metrics._snapshot
try:
    import sockwise.guard
except ImportError:
    pass
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(sockwise.cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to the nobody user")
def test_inspect_permission_denied(socket_holder: tuple[int, int, int]) -> None:
    """Another user's process: one line saying permission denied, exit status 1."""
    pid, _, _ = socket_holder
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKWISE_")}
    result = subprocess.run(
        [sys.executable, "-c", DROP_PRIVILEGES, "inspect", str(pid)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert_one_line_error(result, f"cannot read the sockets of PID {pid}: permission denied")


def test_inspect_fake_proc_root_with_malformed_rows(run_cli: RunCli, tmp_path) -> None:
    """The procfs path parses good rows, skips malformed ones, and never tracebacks."""
    pid_dir = tmp_path / "4242"
    (pid_dir / "fd").mkdir(parents=True)
    (pid_dir / "net").mkdir()
    (pid_dir / "comm").write_text("fakeproc\n")
    os.symlink("socket:[777]", pid_dir / "fd" / "5")
    os.symlink("socket:[888]", pid_dir / "fd" / "6")
    os.symlink("/dev/null", pid_dir / "fd" / "0")
    tail = " 00:00000000 00000000     0        0"
    rows = [
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt  uid  timeout",
        "   0: 0100007F:1F90 0100007F:D431 08 00000000:00000000" + tail + " 777 1",
        "garbage line",
        "   1: 00000000:0050 00000000:0000 0A 00000000:00000003" + tail + " 888 1",
        "   2: 0100007F:9C40 0100007F:1F90 06 00000000:00000000" + tail + " 0 0",
    ]
    (pid_dir / "net" / "tcp").write_text("\n".join(rows) + "\n")
    result = run_cli("inspect", "4242", "--json", "--proc-root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    assert snap["name"] == "fakeproc"
    assert snap["counts"] == {"CLOSE_WAIT": 1, "LISTEN": 1}
    assert snap["close_wait"][0]["local"] == "127.0.0.1:8080"
    assert snap["close_wait"][0]["peer"] == "127.0.0.1:54321"
    assert snap["close_wait"][0]["fd"] == 5
    assert snap["listeners"] == [
        {"fd": 6, "local": "0.0.0.0:80", "queued": 3, "backlog": None, "fill": None}
    ]
    assert snap["time_wait"] == {"127.0.0.1:8080": 1}


STUCK = """
import socket, sys
srv = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(srv.getsockname())
peer, _ = srv.accept()  # never reads: its window closes
client.setblocking(False)
sent = 0
for _ in range(10_000):
    try:
        sent += client.send(b"s" * 65536)
    except BlockingIOError:
        break
print(client.getsockname()[1], peer.getsockname()[1], sent, flush=True)
sys.stdin.read()
"""


@pytest.fixture
def stuck_sender() -> Iterator[tuple[int, int, int]]:
    """A child whose client socket has MBs in Send-Q behind a peer that stopped reading."""
    with child_holding(STUCK) as (pid, (cport, _sport, sent)):
        yield pid, cport, sent


def test_inspect_shows_send_queue_and_zero_window(
    run_cli: RunCli, stuck_sender: tuple[int, int, int]
) -> None:
    """Every established socket with its queues; the stuck one is a zero window, its peer unread."""
    pid, cport, sent = stuck_sender
    assert sent > 1_000_000
    time.sleep(1.0)  # both conditions older than --stall-after
    result = run_cli("inspect", str(pid), "--json", "--stall-after", "0.5")
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    by_local = {e["local"]: e for e in snap["established"]}
    assert len(snap["established"]) == 2
    stuck = by_local[f"127.0.0.1:{cport}"]
    assert stuck["send_q"] > 1_000_000
    assert stuck["stall"] == "zero_window", snap["established"]
    assert stuck["snd_wnd"] == 0
    assert stuck["stall_seconds"] >= 0.5
    (other,) = [e for e in snap["established"] if e is not stuck]
    assert other["recv_q"] > 0
    assert other["stall"] == "unread", snap["established"]
    assert isinstance(stuck["fd"], int) and stuck["fd"] != other["fd"]
    assert snap["summary"].startswith("TCP: 3 (estab 2, close_wait 0, listen 1, other 0)")
    assert "stalled 2" in snap["summary"]

    text = run_cli("inspect", str(pid), "--stall-after", "0.5")
    assert text.returncode == 0, text.stderr
    assert "ESTABLISHED (2):" in text.stdout
    assert "zero window" in text.stdout and "unread" in text.stdout
    assert "Send-Q" in text.stdout and " MB" in text.stdout
    assert "TCP: 3 (estab 2" in text.stdout


def test_inspect_default_stall_after_calls_fresh_sockets_healthy(
    run_cli: RunCli, stuck_sender: tuple[int, int, int]
) -> None:
    """With the default threshold (30 s) a fresh queue is shown but not yet called stalled."""
    pid, cport, _ = stuck_sender
    result = run_cli("inspect", str(pid), "--json", "--watch", "0.3", "--count", "2")
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    (stuck,) = [e for e in second["established"] if e["local"] == f"127.0.0.1:{cport}"]
    assert stuck["stall"] is None
    assert stuck["send_q"] > 1_000_000
    assert [e["age"] for e in first["established"]] == [None, None]
    assert all(0.2 < e["age"] < 30 for e in second["established"])
    assert "stalled 0" in second["summary"]


def test_inspect_bad_stall_after(run_cli: RunCli) -> None:
    """A bad --stall-after is a usage error naming the flag."""
    result = run_cli("inspect", "--stall-after", "0")
    assert result.returncode == 2
    assert "--stall-after SECONDS must be > 0" in result.stderr
