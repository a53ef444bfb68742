"""Which of the sampled sockets are this process's, and through which descriptor.

The origin table (:mod:`sockwise.guard._origin`) answers for sockets the hooks saw opened; for
the others (libpq's, ones opened before the guard started) a listing of ``/proc/self/fd`` is
made at most every *scan_every* seconds, and only while unmatched rows exist. Shared by the
CLOSE_WAIT and accept-queue detectors of one guard.
"""

from __future__ import annotations

import logging
import math
from typing import Final

from sockwise._log import log_once
from sockwise._net.proc import socket_fds
from sockwise.guard import _origin
from sockwise.guard._origin import Origin

#: Least time between two listings of ``/proc/self/fd`` (≈60 ms at 10,000 descriptors).
SCAN_EVERY: Final = 30.0


class Owners:
    """Per-guard memory of the sockets found (or not) among this process's descriptors."""

    def __init__(self, scan_every: float = SCAN_EVERY) -> None:
        self.scan_every = scan_every
        self.unhooked: dict[int, int] = {}  # inode -> fd found by listing /proc/self/fd
        self.foreign: set[int] = set()
        self.last_scan = -math.inf

    def owner(self, ino: int) -> tuple[int, Origin | None] | bool | None:
        """``(fd, origin)`` if ours, ``False`` if not ours, ``None`` if unknown."""
        known = _origin.lookup(ino)
        if known is not None and _origin._alive(known[0], ino):
            return known
        fd = self.unhooked.get(ino)
        if fd is not None and _origin._alive(fd, ino):
            return fd, None
        if ino in self.foreign:
            return False
        return None

    def resolve(self, unknown: list[int], present: set[int], now: float) -> None:
        """List this process's descriptors (when due) to find the *unknown* inodes."""
        unknown = [i for i in unknown if i not in self.foreign]
        if not unknown or now - self.last_scan < self.scan_every:
            return
        self.last_scan = now
        try:
            fds = socket_fds()
        except OSError as exc:
            log_once("guard-fd-scan", logging.WARNING, "sockwise guard: cannot list fds: %r", exc)
            return
        for ino, fd in fds.items():
            if ino in present:
                self.unhooked[ino] = fd
        self.foreign.update(ino for ino in unknown if ino not in fds)

    def prune(self, present: set[int]) -> None:
        """Forget sockets no longer in a watched state."""
        self.unhooked = {i: fd for i, fd in self.unhooked.items() if i in present}
        self.foreign &= present

    def sizes(self) -> dict[str, int]:
        """Entries in each table."""
        return {"unhooked": len(self.unhooked), "foreign": len(self.foreign)}
