"""Attribution of sockets opened outside the application's own frames: libpq, server threads."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg
import pytest

import sockwise
from sockwise.guard import CloseWaitLeakWarning, Guard, GuardEvent, _origin, note_origin
from sockwise.testing import PostgresServer

SOURCE = Path(__file__).read_text().splitlines()


def _line(marker: str) -> int:
    return next(i for i, text in enumerate(SOURCE, 1) if text.endswith(f"# {marker}"))


def _wait_events(events: list[GuardEvent], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(e.kind == "close_wait" for e in events):
        assert time.monotonic() < deadline, "no report"
        time.sleep(0.05)


def test_psycopg_connect_names_the_callers_line(postgres: PostgresServer) -> None:
    """A libpq socket left in CLOSE_WAIT names the line that called psycopg.connect."""
    events: list[GuardEvent] = []
    hardening = sockwise.harden(guard=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CloseWaitLeakWarning)
            with Guard(interval=0.2, close_wait_after=0.5, callback=events.append):
                conn = psycopg.connect(postgres.dsn)  # ORIGIN:psycopg
                try:
                    postgres.execute(f"SELECT pg_terminate_backend({conn.info.backend_pid})")
                    _wait_events(events, 10)
                finally:
                    conn.close()
    finally:
        hardening.__exit__(None, None, None)
    (event,) = [e for e in events if e.kind == "close_wait"]
    assert event.origin is not None
    assert (event.origin.filename, event.origin.lineno) == (__file__, _line("ORIGIN:psycopg"))
    assert event.origin.via == "psycopg"
    assert "with psycopg.connect(" in event.message
    assert "<sockwise guard>" not in event.message


class _StuckHandler(socketserver.BaseRequestHandler):
    """Reads the request, then waits on something else and never sees the client's close."""

    release = threading.Event()

    def handle(self) -> None:
        self.request.recv(100)
        self.release.wait(20)


def test_socketserver_thread_names_the_handler() -> None:
    """A socket accepted in a socketserver thread is attributed to the application's handler."""
    events: list[GuardEvent] = []
    _StuckHandler.release.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CloseWaitLeakWarning)
        with Guard(interval=0.2, close_wait_after=0.5, callback=events.append):
            server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _StuckHandler)
            serving = threading.Thread(target=server.serve_forever, daemon=True)
            serving.start()
            try:
                host, port = server.server_address[:2]
                with socket.create_connection((str(host), int(port))) as client:
                    client.sendall(b"hello")
                time.sleep(0.05)
                _wait_events(events, 10)
            finally:
                _StuckHandler.release.set()
                server.shutdown()
                server.server_close()
                serving.join(5)
    leaks = [e for e in events if e.kind == "close_wait"]
    assert len(leaks) == 1
    origin = leaks[0].origin
    assert origin is not None and origin.kind == "served"
    assert origin.function == "_StuckHandler.handle" and origin.filename == __file__
    assert "socketserver thread for the handler" in leaks[0].message
    assert "accepted connection" in leaks[0].message


def test_note_origin_validates_and_records() -> None:
    """note_origin names bad arguments, ignores closed sockets, and records the caller's line."""
    with pytest.raises(ValueError, match="kind"):
        note_origin(0, kind="bogus")
    with pytest.raises(TypeError, match="sock_or_fd"):
        note_origin("3")  # type: ignore[arg-type]
    srv = socket.create_server(("127.0.0.1", 0))
    try:
        with Guard(interval=3600, close_wait_after=0) as guard:
            client = socket.socket()
            client.connect(srv.getsockname())
            conn, _ = srv.accept()
            try:
                note_origin(client, kind="checkout")  # ORIGIN:note
                conn.close()
                time.sleep(0.05)
                with pytest.warns(CloseWaitLeakWarning, match="checked out of its pool") as rec:
                    report = guard.check()
                (event,) = report.events
                assert event.origin is not None
                assert event.origin.lineno == _line("ORIGIN:note")
                assert rec[0].lineno == _line("ORIGIN:note")
            finally:
                client.close()
                conn.close()
    finally:
        srv.close()


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI application (the line uvicorn's sockets are attributed to)."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_uvicorn_in_a_thread_names_the_application() -> None:
    """uvicorn listening and accepting from its own thread: both name the ASGI application."""
    import uvicorn

    with Guard(interval=3600):
        config = uvicorn.Config(_asgi_app, host="127.0.0.1", port=0, log_level="error")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                assert time.monotonic() < deadline and thread.is_alive()
                time.sleep(0.05)
            port = server.servers[0].sockets[0].getsockname()[1]
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert client.recv(100).startswith(b"HTTP/1.1 200")
                time.sleep(0.1)
                _origin.drain()
                origins = [o for _, o in _origin._state.tracked.values() if o is not None]
        finally:
            server.should_exit = True
            thread.join(10)
    app_line = _asgi_app.__code__.co_firstlineno
    kinds = {o.kind for o in origins if (o.filename, o.lineno) == (__file__, app_line)}
    assert kinds == {"listen", "served"}, origins


def test_aiohttp_connect_names_the_callers_line() -> None:
    """aiohttp connects through aiohappyeyeballs in the caller's task: its line is recorded."""
    import asyncio

    import aiohttp

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(1000)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    async def fetch() -> list[Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/") as resp:  # ORIGIN:aiohttp
                await resp.read()
                _origin.drain()
                return [o for _, o in _origin._state.tracked.values() if o is not None]

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        with Guard(interval=3600):
            origins = asyncio.run(fetch())
    finally:
        thread.join(10)
        server.close()
    connects = [o for o in origins if o.kind == "connect"]
    assert [(o.filename, o.lineno, o.via) for o in connects] == [
        (__file__, _line("ORIGIN:aiohttp"), "aiohttp")
    ]
