"""A healthy pooled workload and an idle keep-alive pool produce no warning at all."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3

from sockwise.guard import Guard, GuardEvent


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[:2]  # type: ignore[misc]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_pooled_workload_and_idle_pool_are_quiet(http_server: tuple[str, int]) -> None:
    """Many pooled requests, then an idle keep-alive pool, under an eager guard: no event."""
    host, port = http_server
    events: list[GuardEvent] = []
    guard = Guard(interval=0.05, close_wait_after=0.3, callback=events.append)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning from check() fails the test
        with guard, urllib3.HTTPConnectionPool(host, port, maxsize=4, block=True) as pool:
            for _ in range(300):
                assert pool.request("GET", "/").status == 200
            time.sleep(1.0)  # idle keep-alive connections, sampled ~20 times
            report = guard.check()
    assert events == [] and report.events == ()
    assert report.close_wait == ()
