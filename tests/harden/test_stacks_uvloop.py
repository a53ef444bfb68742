"""uvloop: libuv connects and accepts in C; sockwise still hardens and attributes those sockets.

Options are read back with ``getsockopt`` on the sockets really opened -- found through the
process's own descriptors (``/proc/self/fd``) by their peer address, so no library internals are
used -- and compared with what the policy's own hook sets on a fresh socket. The guard runs (the
default ``harden()``) and must have recorded each socket's origin.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _stacks import AppServer

import sockwise
from sockwise import _hooks
from sockwise.guard import _origin
from sockwise.harden import _stdlib
from sockwise.testing import read_socket_options

uvloop = pytest.importorskip("uvloop")


def _expected(kind: str) -> dict[str, int]:
    """What the policy's own hook sets on a fresh TCP socket (the reference)."""
    with socket.socket() as raw:
        if kind == "accept":
            _stdlib._on_accept(raw)
        else:
            set_back = _stdlib._on_connect(raw, ("127.0.0.1", 9))
            if set_back:  # blocking: the handshake's bound, undone by the hook layer once connected
                raw.setsockopt(*set_back)
        return read_socket_options(raw)


def _socket_fds() -> Iterator[int]:
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                yield int(name)
        except OSError:
            continue


def find_socket(*, local_port: int | None = None, peer_port: int | None = None) -> int:
    """The descriptor of this process's TCP socket with that local or peer port."""
    for fd in _socket_fds():
        with socket.socket(fileno=os.dup(fd)) as probe:
            if probe.type != socket.SOCK_STREAM or probe.family not in (2, 10):
                continue
            try:
                local, peer = probe.getsockname()[1], probe.getpeername()[1]
            except OSError:
                continue
            if local_port in (None, local) and peer_port in (None, peer):
                return fd
    raise AssertionError(f"no socket with local port {local_port} and peer port {peer_port}")


def options_and_origin(fd: int) -> tuple[dict[str, int], _origin.Origin | None]:
    with socket.socket(fileno=os.dup(fd)) as probe:
        options = read_socket_options(probe)
    found = _origin.lookup(os.fstat(fd).st_ino)
    return options, (found[1] if found else None)


def test_open_connection_and_start_server_on_uvloop():
    hardening = sockwise.harden()
    assert "guard" in hardening.changes
    seen: dict[str, object] = {}

    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            port = writer.get_extra_info("peername")[1]
            seen["server"] = options_and_origin(find_socket(peer_port=port))
            writer.write(b"x")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read(1) == b"x"
        seen["client"] = options_and_origin(find_socket(peer_port=port))
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    uvloop.run(main())
    client_options, client_origin = seen["client"]  # type: ignore[misc]
    server_options, server_origin = seen["server"]  # type: ignore[misc]
    assert client_options == _expected("connect")
    assert client_options["TCP_KEEPIDLE"] == sockwise.Policy().keepalive_idle
    assert server_options == _expected("accept")
    assert client_origin is not None and client_origin.kind == "connect"
    assert client_origin.filename == __file__ and client_origin.function.endswith("main")
    assert server_origin is not None and server_origin.kind in ("accept", "served")


def test_create_connection_errors_are_uvloop_s_own():
    """A refused connect raises what bare uvloop raises; nothing is left open."""
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]  # bound, never listening: refused

        async def attempt() -> str:
            loop = asyncio.get_running_loop()
            try:
                await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            except OSError as exc:
                return f"{type(exc).__name__} {exc.errno}"
            return "connected"

        bare = uvloop.run(attempt())
        sockwise.harden(guard=False)
        assert uvloop.run(attempt()) == bare == "ConnectionRefusedError 111"


def test_unharden_restores_uvloop_loop():
    before = {
        name: uvloop.Loop.__dict__.get(name) for name in ("create_connection", "create_server")
    }
    sockwise.harden(guard=False)
    assert uvloop.Loop.__dict__["create_connection"] is not before["create_connection"]
    sockwise.unharden()
    assert not _hooks.is_patched()
    after = {
        name: uvloop.Loop.__dict__.get(name) for name in ("create_connection", "create_server")
    }
    assert after == before


@pytest.mark.postgres
def test_asyncpg_on_uvloop(postgres):
    asyncpg = pytest.importorskip("asyncpg")
    params = dict(item.split("=", 1) for item in postgres.dsn.split())
    sockwise.harden()

    async def main() -> tuple[dict[str, int], _origin.Origin | None]:
        conn = await asyncpg.connect(
            host=postgres.host,
            port=postgres.port,
            user=params.get("user"),
            password=params.get("password"),
            database=params.get("dbname", "postgres"),
            ssl=False,
        )
        try:
            assert await conn.fetchval("select 1") == 1
            return options_and_origin(find_socket(peer_port=postgres.port))
        finally:
            await conn.close()

    options, origin = uvloop.run(main())
    assert options == _expected("connect")
    assert origin is not None and origin.kind == "connect"


def test_aiohttp_client_on_uvloop(http_server):
    aiohttp = pytest.importorskip("aiohttp")
    sockwise.harden()
    port = http_server.port

    async def main() -> tuple[dict[str, int], _origin.Origin | None]:
        async with aiohttp.ClientSession() as session, session.get(http_server.url + "/") as resp:
            await resp.read()
            return options_and_origin(find_socket(peer_port=port))

    options, origin = uvloop.run(main())
    assert options == _expected("connect")
    assert origin is not None and origin.kind == "connect"
    assert http_server.requests[-1].socket_options == _expected("accept")


APP = textwrap.dedent(
    """
    import json, os, socket
    import sockwise
    from sockwise.guard import _origin
    from sockwise.testing import read_socket_options

    sockwise.harden()

    def find(peer_port):
        for name in os.listdir("/proc/self/fd"):
            try:
                if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = int(name)
            with socket.socket(fileno=os.dup(fd)) as probe:
                if probe.family not in (socket.AF_INET, socket.AF_INET6):
                    continue
                try:
                    if probe.getpeername()[1] != peer_port:
                        continue
                except OSError:
                    continue
                found = _origin.lookup(os.fstat(fd).st_ino)
                return {
                    "options": read_socket_options(probe),
                    "origin": found[1].kind if found and found[1] else None,
                }
        return None

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        import asyncio
        body = json.dumps({
            "loop": type(asyncio.get_running_loop()).__module__,
            "accepted": find(scope["client"][1]),
        }).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["uvloop", "auto"])
def test_uvicorn_accepted_sockets(tmp_path: Path, loop: str):
    """``uvicorn --loop uvloop``, and uvicorn's default (uvloop when installed)."""
    (tmp_path / "swapp.py").write_text(APP)
    argv = [sys.executable, "-m", "uvicorn", "swapp:app", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--loop", loop, "--log-level", "info", "--no-access-log"]
    server = AppServer(argv, cwd=tmp_path)
    got: dict[str, Any] = {}
    try:
        got = server.get_json(server.wait_for_port(r"running on http://127\.0\.0\.1:(\d+)"))
    finally:
        log = server.stop()
    assert got.get("accepted"), (got, log[-3000:])
    assert got["loop"].startswith("uvloop")
    sockwise.harden(guard=False)  # the same default policy here, for the reference
    assert got["accepted"]["options"] == _expected("accept")
    assert got["accepted"]["options"]["TCP_KEEPIDLE"] == sockwise.Policy().keepalive_idle
    assert got["accepted"]["origin"] == "accept"
