"""The :class:`Guard`: a sampler explaining CLOSE_WAIT leaks, port churn and full queues.

Theory of operation: a daemon thread (``sockwise-guard``) wakes every ``interval`` seconds (or
earlier, when a CLOSE_WAIT socket is about to cross ``close_wait_after``), asks the kernel for the
namespace's CLOSE_WAIT, LISTEN and TIME_WAIT sockets in one state-filtered query, keeps those of
this process (matched by inode against the sockets the hooks saw being created or
:func:`~sockwise.guard.note_origin` was told about, and -- only for rows still unmatched, at most
every two intervals -- against a listing of ``/proc/self/fd``), and hands them to the detectors
(one module each, run by :class:`~sockwise.guard._core.Detectors`).
Our sockets seen in CLOSE_WAIT that then vanish from the dump while their descriptor stays open
(reset by the peer) stay under watch. Each finding becomes a :class:`GuardEvent`, given to the
optional callback and emitted once: to :mod:`warnings` (with the warning's file and line set to
the code that opened the socket, so ``warnings`` filters by module work), or -- when the
application configured the ``sockwise`` logger -- to that logger instead.

The thread survives its own errors (each kind logged once), holds no lock the application uses,
stops at interpreter exit, and after ``fork()`` the child starts its own thread (or stays stopped
with ``restart_after_fork=False``).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Final, Literal

from sockwise import _green, _hooks
from sockwise._log import log_once, logger
from sockwise.guard import _checkout, _claims, _detect, _origin, _source, _stall
from sockwise.guard._core import Detectors
from sockwise.guard._events import EVENT_KINDS, GuardEvent, GuardReport

#: Default seconds between samples. A sample asks the kernel (sock_diag) for this namespace's
#: CLOSE_WAIT and LISTEN sockets only -- ~0.1 ms in a process with tens of sockets, a few ms with
#: 10,000 -- so sampling every 2 s costs well under 0.1 % of a core, and it bounds how late a
#: leak is reported (see :data:`DEFAULT_CLOSE_WAIT_AFTER`), how long a socket the hooks did not
#: see waits to be matched (two intervals) and how short a churn burst may be and still count.
DEFAULT_INTERVAL: Final = 2.0
#: Default seconds in CLOSE_WAIT before a socket is reported. A correct program closes within
#: milliseconds of reading EOF; idle pool members the server closed are recognised as such and
#: not reported (their pool drops them at the next checkout), and a peer on this machine that
#: only half-closed is told apart. The threshold must stay far below the kernel's timers that
#: end CLOSE_WAIT on their own: a peer that closed forgets the connection after
#: ``tcp_fin_timeout`` (60 s) and the default policy's first keepalive probe (60 s idle) then
#: meets a RST -- a 60 s threshold raced that and mostly lost. 5 s leaves a handler 5 s to finish
#: an answer to a client that closed, and reports every leak within
#: ``DEFAULT_CLOSE_WAIT_AFTER + DEFAULT_INTERVAL`` = 7 s of the peer's close (measured in
#: ``tests/guard/test_guard_leak_patterns.py``). A socket whose peer reset it after that while
#: the application still holds the descriptor is reported too (it left CLOSE_WAIT, the leak
#: did not end).
DEFAULT_CLOSE_WAIT_AFTER: Final = 5.0
#: The promise of the defaults: seconds from the peer's close to the report of a leaked socket.
DETECTION_BOUND: Final = DEFAULT_CLOSE_WAIT_AFTER + DEFAULT_INTERVAL
#: Default re-report period for destination- and listener-wide findings (and summaries).
DEFAULT_REPORT_EVERY: Final = 300.0

#: Longest the guard's thread sleeps before checking whether recorded origins need draining.
_DRAIN_SLICE: Final = 0.5

#: Where an event without an origin points (a destination-wide finding with no recorded line).
_GUARD_FILE: Final = __file__


def _logger_configured() -> bool:
    """Whether the application configured sockwise's logger (a handler or a level of its own)."""
    for name in ("sockwise", "sockwise.guard"):
        configured = logging.getLogger(name)
        if configured.handlers or configured.level != logging.NOTSET:
            return True
    return False


_registry_lock = threading.Lock()
_counts_lock = threading.Lock()  # guards _event_counts only (never held while calling out)
_running: set[Guard] = set()
_process_hooks_installed = False


def _check_number(name: str, value: object, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    if not (low <= value <= high) or math.isnan(value):
        raise ValueError(f"{name}: {value!r} is out of range; allowed: {low} to {high}")
    return float(value)


class Guard:
    """Watch this process's sockets for CLOSE_WAIT leaks, port churn and full accept queues.

    Starting a guard turns on origin recording (which code opened each socket); stopping the last
    running guard turns it off. Several guards may run; each finding is reported once per process.

    Args:
        interval: Seconds between samples (default 2; see :data:`DEFAULT_INTERVAL`).
        close_wait_after: Seconds a socket may sit in CLOSE_WAIT before it is reported as a leak
            (default 5; see :data:`DEFAULT_CLOSE_WAIT_AFTER`). A leak is reported within
            ``close_wait_after + interval`` of the peer's close.
        churn_rate: New connections per second toward one destination that count as churn;
            ``None`` (default) derives it from ``net.ipv4.ip_local_port_range``: the rate that
            fills the range within the 60 s TIME_WAIT period (≈470/s for 32768-60999).
        churn_samples: Consecutive samples above ``churn_rate`` before warning (default 3).
        time_wait_fraction: Warn when TIME_WAIT rows toward one destination exceed this share of
            the port range (default 0.25).
        accept_queue_ratio: Warn when a listener's accept queue reaches this share of its backlog
            (default 1.0: full).
        report_every: Seconds before a destination or listener is reported again, and between
            summaries (default 300).
        max_reports: Individual CLOSE_WAIT reports per sample; more are folded into one
            summary (default 5).
        churn_scope: ``"process"`` (default) reports a destination only when this process made
            a comparable share of the connections toward it (recorded while the guard runs, so a
            guard that was never started reports no churn); ``"namespace"`` reports churn of
            any process in the network namespace (for a machine-wide monitor).
        callback: Called with each :class:`GuardEvent` (from the guard's thread).
        stall_after: Seconds of silence before a connection is reported as stalled (a
            :class:`~sockwise.StallWarning`; default 30, see :data:`DEFAULT_STALL_AFTER`);
            ``None`` turns stall detection off.
        restart_after_fork: In a child after ``fork()``, start the guard again (default) or
            leave it stopped.

    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        close_wait_after: float = DEFAULT_CLOSE_WAIT_AFTER,
        *,
        churn_rate: float | None = None,
        churn_samples: int = 3,
        time_wait_fraction: float = 0.25,
        accept_queue_ratio: float = 1.0,
        report_every: float = DEFAULT_REPORT_EVERY,
        max_reports: int = 5,
        churn_scope: Literal["process", "namespace"] = "process",
        callback: Callable[[GuardEvent], None] | None = None,
        restart_after_fork: bool = True,
        stall_after: float | None = _stall.DEFAULT_STALL_AFTER,
    ) -> None:
        self.interval = _check_number("interval", interval, 0.01, 86400.0)
        if churn_rate is not None:
            churn_rate = _check_number("churn_rate", churn_rate, 1e-6)
        if isinstance(churn_samples, bool) or not isinstance(churn_samples, int):
            raise TypeError(f"churn_samples: expected an int, got {churn_samples!r}")
        if not 1 <= churn_samples <= 1000:
            raise ValueError(
                f"churn_samples: {churn_samples!r} is out of range; allowed: 1 to 1000"
            )
        if isinstance(max_reports, bool) or not isinstance(max_reports, int) or max_reports < 1:
            raise ValueError(f"max_reports: {max_reports!r} is out of range; allowed: 1 or more")
        if churn_scope not in ("process", "namespace"):
            raise ValueError(
                f"churn_scope: {churn_scope!r} is not allowed; allowed: 'process', 'namespace'"
            )
        if callback is not None and not callable(callback):
            raise TypeError(f"callback: expected a callable or None, got {callback!r}")
        self.thresholds = _detect.Thresholds(
            close_wait_after=_check_number("close_wait_after", close_wait_after, 0.0),
            churn_rate=churn_rate,
            churn_samples=churn_samples,
            time_wait_fraction=_check_number("time_wait_fraction", time_wait_fraction, 1e-6, 1.0),
            accept_queue_ratio=_check_number("accept_queue_ratio", accept_queue_ratio, 1e-6, 1.0),
            report_every=_check_number("report_every", report_every, 0.0),
            max_reports=max_reports,
            churn_scope=churn_scope,
        )
        self.callback = callback
        self.restart_after_fork = restart_after_fork
        # -- stall detection (sockwise.guard._stall) --
        self.stall_after = (
            None if stall_after is None else _check_number("stall_after", stall_after, 0.1, 86400.0)
        )
        self._stall = None if self.stall_after is None else _stall.StallDetector(self.stall_after)
        self._detector = self._new_detector()
        self._lock = threading.Lock()  # serialises samples (thread vs check()); never the app's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._samples = 0

    def _new_detector(self) -> Detectors:
        return Detectors(self.thresholds, self.interval, self._stall)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"<Guard {state} interval={self.interval:g}s "
            f"close_wait_after={self.thresholds.close_wait_after:g}s samples={self._samples}>"
        )

    @property
    def running(self) -> bool:
        """Whether the guard's thread is running."""
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Guard:
        """Start sampling in a daemon thread (no-op if already running); return the guard."""
        with _registry_lock:
            if self in _running:
                return self
            _install_process_hooks()
            _origin.enable()
            _checkout.install()
            _running.add(self)
            self._spawn()
        return self

    def _spawn(self) -> None:
        self._stop = threading.Event()
        self._detector.baseline()
        self._thread = threading.Thread(target=self._run, name="sockwise-guard", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sampling and wait up to *timeout* seconds for the thread (no-op if stopped)."""
        with _registry_lock:
            if self not in _running:
                return
            _running.discard(self)
            self._stop.set()
            thread = self._thread
            self._thread = None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._stall is not None:
            self._stall.close()  # a pass over the dump in progress holds a netlink socket
        with _registry_lock:
            _origin.disable()  # after the join: the last sample still attributes correctly
            if not _origin.recording():
                _checkout.uninstall()

    def __enter__(self) -> Guard:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- sampling ----------------------------------------------------------------------------

    def _run(self) -> None:
        stop = self._stop
        delay = self.interval
        while not self._wait(stop, delay):
            try:
                self._sample(in_thread=True)
            except Exception as exc:  # the guard never dies of its own errors
                log_once(
                    f"guard-error:{type(exc).__name__}",
                    logging.ERROR,
                    "sockwise guard: a sample failed (%r); sampling continues",
                    exc,
                )
            delay = self._next_delay()

    @staticmethod
    def _wait(stop: threading.Event, delay: float) -> bool:
        """Wait *delay* seconds (``True``: stopped), draining recorded origins if many pile up."""
        end = time.monotonic() + delay
        for _ in range(1_000_000):  # bounded: delay <= 1 day, in slices of 0.5 s
            left = end - time.monotonic()
            if left <= 0:
                return stop.is_set()
            if stop.wait(min(left, _DRAIN_SLICE)):
                return True
            if _origin.needs_drain():
                try:
                    _origin.drain()
                except Exception as exc:  # Defensive: the guard never dies of its own errors
                    log_once("guard-drain", logging.ERROR, "sockwise guard: drain failed: %r", exc)
        return stop.is_set()  # Defensive: unreachable

    def _next_delay(self) -> float:
        due = self._detector.close_wait.due
        if due is None:
            return self.interval
        return min(self.interval, max(0.05, due - _detect.monotonic() + 0.01))

    def check(self) -> GuardReport:
        """Take one sample now, emit its events, and return what it found.

        Works whether or not the guard is running (without :meth:`start`, no origins are
        recorded). With a ``warnings`` filter set to ``"error"``, the first warning is raised
        here after every event was logged and passed to the callback.
        """
        return self._sample(in_thread=False)

    def _sample(self, in_thread: bool) -> GuardReport:
        with self._lock:
            report = self._collect()
        self._emit(report.events, in_thread)
        return report

    def _collect(self) -> GuardReport:
        start = time.perf_counter()
        _hooks.repair()  # another library put socket.socket.connect back: re-apply (never raises)
        det = self._detector
        now = _detect.monotonic()
        try:
            reader = _source.reader()
        except _source.NoSourceError as exc:
            log_once("guard-no-source", logging.WARNING, "sockwise guard: %s", exc)
            return GuardReport(source="unavailable", duration=0.0, error=str(exc))
        _origin.drain()  # resolve the sockets recorded since the last tick
        _checkout.install()  # psycopg_pool imported since the start: name its checkouts too
        smp, events = det.run(reader, now)
        _origin.sweep()
        self._samples += 1
        top = sorted(smp.time_wait.items(), key=lambda kv: -kv[1])[:20]
        return GuardReport(
            source=reader.name,
            duration=time.perf_counter() - start,
            close_wait=tuple(det.close_wait.found),
            listeners=tuple(det.accept_queue.listeners),
            time_wait=tuple(top),
            events=events,
        )

    def _emit(self, events: tuple[GuardEvent, ...], in_thread: bool) -> None:
        """Send each event once: to the callback, and to *one* of the log or :mod:`warnings`.

        Events go to the ``sockwise`` logger when the application configured it (gave it -- or
        ``sockwise.guard`` -- a handler or a level), else to :mod:`warnings`, with the warning's
        file and line set to the socket's origin so filters by module work.
        """
        to_log = _logger_configured()
        with _counts_lock:
            for event in events:
                _event_counts[event.kind] = _event_counts.get(event.kind, 0) + 1
        for event in events:
            if to_log:
                logger.warning("%s", event.message)
            if self.callback is not None:
                try:
                    self.callback(event)
                except Exception as exc:
                    log_once(
                        f"guard-callback:{type(exc).__name__}",
                        logging.ERROR,
                        "sockwise guard: the callback %r failed: %r",
                        self.callback,
                        exc,
                    )
        if to_log:
            return
        for event in events:
            origin = event.origin
            try:
                warnings.warn_explicit(
                    event.category(event.message),
                    event.category,
                    filename=origin.filename if origin else _GUARD_FILE,
                    lineno=origin.lineno if origin else 1,
                    module=origin.module if origin and origin.module else "sockwise.guard",
                )
            except Exception:
                if not in_thread:
                    raise  # the caller turned the warning into an error: give it to them
                # in the thread there is nobody to raise to; the event was given to the callback

    def sizes(self) -> dict[str, int]:
        """Entries in every internal table (origins, per-socket state): for memory checks."""
        return {**_origin.sizes(), **self._detector.sizes()}


# -- process-wide hooks: atexit and fork -------------------------------------------------------


def _install_process_hooks() -> None:
    """Register the atexit and fork handlers, once per process (under _registry_lock)."""
    global _process_hooks_installed
    if _process_hooks_installed:
        return
    _process_hooks_installed = True
    atexit.register(_stop_all)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _stop_all() -> None:
    for guard in list(_running):
        guard.stop(timeout=2.0)


def _after_fork_in_child() -> None:
    global _registry_lock, _counts_lock
    _registry_lock = threading.Lock()
    _counts_lock = threading.Lock()
    _origin.after_fork_in_child()
    _claims.after_fork_in_child()
    _checkout.after_fork_in_child()
    survivors = list(_running)
    _running.clear()
    for guard in survivors:
        guard._lock = threading.Lock()
        guard._thread = None
        guard._detector = guard._new_detector()
        _origin.disable()
        if guard.restart_after_fork:
            try:
                guard.start()
            except Exception as exc:  # Defensive: e.g. no threads left in the child
                log_once("guard-fork", logging.ERROR, "sockwise guard: restart failed: %r", exc)


#: Findings reported since the process started, by :attr:`GuardEvent.kind` (all guards).
_event_counts: dict[str, int] = {}


def event_counts() -> dict[str, int]:
    """How many findings the guards of this process reported, by kind (every kind, zeros too).

    A finding is counted once, when it is emitted (re-reports of the same finding count
    again); the Prometheus exporter publishes this as ``sockwise_guard_events_total{kind}``.
    """
    with _counts_lock:
        return {kind: _event_counts.get(kind, 0) for kind in EVENT_KINDS}


def running_guards() -> list[Guard]:
    """The guards currently running in this process."""
    return list(_running)


# Monkey-patching by gevent/eventlet after a guard started pauses and restarts the running guards.
_green.set_guards_provider(running_guards)
