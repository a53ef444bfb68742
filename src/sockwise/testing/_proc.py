"""What the test helpers share: bounded commands, a registry of live objects, closing on exit.

* :func:`run_command` runs a command with a timeout and turns every way it can fail into one
  exception class chosen by the caller (``NetnsError``, ``PostgresUnavailableError``).
* :class:`LiveSet` remembers the objects a helper created and has not closed yet, and closes
  them at interpreter exit (registered on the first :meth:`LiveSet.add`, not at import).
* :class:`Closing` gives a class with a ``close()`` method the context-manager protocol.
"""

from __future__ import annotations

import atexit
import contextlib
import subprocess
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from typing import Self


def run_command(
    argv: Sequence[str],
    *,
    error: type[Exception],
    timeout: float,
    check: bool = True,
    cwd: str | None = None,
    detail: Callable[[], str] | None = None,
) -> str:
    """Run *argv* (stdin closed, output captured as text) and return its standard output.

    Args:
        argv: The command and its arguments.
        error: The exception class raised on failure, with a message naming the command.
        timeout: Seconds the command may run before it is killed and *error* raised.
        check: Raise *error* when the command exits non-zero (else return its output anyway).
        cwd: The working directory (default: the caller's).
        detail: Called on a non-zero exit; its text is appended to the message (a log tail).

    Raises:
        Exception: An instance of *error*: the command could not start, ran over *timeout*, or
            (with *check*) exited non-zero; the message carries the end of its output.

    """
    command = " ".join(argv)
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise error(f"{command} failed: {exc}") from exc
    if check and proc.returncode != 0:
        extra = detail() if detail is not None else ""
        output = (proc.stderr or proc.stdout).strip()[-2000:]
        raise error(f"{command} exited {proc.returncode}: {output}{extra}")
    return proc.stdout


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class LiveSet(Generic[C]):
    """The objects of one kind that this process created and has not closed yet (thread-safe).

    :meth:`close_all` runs at interpreter exit once anything was added, so a test run that is
    interrupted still removes its clusters and namespaces.
    """

    def __init__(self) -> None:
        self._items: set[C] = set()
        self._lock = threading.Lock()
        self._atexit_registered = False

    def add(self, item: C) -> None:
        """Remember *item* (and register :meth:`close_all` at exit the first time)."""
        with self._lock:
            self._items.add(item)
            if not self._atexit_registered:
                atexit.register(self.close_all)
                self._atexit_registered = True

    def discard(self, item: C) -> None:
        """Forget *item* (it was closed)."""
        with self._lock:
            self._items.discard(item)

    def close_all(self) -> None:
        """Close every remembered object; an error closing one does not stop the others."""
        with self._lock:
            items = list(self._items)
        for item in items:
            with contextlib.suppress(Exception):
                item.close()


class Closing:
    """A context manager that calls ``self.close()`` on exit (subclasses define ``close``)."""

    def close(self) -> None:
        """Release what the object holds; idempotent in every subclass."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
