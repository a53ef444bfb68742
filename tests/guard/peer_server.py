"""A peer in another process for the guard's scenario tests: HTTP/1.1 with a short keep-alive.

Run as ``python peer_server.py KEEPALIVE_SECONDS``; prints its port, then serves until stdin
closes. Each connection is served by a thread: requests are answered with a small body; after
KEEPALIVE_SECONDS without a new request the server closes the connection (as nginx, uvicorn and
gunicorn do). ``GET /poll?s=N`` answers after N seconds (a long-poll). A client that half-closes
(``shutdown(SHUT_WR)``) after ``POST /compute?s=N`` gets its answer N seconds after its EOF.
"""

from __future__ import annotations

import socket
import sys
import threading
import time


def _serve(conn: socket.socket, keepalive: float) -> None:
    with conn:
        buf = b""
        while True:
            conn.settimeout(keepalive)
            try:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
            except TimeoutError:
                return  # idle keep-alive connection: close it
            head, _, buf = buf.partition(b"\r\n\r\n")
            path = head.split(b" ")[1].decode() if b" " in head else "/"
            delay = float(path.split("s=")[1]) if "s=" in path else 0.0
            if path.startswith("/compute"):
                conn.settimeout(30)
                while conn.recv(65536):  # read to EOF of the half-closed request
                    pass
                time.sleep(delay)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndone"
                )
                return
            time.sleep(delay)
            body = b"x" * 5
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + body)


def main() -> None:
    keepalive = float(sys.argv[1])
    srv = socket.create_server(("127.0.0.1", 0), backlog=512)
    print(srv.getsockname()[1], flush=True)

    def accept_loop() -> None:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=_serve, args=(conn, keepalive), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    sys.stdin.read()  # until the test closes our stdin


if __name__ == "__main__":
    main()
