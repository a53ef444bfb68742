"""sockwise under the real pytest-socket, which puts ``socket.socket.connect`` back after each test.

pytest-socket saves ``socket.socket.connect`` when it is imported -- before a suite hardens -- and
sets the class attribute back to it in every test's teardown, which used to drop sockwise's hook
for the rest of the session. Each case runs a fresh ``python -m pytest`` on generated files (the
plugin captures the class at import, so an in-process run would share the outer session's
capture), with plugin autoloading off and the plugins named, so the run is the same whether or not
pytest-socket is installed in this environment's entry points.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pytest_socket")

CONFTEST = """
import sockwise

POLICY = sockwise.Policy(keepalive_idle=17, keepalive_interval=4, keepalive_count=5)
"""

# Test 1 hardens and starts a guard (no tick for an hour: only the pytest plugin can repair);
# pytest-socket's teardown then puts the original connect back; test 2 connects.
AFTER_RESET = """
import os
import socket

import sockwise
from sockwise.guard import Guard, _origin
from sockwise.testing import read_socket_options

from conftest import POLICY

GUARDS = []


def test_1_harden():
    sockwise.harden(POLICY, guard=False)
    GUARDS.append(Guard(interval=3600).start())
    assert socket.socket.__dict__["connect"].__module__ == "sockwise._hooks"


def test_2_connect_after_the_reset():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        with socket.create_connection(srv.getsockname(), timeout=5) as client:
            options = read_socket_options(client)
            found = _origin.lookup(os.fstat(client.fileno()).st_ino)
    assert options["SO_KEEPALIVE"] == 1
    assert options["TCP_KEEPIDLE"] == 17
    assert options["TCP_KEEPINTVL"] == 4
    assert options["TCP_KEEPCNT"] == 5
    assert found is not None and found[1] is not None, found
    assert "test_2_connect_after_the_reset" in str(found[1])
"""

# Hardened before pytest-socket disables sockets; the second test runs after a reset and a
# repair, with sockets disabled: pytest-socket must still refuse it.
DISABLED = """
import os
import socket

import pytest
import pytest_socket

import sockwise
from conftest import POLICY

PORT = int(os.environ["SOCKWISE_TEST_PORT"])


def test_1_harden():
    sockwise.harden(POLICY, guard=False)


def test_2_connect_is_still_blocked():
    assert sockwise.is_hardened()
    assert pytest_socket._true_socket.__dict__["connect"].__module__ == "sockwise._hooks"
    with pytest.raises(pytest_socket.SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(pytest_socket.SocketBlockedError):
        socket.create_connection(("127.0.0.1", PORT), timeout=2)
"""


def _inner(tmp_path: Path, plugins: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    named = [arg for plugin in plugins for arg in ("-p", plugin)]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *named, *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    return tmp_path


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        yield srv


def test_hook_is_back_after_pytest_socket_resets_connect(suite: Path) -> None:
    (suite / "test_reset.py").write_text(textwrap.dedent(AFTER_RESET))
    result = _inner(suite, ["pytest_socket", "sockwise.pytest_plugin"], "-W", "error")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_without_the_repair_pytest_socket_drops_the_hook(suite: Path) -> None:
    """The control: the same run without the sockwise plugin loses the policy in test 2."""
    (suite / "test_reset.py").write_text(textwrap.dedent(AFTER_RESET))
    result = _inner(suite, ["pytest_socket"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout
    assert "TCP_KEEPIDLE" in result.stdout or "SO_KEEPALIVE" in result.stdout


def test_disable_socket_still_blocks_after_the_repair(suite: Path, listener: socket.socket) -> None:
    (suite / "test_disabled.py").write_text(textwrap.dedent(DISABLED))
    os.environ["SOCKWISE_TEST_PORT"] = str(listener.getsockname()[1])
    try:
        result = _inner(suite, ["pytest_socket", "sockwise.pytest_plugin"], "--disable-socket")
    finally:
        del os.environ["SOCKWISE_TEST_PORT"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    listener.settimeout(0.2)
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing got through to the listener
