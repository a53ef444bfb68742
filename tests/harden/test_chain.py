"""Other patches of ``socket.socket.connect``: sockwise chains to earlier ones, keeps later ones.

The earlier patch is a host restriction in the style of pytest-socket (it raises for one port and
calls through otherwise); the later one is a tracing agent's wrapper that counts connects. Both
are real replacements of the class attribute, as those tools install them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

import sockwise
from sockwise import _hooks
from sockwise.testing import read_socket_options

POLICY = sockwise.Policy(keepalive_idle=17, keepalive_interval=4, keepalive_count=5)
_MISSING = object()


class Blocked(RuntimeError):
    """The host restriction refused a connect."""


class Restriction:
    """A pytest-socket style patch: connects to *port* raise, others go through."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.saved = socket.socket.__dict__.get("connect", _MISSING)
        inner = socket.socket.connect

        def guarded_connect(sock: socket.socket, address: Any) -> None:
            if address[1] == self.port:
                raise Blocked(f"connect to port {self.port} is not allowed")
            return inner(sock, address)

        self.func = guarded_connect
        socket.socket.connect = guarded_connect  # type: ignore[method-assign]

    def remove(self) -> None:
        if self.saved is _MISSING:
            del socket.socket.connect
        else:
            socket.socket.connect = self.saved  # type: ignore[method-assign]


class Tracer:
    """A tracing agent's patch: counts every connect and calls what was there before it."""

    def __init__(self) -> None:
        self.calls = 0
        self.saved = socket.socket.__dict__.get("connect", _MISSING)
        inner = socket.socket.connect

        def traced_connect(sock: socket.socket, address: Any) -> None:
            self.calls += 1
            return inner(sock, address)

        self.func = traced_connect
        socket.socket.connect = traced_connect  # type: ignore[method-assign]

    def remove(self) -> None:
        if self.saved is _MISSING:
            del socket.socket.connect
        else:
            socket.socket.connect = self.saved  # type: ignore[method-assign]


@pytest.fixture
def two_listeners() -> Iterator[tuple[socket.socket, socket.socket]]:
    allowed = socket.create_server(("127.0.0.1", 0))
    blocked = socket.create_server(("127.0.0.1", 0))
    yield allowed, blocked
    allowed.close()
    blocked.close()


def _connect(listener: socket.socket) -> dict[str, int]:
    with socket.socket() as sock:
        sock.connect(listener.getsockname())
        return read_socket_options(sock)


def test_an_earlier_patch_still_blocks_while_hardened(two_listeners):
    allowed, blocked = two_listeners
    original = socket.socket.__dict__.get("connect", _MISSING)
    restriction = Restriction(blocked.getsockname()[1])
    try:
        sockwise.harden(POLICY, guard=False)
        with socket.socket() as sock, pytest.raises(Blocked):
            sock.connect(blocked.getsockname())
        assert _connect(allowed)["TCP_KEEPIDLE"] == 17
        sockwise.unharden()
        assert socket.socket.__dict__["connect"] is restriction.func  # put back exactly
        with socket.socket() as sock, pytest.raises(Blocked):
            sock.connect(blocked.getsockname())
    finally:
        restriction.remove()
    assert socket.socket.__dict__.get("connect", _MISSING) is original


def test_a_later_patch_survives_unharden_and_ours_passes_through(two_listeners):
    allowed, _ = two_listeners
    ran: list[object] = []

    def count(sock: socket.socket, address: object) -> None:
        ran.append(address)

    sockwise.harden(POLICY, guard=False)
    tracer = Tracer()
    try:
        assert _connect(allowed)["TCP_KEEPIDLE"] == 17
        assert tracer.calls == 1
        sockwise.unharden()
        assert socket.socket.__dict__["connect"] is tracer.func  # not deleted
        assert not _hooks.is_patched()
        assert _connect(allowed)["TCP_KEEPIDLE"] != 17  # ours, still in the chain, passes through
        assert tracer.calls == 2
        # Hardened again: the buried replacement works again, and is not stacked a second time.
        sockwise.harden(POLICY, guard=False)
        _hooks.add_connect_hook(count)
        assert socket.socket.__dict__["connect"] is tracer.func
        assert _connect(allowed)["TCP_KEEPIDLE"] == 17
        assert len(ran) == 1 and tracer.calls == 3
    finally:
        _hooks.remove_connect_hook(count)
        sockwise.unharden()
        tracer.remove()  # the tracer puts back what it found: sockwise's replacement
    # Nothing registered: that replacement only passes through; a new harden() uses it again.
    assert _connect(allowed)["TCP_KEEPIDLE"] != 17
    sockwise.harden(POLICY, guard=False)
    assert _connect(allowed)["TCP_KEEPIDLE"] == 17
    sockwise.unharden()
    assert "connect" not in socket.socket.__dict__  # finally on top again: fully restored


def test_earlier_and_later_patches_together(two_listeners):
    allowed, blocked = two_listeners
    restriction = Restriction(blocked.getsockname()[1])
    try:
        with sockwise.harden(POLICY, guard=False):
            tracer = Tracer()
            with socket.socket() as sock, pytest.raises(Blocked):
                sock.connect(blocked.getsockname())
            assert _connect(allowed)["TCP_KEEPIDLE"] == 17
        assert socket.socket.__dict__["connect"] is tracer.func
        with socket.socket() as sock, pytest.raises(Blocked):
            sock.connect(blocked.getsockname())
        assert tracer.calls == 3
        tracer.remove()
        sockwise.harden(POLICY, guard=False)
        sockwise.unharden()
        assert socket.socket.__dict__["connect"] is restriction.func
    finally:
        restriction.remove()


def test_nonblocking_connect_ex_loop_runs_the_hooks_once(two_listeners):
    """eventlet and select loops call connect_ex until EISCONN: one hook run per socket."""
    allowed, _ = two_listeners
    ran: list[object] = []

    def count(sock: socket.socket, address: object) -> None:
        ran.append(address)

    _hooks.add_connect_hook(count)
    try:
        with socket.socket() as sock:
            sock.setblocking(False)
            codes = [sock.connect_ex(allowed.getsockname()) for _ in range(3)]
            assert codes[-1] in (0, 106)  # connected, or EISCONN on a repeated call
        assert len(ran) == 1
    finally:
        _hooks.remove_connect_hook(count)
