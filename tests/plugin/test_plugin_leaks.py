"""The pytest plugin, exercised in inner pytest runs (pytester) with real sockets."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

LEAKY = """
import socket
import pytest


def test_leaks_close_wait(keep):
    with socket.create_server(("127.0.0.1", 0)) as srv:
        client = socket.create_connection(srv.getsockname())
        peer, _ = srv.accept()
        peer.close()
    keep(client)  # the peer closed; we never do: CLOSE_WAIT

def test_closes_properly():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        with socket.create_connection(srv.getsockname()):
            peer, _ = srv.accept()
            peer.close()

@pytest.mark.sockwise_leaks(False)
def test_exempt(keep):
    keep(socket.create_server(("127.0.0.1", 0)))
"""


# Plugins the inner runs do not need (hypothesis' terminal summary alone costs a second).
_QUIET = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:asyncio",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:anyio",
)


class Keeper:
    """A plugin for the inner run: its ``keep`` fixture holds sockets until the outer test ends."""

    def __init__(self) -> None:
        self.socks: list[socket.socket] = []

    @pytest.fixture
    def keep(self):
        return self.socks.append


@pytest.fixture
def run(pytester: pytest.Pytester) -> Iterator[Callable[..., pytest.RunResult]]:
    """Run pytest in-process (loading the installed entry point, like a user's suite)."""
    keeper = Keeper()

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_inprocess(*_QUIET, "-W", "error", *args, plugins=[keeper])

    try:
        yield run
    finally:
        for sock in keeper.socks:
            sock.close()


def test_plugin_inert_by_default(pytester: pytest.Pytester, run) -> None:
    """Without the flag, ini option or marker, a leaking test passes."""
    pytester.makepyfile(test_leaky=LEAKY)
    result = run()
    result.assert_outcomes(passed=3)


def test_plugin_flag_fails_leaking_test_with_origin(pytester: pytest.Pytester, run) -> None:
    """--sockwise-leaks turns a CLOSE_WAIT left behind into an error naming its origin."""
    pytester.makepyfile(test_leaky=LEAKY)
    result = run("--sockwise-leaks")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks_close_wait*",
            "*test_leaky.py::test_leaks_close_wait left 1 TCP socket(s) open:*",
            "*CLOSE_WAIT 127.0.0.1:* -> 127.0.0.1:* (the peer closed it; this side never did)*",
            "*opened at *test_leaky.py:7 in test_leaks_close_wait()*",
        ]
    )
    assert "test_closes_properly left" not in result.stdout.str()
    assert "test_exempt left" not in result.stdout.str()


def test_plugin_ini_option_and_listen_leak(pytester: pytest.Pytester, run) -> None:
    """The ini option enables the check; an unclosed listener is reported with its origin."""
    pytester.makeini("[pytest]\nsockwise_leaks = true\n")
    pytester.makepyfile(
        test_listen="""
        import socket

        def test_listener_left_open(keep):
            keep(socket.create_server(("127.0.0.1", 0)))
        """
    )
    result = run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*fd * LISTEN 127.0.0.1:*", "*opened at *test_listen.py:4 in test_listener_left_open()*"]
    )


def test_plugin_reports_reset_and_unconnected_sockets(pytester: pytest.Pytester, run) -> None:
    """A socket reset by its peer (gone from the TCP table) or never connected is still a leak."""
    pytester.makepyfile(
        test_reset="""
        import socket
        import struct

        def test_reset_left_open(keep):
            with socket.create_server(("127.0.0.1", 0)) as srv:
                client = socket.create_connection(srv.getsockname())
                peer, _ = srv.accept()
                peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                peer.close()  # RST: the client's socket leaves the kernel's TCP table
            keep(client)

        def test_unconnected_left_open(keep):
            keep(socket.socket())
        """
    )
    result = run("--sockwise-leaks")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*test_reset_left_open left 1 TCP socket(s) open:*",
            "*CLOSE (never connected, or reset by the peer; never closed)*",
            "*opened at *test_reset.py:6 in test_reset_left_open()*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*test_unconnected_left_open left 1 TCP socket(s) open:*",
            "*test_reset.py:13 in test_unconnected_left_open()*",
        ]
    )


def test_plugin_marker_enables_single_test(pytester: pytest.Pytester, run) -> None:
    """The marker alone enables the check for that test only."""
    pytester.makepyfile(
        test_marked="""
        import socket
        import pytest

        @pytest.mark.sockwise_leaks
        def test_checked(keep):
            keep(socket.create_server(("127.0.0.1", 0)))

        def test_unchecked(keep):
            keep(socket.create_server(("127.0.0.1", 0)))
        """
    )
    result = run("--strict-markers")
    result.assert_outcomes(passed=2, errors=1)
    assert "test_checked left 1 TCP socket(s)" in result.stdout.str()
    assert "test_unchecked left" not in result.stdout.str()


def test_plugin_fixture_sockets_not_blamed(pytester: pytest.Pytester, run) -> None:
    """Sockets of a session fixture and of a fixture closed in teardown are not reported."""
    pytester.makepyfile(
        test_fixtures="""
        import socket
        import pytest

        @pytest.fixture(scope="session")
        def server():
            with socket.create_server(("127.0.0.1", 0)) as srv:
                yield srv

        @pytest.fixture
        def client(server):
            with socket.create_connection(server.getsockname()) as c:
                yield c

        def test_one(client):
            client.sendall(b"x")

        def test_two(server):
            pass
        """
    )
    result = run("--sockwise-leaks")
    result.assert_outcomes(passed=2)


def test_plugin_guard_fixture(pytester: pytest.Pytester, run) -> None:
    """The sockwise_guard fixture yields a running guard whose check() reports CLOSE_WAIT."""
    pytester.makepyfile(
        test_guard="""
        import socket

        def test_guard(sockwise_guard):
            assert sockwise_guard.running
            with socket.create_server(("127.0.0.1", 0)) as srv:
                client = socket.create_connection(srv.getsockname())
                peer, _ = srv.accept()
                peer.close()
                try:
                    report = sockwise_guard.check()
                    mine = [rec for rec, age in report.close_wait
                            if rec.local == client.getsockname()]
                    assert len(mine) == 1
                finally:
                    client.close()
        """
    )
    result = run()
    result.assert_outcomes(passed=1)


def test_plugin_help_lists_option(pytester: pytest.Pytester, run) -> None:
    """``pytest --help`` shows the option and ini setting; ``--markers`` the marker."""
    result = run("--help")
    result.stdout.fnmatch_lines(["*--sockwise-leaks*", "*sockwise_leaks (bool)*"])
    markers = run("--markers")
    markers.stdout.fnmatch_lines(["*@pytest.mark.sockwise_leaks(enabled=True)*"])
