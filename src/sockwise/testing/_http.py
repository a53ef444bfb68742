"""A real HTTP/1.1 keep-alive server on loopback, for tests: :class:`LocalHTTPServer`.

The server is the standard library's ``http.server`` in a background thread, one thread per
connection, speaking HTTP/1.1 so that clients keep their connections open between requests (the
situation pools are about). Each request is recorded as a :class:`RecordedRequest`, with the
socket options of the *accepted* socket as they were when the request arrived, so a test can
check what :func:`sockwise.harden` did to the server side. A ``handler`` callable decides the
answer; without one every request gets ``200 ok``.

:meth:`LocalHTTPServer.close` shuts the accepted connections down, so their threads end even when
a client still holds its side open, and joins them (bounded): a test leaves no socket behind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from sockwise.testing._proc import Closing

__all__ = [
    "LocalHTTPServer",
    "RecordedRequest",
    "Reply",
    "read_socket_options",
    "serve_http",
]

#: Seconds :meth:`LocalHTTPServer.close` waits for each thread to end.
_JOIN_TIMEOUT: Final = 5.0

#: The options :func:`read_socket_options` reads: name, level, and whether it is a 0/1 flag.
_OPTIONS: Final = (
    ("SO_KEEPALIVE", socket.SOL_SOCKET, True),
    ("TCP_KEEPIDLE", socket.IPPROTO_TCP, False),
    ("TCP_KEEPINTVL", socket.IPPROTO_TCP, False),
    ("TCP_KEEPCNT", socket.IPPROTO_TCP, False),
    ("TCP_USER_TIMEOUT", socket.IPPROTO_TCP, False),
    ("TCP_NODELAY", socket.IPPROTO_TCP, True),
)


def read_socket_options(sock: socket.socket) -> dict[str, int]:
    """Read back the keep-alive, user-timeout and Nagle options of a live TCP socket.

    Args:
        sock: A TCP socket (client or accepted side).

    Returns:
        ``{"SO_KEEPALIVE": ..., "TCP_KEEPIDLE": ..., "TCP_KEEPINTVL": ..., "TCP_KEEPCNT": ...,
        "TCP_USER_TIMEOUT": ..., "TCP_NODELAY": ...}`` with the options this platform has;
        the two flags are ``0`` or ``1`` (macOS reports a set ``SO_KEEPALIVE`` as 8).

    """
    out: dict[str, int] = {}
    for name, level, flag in _OPTIONS:
        option = getattr(socket, name, None)
        if option is None:
            continue
        value = sock.getsockopt(level, option)
        out[name] = int(bool(value)) if flag else value
    return out


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received.

    Attributes:
        method: The request method, e.g. ``"GET"``.
        path: The request target as sent, e.g. ``"/slow?x=1"``.
        headers: The request headers (names as sent).
        body: The request body (``Content-Length`` bytes).
        connection: The index of the accepted connection it came on (0, 1, ... in accept
            order): two requests with the same index shared a kept-alive connection.
        client: The client's ``(host, port)``.
        socket_options: :func:`read_socket_options` of the accepted socket at that moment.

    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    connection: int
    client: tuple[str, int]
    socket_options: Mapping[str, int]


@dataclass(frozen=True)
class Reply:
    """What the server answers.

    Attributes:
        status: The status code.
        body: The body (``Content-Length`` is set from it).
        headers: Extra response headers.
        close: Answer with ``Connection: close`` and end the connection afterwards.

    """

    status: int = 200
    body: bytes = b"ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    close: bool = False


#: Decides the answer to a request (called in the connection's thread).
Handler = Callable[[RecordedRequest], Reply]


def _ok(request: RecordedRequest) -> Reply:
    return Reply()


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        if self.server.nodelay:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=dict(self.headers.items()),
            body=body,
            connection=owner._index_of(self.connection),
            client=(str(self.client_address[0]), int(self.client_address[1])),
            socket_options=read_socket_options(self.connection),
        )
        owner._record(request)
        try:
            reply = owner.handler(request)
        except Exception as exc:  # the test's handler failed: say so to the client
            owner._failed(exc)
            reply = Reply(500, f"handler failed: {exc!r}".encode(), close=True)
        reason = self.responses.get(reply.status, ("",))[0]
        head = [f"{self.protocol_version} {reply.status} {reason}"]
        head += [f"{name}: {value}" for name, value in reply.headers.items()]
        head.append(f"Date: {self.date_time_string()}")
        head.append(f"Content-Length: {len(reply.body)}")
        if reply.close:
            head.append("Connection: close")
            self.close_connection = True
        body = b"" if self.command == "HEAD" else reply.body
        # One write for head and body: two small writes can be held up 40 ms by Nagle's
        # algorithm meeting the client's delayed ACK.
        self.wfile.write("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` whose connections and threads its owner can end and join."""

    daemon_threads = True

    def __init__(self, owner: LocalHTTPServer, host: str, nodelay: bool) -> None:
        self.owner = owner
        self.nodelay = nodelay
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), _RequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        self.owner._accepted(conn)
        return conn, address

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"LocalHTTPServer:{self.server_address[1]}",
            daemon=True,
        )
        self.owner._started(thread)

    def shutdown_request(self, request: Any) -> None:
        self.owner._finished(request)
        super().shutdown_request(request)


class LocalHTTPServer(Closing):
    """An HTTP/1.1 keep-alive server on a loopback address, serving from a background thread.

    It starts at construction, on a free port; use it as a context manager or call
    :meth:`close` (idempotent). :func:`serve_http` does both.

    Args:
        handler: Decides each answer from the :class:`RecordedRequest` (default: ``200 ok``).
            An exception it raises becomes a ``500`` answer and is kept in :attr:`errors`.
        host: The loopback address to listen on: ``"127.0.0.1"`` or ``"::1"``.
        nodelay: Set ``TCP_NODELAY`` on accepted connections (answers are not delayed by
            Nagle's algorithm meeting the client's delayed ACKs). Off by default, so the
            options a test reads from the accepted sockets are the ones the process gave them.

    Raises:
        ValueError: *host* is not a loopback address.

    """

    def __init__(
        self, handler: Handler | None = None, *, host: str = "127.0.0.1", nodelay: bool = False
    ) -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"LocalHTTPServer(host={host!r}): allowed a loopback address such as "
                "'127.0.0.1' or '::1'"
            )
        self.handler: Handler = handler or _ok
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._errors: list[Exception] = []
        self._conns: dict[socket.socket, int] = {}
        self._accepted_count = 0
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._server = _Server(self, host, nodelay)
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"LocalHTTPServer:{self.port}",
            daemon=True,
        )
        self._serve_thread.start()

    # -- where it listens ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address it listens on."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. ``"http://127.0.0.1:40123"`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- what it saw --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> int:
        """How many connections it has accepted."""
        with self._lock:
            return self._accepted_count

    @property
    def errors(self) -> list[Exception]:
        """Exceptions the handler raised (each answered with a ``500``)."""
        with self._lock:
            return list(self._errors)

    def _accepted(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns[conn] = self._accepted_count
            self._accepted_count += 1

    def _started(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self._errors.append(exc)

    def _index_of(self, conn: socket.socket) -> int:
        with self._lock:
            return self._conns.get(conn, -1)

    def _finished(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.pop(conn, None)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # -- cleanup ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving, end every open connection and join the threads (bounded); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._serve_thread.join(_JOIN_TIMEOUT)
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # wakes a thread waiting for the next request on a kept-alive one
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)
        with self._lock:
            leftover = list(self._conns)
        for conn in leftover:  # a handler that never returned: close its socket anyway
            with contextlib.suppress(OSError):
                conn.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.accepted} accepted"
        return f"<LocalHTTPServer {self.url} {state}>"


@contextlib.contextmanager
def serve_http(
    handler: Handler | None = None, *, host: str = "127.0.0.1", nodelay: bool = False
) -> Iterator[LocalHTTPServer]:
    """Run a :class:`LocalHTTPServer` for a ``with`` block and close it afterwards.

    Args:
        handler: Decides each answer (default: ``200 ok``); see :class:`LocalHTTPServer`.
        host: The loopback address to listen on.
        nodelay: Set ``TCP_NODELAY`` on accepted connections.

    Yields:
        The running server (``.url``, ``.host``, ``.port``, ``.requests``).

    """
    server = LocalHTTPServer(handler, host=host, nodelay=nodelay)
    try:
        yield server
    finally:
        server.close()
