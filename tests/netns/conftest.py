"""Fixtures of the netns area: a namespace pair shared by a module, and a TCP sink server."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from sockwise.testing import NetnsPair, netns_unavailable_reason, require_or_skip

SINK_PORT = 7000


@dataclass
class Sink:
    """A listener in the server namespace that accepts and holds connections, never sending."""

    pair: NetnsPair
    listener: socket.socket
    port: int
    accepted: list[socket.socket] = field(default_factory=list)

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """Open a blocking client socket from client_ns (call it inside run_in_client)."""
        sock = socket.create_connection((self.pair.server_addr, self.port), timeout=timeout)
        sock.settimeout(None)
        return sock

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread
        self.listener.close()
        for conn in self.accepted:
            conn.close()


def _serve(sink: Sink) -> None:
    for _ in range(1000):  # bounded: far more connections than any test opens
        try:
            conn, _ = sink.listener.accept()
        except OSError:  # the listener was closed
            return
        sink.accepted.append(conn)


@pytest.fixture(scope="module")
def module_netns_pair() -> Iterator[NetnsPair]:
    """A NetnsPair shared by one module (for scenarios that run in parallel threads)."""
    require_or_skip(netns_unavailable_reason())
    with NetnsPair.create() as pair:
        yield pair


def start_sink(pair: NetnsPair, port: int = SINK_PORT) -> Sink:
    """Start a :class:`Sink` listening on ``pair.server_addr:port`` inside server_ns."""

    def listen() -> socket.socket:
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((pair.server_addr, port))
        lst.listen(64)
        return lst

    sink = Sink(pair, pair.run_in_server(listen), port)
    threading.Thread(target=_serve, args=(sink,), daemon=True, name="sink-accept").start()
    return sink


@pytest.fixture(scope="module")
def module_sink(module_netns_pair: NetnsPair) -> Iterator[Sink]:
    """A :class:`Sink` in the module's server namespace, on :data:`SINK_PORT`."""
    sink = start_sink(module_netns_pair)
    try:
        yield sink
    finally:
        sink.close()
