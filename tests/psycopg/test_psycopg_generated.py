"""The sync pool is generated from the asyncio one; CI fails when it is stale (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "gen_sync_pool.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_sync_pool_is_up_to_date() -> None:
    """``gen_sync_pool.py --check`` passes: _pool.py is what the generator writes."""
    out = _run("--check")
    assert out.returncode == 0, out.stdout + out.stderr


def test_check_sees_a_stale_file(tmp_path: Path) -> None:
    """--check fails with a diff on a hand-edited sync pool; a plain run repairs it."""
    target = tmp_path / "_pool.py"
    good = (ROOT / "src" / "sockwise" / "psycopg" / "_pool.py").read_text(encoding="utf-8")
    assert "async def" not in good and "await " not in good
    assert "class ConnectionPool(SockwiseMixin, psycopg_pool.ConnectionPool[CT])" in good
    target.write_text(good.replace("self._sw_out.append(None)", "pass"), encoding="utf-8")
    out = _run("--check", "--target", str(target))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(ln.startswith("-") and ln[1:].strip().startswith("pass  #") for ln in lines)
    assert any(ln.startswith("+") and "self._sw_out.append(None)" in ln for ln in lines)
    assert "is stale" in out.stderr
    assert _run("--target", str(target)).returncode == 0
    assert target.read_text(encoding="utf-8") == good
