"""Helpers shared by the CLI tests (imported by name: tests/cli is on sys.path)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """The command failed with a single line on stderr containing *needles*, no traceback."""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]
