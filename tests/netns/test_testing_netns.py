"""sockwise.testing.NetnsPair itself: isolation, thread inheritance, black hole, heal, cleanup."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from sockwise.testing import NetnsError, NetnsPair, require_or_skip

pytestmark = pytest.mark.netns


def _netns_id() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_run_in_client_and_its_child_threads_stay_in_client_ns(
    netns_pair: NetnsPair, echo_server
) -> None:
    host_ns = _netns_id()

    def in_client() -> tuple[int, int, bytes]:
        seen: dict[str, object] = {}

        def child() -> None:  # a thread started from inside the namespace
            seen["ns"] = _netns_id()
            try:
                seen["peer"] = _talk(netns_pair)
            except OSError as exc:
                seen["peer"] = exc

        t = threading.Thread(target=child)
        t.start()
        t.join(20)
        assert isinstance(seen["peer"], bytes), seen["peer"]
        return _netns_id(), int(str(seen["ns"])), seen["peer"]

    ns, child_ns, reply = netns_pair.run_in_client(in_client, timeout=30)
    assert ns == child_ns != host_ns
    assert reply == b"pong"
    assert _netns_id() == host_ns  # the calling thread never moved


def _talk(pair: NetnsPair) -> bytes:
    with socket.create_connection((pair.server_addr, 7001), timeout=5) as s:
        s.sendall(b"ping")
        return s.recv(4)


@pytest.fixture
def echo_server(netns_pair: NetnsPair):
    """A subprocess in server_ns answering 'pong' once per connection on port 7001."""
    code = (
        "import socket\n"
        f"s = socket.create_server(('{netns_pair.server_addr}', 7001))\n"
        "print('ready', flush=True)\n"
        "for _ in range(100):\n"
        "    c, _ = s.accept()\n"
        "    c.recv(4); c.sendall(b'pong'); c.close()\n"
    )
    proc = netns_pair.popen_server([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_popen_server_is_reachable_only_from_client_ns(netns_pair: NetnsPair, echo_server) -> None:
    assert netns_pair.run_in_client(_talk, netns_pair, timeout=20) == b"pong"

    # The test addresses exist only inside the namespaces: binding one here (no packet sent)
    # fails in the host namespace, and works in the client namespace.
    def bind_client_addr() -> None:
        with socket.socket() as s:
            s.bind((netns_pair.client_addr, 0))

    with pytest.raises(OSError, match="Cannot assign requested address"):
        bind_client_addr()
    netns_pair.run_in_client(bind_client_addr)
    pid = echo_server.pid
    netns_pair.close()
    assert echo_server.poll() is not None  # killed by PID on close()
    assert not os.path.exists(f"/run/netns/{netns_pair.client_ns}")
    assert not os.path.exists(f"/run/netns/{netns_pair.server_ns}")
    assert pid > 0
    netns_pair.close()  # idempotent
    with pytest.raises(NetnsError, match="closed"):
        netns_pair.run_in_client(_talk, netns_pair)


def test_blackhole_then_heal(netns_pair: NetnsPair, echo_server) -> None:
    netns_pair.blackhole()
    assert netns_pair.blackholed

    def connect_fails() -> str:
        started = time.monotonic()
        try:
            socket.create_connection((netns_pair.server_addr, 7001), timeout=1.5).close()
        except TimeoutError as exc:  # silence: not refused, not unreachable
            return f"{type(exc).__name__} after {time.monotonic() - started:.1f}s"
        return "connected"

    assert netns_pair.run_in_client(connect_fails, timeout=20).startswith("TimeoutError after")
    netns_pair.heal()
    assert netns_pair.run_in_client(_first_syn_answered, netns_pair, timeout=20) < 0.9
    assert netns_pair.run_in_client(_talk, netns_pair, timeout=20) == b"pong"


def _first_syn_answered(pair: NetnsPair) -> float:
    """Seconds one connect takes: under 1 s means the first SYN got through (no retransmit)."""
    started = time.monotonic()
    socket.create_connection((pair.server_addr, 7001), timeout=5).close()
    return time.monotonic() - started


def test_link_is_ready_when_create_and_heal_return(netns_pair: NetnsPair, echo_server) -> None:
    """create() and heal() return once the veth pair carries packets, not when ``ip`` returns.

    A link set up but not yet activated by the kernel's linkwatch drops every packet; the first
    connect would then wait for the SYN's retransmission (1 s or more).
    """
    assert netns_pair.run_in_client(_first_syn_answered, netns_pair, timeout=20) < 0.9
    netns_pair.blackhole()
    with pytest.raises(NetnsError, match=r"veth pair not ready within 0\.2 s \(swc0: .*sws0: "):
        netns_pair._wait_links_ready(timeout=0.2)
    netns_pair.heal()
    netns_pair._wait_links_ready(timeout=0)  # ready now: no wait, no error


def test_sockets_report_shows_both_namespaces(netns_pair: NetnsPair, echo_server) -> None:
    report = netns_pair.sockets_report()
    client_part, server_part = report.split(f"--- {netns_pair.server_ns}\n")
    assert client_part.startswith(f"--- {netns_pair.client_ns}\n")
    assert f"{netns_pair.server_addr}:7001" in server_part  # the echo server's listener
    assert "LISTEN" in server_part
    assert "LISTEN" not in client_part


def test_run_in_client_reraises_and_times_out(netns_pair: NetnsPair) -> None:
    def boom() -> None:
        raise KeyError("from the namespace")

    with pytest.raises(KeyError, match="from the namespace"):
        netns_pair.run_in_client(boom)
    with pytest.raises(TimeoutError, match=r"ran over 0\.2 s"):
        netns_pair.run_in_server(time.sleep, 1.0, timeout=0.2)


def test_names_are_unique_and_prefix_is_checked(netns_pair: NetnsPair) -> None:
    assert netns_pair.client_ns.endswith("-c")
    assert netns_pair.server_ns.endswith("-s")
    assert str(os.getpid()) in netns_pair.client_ns
    with NetnsPair.create(prefix="swt") as other:
        assert other.client_ns != netns_pair.client_ns
        assert other.client_ns.startswith(f"swt-{os.getpid()}-")
    with pytest.raises(ValueError, match="prefix='a b'"):
        NetnsPair.create(prefix="a b")


def test_require_or_skip_follows_the_ci_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    require_or_skip(None)  # nothing missing: no effect
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI=true.*no frobnicator"):
        require_or_skip("no frobnicator")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no frobnicator"):
        require_or_skip("no frobnicator")
