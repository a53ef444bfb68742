"""Real servers on loopback for the HTTP tests (a scripted HTTP/1.1 server, a proxy) and helpers."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from sockwise import Policy

OK_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)

#: The policy the option tests give sockwise's clients: keepalive values and a user timeout unlike
#: the default policy's and the kernel's, so a connection that did not get it cannot pass.
POLICY = Policy(keepalive_idle=7, keepalive_interval=3, keepalive_count=4, user_timeout=13.5)
#: What :func:`sockwise.testing.read_socket_options` reads on a connection that got :data:`POLICY`.
WITH_POLICY = {
    "SO_KEEPALIVE": 1,
    "TCP_KEEPIDLE": 7,
    "TCP_KEEPINTVL": 3,
    "TCP_KEEPCNT": 4,
    "TCP_USER_TIMEOUT": 13500,
    "TCP_NODELAY": 1,
}

# A script decides, per request, what the server does: "ok" (answer, keep the connection),
# "ok-close" (answer, then close), "close" (close without answering), "hang" (stop reading).
Script = Callable[[int, int, str, str], str]


def always_ok(conn_index: int, request_index: int, method: str, path: str) -> str:
    return "ok"


class _Listener:
    """A listening socket on 127.0.0.1 whose connections are each handled in a thread."""

    def __init__(self, *, rcvbuf: int | None = None) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.accepted = 0
        self._spawn(self._accept_loop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, fn: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                index = self.accepted
                self.accepted += 1
                self._socks.append(conn)
            self._spawn(self._handle, conn, index)

    def _handle(self, conn: socket.socket, index: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()
        for t in threads:
            t.join(5)


class ScriptedServer(_Listener):
    """A threaded raw-socket HTTP/1.1 keep-alive server on 127.0.0.1 following a script."""

    def __init__(
        self,
        script: Script = always_ok,
        *,
        ssl_context: ssl.SSLContext | None = None,
        rcvbuf: int | None = None,
        keep_alive: str | None = None,
    ) -> None:
        self.script = script
        self.ssl_context = ssl_context
        self.response = OK_RESPONSE  # with keep_alive: a "Keep-Alive: <keep_alive>" header too
        if keep_alive is not None:
            head, _, body = OK_RESPONSE.partition(b"\r\n\r\n")
            self.response = head + f"\r\nKeep-Alive: {keep_alive}\r\n\r\n".encode() + body
        self.requests: list[tuple[int, str, str, int]] = []
        super().__init__(rcvbuf=rcvbuf)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _recv(self, conn: socket.socket) -> bytes:
        while not self._stop.is_set():
            try:
                return conn.recv(65536)
            except TimeoutError:
                continue
            except ssl.SSLWantReadError:
                continue
            except OSError:
                return b""
        return b""

    def _handle(self, raw: socket.socket, index: int) -> None:
        conn = raw
        conn.settimeout(0.1)
        try:
            if self.ssl_context is not None:
                raw.settimeout(5)
                conn = self.ssl_context.wrap_socket(raw, server_side=True)
                conn.settimeout(0.1)
                self._track(conn)
            buf = b""
            request_index = 0
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    chunk = self._recv(conn)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                action = self.script(index, request_index, method, path)
                request_index += 1
                if action == "hang":
                    self._stop.wait(30)
                    return
                while len(buf) < length:
                    chunk = self._recv(conn)
                    if not chunk:
                        return
                    buf += chunk
                body, buf = buf[:length], buf[length:]
                with self._lock:
                    self.requests.append((index, method, path, len(body)))
                if action == "close":
                    return
                conn.sendall(self.response)
                if action == "ok-close":
                    return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def close_where(self, match: Callable[[int], bool]) -> int:
        """Close the server side of connections whose client port matches; return how many."""
        closed = 0
        with self._lock:
            conns = list(self._socks)
        for c in conns:
            try:
                port = c.getpeername()[1]
            except OSError:
                continue
            if match(port):
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                closed += 1
        return closed


class TinyProxy(_Listener):
    """A forward (absolute-form) and CONNECT proxy relaying to loopback upstreams."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        super().__init__()

    def _handle(self, client: socket.socket, index: int) -> None:
        client.settimeout(5)
        buf = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in buf:
                chunk = client.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            first, _, headers = head.partition(b"\r\n")
            method, target, version = first.decode().split(" ")
            self.methods.append(method)
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)), timeout=5)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                hostport, _, path = target.split("://", 1)[1].partition("/")
                host, port = hostport.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)), timeout=5)
                upstream.sendall(f"{method} /{path} {version}\r\n".encode() + headers + b"\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            self._track(upstream)
            self._relay(client, upstream)

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        pair = {a: b, b: a}
        while not self._stop.is_set():
            readable, _, _ = select.select([a, b], [], [], 0.1)
            for s in readable:
                data = s.recv(65536)
                if not data:
                    a.close()
                    b.close()
                    return
                pair[s].sendall(data)


def idle_conns(pool: Any) -> list[Any]:
    """The open connections waiting in a urllib3 pool's queue."""
    return [c for c in list(pool.pool.queue) if c is not None and c.sock is not None]


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll *predicate* every 50 ms for at most *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def tcp_states_toward(port: int, state: str) -> int:
    """Sockets in *state* (hex, e.g. '08' CLOSE_WAIT) whose remote port is *port*."""
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == state and int(fields[2].split(":")[1], 16) == port:
                count += 1
    return count


def tcp_state_of_local_port(port: int) -> str | None:
    """The TCP state (hex) of this host's socket bound to local *port*, ``None`` if gone."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                return fields[3]
    return None
