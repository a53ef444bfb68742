"""gevent and eventlet, in a fresh interpreter each: hardened, attributed, never broken.

Each case patches in the order an application would (``patch_all()``/``monkey_patch()`` first,
as both libraries document, or after ``sockwise.harden()``), opens a real client and a real
server-accepted socket through the library's own classes, and reports the options read back
with ``getsockopt`` and the origin the guard recorded.
"""

from __future__ import annotations

import pytest
from _stacks import run_stack

pytest.importorskip("gevent")
pytest.importorskip("eventlet")

FIRST_GEVENT = "from gevent import monkey; monkey.patch_all()\n"
FIRST_EVENTLET = "import eventlet; eventlet.monkey_patch()\n"
HARDEN_FIRST = "import sockwise; sockwise.harden()\n"

GEVENT_BODY = """
import sys
from gevent import monkey
if not monkey.is_module_patched("socket"):
    monkey.patch_all()
import socket, threading, time
import gevent
from gevent.server import StreamServer
import sockwise
from sockwise.guard import running_guards

hardening = sockwise.harden()
accepted = []

def handle(conn, addr):
    accepted.append(conn)
    conn.sendall(b"x")
    gevent.sleep(3)

server = StreamServer(("127.0.0.1", 0), handle)
server.start()
client = socket.create_connection(server.address, timeout=5)
assert client.recv(1) == b"x"
conn = accepted[0]
guard = running_guards()[0]
thread = guard._thread
fast = sockwise.Guard(interval=0.05).start()
gevent.sleep(0.6)  # the guards' threads are green: they tick while this greenlet sleeps
ticks = fast._samples
fast.stop()
_done(
    ticks=ticks,
    client_class=type(client).__module__,
    client=_opts(client),
    server=_opts(conn),
    expected_connect=_expected("connect"),
    expected_accept=_expected("accept"),
    client_origin=_origin_of(client),
    server_origin=_origin_of(conn),
    threading_patched=monkey.is_module_patched("threading"),
    guard_alive=thread.is_alive(),
    samples=guard.check() is not None,
    changes=list(hardening.changes),
)
client.close()
conn.close()
server.stop()
sockwise.unharden()
"""


@pytest.mark.parametrize("first", [FIRST_GEVENT, HARDEN_FIRST], ids=["patch-first", "harden-first"])
def test_gevent_client_and_stream_server_are_hardened(first: str) -> None:
    got = run_stack(GEVENT_BODY, first=first)
    assert got["client_class"].startswith("gevent")
    assert got["client"] == got["expected_connect"]
    assert got["server"] == got["expected_accept"]
    assert got["client"]["TCP_KEEPIDLE"] != 7200 and got["client"]["TCP_USER_TIMEOUT"] > 0
    assert got["client_origin"]["kind"] == "connect"
    assert "sockwise" not in got["client_origin"]["file"]
    assert got["server_origin"]["kind"] == "accept"
    assert got["guard_alive"] and got["samples"] and got["threading_patched"]
    assert got["ticks"] >= 3
    assert "Traceback" not in got["stderr"], got["stderr"]


EVENTLET_BODY = """
import eventlet
if not eventlet.patcher.is_monkey_patched("socket"):
    eventlet.monkey_patch()
import socket, threading
import sockwise
from sockwise.guard import running_guards

hardening = sockwise.harden()
listener = eventlet.listen(("127.0.0.1", 0))
accepted = []

def serve():
    conn, _ = listener.accept()
    accepted.append(conn)
    conn.sendall(b"x")

worker = eventlet.spawn(serve)
client = socket.create_connection(listener.getsockname(), timeout=5)
assert client.recv(1) == b"x"
worker.wait()
conn = accepted[0]
guard = running_guards()[0]
fast = sockwise.Guard(interval=0.05).start()
eventlet.sleep(0.6)
ticks = fast._samples
fast.stop()
_done(
    ticks=ticks,
    client_class=type(client).__module__,
    client=_opts(client),
    server=_opts(conn),
    expected_connect=_expected("connect"),
    expected_accept=_expected("accept"),
    client_origin=_origin_of(client.fd),
    server_origin=_origin_of(conn.fd),
    guard_alive=guard._thread.is_alive(),
    samples=guard.check() is not None,
)
client.close()
conn.close()
listener.close()
sockwise.unharden()
"""


@pytest.mark.parametrize(
    "first", [FIRST_EVENTLET, HARDEN_FIRST], ids=["patch-first", "harden-first"]
)
def test_eventlet_client_and_server_are_hardened(first: str) -> None:
    got = run_stack(EVENTLET_BODY, first=first)
    assert got["client_class"].startswith("eventlet")
    assert got["client"] == got["expected_connect"]
    assert got["server"] == got["expected_accept"]
    assert got["client"]["TCP_KEEPIDLE"] != 7200 and got["client"]["TCP_USER_TIMEOUT"] > 0
    assert got["client_origin"]["kind"] == "connect"
    assert got["server_origin"]["kind"] == "accept"
    assert got["guard_alive"] and got["samples"] and got["ticks"] >= 3
    assert "Traceback" not in got["stderr"], got["stderr"]


GUARD_ONLY_BODY = """
import socket
from gevent.server import StreamServer
from sockwise import Guard

guard = Guard(interval=60).start()
server = StreamServer(("127.0.0.1", 0), lambda conn, addr: conn.sendall(b"x"))
server.start()
client = socket.create_connection(server.address, timeout=5)
client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
assert client.recv(1) == b"x"
_done(origin=_origin_of(client), nodelay=client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
client.close()
server.stop()
guard.stop()
"""


def test_gevent_with_the_guard_alone_never_breaks() -> None:
    """The guard's hooks alone (no harden()) once made every gevent connect raise TypeError."""
    got = run_stack(GUARD_ONLY_BODY, first=FIRST_GEVENT)
    assert got["origin"]["kind"] == "connect"
    assert got["nodelay"] == 1
