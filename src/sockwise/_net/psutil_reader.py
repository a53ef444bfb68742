"""Read TCP sockets through psutil: the fallback where neither sock_diag nor ``/proc`` works.

psutil gives no queue lengths, no owner uid and no timers; those fields are 0 (uid -1).
"""

from __future__ import annotations

import os
from typing import Any, Final

from sockwise._net.addr import psutil_address
from sockwise._net.records import STATE_NUMBERS, SocketRecord

#: psutil's status strings that differ from the kernel's names.
_RENAMES: Final = {"NONE": "CLOSE"}


def _import_psutil() -> Any:
    try:
        import psutil
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "sockwise's guard needs psutil on this platform: pip install 'sockwise[psutil]'",
            name="psutil",
        ) from exc
    return psutil


def convert(conn: Any, mask: int, own: bool) -> SocketRecord | None:
    """A :class:`SocketRecord` from one psutil connection (``None`` if not in *mask*)."""
    state = _RENAMES.get(conn.status, conn.status)
    num = STATE_NUMBERS.get(state)
    if num is None or not (mask >> num) & 1:
        return None
    family = int(conn.family)
    fd = conn.fd if conn.fd is not None and conn.fd >= 0 else None
    inode = 0
    if own and fd is not None:
        try:
            inode = os.fstat(fd).st_ino
        except OSError:
            inode = 0
    return SocketRecord(
        family=family,
        state=state,
        local=psutil_address(conn.laddr, family),
        remote=psutil_address(conn.raddr, family),
        inode=inode,
        uid=-1,
        rqueue=0,
        wqueue=0,
        fd=fd,
    )


class PsutilReader:
    """TCP sockets through ``psutil.net_connections``."""

    name: Final = "psutil"

    def dump(self, mask: int) -> list[SocketRecord]:
        """Every TCP socket psutil can see, in states *mask*."""
        psutil = _import_psutil()
        conns = psutil.net_connections(kind="tcp")
        own_pid = os.getpid()
        out = []
        for conn in conns:
            rec = convert(conn, mask, own=conn.pid == own_pid)
            if rec is not None:
                out.append(rec)
        return out

    def process(self, pid: int, mask: int) -> list[SocketRecord]:
        """The TCP sockets of process *pid* in states *mask*."""
        psutil = _import_psutil()
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            raise ProcessLookupError(f"no process with pid {pid}") from None
        except psutil.AccessDenied:
            raise PermissionError(f"not allowed to read the sockets of pid {pid}") from None
        own = pid == os.getpid()
        return [r for c in conns if (r := convert(c, mask, own)) is not None]

    def probe(self) -> None:
        """Raise if psutil is missing."""
        _import_psutil()
