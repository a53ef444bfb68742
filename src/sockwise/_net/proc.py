"""Read ``/proc``: ``net/tcp{,6}``, ``net/netstat``, sysctls, a process's descriptors and netns.

``/proc/net/tcp`` rows look like (``include/net/tcp.h``, ``net/ipv4/tcp_ipv4.c:get_tcp4_sock``)::

    sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
    0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 123456 ...

Addresses are hexadecimal 32-bit words in host byte order: on a little-endian machine
``0100007F:1F90`` is ``127.0.0.1:8080``. IPv6 addresses are four such words. For a LISTEN row
``rx_queue`` is the accept queue's length; the backlog is not shown. The timer field
``tr:tm->when`` counts clock ticks (``USER_HZ``) until the timer fires; for TIME_WAIT rows
(``tr`` 3) that is the time left before the row disappears.

Every parser takes untrusted text and skips what it cannot read; none raises on bad input.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from sockwise._net.addr import proc_address
from sockwise._net.records import TCP_STATES, SocketRecord

_CLK_TCK: Final = 100  # USER_HZ on every Linux architecture


def parse_tcp_line(line: str, family: int, mask: int) -> SocketRecord | None:
    """One row of ``/proc/net/tcp{,6}`` (``None`` for a header, bad row or unwanted state)."""
    fields = line.split()
    if len(fields) < 10:
        return None
    try:
        state = int(fields[3], 16)
        if not (mask >> state) & 1 or state not in TCP_STATES:
            return None
        tx_hex, _, rx_hex = fields[4].partition(":")
        timer_hex, _, when_hex = fields[5].partition(":")
        timer = int(timer_hex, 16)
        return SocketRecord(
            family=family,
            state=TCP_STATES[state],
            local=proc_address(fields[1], family),
            remote=proc_address(fields[2], family),
            inode=int(fields[9]),
            uid=int(fields[7]),
            rqueue=int(rx_hex, 16),
            wqueue=int(tx_hex, 16),
            expires_ms=int(when_hex, 16) * 1000 // _CLK_TCK if timer else 0,
        )
    except (ValueError, OverflowError):
        return None


def parse_tcp_table(text: str, family: int, mask: int) -> Iterator[SocketRecord]:
    """Every row of one ``/proc/net/tcp{,6}`` file's *text* in states *mask*."""
    for line in text.splitlines()[1:]:
        rec = parse_tcp_line(line, family, mask)
        if rec is not None:
            yield rec


def parse_netstat(text: str) -> dict[str, int]:
    """``{"TcpExt.ListenOverflows": 3, ...}`` from ``/proc/net/netstat`` or ``/proc/net/snmp``.

    The file pairs a header line (``TcpExt: SyncookiesSent ...``) with a value line
    (``TcpExt: 0 ...``); unpaired or malformed lines are skipped.
    """
    out: dict[str, int] = {}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        hname, _, hrest = header.partition(":")
        vname, _, vrest = values.partition(":")
        if hname != vname or not hname:
            continue
        for key, value in zip(hrest.split(), vrest.split(), strict=False):
            try:
                out[f"{hname}.{key}"] = int(value)
            except ValueError:
                continue
    return out


def parse_port_range(text: str) -> tuple[int, int] | None:
    """``(low, high)`` from ``ip_local_port_range`` text such as ``"32768 60999"``."""
    parts = text.split()
    if len(parts) != 2:
        return None
    try:
        low, high = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    if not 0 < low <= high <= 0xFFFF:
        return None
    return low, high


def read_text(path: str) -> str:
    """The whole of a small ``/proc`` file."""
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def read_int(path: str) -> int | None:
    """An integer sysctl, or ``None`` when it cannot be read."""
    try:
        return int(read_text(path).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def port_range(proc_root: str = "/proc") -> tuple[int, int] | None:
    """``net.ipv4.ip_local_port_range`` as ``(low, high)``, or ``None`` when unreadable."""
    try:
        return parse_port_range(read_text(f"{proc_root}/sys/net/ipv4/ip_local_port_range"))
    except OSError:
        return None


def process_name(pid: int, proc_root: str = "/proc") -> str:
    """The command name of *pid* (``/proc/<pid>/comm``), or ``"?"``."""
    try:
        with open(f"{proc_root}/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip() or "?"
    except OSError:
        return "?"


def same_netns(pid: int | str, proc_root: str = "/proc") -> bool:
    """Whether process *pid* is in this process's network namespace.

    ``False`` when it cannot be told (the namespace links unreadable): a caller then reads
    ``/proc/<pid>/net/tcp``, which always shows *pid*'s own namespace, rather than a netlink
    dump, which shows this process's namespace and would silently miss every socket of a
    process in another one.
    """
    try:
        return os.readlink(f"{proc_root}/{pid}/ns/net") == os.readlink(f"{proc_root}/self/ns/net")
    except OSError:
        return False


def tcp_families(proc_root: str = "/proc") -> tuple[int, ...]:
    """``AF_INET`` and, unless ``net/sockstat6`` shows no IPv6 TCP socket, ``AF_INET6``."""
    try:
        with open(f"{proc_root}/net/sockstat6", encoding="ascii") as f:
            for line in f:
                if line.startswith("TCP6:"):
                    parts = line.split()
                    if parts[1:3] == ["inuse", "0"]:
                        return (socket.AF_INET,)
    except (OSError, ValueError):
        pass
    return (socket.AF_INET, socket.AF_INET6)


def socket_fds(proc: str = "/proc", pid: int | str = "self") -> dict[int, int]:
    """``{inode: fd}`` for the socket descriptors of process *pid* (one listing of its fds).

    Raises:
        ProcessLookupError: No such process.
        PermissionError: Not allowed to list the process's descriptors.

    """
    fd_dir = f"{proc}/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except FileNotFoundError:
        raise ProcessLookupError(f"no process with pid {pid} ({fd_dir} does not exist)") from None
    except PermissionError:
        raise PermissionError(
            f"not allowed to list {fd_dir}: inspecting another user's process needs root "
            "or CAP_SYS_PTRACE"
        ) from None
    out: dict[int, int] = {}
    for name in names:
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            try:
                out[int(target[8:-1])] = int(name)
            except ValueError:
                continue
    return out


def owned(rows: Iterable[SocketRecord], fds: Mapping[int, int]) -> list[SocketRecord]:
    """The *rows* whose socket is one of *fds* (``{inode: fd}``, :func:`socket_fds`), fd set."""
    return [_with_fd(r, fds[r.inode]) for r in rows if r.inode and r.inode in fds]


def _with_fd(rec: SocketRecord, fd: int) -> SocketRecord:
    # Field by field: this runs per owned row (up to 10,000 a tick), and dataclasses.replace
    # (which inspects the fields each call) costs about twice as much.
    return SocketRecord(
        family=rec.family,
        state=rec.state,
        local=rec.local,
        remote=rec.remote,
        inode=rec.inode,
        uid=rec.uid,
        rqueue=rec.rqueue,
        wqueue=rec.wqueue,
        fd=fd,
        expires_ms=rec.expires_ms,
        tcp_info=rec.tcp_info,
    )


class ProcfsReader:
    """TCP sockets of a network namespace from ``/proc/net/tcp{,6}``.

    Args:
        proc: The proc root (``/proc``).
        pid: Whose network namespace to read (``"self"`` or a pid).

    """

    name: Final = "procfs"

    def __init__(self, proc: str = "/proc", pid: int | str = "self") -> None:
        self._proc = proc
        self._pid = pid

    def dump(self, mask: int) -> list[SocketRecord]:
        """Every TCP socket of the namespace in states *mask*."""
        out: list[SocketRecord] = []
        for fname, family in (("tcp", int(socket.AF_INET)), ("tcp6", int(socket.AF_INET6))):
            try:
                text = read_text(f"{self._proc}/{self._pid}/net/{fname}")
            except FileNotFoundError:
                if family == socket.AF_INET6:
                    continue  # IPv6 disabled
                raise
            out.extend(parse_tcp_table(text, family, mask))
        return out

    def probe(self) -> None:
        """Raise :class:`OSError` if ``/proc/net/tcp`` cannot be read."""
        read_text(f"{self._proc}/{self._pid}/net/tcp")
