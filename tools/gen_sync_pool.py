"""Generate ``src/sockwise/psycopg/_pool.py`` (sync) from ``_pool_async.py`` (the source).

psycopg_pool writes its pools the same way (``tools/async_to_sync.py``): the asyncio pool is
edited, the threading pool is generated, and CI fails when the generated file is stale. Ours is
a token transform, enough for a file written with it in mind:

* the ``async`` of ``async def`` / ``async with`` / ``async for`` and every ``await`` go;
* names in :data:`NAMES` are renamed (``AsyncConnection`` -> ``Connection``, ``ACT`` -> ``CT``,
  ``aping`` -> ``ping``, ``psycopg_pool.pool_async`` -> ``psycopg_pool.pool`` ...);
* in docstrings, the phrases in :data:`PHRASES` are replaced (each must still occur: a phrase
  edited in the source fails the generator instead of leaking asyncio wording);
* a line ending in ``# sync: <code>`` becomes ``<code>`` (same indentation);
* the module docstring is :data:`SYNC_DOC`; ``ruff check --fix --select I`` and ``ruff format``
  finish the file (imports merged and sorted, lines re-wrapped).

Usage::

    python tools/gen_sync_pool.py          # rewrite _pool.py
    python tools/gen_sync_pool.py --check  # exit 1 (with a diff) when _pool.py is stale
"""

from __future__ import annotations

import argparse
import difflib
import io
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "sockwise" / "psycopg" / "_pool_async.py"
TARGET = ROOT / "src" / "sockwise" / "psycopg" / "_pool.py"

NAMES = {
    "ACT": "CT",
    "AsyncConnectFailedCB": "ConnectFailedCB",
    "AsyncConnection": "Connection",
    "AsyncConnectionCB": "ConnectionCB",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncConninfoParam": "ConninfoParam",
    "AsyncIterator": "Iterator",
    "AsyncKwargsParam": "KwargsParam",
    "aping": "ping",
    "asleep": "sleep",
    "asynccontextmanager": "contextmanager",
    "pool_async": "pool",
    "_AsyncBorrowed": "_Borrowed",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}

PHRASES = [
    (
        "The asyncio twin of :class:`sockwise.psycopg.ConnectionPool`: same arguments as\n"
        "    psycopg_pool's asyncio pool, plus ``policy``; health-check round trips wait on the "
        "event\n    loop. These defaults differ:",
        "Same arguments as psycopg_pool's pool, plus ``policy``; these defaults differ:",
    ),
    (
        "open: Open the pool at construction (deprecated by psycopg_pool for asyncio).",
        "open: Open the pool at construction (psycopg_pool's deprecated default ``None``).",
    ),
    ("num_workers: Background worker tasks.", "num_workers: Background worker threads."),
    ("an ``async with`` block", "a ``with`` block"),
    ("AsyncConnectionPool", "ConnectionPool"),
]

SYNC_DOC = (
    '"""``sockwise.psycopg.ConnectionPool``: psycopg_pool\'s pool, hardened (see ``_common``).\n'
    '''
Generated from ``_pool_async.py`` by ``tools/gen_sync_pool.py``: do not edit, edit the asyncio
pool and run the generator (CI runs it with ``--check``).
"""'''
)

_DROP = {"async", "await"}


def _edits(source: str) -> list[tuple[tuple[int, int], tuple[int, int], str]]:
    """(start, end, replacement) for every token the transform changes."""
    edits = []
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    first_string = True
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.NAME and tok.string in _DROP:
            nxt = tokens[i + 1]
            end = nxt.start if nxt.start[0] == tok.end[0] else tok.end
            edits.append((tok.start, end, ""))
        elif tok.type == tokenize.NAME and tok.string in NAMES:
            edits.append((tok.start, tok.end, NAMES[tok.string]))
        elif tok.type == tokenize.STRING:
            if first_string:
                first_string = False
                edits.append((tok.start, tok.end, SYNC_DOC))
                continue
            text = tok.string
            for old, new in PHRASES:
                text = text.replace(old, new)
            if text != tok.string:
                edits.append((tok.start, tok.end, text))
    return edits


def _apply(source: str, edits: list[tuple[tuple[int, int], tuple[int, int], str]]) -> str:
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(pos: tuple[int, int]) -> int:
        return starts[pos[0] - 1] + pos[1]

    out = source
    for start, end, text in sorted(edits, key=lambda e: offset(e[0]), reverse=True):
        out = out[: offset(start)] + text + out[offset(end) :]
    return out


def _directives(source: str) -> str:
    out = []
    for line in source.splitlines(keepends=True):
        code, sep, repl = line.partition("# sync: ")
        if sep:
            indent = code[: len(code) - len(code.lstrip())]
            line = f"{indent}{repl.strip()}\n"
        out.append(line)
    return "".join(out)


def _ruff(*args: str, source: str) -> str:
    cmd = [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(TARGET), "-"]
    proc = subprocess.run(cmd, input=source, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode not in (0, 1) or not proc.stdout:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return proc.stdout


def generate(source: str) -> str:
    """Return the sync pool module for the asyncio pool module *source*."""
    for old, _ in PHRASES:
        if old not in source:
            raise SystemExit(f"gen_sync_pool: phrase no longer in {SOURCE.name}: {old!r}")
    code = _directives(_apply(source, _edits(source)))
    code = _ruff("check", "--fix", "--quiet", "--select", "I", "--exit-zero", source=code)
    return _ruff("format", "--quiet", source=code)


def main(argv: list[str] | None = None) -> int:
    """Write the sync pool, or with ``--check`` report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if _pool.py is stale")
    parser.add_argument("--target", type=Path, default=TARGET, help="the sync file to write")
    args = parser.parse_args(argv)
    target: Path = args.target
    new = generate(SOURCE.read_text(encoding="utf-8"))
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    if args.check:
        if new == old:
            return 0
        diff = difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"{target.name} (on disk)",
            f"{target.name} (generated)",
        )
        sys.stdout.writelines(diff)
        print(f"\n{target} is stale: run python tools/gen_sync_pool.py", file=sys.stderr)
        return 1
    if new != old:
        target.write_text(new, encoding="utf-8")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
