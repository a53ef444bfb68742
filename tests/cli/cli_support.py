"""Helpers shared by the CLI tests (imported by name: tests/cli is on sys.path)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """The command failed with a single line on stderr containing *needles*, no traceback."""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


@contextlib.contextmanager
def child_holding(script: str) -> Iterator[tuple[int, list[int]]]:
    """Run *script*, which prints one line of numbers and then waits on stdin, in a child.

    Yields the child's PID and the numbers; after, the child is killed, its pipes closed and
    its exit waited for (``Popen``'s own ``with``).
    """
    argv = [sys.executable, "-c", script]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            yield proc.pid, [int(v) for v in proc.stdout.readline().split()]
        finally:
            proc.kill()
