"""The sockwise pytest plugin: a ``sockwise_guard`` fixture and an opt-in socket-leak check.

Installed with sockwise (entry point ``pytest11``), it does nothing until asked:

* the ``sockwise_guard`` fixture starts a :class:`sockwise.Guard` around a test and yields it
  (call ``sockwise_guard.check()`` for a :class:`~sockwise.GuardReport`);
* the leak check -- ``pytest --sockwise-leaks``, the ini option ``sockwise_leaks = true``, or
  ``@pytest.mark.sockwise_leaks`` on a test -- fails a test that leaves a TCP socket open
  (CLOSE_WAIT, ESTABLISHED, LISTEN...) after its teardown, naming the code that opened it.
  ``@pytest.mark.sockwise_leaks(False)`` exempts one test when the check is on for the suite.
* before each test, sockwise's socket hooks (of :func:`sockwise.harden` or a running guard) are
  re-applied if another plugin put the original ``socket.socket.connect`` back -- pytest-socket
  does after every test; nothing is patched otherwise.

Theory of operation: while a checked test runs, a :func:`sys.addaudithook` hook (installed the
first time a test is checked; inert otherwise) remembers each TCP socket object created, with the
first frame outside the standard library, sockwise and installed packages -- the code that opened
it. Nothing is patched, so tests that inspect ``socket.socket`` or sockwise's own hooks see the
process as it is. The process's TCP sockets are listed when the test body starts -- after its
fixtures were set up, so sockets of session-wide fixtures are not blamed on it -- and again after
its teardown; a socket present at the end and not at the start was opened by the test (or a
fixture it called during the body) and never closed. Sockets in TIME_WAIT belong to no process
and are never reported. When the sockets cannot be read at all (a sandbox without ``/proc`` or
netlink), the check is skipped and the terminal summary says why.
"""

from __future__ import annotations

import os
import socket
import sys
import sysconfig
import threading
import weakref
from collections.abc import Generator, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

import pytest

from sockwise import _hooks

if TYPE_CHECKING:
    from sockwise.guard import Guard

_ENABLED: Final = "sockwise_leaks"
_base_key: Final = pytest.StashKey[frozenset[int]]()
_mark_key: Final = pytest.StashKey[int]()
_checked_key: Final = pytest.StashKey[bool]()
_skipped_key: Final = pytest.StashKey[list[str]]()


def _still_open(
    entries: list[tuple[weakref.ref[socket.socket], str]],
) -> Iterator[tuple[int, int, str]]:
    """``(fd, inode, origin)`` of the recorded sockets in *entries* that are not closed."""
    for ref, where in entries:
        sock = ref()
        if sock is None:
            continue
        try:
            fd = sock.fileno()
            if fd >= 0:
                yield fd, os.fstat(fd).st_ino, where
        except (OSError, ValueError):
            continue


class _Recorder:
    """Remembers where each TCP socket object was created, while a checked test runs."""

    def __init__(self) -> None:
        self.active = False
        self.seen: list[tuple[weakref.ref[socket.socket], str]] = []
        self.lock = threading.Lock()
        skip = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
        skip.add(os.path.dirname(os.path.abspath(__file__)))
        self.skip = tuple(os.path.join(os.path.realpath(p), "") for p in skip)

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        """The audit hook: record ``socket.__new__`` of TCP sockets (never raises)."""
        if not self.active or event != "socket.__new__":
            return
        try:
            sock, family, type_, _ = args
            if family not in (socket.AF_INET, socket.AF_INET6) or type_ & 0xF != socket.SOCK_STREAM:
                return
            entry = (weakref.ref(sock), self.origin(sys._getframe(1)))
            with self.lock:
                self.seen.append(entry)
        except Exception:  # Defensive: an audit hook must never break the audited call
            return

    def origin(self, frame: FrameType | None) -> str:
        """The first frame outside the standard library, sockwise and installed packages."""
        fallback = None
        while frame is not None:
            name = frame.f_code.co_filename
            if not name.startswith("<"):
                real = os.path.realpath(name)
                here = f"{name}:{frame.f_lineno} in {frame.f_code.co_qualname}()"
                if not real.startswith(self.skip):
                    return here
                fallback = fallback or here
            frame = frame.f_back
        return fallback or "?"

    def origins(self) -> dict[int, str]:
        """Inode -> origin of the recorded sockets still open."""
        with self.lock:
            entries = list(self.seen)
        return {inode: where for _, inode, where in _still_open(entries)}

    def mark(self) -> int:
        """A position in the records: :meth:`unclosed` looks only at sockets created after it."""
        with self.lock:
            return len(self.seen)

    def unclosed(self, since: int) -> list[tuple[int, int, str]]:
        """``(fd, inode, origin)`` of the sockets created after *since* and still not closed."""
        with self.lock:
            entries = self.seen[since:]
        return list(_still_open(entries))

    def start(self) -> None:
        """Clear the records and start recording."""
        with self.lock:
            self.seen = []
        self.active = True

    def stop(self) -> None:
        """Stop recording and forget."""
        self.active = False
        with self.lock:
            self.seen = []


_recorder: _Recorder | None = None


def _get_recorder() -> _Recorder:
    global _recorder
    if _recorder is None:
        _recorder = _Recorder()
        sys.addaudithook(_recorder.hook)
    return _recorder


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--sockwise-leaks`` and the ``sockwise_leaks`` ini option."""
    group = parser.getgroup("sockwise", "sockwise: TCP socket leaks")
    group.addoption(
        "--sockwise-leaks",
        action="store_true",
        default=None,
        help="fail tests that leave a TCP socket open (CLOSE_WAIT or unclosed), naming its origin",
    )
    parser.addini(
        _ENABLED,
        type="bool",
        default=False,
        help="fail tests that leave a TCP socket open (like --sockwise-leaks)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``sockwise_leaks`` marker."""
    config.addinivalue_line(
        "markers",
        "sockwise_leaks(enabled=True): check this test for TCP sockets left open "
        "(False: exempt it when --sockwise-leaks is on)",
    )
    config.stash[_skipped_key] = []


def _wanted(item: pytest.Item) -> bool:
    marker = item.get_closest_marker(_ENABLED)
    if marker is not None:
        return bool(marker.args[0]) if marker.args else bool(marker.kwargs.get("enabled", True))
    flag = item.config.getoption("sockwise_leaks", default=None)
    if flag:
        return True
    return bool(item.config.getini(_ENABLED))


def _owned() -> dict[int, Any]:
    """The TCP sockets of this process (not TIME_WAIT), by inode."""
    from sockwise.guard import TCP_STATES, process_sockets

    # Leaving TIME_WAIT out in the kernel's filter keeps this fast on a busy machine.
    owned = [s for s in TCP_STATES.values() if s not in ("TIME_WAIT", "NEW_SYN_RECV")]
    return {r.inode: r for r in process_sockets(states=owned) if r.inode}


def _note_skip(config: pytest.Config, reason: str) -> None:
    notes = config.stash.get(_skipped_key, [])
    if reason not in notes:
        notes.append(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Re-apply sockwise's socket hooks if a plugin took them out; start recording origins.

    pytest-socket sets ``socket.socket.connect`` back to the original after every test, which
    would silently drop the hooks of :func:`sockwise.harden` or a running guard for the rest of
    the session; they are put back here, before the test's fixtures are set up.
    """
    _hooks.repair()
    if _wanted(item):
        item.stash[_checked_key] = True
        _get_recorder().start()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """List the process's sockets as the test body starts."""
    if _checked_key in item.stash:
        try:
            item.stash[_base_key] = frozenset(_owned())
            item.stash[_mark_key] = _get_recorder().mark()
        except OSError as exc:
            _note_skip(item.config, f"sockets unreadable ({exc}); leak check skipped")
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    """After teardown, fail the test if it left TCP sockets open."""
    try:
        result = yield
    except BaseException:
        _stop(item)
        raise
    try:
        _check(item)
    finally:
        _stop(item)
    return result


def _stop(item: pytest.Item) -> None:
    if _base_key in item.stash:
        del item.stash[_base_key]
    if _mark_key in item.stash:
        del item.stash[_mark_key]
    if _checked_key in item.stash:
        del item.stash[_checked_key]
        _get_recorder().stop()


def _check(item: pytest.Item) -> None:
    base = item.stash.get(_base_key, None)
    if base is None:
        return
    try:
        now = _owned()
    except OSError as exc:
        _note_skip(item.config, f"sockets unreadable ({exc}); leak check skipped")
        return
    from sockwise._net.addr import format_address

    leaked = [rec for inode, rec in now.items() if inode not in base]
    # Sockets the test created and never closed that the kernel no longer lists as TCP
    # connections: never connected, or reset by the peer (state CLOSE).
    unlisted = [
        (fd, where)
        for fd, inode, where in _get_recorder().unclosed(item.stash.get(_mark_key, 0))
        if inode not in now and inode not in base
    ]
    if not leaked and not unlisted:
        return
    origins = _get_recorder().origins()
    count = len(leaked) + len(unlisted)
    lines = [f"sockwise: {item.nodeid} left {count} TCP socket(s) open:"]
    for fd, where in unlisted:
        lines.append(f"  fd {fd} CLOSE (never connected, or reset by the peer; never closed)")
        lines.append(f"    opened at {where}")
    for rec in sorted(leaked, key=lambda r: r.fd if r.fd is not None else -1):
        origin = origins.get(rec.inode, "unknown (opened before the test, or not by Python)")
        peer = "" if rec.state == "LISTEN" else f" -> {format_address(rec.remote)}"
        hint = " (the peer closed it; this side never did)" if rec.state == "CLOSE_WAIT" else ""
        lines.append(f"  fd {rec.fd} {rec.state} {format_address(rec.local)}{peer}{hint}")
        lines.append(f"    opened at {origin}")
    pytest.fail("\n".join(lines), pytrace=False)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say once why the leak check could not run, if it could not."""
    for note in config.stash.get(_skipped_key, []):
        terminalreporter.write_line(f"sockwise: {note}")


@pytest.fixture
def sockwise_guard() -> Iterator[Guard]:
    """A running :class:`sockwise.Guard` for the duration of the test (origins recorded).

    Call ``sockwise_guard.check()`` to take a sample and get a :class:`~sockwise.GuardReport`.
    """
    from sockwise.guard import Guard

    guard = Guard().start()
    try:
        yield guard
    finally:
        guard.stop()
