"""The stall detector with a short ``stall_after``: each kind, declared silences, healthy traffic.

Peers run in another process (:mod:`stall_support`); the guard reads the real kernel's
``tcp_info`` through sock_diag (and, in one test, through ``getsockopt``).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import threading
import time
import warnings

import pytest
import requests
from stall_support import ECHO, NOT_READING, PUSHER, SILENT, STREAMER, peer, wait_for

import sockwise
from sockwise._net.netlink import (
    EXT_INFO,
    InfoDump,
    NetlinkReader,
    build_request,
    info_records,
    scan_info,
)
from sockwise._net.proc import ProcfsReader
from sockwise._net.sockets import read_tcp_info
from sockwise.guard import Guard, GuardEvent, StallWarning, _source, _stall

STALL = 1.0
INTERVAL = 0.2
#: The promise: reported within stall_after + one interval, tolerance max(0.5 s, 10 %).
BOUND = STALL + INTERVAL + max(0.5, 0.1 * (STALL + INTERVAL))


def _guard(events: list[GuardEvent]) -> Guard:
    return Guard(interval=INTERVAL, stall_after=STALL, callback=events.append)


@pytest.fixture(autouse=True)
def _quiet_warnings() -> None:
    warnings.simplefilter("ignore", StallWarning)  # reset by pytest after each test


def _recv_in_thread(sock: socket.socket, name: str) -> threading.Thread:
    def reader() -> None:
        with contextlib.suppress(OSError):
            sock.recv(10)  # blocks until the peer is killed (EOF or reset)

    thread = threading.Thread(target=reader, name=name, daemon=True)
    thread.start()
    return thread


def test_stall_after_is_validated() -> None:
    """A bad threshold names the parameter, the value and the allowed range."""
    with pytest.raises(ValueError, match=r"stall_after: 0 is out of range; allowed: 0.1 to"):
        Guard(stall_after=0)
    with pytest.raises(TypeError, match="stall_after: expected a number"):
        Guard(stall_after="30")  # type: ignore[arg-type]
    assert Guard().stall_after == sockwise.guard.DEFAULT_STALL_AFTER <= 30
    assert Guard(stall_after=None).stall_after is None


def test_expect_silence_validates() -> None:
    """expect_silence rejects what has no socket and bad durations, by name."""
    with pytest.raises(TypeError, match="target: 'x' is not an open socket"):
        with sockwise.expect_silence("x"):
            pass
    with pytest.raises(ValueError, match=r"up_to: -1 is out of range"):
        with sockwise.expect_silence(up_to=-1):
            pass
    with pytest.raises(TypeError, match="up_to: expected a number"):
        with sockwise.expect_silence(up_to="1"):  # type: ignore[arg-type]
            pass


def test_awaiting_reply_names_line_thread_and_timeout() -> None:
    """A blocking recv on a request the silent peer acknowledged: reported in time, explained."""
    events: list[GuardEvent] = []
    with peer(SILENT) as port, _guard(events):
        sock = socket.create_connection(("127.0.0.1", port))  # the line the report names
        sock_line = sys._getframe().f_lineno - 1
        try:
            sock.settimeout(None)
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            start = time.monotonic()
            thread = _recv_in_thread(sock, "waiter-7")
            event = wait_for(events, lambda e: e.kind == "awaiting_reply", BOUND + 1)
            delay = time.monotonic() - start
            assert event is not None, [e.message for e in events]
            assert STALL - 0.1 <= delay <= BOUND
            assert event.category is StallWarning
            assert event.remote == ("127.0.0.1", port)
            assert event.origin is not None
            assert (event.origin.filename, event.origin.lineno) == (__file__, sock_line)
            assert event.details["thread"] == "waiter-7"
            assert event.details["timeout"] is None
            assert "thread 'waiter-7' is blocked reading it" in event.message
            assert "no timeout" in event.message
            assert f"127.0.0.1:{port}" in event.message
            assert len([e for e in events if e.kind == "awaiting_reply"]) == 1  # once
        finally:
            sock.shutdown(socket.SHUT_RDWR)
            thread.join(5)
            sock.close()


def test_zero_window_peer_stopped_reading() -> None:
    """A peer that never reads: our send queue fills, its window is zero: reported."""
    events: list[GuardEvent] = []
    with peer(NOT_READING) as port, _guard(events):
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            sock.setblocking(False)
            sent = 0
            for _ in range(10_000):  # bounded: a few MB at most on loopback
                try:
                    sent += sock.send(b"z" * 65536)
                except BlockingIOError:
                    break
            start = time.monotonic()
            event = wait_for(events, lambda e: e.kind == "zero_window", BOUND + 1)
            assert event is not None, [e.message for e in events]
            assert time.monotonic() - start <= BOUND
            assert event.details["wqueue"] > 0
            assert event.details["snd_wnd"] in (0, None)
            assert "stopped reading" in event.message
            assert "non-blocking" in event.message
            assert sent > 1_000_000
        finally:
            sock.close()


def test_unread_data() -> None:
    """Bytes the peer sent that this process never reads: reported after stall_after."""
    events: list[GuardEvent] = []
    with peer(PUSHER) as port, _guard(events):
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            start = time.monotonic()
            event = wait_for(events, lambda e: e.kind == "unread", BOUND + 1)
            assert event is not None, [e.message for e in events]
            assert STALL - 0.1 <= time.monotonic() - start <= BOUND + 0.1
            assert event.details["rqueue"] == 100
            assert "100 bytes received" in event.message
            assert event.fd == sock.fileno()
        finally:
            sock.close()


def test_getsockopt_fallback_finds_unread() -> None:
    """Without netlink the tracked sockets are read through getsockopt(TCP_INFO)."""
    events: list[GuardEvent] = []
    _source.set_reader(ProcfsReader())
    with peer(PUSHER) as port, _guard(events):
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            rec = None
            for _ in range(100):
                rec = read_tcp_info(sock.fileno())
                info = rec.tcp_info if rec is not None else None
                if info is not None and info.bytes_received == 100 and rec.rqueue == 100:
                    break
                time.sleep(0.02)
            assert rec is not None and rec.tcp_info is not None
            assert rec.remote == ("127.0.0.1", port)
            assert rec.tcp_info.bytes_received == 100
            event = wait_for(events, lambda e: e.kind == "unread", BOUND + 1)
            assert event is not None, [e.message for e in events]
        finally:
            sock.close()


def test_declared_long_poll_is_silent() -> None:
    """A thread inside expect_silence() waiting on a silent server is not reported."""
    events: list[GuardEvent] = []
    with peer(SILENT) as port, _guard(events):
        sock = socket.create_connection(("127.0.0.1", port))
        done = threading.Event()

        def long_poll() -> None:
            with sockwise.expect_silence(up_to=60):
                sock.sendall(b"GET /events HTTP/1.0\r\n\r\n")
                with contextlib.suppress(OSError):
                    sock.recv(10)
            done.set()

        thread = threading.Thread(target=long_poll, name="long-poll", daemon=True)
        thread.start()
        try:
            time.sleep(2 * BOUND)
            assert [e.message for e in events if e.category is StallWarning] == []
        finally:
            sock.shutdown(socket.SHUT_RDWR)
            thread.join(5)
            sock.close()
        assert done.is_set()


def test_declared_socket_silence_ends_with_up_to() -> None:
    """expect_silence(sock, up_to=...) hides that socket until the limit, then it is a stall."""
    events: list[GuardEvent] = []
    with peer(PUSHER) as port, _guard(events):
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            with sockwise.expect_silence(sock, up_to=2 * BOUND):
                time.sleep(1.5 * BOUND)
                assert [e.kind for e in events] == []
                event = wait_for(events, lambda e: e.kind == "unread", BOUND + 1)
                assert event is not None, "the declared limit ran out: a stall again"
        finally:
            sock.close()


def test_healthy_exchanges_are_silent() -> None:
    """Request/response traffic and idle answered connections are never stalls."""
    events: list[GuardEvent] = []
    with peer(ECHO) as port, _guard(events):
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        try:
            end = time.monotonic() + 3 * BOUND
            for _ in range(100_000):
                if time.monotonic() > end:
                    break
                for sock in socks[:2]:  # two busy, two idle after one answered exchange
                    sock.sendall(b"ping")
                    assert sock.recv(4) == b"ping"
                if socks[2] is not None and _ == 0:
                    for sock in socks[2:]:
                        sock.sendall(b"once")
                        assert sock.recv(4) == b"once"
                time.sleep(0.05)
            assert [e.message for e in events if e.category is StallWarning] == []
        finally:
            for sock in socks:
                sock.close()


def test_server_side_waiting_for_next_request_is_silent() -> None:
    """An accepted connection that answered and waits for the client's next request."""
    events: list[GuardEvent] = []
    with _guard(events), socket.create_server(("127.0.0.1", 0)) as srv:
        client = socket.create_connection(srv.getsockname())
        conn, _ = srv.accept()
        try:
            client.sendall(b"req")
            assert conn.recv(3) == b"req"
            conn.sendall(b"resp")
            assert client.recv(4) == b"resp"
            time.sleep(2 * BOUND)
            assert [e.message for e in events if e.category is StallWarning] == []
        finally:
            client.close()
            conn.close()


def test_scan_reads_tcp_info_and_survives_garbage() -> None:
    """The columnar scan keeps only candidates; truncated or random input never raises."""
    with peer(PUSHER) as port:
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            ino = os.fstat(sock.fileno()).st_ino
            for _ in range(100):
                rows, found = scan_info(NetlinkReader().info_chunks(), os.getuid())
                mine = [r for r in found if r.inode == ino]
                if mine and mine[0].rqueue == 100:
                    break
                time.sleep(0.02)
            assert rows >= 1
            (rec,) = mine
            assert rec.tcp_info is not None
            assert rec.tcp_info.bytes_received == 100
            assert rec.tcp_info.data_segs_in >= 1
            chunks = NetlinkReader().info_chunks()
        finally:
            sock.close()
    rng = __import__("random").Random(7)
    for chunk in chunks:
        for cut in (0, 1, 17, 90, len(chunk) // 2, len(chunk) - 3):
            scan_info([chunk[:cut]], os.getuid())
        noisy = bytearray(chunk)
        for _ in range(200):
            noisy[rng.randrange(len(noisy))] = rng.randrange(256)
        with contextlib.suppress(OSError):  # a header corrupted into NLMSG_ERROR says so
            scan_info([bytes(noisy)], os.getuid())
    assert len(build_request(socket.AF_INET, 2, ext=EXT_INFO)) == 72


def test_between_passes_due_sockets_are_reread() -> None:
    """A socket found on its way to a stall is re-read by itself (getsockopt) when due."""
    # A guard that never ticks records origins, so the socket's descriptor is known.
    with peer(PUSHER) as port, Guard(interval=3600, stall_after=None):
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            for _ in range(100):  # the 100 bytes are in our receive queue
                rec = read_tcp_info(sock.fileno())
                if rec is not None and rec.rqueue == 100:
                    break
                time.sleep(0.02)
            det = _stall.StallDetector(STALL)
            uid = os.getuid()
            events = []
            for _ in range(10_000):  # one whole pass over the dump
                events += det.collect(NetlinkReader(), uid, time.monotonic(), INTERVAL)
                if det.scans:
                    break
            assert events == []  # not yet: the bytes are younger than stall_after
            ino = os.fstat(sock.fileno()).st_ino
            fd, _, due = det.pending[ino]
            assert fd == sock.fileno()
            assert det.next_due() is not None and det.next_due() <= due
            assert due <= time.monotonic() + STALL
            det.next_scan = math.inf  # from here on only re-reads can report (no netlink)
            assert det.collect(object(), uid, due - 0.05, INTERVAL) == []
            time.sleep(max(0.0, due - time.monotonic()) + 0.05)
            (event,) = det.collect(object(), uid, time.monotonic(), INTERVAL)
            assert event.kind == "unread" and event.fd == sock.fileno()
            assert ino not in det.pending
            det.close()
        finally:
            sock.close()


def test_pass_spreads_over_ticks_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small per-tick budget reads the dump over several calls; close() ends a pass early."""
    monkeypatch.setattr(_stall, "ROWS_PER_TICK", 1)
    with socket.create_server(("127.0.0.1", 0)) as srv:
        pairs = []
        try:
            for _ in range(300):  # 600 established sockets: several chunks
                client = socket.create_connection(srv.getsockname())
                pairs += [client, srv.accept()[0]]
            det = _stall.StallDetector(30.0)
            calls = 0
            while calls < 10_000 and not det.scans:
                det.collect(NetlinkReader(), os.getuid(), time.monotonic(), 5.0)
                calls += 1
            assert calls > 1
            assert det.rows >= 600
            det.collect(NetlinkReader(), os.getuid(), time.monotonic(), 5.0)
            assert det.dump is not None and not det.dump.running  # next pass: 7.5 s later
            det.pass_started = -math.inf
            det.collect(NetlinkReader(), os.getuid(), time.monotonic(), 5.0)
            assert det.dump is not None and det.dump.running
            det.close()
            assert not det.dump.running
        finally:
            for sock in pairs:
                sock.close()


def test_forked_child_never_reads_the_parents_pass() -> None:
    """After fork() the child starts its own pass; the parent's resumes where it stopped."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        pairs = []
        try:
            for _ in range(300):
                client = socket.create_connection(srv.getsockname())
                pairs += [client, srv.accept()[0]]
            ours = {os.fstat(sock.fileno()).st_ino for sock in pairs}

            def count(chunks: list[bytes]) -> int:
                return sum(1 for r in info_records(chunks) if r.inode in ours)

            dump = InfoDump(NetlinkReader().open_socket)
            families = (socket.AF_INET,)
            chunks, finished = dump.read(1, families)  # one chunk of a long dump
            assert not finished
            pid = os.fork()
            if pid == 0:  # the child: a whole pass of its own, then exit without cleanup
                code = 1
                try:
                    rows = 0
                    for _ in range(10_000):
                        got, done = dump.read(1 << 30, families)
                        rows += count(got)
                        if done:
                            code = 0 if rows >= 590 else 3
                            break
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            for _ in range(10_000):
                if finished:
                    break
                got, finished = dump.read(1, families)
                chunks += got
            # Nothing of the parent's pass went to the child (a chunk holds ~80 rows; a resumed
            # dump may miss a row whose hash bucket changed meanwhile).
            assert count(chunks) >= 590
            assert not dump.running
        finally:
            for sock in pairs:
                sock.close()


def test_expect_silence_on_a_requests_stream() -> None:
    """expect_silence(response) finds the response's socket; the stream is quiet inside it."""
    events: list[GuardEvent] = []
    with peer(STREAMER) as port, _guard(events):
        resp = requests.get(f"http://127.0.0.1:{port}/events", stream=True, timeout=5)
        try:
            with sockwise.expect_silence(resp):
                time.sleep(2 * BOUND)  # events wait unread in the socket: declared
                assert [e.message for e in events if e.category is StallWarning] == []
            event = wait_for(events, lambda e: e.kind == "unread", BOUND + 1)
            assert event is not None, "outside the block the unread stream is a stall"
            assert event.remote == ("127.0.0.1", port)
        finally:
            resp.close()
