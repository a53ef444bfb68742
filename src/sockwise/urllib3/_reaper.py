"""One background thread that sweeps every live sockwise pool's idle connections.

Theory of operation: urllib3 checks a pooled connection only when it pops it, and only that
one (its queue is LIFO, so the ones below the top are never looked at while traffic lasts). A
connection whose server closed it meanwhile sits in CLOSE_WAIT, holding a descriptor and a
kernel socket, until the application happens to make enough requests to reach it. The reaper
closes such connections within about :data:`REAP_INTERVAL` seconds with no help from the
application, and closes connections idle longer than the pool's ``idle_timeout`` too.

* One thread for the whole process, started by the first pool and ended when no pool is left
  (pools are held by weak reference, so the reaper never keeps one alive).
* Each sweep takes the pool queue's own mutex for the length of one ``poll()`` call over all
  idle sockets, removes the dead ones, and closes them after releasing the mutex.
* Fork-safe: in a child process the thread does not exist; the next pool activity restarts it.
* Daemon and named ``sockwise-pool-reaper``; stopped and joined (briefly) at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Final, Protocol

from sockwise._log import log_once

#: Seconds between sweeps. A peer-closed idle connection is closed within about this long
#: (plus the sweep itself); one ``poll()`` per pool per second costs nothing measurable.
REAP_INTERVAL: Final = 1.0


class Sweepable(Protocol):
    """What the reaper needs from a pool."""

    def _sockwise_sweep(self) -> None: ...


class _Reaper:
    def __init__(self) -> None:
        self._pools: weakref.WeakSet[Sweepable] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self._hooks_installed = False
        self.interval = REAP_INTERVAL

    def register(self, pool: Sweepable) -> None:
        """Sweep *pool* from now on (starts the thread if needed)."""
        with self._lock:
            self._pools.add(pool)
            self._start_locked()

    def pools(self) -> list[Sweepable]:
        """The pools registered and still alive (for metrics)."""
        with self._lock:
            return list(self._pools)

    def ensure_running(self) -> None:
        """Restart the thread if it ended (no pools for a while) or vanished in a fork."""
        with self._lock:
            if len(self._pools):
                self._start_locked()

    def _start_locked(self) -> None:
        if self.thread is not None:
            return
        if not self._hooks_installed:
            os.register_at_fork(after_in_child=self._after_fork)
            atexit.register(self.stop)
            self._hooks_installed = True
        self._stop = stop = threading.Event()  # one event per thread: a stopped one stays so
        thread = threading.Thread(
            target=self._run, args=(stop,), name="sockwise-pool-reaper", daemon=True
        )
        self.thread = thread
        thread.start()

    def _after_fork(self) -> None:
        # The thread does not exist in the child; locks may be held by a thread that is gone.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = None

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread and wait up to *timeout* seconds for it (at exit, in tests)."""
        with self._lock:
            thread, self.thread = self.thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            with self._lock:
                pools = list(self._pools)
                if not pools:
                    if self.thread is threading.current_thread():
                        self.thread = None
                    return
            self._sweep(pools)
            del pools  # hold no pool between sweeps: an unused pool must be collectable

    @staticmethod
    def _sweep(pools: list[Sweepable]) -> None:
        for pool in pools:
            try:
                pool._sockwise_sweep()
            except Exception as exc:  # Defensive: the reaper never dies of one pool
                log_once(
                    f"reaper-failed:{type(exc).__name__}",
                    logging.WARNING,
                    "sockwise: sweeping pool %r failed: %r",
                    pool,
                    exc,
                )


#: The process-wide reaper.
REAPER: Final = _Reaper()
