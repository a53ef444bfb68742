"""gevent and eventlet, in a fresh interpreter each: hardened, attributed, never broken.

Each case patches in the order an application would (``patch_all()``/``monkey_patch()`` first,
as both libraries document, or after ``sockwise.harden()``), opens a real client and a real
server-accepted socket through the library's own classes, and reports the options read back
with ``getsockopt`` and the origin the guard recorded.
"""

from __future__ import annotations

import importlib.util

import pytest
from _stacks import AppServer, run_stack

from sockwise.testing import require_or_skip


@pytest.fixture(autouse=True)
def _green_libraries_installed() -> None:
    # Looked up, not imported: importing eventlet registers a fork hook that warns in every
    # later fork() of the test process. The stacks run in fresh interpreters anyway.
    for name in ("gevent", "eventlet"):
        require_or_skip(None if importlib.util.find_spec(name) else f"{name} is not installed")


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
    assert got["server_origin"]["kind"] in ("accept", "served")
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
    assert got["server_origin"]["kind"] in ("accept", "served")
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


GUNICORN_APP = """
import json, os, socket
import sockwise
from sockwise.guard import _origin
from sockwise.testing import read_socket_options

sockwise.harden()
import urllib3

http = urllib3.PoolManager()


def origin(sock):
    found = _origin.lookup(os.fstat(sock.fileno()).st_ino)
    return found[1].kind if found and found[1] else None


def where(sock):
    found = _origin.lookup(os.fstat(sock.fileno()).st_ino)
    o = found[1] if found else None
    return [os.path.basename(o.filename), o.function, o.kind] if o else None


def app(environ, start_response):
    accepted = environ["gunicorn.socket"]
    pool = http.connection_from_url(os.environ["UPSTREAM"])
    conn = pool._get_conn()
    conn.connect()
    outbound = {"options": read_socket_options(conn.sock), "origin": origin(conn.sock)}
    conn.close()
    status = http.request("GET", os.environ["UPSTREAM"] + "/").status
    body = json.dumps({
        "socket_module": type(accepted).__module__,
        "accepted": {"options": read_socket_options(accepted), "origin": origin(accepted),
                     "where": where(accepted)},
        "outbound": outbound,
        "outbound_status": status,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["gevent", "sync", "gthread"])
def test_gunicorn_worker_serves_and_calls_out(tmp_path, http_server, worker: str) -> None:
    """gunicorn workers: accepted and outbound sockets hardened, outbound HTTP works.

    With the sync and gthread workers the guard attributes the accepted socket to the WSGI
    application the worker serves (gunicorn's own frames only are on the stack at accept).
    """
    pytest.importorskip("gunicorn")
    import os
    import socket
    import sys

    (tmp_path / "gapp.py").write_text(GUNICORN_APP)
    argv = [sys.executable, "-m", "gunicorn", "-k", worker, "-w", "1", "-b", "127.0.0.1:0"]
    argv += ["--log-level", "info", "gapp:app"]
    env = {**os.environ, "UPSTREAM": http_server.url, "PYTHONWARNINGS": "ignore"}
    server = AppServer(argv, cwd=tmp_path, env=env)
    got: dict[str, object] = {}
    try:
        port = server.wait_for_port(r"Listening at: http://127\.0\.0\.1:(\d+)")
        got = server.get_json(port, attempts=50)
    finally:
        log = server.stop(timeout=15)
    assert got.get("outbound_status") == 200, (got, log[-3000:])
    assert str(got["socket_module"]).startswith("gevent" if worker == "gevent" else "socket")
    import sockwise

    sockwise.harden(guard=False)  # the same default policy here, for the reference
    from sockwise.harden import _stdlib
    from sockwise.testing import read_socket_options

    with socket.socket() as raw:
        _stdlib._on_accept(raw)
        expected_accept = read_socket_options(raw)
    assert got["accepted"]["options"] == expected_accept  # type: ignore[index]
    if worker != "gevent":  # gevent's StreamServer accepts: no gunicorn worker frame to read
        assert got["accepted"]["where"] == ["gapp.py", "app", "served"]  # type: ignore[index]
    outbound = got["outbound"]
    assert outbound["options"]["TCP_KEEPIDLE"] == sockwise.Policy().keepalive_idle  # type: ignore[index]
    assert outbound["origin"] == "connect"  # type: ignore[index]
    assert len(http_server.requests) == 1  # the outbound request really arrived
