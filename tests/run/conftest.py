"""Fixtures for the ``sockwise run`` tests: start commands under it, read the probes they record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from run_support import Launcher


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    """A :class:`Launcher` whose processes are killed by PID when the test ends."""
    launch = Launcher(tmp_path)
    try:
        yield launch
    finally:
        launch.close()
