"""A small ``/proc/net/tcp`` reader, used only when the guard's reading layer is absent.

Theory of operation: Linux lists every TCP socket of a network namespace in ``/proc/net/tcp``
(IPv4) and ``/proc/net/tcp6`` (IPv6), one row per socket with its state, addresses, queue sizes,
owning uid and inode. A process owns the sockets whose inode appears as ``socket:[INODE]`` among
the links of ``/proc/<pid>/fd``. Reading ``/proc/<pid>/net/tcp`` (not ``/proc/net/tcp``) gives the
rows of *that process's* network namespace.

Addresses are hex in host byte order per 32-bit word: ``0100007F:1F90`` is ``127.0.0.1:8080``
(the word ``0x7F000001`` stored little-endian), and an IPv6 address is four such words.

The proc root is a parameter so tests can point it at a directory of malformed files.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Final

#: ``include/net/tcp_states.h``: the state numbers in the ``st`` column.
TCP_STATES: Final[dict[int, str]] = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
    0x0C: "NEW_SYN_RECV",
}


@dataclass(frozen=True)
class ProcSocket:
    """One row of ``/proc/net/tcp{,6}`` (the same fields as the guard's ``SocketRecord``)."""

    family: int
    state: str
    local: tuple[str, int]
    remote: tuple[str, int]
    inode: int
    uid: int
    rqueue: int
    wqueue: int
    fd: int | None = None


def decode_address(text: str, family: int) -> tuple[str, int]:
    """Decode ``HEXADDR:HEXPORT`` from ``/proc/net/tcp{,6}`` into ``(ip, port)``.

    >>> decode_address("0100007F:1F90", socket.AF_INET)
    ('127.0.0.1', 8080)
    """
    addr_hex, port_hex = text.split(":")
    raw = bytes.fromhex(addr_hex)
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(family, packed), int(port_hex, 16)


def parse_table(text: str, family: int) -> list[ProcSocket]:
    """Parse the text of ``/proc/net/tcp`` or ``tcp6``; malformed rows are skipped."""
    out: list[ProcSocket] = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 10:
            continue
        try:
            tx, rx = (int(v, 16) for v in parts[4].split(":"))
            out.append(
                ProcSocket(
                    family=family,
                    state=TCP_STATES.get(int(parts[3], 16), "UNKNOWN"),
                    local=decode_address(parts[1], family),
                    remote=decode_address(parts[2], family),
                    inode=int(parts[9]),
                    uid=int(parts[7]),
                    rqueue=rx,
                    wqueue=tx,
                )
            )
        except (ValueError, OSError):
            continue
    return out


def socket_inodes(pid: int, proc_root: str = "/proc") -> dict[int, int]:
    """Map socket inode -> fd for the open descriptors of *pid*.

    Raises:
        ProcessLookupError: No process with this PID.
        PermissionError: The process's descriptors cannot be read.

    """
    fd_dir = os.path.join(proc_root, str(pid), "fd")
    try:
        names = os.listdir(fd_dir)
    except FileNotFoundError:
        raise ProcessLookupError(f"no process with PID {pid}") from None
    out: dict[int, int] = {}
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:  # the descriptor was closed while we looked
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            out[int(target[8:-1])] = int(name)
    return out


def namespace_sockets(pid: int | str = "self", proc_root: str = "/proc") -> list[ProcSocket]:
    """Every TCP socket of the network namespace *pid* lives in (IPv4 and IPv6)."""
    rows: list[ProcSocket] = []
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = os.path.join(proc_root, str(pid), "net", name)
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                rows.extend(parse_table(f.read(), family))
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
    return rows


def process_sockets(pid: int | None = None, proc_root: str = "/proc") -> list[ProcSocket]:
    """The TCP sockets *pid* (default: this process) holds open, with their descriptors.

    Raises:
        ProcessLookupError: No process with this PID.
        PermissionError: The process's descriptors cannot be read.

    """
    real = os.getpid() if pid is None else pid
    inodes = socket_inodes(real, proc_root)
    out: list[ProcSocket] = []
    for row in namespace_sockets(real, proc_root):
        fd = inodes.get(row.inode)
        if fd is not None and row.inode != 0:
            out.append(
                ProcSocket(
                    row.family,
                    row.state,
                    row.local,
                    row.remote,
                    row.inode,
                    row.uid,
                    row.rqueue,
                    row.wqueue,
                    fd,
                )
            )
    return out
