"""Each extra installs and works alone, in a fresh virtual environment.

The core needs nothing but ``typing-extensions``; ``sockwise[httpx]`` and ``sockwise[aiohttp]``
must not need urllib3, and so on. A wheel of this checkout is built once, then installed with one
extra into a new venv (PyPI is reachable from CI; the pip cache makes it quick), and a short
script uses the integration there. Under ``CI=true`` a failed install fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

#: extra -> (a script run in the venv, modules that must NOT be importable there)
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "": (
        """
        import sockwise
        from sockwise import _native
        assert _native.status() == "built", _native.status()  # the wheel carries the C part
        with sockwise.harden(guard=False):
            pass
        print(sockwise.Policy().dead_peer_bound)
        """,
        ("urllib3", "httpx", "aiohttp", "psycopg"),
    ),
    "httpx": (
        """
        import sockwise.httpx
        with sockwise.httpx.Client() as client:
            assert client is not None
        """,
        ("urllib3", "aiohttp", "psycopg"),
    ),
    "aiohttp": (
        """
        import asyncio
        import sockwise.aiohttp

        async def main():
            connector = sockwise.aiohttp.TCPConnector()
            await connector.close()

        asyncio.run(main())
        """,
        ("urllib3", "httpx", "psycopg"),
    ),
    "urllib3": (
        """
        import sockwise.urllib3
        sockwise.urllib3.PoolManager().clear()
        """,
        ("httpx", "aiohttp", "psycopg", "requests"),
    ),
    "psycopg": (
        """
        import sockwise.psycopg
        assert sockwise.psycopg.ConnectionPool
        """,
        ("urllib3", "httpx", "aiohttp"),
    ),
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(out)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (built,) = out.glob("sockwise-*.whl")
    return built


def _run_in(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run *code* with a venv's *python* under ``-W error``, from *cwd* (not the checkout)."""
    return subprocess.run(
        [str(python), "-W", "error", "-c", code],
        timeout=120,
        capture_output=True,
        text=True,
        cwd=cwd,
    )


@pytest.mark.parametrize("extra", list(CASES), ids=lambda e: e or "core")
def test_extra_installs_and_works_alone(extra: str, wheel: Path, tmp_path: Path) -> None:
    script, absent = CASES[extra]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    name = f"sockwise[{extra}]" if extra else "sockwise"
    requirement = f"{name} @ {wheel.as_uri()}"
    # psycopg needs libpq: its binary wheel carries one, as the docs tell users.
    extra_pkgs = ["psycopg[binary]"] if extra == "psycopg" else []
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", requirement, *extra_pkgs],
        timeout=600,
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    check_absent = "\n".join(
        f"assert importlib.util.find_spec({name!r}) is None, {name!r} + ' was installed'"
        for name in absent
    )
    code = "import importlib.util\n" + check_absent + "\n" + textwrap.dedent(script)
    run = _run_in(python, code, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]


def test_without_a_compiler_the_install_falls_back_to_python(tmp_path: Path) -> None:
    """No working C compiler: the optional extension is skipped, sockwise installs and works."""
    out = tmp_path / "wheel"
    # A copy of the sources without what a build here left (the editable install compiles the
    # extension into src/sockwise, where a wheel build would pick it up as a data file).
    src = tmp_path / "src"
    junk = (".git", ".venv", ".nox", "build", "_build", ".cache", "__pycache__", "*.so", "*-info")
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*junk))
    env = {**os.environ, "CC": "false"}  # every compile fails, as on a machine without gcc
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src), "-w", str(out)],
        check=True,
        timeout=300,
        capture_output=True,
        env=env,
    )
    (built,) = out.glob("sockwise-*.whl")
    with zipfile.ZipFile(built) as whl:  # the compile failed: no extension inside
        assert not [n for n in whl.namelist() if n.endswith(".so")], whl.namelist()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(built)], check=True, timeout=600)
    code = textwrap.dedent(
        """
        import socket, sockwise
        from sockwise import _native
        assert _native.status() == "not built", _native.status()
        with socket.create_server(("127.0.0.1", 0)) as server, sockwise.harden(guard=False):
            with socket.create_connection(server.getsockname(), timeout=5) as client:
                for level, name, value in sockwise.Policy().socket_options():
                    assert client.getsockopt(level, name) == value, (level, name)
        print("ok")
        """
    )
    run = _run_in(python, code, tmp_path)
    assert run.stdout.strip() == "ok", run.stderr[-2000:]
