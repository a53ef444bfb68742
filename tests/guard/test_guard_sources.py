"""The reading layer: sources agree with each other, fall back on injected faults, fail clearly."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import pytest

from sockwise._net.netlink import NetlinkReader
from sockwise._net.proc import ProcfsReader
from sockwise._net.psutil_reader import PsutilReader
from sockwise._net.records import state_mask
from sockwise.guard import machine_sockets, process_sockets, source_name
from sockwise.guard._source import NoSourceError, Reader, choose, set_reader


def _raising(exc: OSError):  # a socket factory failing the way sandboxes do
    def factory() -> socket.socket:
        raise exc

    return factory


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.EPROTONOSUPPORT, "Protocol not supported"),
        PermissionError(errno.EACCES, "denied"),
        FileNotFoundError(errno.ENOENT, "missing"),
    ],
)
def test_netlink_failure_falls_back_to_procfs(exc: OSError) -> None:
    """A refused netlink socket falls back to /proc/net/tcp."""
    chosen = choose([NetlinkReader(_raising(exc)), ProcfsReader(), PsutilReader()])
    assert chosen.name == "procfs"


def test_missing_proc_falls_back_to_psutil(tmp_path: object) -> None:
    """Without netlink and /proc/net, psutil is used; with nothing, a clear error."""
    no_netlink = NetlinkReader(_raising(OSError(errno.EPROTONOSUPPORT, "no")))
    assert choose([no_netlink, ProcfsReader(proc=str(tmp_path)), PsutilReader()]).name == "psutil"
    with pytest.raises(NoSourceError, match=r"netlink.*procfs"):
        choose([no_netlink, ProcfsReader(proc=str(tmp_path))])


def test_source_is_chosen_once_and_named() -> None:
    """The chosen source is netlink here (Linux) and stays the same."""
    assert source_name() == "netlink"
    assert source_name() == "netlink"


@pytest.mark.parametrize("reader", [NetlinkReader(), ProcfsReader(), PsutilReader()], ids=str)
def test_every_source_sees_this_process_sockets(reader: Reader) -> None:
    """Each source reports a listener and a connected pair of this process with fd and state."""
    set_reader(reader)
    with socket.create_server(("127.0.0.1", 0)) as srv:
        client = socket.create_connection(srv.getsockname())
        conn, _ = srv.accept()
        try:
            mine = process_sockets()
            by_fd = {r.fd: r for r in mine}
            assert by_fd[srv.fileno()].state == "LISTEN"
            assert by_fd[client.fileno()].state == "ESTABLISHED"
            assert by_fd[client.fileno()].remote == srv.getsockname()
            assert by_fd[conn.fileno()].local == srv.getsockname()
            assert by_fd[client.fileno()].inode == os.fstat(client.fileno()).st_ino
            listening = process_sockets(states=["LISTEN"])
            assert {r.fd for r in listening} >= {srv.fileno()}
            assert all(r.state == "LISTEN" for r in listening)
        finally:
            client.close()
            conn.close()


def test_time_wait_rows_have_no_owner() -> None:
    """machine_sockets() shows TIME_WAIT rows with uid 0 and inode 0, toward the destination."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        address = srv.getsockname()
        client = socket.create_connection(address)
        conn, _ = srv.accept()
        local = client.getsockname()
        client.close()  # client closes first: its side goes TIME_WAIT
        conn.close()
        rows = [
            r for r in machine_sockets(["TIME_WAIT"]) if (r.local, r.remote) == (local, address)
        ]
    assert len(rows) == 1
    assert (rows[0].inode, rows[0].uid, rows[0].remote) == (0, 0, address)
    assert rows[0].expires_ms is not None and 50_000 < rows[0].expires_ms <= 60_000


def test_another_process_sockets() -> None:
    """process_sockets(pid) reads a child process's listener."""
    code = (
        "import socket,sys;s=socket.create_server(('127.0.0.1',0));"
        "print(s.getsockname()[1],flush=True);sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        rows = process_sockets(child.pid, ["LISTEN"])
        assert [r.local for r in rows] == [("127.0.0.1", port)]
        assert rows[0].fd is not None
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
        child.stdout.close()  # type: ignore[union-attr]


def test_bad_pid_and_states_fail_clearly() -> None:
    """Missing processes, bad pids and unknown states raise clear errors."""
    with pytest.raises(ProcessLookupError, match="no process with pid"):
        process_sockets(2**22 + 12345)
    with pytest.raises(ValueError, match="pid"):
        process_sockets(0)
    with pytest.raises(ValueError, match="states"):
        machine_sockets(["ESTABLISHED", "NOPE"])


def test_state_filter_is_applied_in_the_kernel() -> None:
    """A netlink dump for LISTEN only returns LISTEN rows."""
    rows = NetlinkReader().dump(state_mask(["LISTEN"]))
    assert rows and {r.state for r in rows} == {"LISTEN"}
