"""Every ```python block in docs/**/*.md runs in a fresh interpreter, network on loopback only.

Conventions (documented in docs/reference/writing-docs.md):

* A fenced block whose info string is ``python`` (or ``py``) is an *example* and is executed as
  a script of its own, in a new ``python -X dev -W error`` subprocess with a timeout, in a
  temporary directory, with no ``SOCKWISE_*`` variables in its environment. It passes when it
  exits 0 and prints no ignored exception or ResourceWarning. ``console``/``ini``/``toml``/...
  blocks are not Python and are not run.
* ``<!-- no-run: REASON -->`` on the line(s) just before a block skips it; the reason is
  mandatory and the number of such blocks is capped, so they stay rare.
* ``<!-- requires: mod1, mod2 -->`` runs the block only where those modules import (examples for
  third-party frameworks that are not sockwise dependencies, such as Flask); elsewhere the test
  is skipped with the missing module named.

Where possible (root, ``unshare`` available) each example runs in a fresh network namespace
that has only a loopback interface, so an example cannot reach any other network even by
mistake.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
TIMEOUT = 60  # seconds per example; generous because the machine is shared
PARALLEL = 4  # examples run at once
MAX_NO_RUN = 6

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)\s*$")
_MARKER = re.compile(r"^<!--\s*(?P<kind>no-run|requires)\s*:\s*(?P<value>.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    code: str
    no_run: str | None  # the reason, when marked no-run
    requires: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(DOCS)}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.info in {"python", "py"}


def parse_blocks(path: Path) -> list[Block]:
    """Return the top-level fenced code blocks of *path* with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, start = match["fence"], i
        end = start + 1
        while end < len(lines) and not (
            lines[end].startswith(fence[0] * len(fence)) and not lines[end].strip().strip(fence[0])
        ):
            end += 1
        no_run, requires = _markers(lines, start)
        blocks.append(
            Block(
                path=path,
                line=start + 1,
                info=match["info"],
                code="\n".join(lines[start + 1 : end]) + "\n",
                no_run=no_run,
                requires=requires,
            )
        )
        i = end + 1
    return blocks


def _markers(lines: list[str], fence_index: int) -> tuple[str | None, tuple[str, ...]]:
    """The no-run reason and required modules from the comment lines just above a fence."""
    no_run: str | None = None
    requires: tuple[str, ...] = ()
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    while j >= 0 and (marker := _MARKER.match(lines[j].strip())):
        if marker["kind"] == "no-run":
            no_run = marker["value"]
        else:
            requires = tuple(m.strip() for m in marker["value"].split(",") if m.strip())
        j -= 1
    return no_run, requires


def all_blocks() -> list[Block]:
    return [b for page in sorted(DOCS.rglob("*.md")) for b in parse_blocks(page)]


PYTHON_BLOCKS = [b for b in all_blocks() if b.is_python]


@functools.cache
def _isolation_prefix() -> tuple[str, ...]:
    """A command prefix that runs the example in a new network namespace, or () if unavailable."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not (unshare and ip and hasattr(os, "geteuid") and os.geteuid() == 0):
        return ()
    prefix = (unshare, "--net", "--", "sh", "-c", f'{ip} link set lo up && exec "$0" "$@"')
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "pass"], capture_output=True, timeout=TIMEOUT, check=False
    )
    return prefix if probe.returncode == 0 else ()


def _example_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKWISE_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def skip_reason(block: Block) -> str | None:
    """Why *block* is not run here, or ``None`` when it is."""
    if block.no_run is not None:
        return f"marked no-run: {block.no_run}"
    missing = [m for m in block.requires if importlib.util.find_spec(m) is None]
    if missing:
        return f"example needs {', '.join(missing)} (not installed here)"
    return None


def run_example(block: Block, workdir: Path) -> subprocess.CompletedProcess[str] | None:
    """Run *block* as a script in *workdir*; ``None`` when it did not finish in time."""
    script = workdir / "example.py"
    script.write_text(block.code, encoding="utf-8")
    cmd = [*_isolation_prefix(), sys.executable, "-X", "dev", "-W", "error", str(script)]
    try:
        return subprocess.run(
            cmd,
            cwd=workdir,
            env=_example_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture(scope="module")
def example_results(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, subprocess.CompletedProcess[str] | None]:
    """Run the selected examples a few at a time (most of them wait on sockets, not the CPU)."""
    selected = {
        item.callspec.params["block"].id
        for item in request.session.items
        if "block" in getattr(getattr(item, "callspec", None), "params", {})
    }
    todo = [b for b in PYTHON_BLOCKS if b.id in selected and skip_reason(b) is None]
    _isolation_prefix()  # probe once, before the threads
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = {b.id: pool.submit(run_example, b, tmp_path_factory.mktemp("ex")) for b in todo}
    return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_doc_example_runs(
    block: Block, example_results: dict[str, subprocess.CompletedProcess[str] | None]
) -> None:
    """The example exits 0 without warnings, in a fresh interpreter."""
    reason = skip_reason(block)
    if reason is not None:
        pytest.skip(reason)
    result = example_results[block.id]
    if result is None:
        pytest.fail(f"{block.id}: example did not finish within {TIMEOUT} s")
    report = f"{block.id} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    assert "Exception ignored" not in result.stderr, report
    assert "ResourceWarning" not in result.stderr, report
    assert "Traceback" not in result.stderr, report  # e.g. an error logged with exc_info


def test_examples_are_found() -> None:
    """The collector sees the examples: a parser regression cannot silently run nothing."""
    assert len(PYTHON_BLOCKS) >= 15
    pages = {b.path for b in PYTHON_BLOCKS}
    assert DOCS / "quickstart.md" in pages


def test_no_run_markers_are_rare_and_justified() -> None:
    """Every no-run example says why, and there are few of them."""
    marked = [b for b in PYTHON_BLOCKS if b.no_run is not None]
    for block in marked:
        assert len(block.no_run.split()) >= 3, f"{block.id}: no-run needs a real reason"
    assert len(marked) <= MAX_NO_RUN, [b.id for b in marked]


def test_markers_only_precede_python_blocks() -> None:
    """A marker above a non-Python block would be a typo that silently does nothing."""
    for block in all_blocks():
        if not block.is_python:
            assert block.no_run is None, f"{block.id}: no-run marker on a {block.info!r} block"
            assert not block.requires, f"{block.id}: requires marker on a {block.info!r} block"


def test_parser_handles_markers_and_nested_fences(tmp_path: Path) -> None:
    """The block parser reads markers, languages and longer fences correctly."""
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- no-run: needs a real cloud account -->\n\n```python\nx = 1\n```\n\n"
        "<!-- requires: flask, jinja2 -->\n```py\nimport flask\n```\n\n"
        "````markdown\n```python\nnot a block\n```\n````\n\n```console\n$ ls\n```\n",
        encoding="utf-8",
    )
    blocks = parse_blocks(page)
    assert [(b.info, b.line) for b in blocks] == [
        ("python", 5),
        ("py", 10),
        ("markdown", 14),
        ("console", 20),
    ]
    assert blocks[0].no_run == "needs a real cloud account"
    assert blocks[0].code == "x = 1\n"
    assert blocks[1].requires == ("flask", "jinja2")
    assert blocks[1].no_run is None
    assert "not a block" in blocks[2].code
