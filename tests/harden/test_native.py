"""The policy's ``setsockopt`` calls in C (``sockwise._speedups``) and their Python twin.

Both appliers must do exactly what ``_socket.socket.setsockopt`` called once per option does:
the same options on a real socket, the same error at the same option, nothing set after a
failure, the same error for something that is not a socket. On CI the extension must be built
(a silent fallback to Python would pass every other test and lose the speed).
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from sockwise import _native
from sockwise.harden import _stdlib
from sockwise.policy import Policy

_Applier = Callable[[Sequence[tuple[int, int, int]]], Callable[[Any], None]]


def _c_applier(options: Sequence[tuple[int, int, int]]) -> Callable[[Any], None]:
    speedups = _native.speedups()
    if speedups is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"sockwise._speedups is {_native.status()} on CI")
        pytest.skip(f"sockwise._speedups is {_native.status()}")
    apply: Callable[[Any], None] = speedups.applier(options)
    return apply


APPLIERS: dict[str, _Applier] = {"c": _c_applier, "python": _stdlib.python_applier}
OPTIONS = tuple(Policy().socket_options())
TCP = socket.IPPROTO_TCP


def _assert_prints_ok(code: str, env: dict[str, str]) -> None:
    """Run *code* in a fresh interpreter under ``-W error``; it must print ``ok``."""
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stdout.strip() == "ok", run.stderr[-2000:]


def test_extension_is_built_on_ci() -> None:
    if os.environ.get("CI") != "true":
        pytest.skip("only CI promises a compiler")
    assert _native.status() == "built"
    assert type(_stdlib.applier(OPTIONS)).__name__ == "builtin_function_or_method"


@pytest.mark.parametrize("kind", APPLIERS)
def test_sets_every_option_like_setsockopt(kind: str) -> None:
    apply = APPLIERS[kind](OPTIONS)
    with socket.socket() as by_applier, socket.socket() as by_hand:
        apply(by_applier)
        for level, name, value in OPTIONS:
            by_hand.setsockopt(level, name, value)
        for level, name, value in OPTIONS:
            assert by_applier.getsockopt(level, name) == by_hand.getsockopt(level, name) == value


@pytest.mark.parametrize("kind", APPLIERS)
def test_stops_at_the_first_failure_with_its_errno(kind: str) -> None:
    # TCP_KEEPIDLE must be >= 1: the kernel refuses 0 with EINVAL; the option after it is not set.
    apply = APPLIERS[kind]([(TCP, socket.TCP_NODELAY, 1), (TCP, socket.TCP_KEEPIDLE, 0),
                            (TCP, socket.TCP_KEEPINTVL, 7)])  # fmt: skip
    with socket.socket() as sock:
        before = sock.getsockopt(TCP, socket.TCP_KEEPINTVL)
        with pytest.raises(OSError) as info:
            apply(sock)
        assert info.value.errno == errno.EINVAL
        assert sock.getsockopt(TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(TCP, socket.TCP_KEEPINTVL) == before != 7


@pytest.mark.parametrize("kind", APPLIERS)
def test_closed_socket_and_non_socket_fail_as_setsockopt_does(kind: str) -> None:
    apply = APPLIERS[kind](OPTIONS)
    sock = socket.socket()
    sock.close()
    with pytest.raises(OSError) as info:
        apply(sock)
    assert info.value.errno == errno.EBADF
    with pytest.raises(TypeError):
        apply(3)


@pytest.mark.parametrize("kind", APPLIERS)
@pytest.mark.parametrize("bad", [[(6, 1, True)], [(6, 1, "1")], [(6, 1)], [6]])
def test_options_that_are_not_int_triples_are_refused(kind: str, bad: Any) -> None:
    with pytest.raises(TypeError, match="options"):
        APPLIERS[kind](bad)


def test_c_applier_keeps_no_reference_and_reports_its_options() -> None:
    apply = _c_applier(OPTIONS)
    speedups = _native.speedups()
    assert speedups is not None
    assert speedups.options_of(apply) == list(OPTIONS)
    with socket.socket() as sock:
        refs = sys.getrefcount(sock)
        for _ in range(1000):
            apply(sock)
        assert sys.getrefcount(sock) == refs
    with pytest.raises(OverflowError, match="options"):
        speedups.applier([(6, 1, 2**40)])


def test_switched_off_harden_applies_the_policy_in_python() -> None:
    """``SOCKWISE_PURE_PYTHON=1``: the Python applier, with the same effect on a connect."""
    code = """
import socket, sockwise
from sockwise import _native
from sockwise.harden import _stdlib
assert _native.status().startswith("switched off"), _native.status()
assert _stdlib.applier(((6, 1, 1),)).__code__  # a Python function
with socket.create_server(("127.0.0.1", 0)) as server, sockwise.harden(guard=False):
    with socket.create_connection(server.getsockname(), timeout=5) as client:
        for level, name, value in sockwise.Policy().socket_options():
            assert client.getsockopt(level, name) == value, (level, name)
print("ok")
"""
    _assert_prints_ok(code, {**os.environ, _native.PURE_PYTHON_ENV: "1"})


def test_an_extension_that_refuses_to_load_falls_back_to_python() -> None:
    """Not only ImportError: a warning made an error (free-threaded Python re-enabling the GIL
    under ``-W error``) must not stop sockwise from importing; the Python version runs."""
    code = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "sockwise._speedups":
            raise RuntimeWarning("the GIL would be enabled to load this module")
        return None
sys.meta_path.insert(0, Refuse())
import socket, sockwise
from sockwise import _native
assert _native.status() == "not built", _native.status()
with socket.create_server(("127.0.0.1", 0)) as server, sockwise.harden(guard=False):
    with socket.create_connection(server.getsockname(), timeout=5) as client:
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
print("ok")
"""
    _assert_prints_ok(code, {k: v for k, v in os.environ.items() if k != _native.PURE_PYTHON_ENV})
