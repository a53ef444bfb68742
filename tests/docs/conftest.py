"""Fixtures of the docs tests: one sphinx-build, started early so it overlaps the example runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BUILD_TIMEOUT = 300  # seconds; generous because the machine is shared


@dataclass
class DocsBuild:
    """A ``sphinx-build -W`` running (or finished) in the background."""

    process: subprocess.Popen[bytes]
    out: Path

    @property
    def html(self) -> Path:
        return self.out / "html"

    def wait(self) -> tuple[int, str]:
        """Wait for the build; return its exit status and its output."""
        try:
            code = self.process.wait(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"sphinx-build did not finish within {BUILD_TIMEOUT} s")
        return code, (self.out / "sphinx.log").read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="session", autouse=True)
def docs_build(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DocsBuild | None]:
    """Start sphinx-build once per session, before the examples run, if a test needs it."""
    if not any("built_docs" in getattr(i, "fixturenames", ()) for i in request.session.items):
        yield None
        return
    out = tmp_path_factory.mktemp("docs-build")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html"]
    cmd += ["-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    with (out / "sphinx.log").open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    build = DocsBuild(process, out)
    try:
        yield build
    finally:
        if process.poll() is None:  # the session ended early: stop our own build
            process.kill()
        process.wait()


@pytest.fixture(scope="session")
def built_docs(docs_build: DocsBuild | None) -> Path:
    """The HTML output of a successful ``sphinx-build -W`` (the test fails otherwise)."""
    assert docs_build is not None
    code, log = docs_build.wait()
    assert code == 0, f"sphinx-build failed:\n{log}"
    return docs_build.html
