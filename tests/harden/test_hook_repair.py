"""A library that puts the original ``socket.socket.connect`` back does not undo harden() for good.

pytest-socket (after every test), ``monkeypatch`` undo and some agents set the class attribute
back to the method they saved, dropping sockwise's hook while ``is_hardened()`` still says yes.
:func:`sockwise._hooks.repair` -- run by the guard's tick, the pytest plugin and ``is_hardened()``
-- puts it back, once warned per method; a later *wrapper* of ours is left as it is.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import sockwise
from sockwise import _hooks
from sockwise._log import forget_once
from sockwise.guard import Guard
from sockwise.testing import read_socket_options

POLICY = sockwise.Policy(keepalive_idle=17, keepalive_interval=4, keepalive_count=5)
_MISSING = object()


@pytest.fixture(autouse=True)
def _class_dict_restored() -> Iterator[None]:
    """Leave ``socket.socket`` as found: a reset by hand writes the C method into its dict."""
    names = ("connect", "connect_ex")
    before = {name: socket.socket.__dict__.get(name, _MISSING) for name in names}
    yield
    sockwise.unharden()
    for name, value in before.items():
        if value is _MISSING:
            if name in socket.socket.__dict__:
                delattr(socket.socket, name)
        else:
            setattr(socket.socket, name, value)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        yield srv


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    forget_once("hooks-lost")
    caplog.set_level(logging.WARNING, logger="sockwise")
    yield caplog
    forget_once("hooks-lost")


def _keepidle(listener: socket.socket) -> int:
    with socket.socket() as sock:
        sock.connect(listener.getsockname())
        return read_socket_options(sock)["TCP_KEEPIDLE"]


def _lost_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "re-applied its hook" in r.getMessage()]


def test_reset_to_the_original_is_repaired_and_warned_once(listener, warnings_logged) -> None:
    sockwise.harden(POLICY, guard=False)
    ours = socket.socket.__dict__["connect"]
    original = ours.__wrapped__
    socket.socket.connect = original  # what pytest-socket's teardown does
    assert _keepidle(listener) != 17  # the hook is gone ...
    assert _hooks.repair()  # ... until the check puts it back
    repaired = socket.socket.__dict__["connect"]
    assert repaired is not original and repaired.__wrapped__ is original
    assert _keepidle(listener) == 17
    assert _lost_warnings(warnings_logged) == [
        "sockwise: socket.socket.connect was reset to the original by another library; "
        "sockwise re-applied its hook"
    ]
    socket.socket.connect = original  # again: repaired again, not warned again
    assert _hooks.repair()
    assert socket.socket.__dict__["connect"].__wrapped__ is original
    assert len(_lost_warnings(warnings_logged)) == 1
    sockwise.unharden()
    assert socket.socket.__dict__.get("connect", original) is original  # nothing of ours left
    assert not _hooks.is_patched()


def test_is_hardened_tells_the_truth_after_a_removal(listener, warnings_logged) -> None:
    sockwise.harden(POLICY, guard=False)
    del socket.socket.connect  # an "undo" that deletes the attribute it set
    del socket.socket.connect_ex
    assert sockwise.is_hardened()
    assert socket.socket.__dict__["connect"].__module__ == "sockwise._hooks"
    assert socket.socket.__dict__["connect_ex"].__module__ == "sockwise._hooks"
    assert _keepidle(listener) == 17
    messages = _lost_warnings(warnings_logged)
    assert len(messages) == 2 and all("was removed by another library" in m for m in messages)


def test_is_patched_repairs_first(listener) -> None:
    sockwise.harden(POLICY, guard=False)
    socket.socket.connect = socket.socket.__dict__["connect"].__wrapped__
    assert _hooks.is_patched()
    assert _keepidle(listener) == 17


def test_the_guard_tick_repairs(listener, warnings_logged) -> None:
    with Guard(interval=3600) as guard:
        original = socket.socket.__dict__["connect"].__wrapped__
        socket.socket.connect = original
        guard.check()  # one tick
        assert socket.socket.__dict__["connect"] is not original
        before = _origin_connects()
        _keepidle(listener)
        assert _origin_connects() == before + 1
    assert any("socket.socket.connect" in m for m in _lost_warnings(warnings_logged))


def _origin_connects() -> int:
    from sockwise.guard import _origin

    return _origin.connects()


def test_a_later_wrapper_is_left_as_it_is(listener, warnings_logged) -> None:
    sockwise.harden(POLICY, guard=False)
    ours = socket.socket.__dict__["connect"]
    calls: list[object] = []

    def traced_connect(sock: socket.socket, address: Any) -> None:
        calls.append(address)
        return ours(sock, address)

    socket.socket.connect = traced_connect  # type: ignore[method-assign]
    try:
        assert _hooks.repair()
        assert socket.socket.__dict__["connect"] is traced_connect
        assert _keepidle(listener) == 17 and len(calls) == 1
        assert _lost_warnings(warnings_logged) == []
    finally:
        socket.socket.connect = ours  # type: ignore[method-assign]


def test_not_hardened_nothing_to_repair() -> None:
    original = socket.socket.__dict__.get("connect", _MISSING)
    assert not _hooks.repair()
    assert not sockwise.is_hardened()
    assert socket.socket.__dict__.get("connect", _MISSING) is original
