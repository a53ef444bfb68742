"""The drop-in on the standard library's sockets, checked with getsockopt on real sockets."""

from __future__ import annotations

import asyncio
import errno
import gc
import socket
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest

import sockwise
from sockwise import _hooks
from sockwise.testing import read_socket_options

TCP = socket.IPPROTO_TCP
POLICY = sockwise.Policy(keepalive_idle=17, keepalive_interval=4, keepalive_count=5, backlog=77)


HARDENED = {
    "SO_KEEPALIVE": 1,
    "TCP_KEEPIDLE": 17,
    "TCP_KEEPINTVL": 4,
    "TCP_KEEPCNT": 5,
    "TCP_USER_TIMEOUT": 37000,
    "TCP_NODELAY": 1,
}
#: Accepted sockets: no TCP_USER_TIMEOUT unless Policy.accepted_user_timeout asks for one (it
#: would cut off a live client that pauses reading; see tests/netns/test_slow_readers.py).
ACCEPTED = {**HARDENED, "TCP_USER_TIMEOUT": 0}


@pytest.fixture
def listener():
    srv = socket.create_server(("127.0.0.1", 0))
    yield srv
    srv.close()


def test_create_connection_follows_policy_until_unharden(listener):
    """socket.create_connection gets every option; after unharden a new socket gets none."""
    sockwise.harden(POLICY, guard=False)
    with socket.create_connection(listener.getsockname()) as conn:
        assert read_socket_options(conn) == HARDENED
    sockwise.unharden()
    with socket.create_connection(listener.getsockname()) as conn:
        got = read_socket_options(conn)
    assert got["SO_KEEPALIVE"] == 0
    assert got["TCP_USER_TIMEOUT"] == 0
    assert got["TCP_NODELAY"] == 0


def test_plain_connect_and_connect_ex(listener):
    """A plain socket().connect() and connect_ex() are covered too."""
    with sockwise.harden(POLICY, guard=False):
        with socket.socket() as a:
            a.connect(listener.getsockname())
            assert read_socket_options(a) == HARDENED
        with socket.socket() as b:
            assert b.connect_ex(listener.getsockname()) == 0
            assert read_socket_options(b) == HARDENED
    assert not sockwise.is_hardened()


def test_ipv6_connect(listener):
    """IPv6 TCP sockets are TCP too."""
    try:
        srv6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError as exc:  # pragma: no cover - depends on the host
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with srv6, sockwise.harden(POLICY, guard=False):
        with socket.create_connection(srv6.getsockname()[:2]) as conn:
            assert read_socket_options(conn) == HARDENED


def test_explicit_options_win(listener):
    """An option the application set itself before connect is kept; the others are applied."""
    sockwise.harden(POLICY, guard=False)
    with socket.socket() as sock:
        sock.setsockopt(TCP, socket.TCP_KEEPIDLE, 333)
        sock.setsockopt(TCP, socket.TCP_NODELAY, 0)
        sock.connect(listener.getsockname())
        got = read_socket_options(sock)
    assert got["TCP_KEEPIDLE"] == 333
    assert got["TCP_NODELAY"] == 0
    assert got["TCP_KEEPINTVL"] == 4
    assert got["TCP_USER_TIMEOUT"] == 37000


def test_asyncio_connections_follow_policy(listener):
    """asyncio.open_connection goes through socket.connect and gets the options."""

    async def main() -> dict[str, int]:
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        try:
            return read_socket_options(writer.get_extra_info("socket")._sock)
        finally:
            writer.close()
            await writer.wait_closed()

    sockwise.harden(POLICY, guard=False)
    assert asyncio.run(main()) == HARDENED
    sockwise.unharden()
    assert asyncio.run(main())["SO_KEEPALIVE"] == 0


def test_accepted_sockets_follow_policy(listener):
    """A hardened server's accepted sockets carry the policy (NODELAY cures the 40 ms stall)."""
    sockwise.harden(POLICY, guard=False)
    with socket.create_connection(listener.getsockname()):
        conn, _ = listener.accept()
        with conn:
            assert read_socket_options(conn) == ACCEPTED
    sockwise.harden(POLICY.replace(accepted_user_timeout="same"), guard=False)
    with socket.create_connection(listener.getsockname()):
        conn, _ = listener.accept()
        with conn:
            assert read_socket_options(conn) == HARDENED
    sockwise.harden(POLICY.replace(accepted_user_timeout=2.5), guard=False)
    with socket.create_connection(listener.getsockname()):
        conn, _ = listener.accept()
        with conn:
            assert read_socket_options(conn) == {**HARDENED, "TCP_USER_TIMEOUT": 2500}


def test_asyncio_server_accepts_follow_policy():
    """Connections accepted by an asyncio server carry the policy."""
    seen: list[dict[str, int]] = []

    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(read_socket_options(writer.get_extra_info("socket")._sock))
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.02)
            writer.close()
            await writer.wait_closed()

    sockwise.harden(POLICY, guard=False)
    asyncio.run(main())
    assert seen
    assert seen[0] == ACCEPTED


def test_http_server_accepted_connections_get_nodelay(http_server):
    """The standard library's http.server answers on NODELAY sockets under harden()."""
    import http.client

    sockwise.harden(guard=False)
    host, port = http_server.host, http_server.port
    client = http.client.HTTPConnection(str(host), port, timeout=5)
    try:
        for _ in range(2):
            client.request("GET", "/")
            assert client.getresponse().read() == b"ok"
    finally:
        client.close()
    assert [r.socket_options["TCP_NODELAY"] for r in http_server.requests] == [1, 1]


def ss_backlog(port: int) -> int:
    """The backlog of a listening socket, as `ss` shows it (Send-Q of a LISTEN row)."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True, timeout=10
    ).stdout.split()
    return int(out[2])


def test_listen_without_backlog_gets_policy_backlog():
    """listen() with no argument gets policy.backlog; an explicit argument is kept."""
    sockwise.harden(POLICY, guard=False)
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        a.listen()
        b.bind(("127.0.0.1", 0))
        b.listen(3)
        assert ss_backlog(a.getsockname()[1]) == 77
        assert ss_backlog(b.getsockname()[1]) == 3
    sockwise.unharden()
    with socket.socket() as c:
        c.bind(("127.0.0.1", 0))
        c.listen()
        assert ss_backlog(c.getsockname()[1]) == min(socket.SOMAXCONN, 128)


def test_somaxconn_truncation_is_reported():
    """A backlog above net.core.somaxconn is reported with the limit and the fix."""
    from sockwise.harden._stdlib import read_somaxconn

    somaxconn = read_somaxconn()
    assert somaxconn is not None
    sockwise.harden(guard=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        with pytest.warns(sockwise.SomaxconnTruncationWarning) as record:
            sock.listen(somaxconn + 1000)
        assert ss_backlog(sock.getsockname()[1]) == somaxconn
    message = str(record[0].message)
    assert f"truncated to {somaxconn}" in message
    assert "sysctl -w net.core.somaxconn" in message
    with socket.socket() as ok:
        ok.bind(("127.0.0.1", 0))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ok.listen(somaxconn)


def test_non_tcp_sockets_are_untouched(tmp_path):
    """UDP and AF_UNIX sockets connect normally and get no TCP options."""
    sockwise.harden(POLICY, guard=False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(("127.0.0.1", 9))
        assert udp.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(path)
        server.listen()
        client.connect(path)
        conn, _ = server.accept()
        conn.close()
        assert client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


@pytest.fixture
def full_queue():
    """A listener whose accept queue is full: further SYNs are dropped silently."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers: list[socket.socket] = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(server.getsockname())
        fillers.append(s)
    time.sleep(0.2)
    yield server
    for s in fillers:
        s.close()
    server.close()


@pytest.mark.slow
@pytest.mark.parametrize("bound", [1.0, 3.5])
def test_blocking_connect_is_bounded_by_connect_timeout(full_queue, bound):
    """A connect to a full accept queue fails at connect_timeout, not after ~2 minutes.

    The bound covers the handshake only (TCP_USER_TIMEOUT lowered for it, then set back); no
    TCP_SYNCNT is set (it would cut an application's own longer timeout).
    tests/netns/test_bounds.py measures every preset.
    """
    sockwise.harden(sockwise.Policy(connect_timeout=bound), guard=False)
    with socket.socket() as probe:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            probe.connect(full_queue.getsockname())
        elapsed = time.monotonic() - started
        assert probe.gettimeout() is None  # the bound covered the handshake only
        default = int(Path("/proc/sys/net/ipv4/tcp_syn_retries").read_text())
        assert probe.getsockopt(TCP, socket.TCP_SYNCNT) == default  # not set by sockwise
    assert bound <= elapsed <= bound + max(0.5, 0.1 * bound)


@pytest.mark.slow
def test_bound_is_the_kernels_and_set_back(full_queue):
    """The handshake bound is TCP_USER_TIMEOUT lowered for the connect, then set back.

    ETIMEDOUT from the kernel (a TimeoutError, like a socket timeout), and the socket keeps the
    policy's user timeout and its "no timeout" whether the connect failed or not.
    """
    sockwise.harden(sockwise.Policy(connect_timeout=1.0, user_timeout=37), guard=False)
    with socket.socket() as probe:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            probe.connect(full_queue.getsockname())
        elapsed = time.monotonic() - started
        assert caught.value.errno == errno.ETIMEDOUT
        assert probe.getsockopt(TCP, socket.TCP_USER_TIMEOUT) == 37000
        assert probe.gettimeout() is None
    assert 1.0 <= elapsed <= 1.5


@pytest.mark.slow
def test_explicit_user_timeout_is_kept_and_connect_still_bounded(full_queue):
    """An application's own TCP_USER_TIMEOUT stays; a socket timeout bounds the handshake."""
    sockwise.harden(sockwise.Policy(connect_timeout=1.0), guard=False)
    with socket.socket() as probe:
        probe.setsockopt(TCP, socket.TCP_USER_TIMEOUT, 60000)
        started = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            probe.connect(full_queue.getsockname())
        elapsed = time.monotonic() - started
        assert caught.value.errno is None  # Python's socket timeout, not the kernel's
        assert probe.getsockopt(TCP, socket.TCP_USER_TIMEOUT) == 60000
        assert probe.gettimeout() is None
    assert 1.0 <= elapsed <= 1.5


def test_blocking_connect_ex_keeps_the_policy_user_timeout(listener):
    """connect_ex is not bounded by sockwise: the hook's handshake value is set back at once."""
    sockwise.harden(POLICY, guard=False)
    with socket.socket() as sock:
        assert sock.connect_ex(listener.getsockname()) == 0
        assert read_socket_options(sock) == HARDENED


def test_syn_retries_schedule():
    """The model of the kernel's SYN schedule, with and without tcp_syn_linear_timeouts."""
    from sockwise.harden._stdlib import syn_retries_within

    # Before Linux 6.5 (no linear timeouts): 1 -> 3 s, 2 -> 7 s, 3 -> 15 s, 6 -> 127 s.
    assert syn_retries_within(2.9, linear=0) is None
    assert syn_retries_within(3, linear=0) == 1
    assert syn_retries_within(10, linear=0) == 2
    assert syn_retries_within(15, linear=0) == 3
    assert syn_retries_within(130, linear=0) == 6
    # tcp_syn_linear_timeouts=4 (measured in tests/netns: 3 -> 19.4 s, not 15 s).
    assert syn_retries_within(3, linear=4) == 1
    assert syn_retries_within(15, linear=4) == 2
    assert syn_retries_within(19, linear=4) == 3


def test_connect_timeout_leaves_socket_blocking(listener):
    """A successful bounded connect leaves the socket with no timeout (reads block as before)."""
    sockwise.harden(sockwise.Policy(connect_timeout=2.0), guard=False)
    with socket.socket() as sock:
        sock.connect(listener.getsockname())
        assert sock.gettimeout() is None
    with socket.socket() as own:
        own.settimeout(7.0)
        own.connect(listener.getsockname())
        assert own.gettimeout() == 7.0


def test_idempotent_and_exact_restore():
    """Two harden() calls patch once; unharden() restores the exact original attributes."""
    before = {name: socket.socket.__dict__.get(name) for name in _hooks._PATCHED}
    first = sockwise.harden(guard=False)
    patched = {name: socket.socket.__dict__.get(name) for name in _hooks._PATCHED}
    second = sockwise.harden(guard=False)
    assert {name: socket.socket.__dict__.get(name) for name in _hooks._PATCHED} == patched
    assert not first.already_active
    assert second.already_active
    assert len(second.changes) == len(set(second.changes))
    assert patched["connect"] is not None and before["connect"] is None
    undone = sockwise.unharden()
    assert undone.was_hardened
    assert {name: socket.socket.__dict__.get(name) for name in _hooks._PATCHED} == before
    assert not sockwise.unharden()  # nothing left to undo


def test_context_manager_restores_previous_policy():
    """Nested `with harden(p)` restores the outer policy on exit, then unhardens."""
    outer = sockwise.Policy(keepalive_idle=11)
    inner = sockwise.Policy(keepalive_idle=22)
    with sockwise.harden(outer, guard=False):
        with sockwise.harden(inner, guard=False) as h:
            assert h.previous_policy == outer
            assert sockwise.current_policy() == inner
        assert sockwise.current_policy() == outer
    assert not sockwise.is_hardened()
    assert not _hooks.is_patched()


def test_unharden_as_context_manager_rehardens(listener):
    """`with unharden():` runs a block unhardened and hardens again with the same policy."""
    sockwise.harden(POLICY, guard=False)
    with sockwise.unharden():
        with socket.create_connection(listener.getsockname()) as conn:
            assert read_socket_options(conn)["SO_KEEPALIVE"] == 0
    assert sockwise.current_policy() == POLICY
    with socket.create_connection(listener.getsockname()) as conn:
        assert read_socket_options(conn) == HARDENED


def test_concurrent_harden_patches_once():
    """harden() from many threads at once leaves one patch and one state."""
    barrier = threading.Barrier(8)
    results: list[sockwise.Hardening] = []

    def worker() -> None:
        barrier.wait(5)
        results.append(sockwise.harden(guard=False))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 8
    assert sum(not r.already_active for r in results) == 1
    # The policy is the hook layer's one connect plan, applied inline; no hook was added.
    assert _hooks._plan is not None
    assert _hooks._connect_hooks == ()
    assert sum(p.func.__qualname__.endswith(".connect") for p in _hooks._installed.values()) == 1


def test_rejects_non_policy():
    """A policy argument of the wrong type is a TypeError naming it; nothing is patched."""
    with pytest.raises(TypeError, match=r"harden\(policy=\.\.\.\) must be a sockwise\.Policy"):
        sockwise.harden({"keepalive_idle": 5}, guard=False)  # type: ignore[arg-type]
    assert not sockwise.is_hardened()
    assert not _hooks.is_patched()


def test_policy_from_env_by_default(monkeypatch, listener):
    """harden() with no policy reads SOCKWISE_* variables."""
    monkeypatch.setenv("SOCKWISE_KEEPALIVE_IDLE", "42")
    h = sockwise.harden(guard=False)
    assert h.policy.keepalive_idle == 42
    with socket.create_connection(listener.getsockname()) as conn:
        assert conn.getsockopt(TCP, socket.TCP_KEEPIDLE) == 42


def test_failing_hook_never_breaks_connect(listener, caplog):
    """A hook that raises is logged once and the connect still succeeds."""

    def broken(sock: socket.socket, address: object) -> None:
        raise RuntimeError("boom")

    _hooks.add_connect_hook(broken)
    try:
        with socket.create_connection(listener.getsockname()):
            pass
    finally:
        _hooks.remove_connect_hook(broken)
    assert "boom" in caplog.text
    assert not _hooks.is_patched()


def test_harden_starts_and_unharden_stops_the_guard():
    """harden() starts a running guard (origin recording on); unharden() stops it."""
    from sockwise.guard import _origin, running_guards

    before = len(running_guards())
    h = sockwise.harden()
    assert "guard" in h.changes
    assert len(running_guards()) == before + 1
    assert _origin.recording()
    sockwise.unharden()
    assert len(running_guards()) == before
    assert not _origin.recording()
    assert not _hooks.is_patched()


def test_somaxconn_warning_obeys_error_filter():
    """With warnings turned into errors, the truncation report raises and closes the socket.

    socket.create_server closes its socket only on OSError: the hook closes it, so nothing leaks
    (the suite's leak plugin and ResourceWarning-as-error would catch a leaked listener).
    """
    from sockwise.harden._stdlib import read_somaxconn

    somaxconn = read_somaxconn()
    assert somaxconn is not None
    sockwise.harden(guard=False)
    with socket.socket() as sock, warnings.catch_warnings():
        warnings.simplefilter("error", sockwise.SomaxconnTruncationWarning)
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(sockwise.SomaxconnTruncationWarning, match="silently truncated"):
            sock.listen(somaxconn + 1)
        assert sock.fileno() == -1  # closed, not left listening
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(sockwise.SomaxconnTruncationWarning):
            socket.create_server(("127.0.0.1", 0), backlog=somaxconn + 1)
        gc.collect()  # a leaked listener would raise ResourceWarning here


def test_no_warning_about_sockwise_own_backlog():
    """A policy backlog above somaxconn is capped silently: only the application's number warns."""
    from sockwise.harden._stdlib import read_somaxconn

    somaxconn = read_somaxconn()
    assert somaxconn is not None
    sockwise.harden(sockwise.Policy(backlog=somaxconn * 4), guard=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            assert ss_backlog(sock.getsockname()[1]) == somaxconn
        with socket.create_server(("127.0.0.1", 0)) as server:  # listen() with no backlog
            assert ss_backlog(server.getsockname()[1]) == somaxconn
