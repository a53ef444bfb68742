"""Choose where socket state comes from, once per process, and the public reading functions.

Order of preference on Linux: netlink sock_diag (kernel-side state filter, cheapest), then
``/proc/net/tcp{,6}`` (where netlink is refused, as in gVisor-like sandboxes), then psutil (the
only choice on other platforms). The first reader whose probe succeeds is kept for the life of
the process; each rejected reader is logged once with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Collection, Sequence
from typing import Final, Protocol

from sockwise._forksafe import renew_after_fork
from sockwise._log import log_once
from sockwise._net.netlink import NetlinkReader, info_records
from sockwise._net.proc import ProcfsReader, owned, same_netns, socket_fds
from sockwise._net.psutil_reader import PsutilReader
from sockwise._net.records import STATE_NUMBERS, SocketRecord, state_mask

ESTABLISHED_MASK: Final = 1 << STATE_NUMBERS["ESTABLISHED"]


class Reader(Protocol):
    """What every socket source provides."""

    @property
    def name(self) -> str:
        """``"netlink"``, ``"procfs"`` or ``"psutil"``."""
        ...

    def dump(self, mask: int) -> list[SocketRecord]:
        """Every TCP socket of the network namespace in the states of bitmask *mask*."""
        ...

    def probe(self) -> None:
        """Raise if this source cannot be used here."""
        ...


class NoSourceError(OSError):
    """No socket source works on this machine."""

    __module__ = "sockwise"


_lock = threading.Lock()
renew_after_fork(globals(), "_lock", threading.Lock)
_chosen: Reader | None = None


def default_readers() -> list[Reader]:
    """The readers to try on this platform, best first."""
    platform: str = sys.platform
    if platform.startswith("linux"):
        return [NetlinkReader(), ProcfsReader(), PsutilReader()]
    return [PsutilReader()]


def choose(readers: Sequence[Reader]) -> Reader:
    """The first of *readers* whose probe succeeds (each rejection is logged once).

    Raises:
        NoSourceError: None of them works.

    """
    reasons = []
    for reader in readers:
        try:
            reader.probe()
        except (OSError, ImportError) as exc:
            reasons.append(f"{reader.name}: {exc!r}")
            log_once(
                f"guard-source-rejected:{reader.name}",
                logging.WARNING,
                "sockwise guard: socket source %r unavailable (%r); trying the next one",
                reader.name,
                exc,
            )
            continue
        return reader
    raise NoSourceError(f"no socket source works here ({'; '.join(reasons)})")


def reader() -> Reader:
    """The reader chosen for this process (chosen on first use, then kept)."""
    global _chosen
    with _lock:
        if _chosen is None:
            _chosen = choose(default_readers())
        return _chosen


def set_reader(chosen: Reader | None) -> None:
    """Replace the chosen reader (``None``: choose again on next use). For tests and the CLI."""
    global _chosen
    with _lock:
        _chosen = chosen


def source_name() -> str:
    """The socket source in use: ``"netlink"``, ``"procfs"`` or ``"psutil"``.

    ``"unavailable"`` when no source works (the guard then samples nothing and says so once).
    """
    try:
        return reader().name
    except NoSourceError:
        return "unavailable"


def machine_sockets(states: Collection[str] | None = None) -> list[SocketRecord]:
    """Every TCP socket of this network namespace, optionally only those in *states*.

    TIME_WAIT rows belong to no process: their ``uid`` and ``inode`` are 0.

    Args:
        states: Kernel state names (``"CLOSE_WAIT"``, ``"TIME_WAIT"``...); ``None`` for all.

    Raises:
        ValueError: An unknown state name.
        NoSourceError: No socket source works here.

    """
    return reader().dump(state_mask(states))


def process_sockets(
    pid: int | None = None, states: Collection[str] | None = None
) -> list[SocketRecord]:
    """The TCP sockets of one process (``fd`` filled in), optionally only those in *states*.

    Args:
        pid: The process (``None``: this one).
        states: Kernel state names; ``None`` for all.

    Raises:
        ValueError: *pid* is not a positive integer, or an unknown state name.
        ProcessLookupError: No process *pid*.
        PermissionError: Not allowed to read that process's descriptors.

    """
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise ValueError(f"pid: expected a positive integer or None, got {pid!r}")
    mask = state_mask(states)
    target = os.getpid() if pid is None else pid
    chosen = reader()
    if isinstance(chosen, PsutilReader):
        return chosen.process(target, mask)
    fds = socket_fds("/proc", "self" if pid is None else pid)
    source: Reader = chosen
    if pid is not None and not isinstance(chosen, ProcfsReader) and not same_netns(pid):
        source = ProcfsReader(pid=pid)  # sock_diag only sees our own namespace
    elif pid is not None and isinstance(chosen, ProcfsReader):
        source = ProcfsReader(pid=pid)
    return owned(source.dump(mask), fds)


def established_sockets(pid: int | None = None, proc_root: str = "/proc") -> list[SocketRecord]:
    """The ESTABLISHED TCP sockets of a process, ``fd`` and (where possible) ``tcp_info`` set.

    ``tcp_info`` comes from one sock_diag dump with ``INET_DIAG_INFO``; where netlink cannot see
    the process (another network namespace, no netlink, a *proc_root* other than ``/proc``),
    the rows come from ``PROC_ROOT/PID/net/tcp{,6}`` and ``tcp_info`` is ``None``.

    Args:
        pid: The process (``None``: this one).
        proc_root: Where procfs is mounted.

    Raises:
        ValueError: *pid* is not a positive integer or ``None``.
        ProcessLookupError: No process *pid*.
        PermissionError: Not allowed to list its descriptors.

    """
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise ValueError(f"pid: expected a positive integer or None, got {pid!r}")
    real = os.getpid() if pid is None else pid
    fds = socket_fds(proc_root, real)
    rows: list[SocketRecord] | None = None
    if proc_root == "/proc" and (real == os.getpid() or same_netns(real)):
        with contextlib.suppress(OSError):
            rows = info_records(NetlinkReader().info_chunks(ESTABLISHED_MASK))
    if rows is None:
        rows = ProcfsReader(proc_root, real).dump(ESTABLISHED_MASK)
    return [r for r in owned(rows, fds) if r.state == "ESTABLISHED"]
