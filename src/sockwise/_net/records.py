"""The socket record every reader returns, and the kernel's TCP state names.

TCP states are numbered as in the kernel's ``include/net/tcp_states.h``; the same numbers appear
in ``/proc/net/tcp`` (``st`` column, hexadecimal) and in sock_diag's ``idiag_state``, and
``1 << state`` is the bit a sock_diag state filter uses.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

#: ``include/net/tcp_states.h``: state number to kernel name.
TCP_STATES: Final[dict[int, str]] = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}
STATE_NUMBERS: Final[dict[str, int]] = {name: num for num, name in TCP_STATES.items()}
ALL_STATES_MASK: Final = 0xFFF  # states 0..11 (NEW_SYN_RECV rows are request socks, not sockets)


def state_mask(states: Collection[str] | None) -> int:
    """The sock_diag state bitmask for *states* (``None``: every state).

    Raises:
        ValueError: A name that is not a kernel TCP state name.

    """
    if states is None:
        return ALL_STATES_MASK
    mask = 0
    for name in states:
        num = STATE_NUMBERS.get(name)
        if num is None:
            allowed = ", ".join(sorted(STATE_NUMBERS))
            raise ValueError(f"states: unknown TCP state {name!r}; allowed: {allowed}")
        mask |= 1 << num
    return mask


@dataclass(frozen=True, slots=True)
class SocketRecord:
    """One TCP socket as the kernel reports it.

    Attributes:
        family: ``socket.AF_INET`` or ``socket.AF_INET6``.
        state: The kernel's state name (``"ESTABLISHED"``, ``"CLOSE_WAIT"``, ``"LISTEN"``...).
        local: Local ``(address, port)``.
        remote: Remote ``(address, port)`` (``("0.0.0.0", 0)`` or ``("::", 0)`` for a listener).
        inode: The socket's inode (``os.fstat(fd).st_ino``); 0 for TIME_WAIT rows, which no
            process owns any more.
        uid: The owner's user id (0 for TIME_WAIT rows; -1 when the reader cannot tell).
        rqueue: Bytes waiting to be read; for a LISTEN socket the accept queue's length.
        wqueue: Bytes not yet acknowledged; for a LISTEN socket its backlog (0 when the reader
            cannot tell, as ``/proc/net/tcp`` does not show it).
        fd: The owning process's file descriptor, when known.
        expires_ms: Milliseconds until the socket's timer fires (for TIME_WAIT rows: until the
            row disappears), when known.
        tcp_info: The kernel's ``struct tcp_info`` (:class:`TcpInfo`), for sockets read with it
            (:func:`~sockwise.guard.established_sockets`, the stall detector); else ``None``.

    """

    family: int
    state: str
    local: tuple[str, int]
    remote: tuple[str, int]
    inode: int
    uid: int
    rqueue: int
    wqueue: int
    fd: int | None = None
    expires_ms: int | None = None
    tcp_info: TcpInfo | None = None


#: ``idiag_timer`` values (``net/ipv4/inet_diag.c``): which timer of the socket is pending.
TIMER_NAMES: Final[dict[int, str]] = {
    0: "none",
    1: "retransmit",
    2: "keepalive",
    3: "time_wait",
    4: "zero_window_probe",
}


@dataclass(frozen=True, slots=True)
class TcpInfo:
    """The fields of the kernel's ``struct tcp_info`` the stall detector reads.

    Filled from sock_diag's ``INET_DIAG_INFO`` attribute or ``getsockopt(TCP_INFO)``
    (``include/uapi/linux/tcp.h``); times are milliseconds *ago*, as the kernel reports them.

    Attributes:
        state: The TCP state number (``TCP_STATES``).
        retransmits: Retransmissions of the current unacknowledged segment (``icsk_retransmits``).
        probes: Unanswered zero-window or keepalive probes.
        backoff: Exponential backoff of the retransmission timer.
        rto_us: The current retransmission timeout in microseconds (already backed off).
        unacked: Segments sent and not acknowledged yet.
        last_data_sent_ms: Since we last sent data (retransmissions count).
        last_data_recv_ms: Since we last received data.
        last_ack_recv_ms: Since the peer last acknowledged anything.
        rcv_space: The receive buffer space the kernel auto-tunes for.
        total_retrans: Retransmitted segments over the connection's life.
        bytes_acked: Bytes the peer acknowledged (RFC 4898 ``HCThruOctetsAcked``).
        bytes_received: Bytes received (``HCThruOctetsReceived``).
        notsent_bytes: Bytes queued that were never sent.
        data_segs_out: Segments with data we sent.
        data_segs_in: Segments with data we received.
        snd_wnd: The peer's advertised receive window in bytes (``None`` before Linux 5.5's
            ``tcpi_snd_wnd``).
        timer: The pending timer (``TIMER_NAMES``; ``None`` from ``getsockopt``, which does not
            tell).
        timer_ms: Milliseconds until that timer fires (``None`` from ``getsockopt``).

    """

    state: int
    retransmits: int
    probes: int
    backoff: int
    rto_us: int
    unacked: int
    last_data_sent_ms: int
    last_data_recv_ms: int
    last_ack_recv_ms: int
    rcv_space: int
    total_retrans: int
    bytes_acked: int
    bytes_received: int
    notsent_bytes: int
    data_segs_out: int
    data_segs_in: int
    snd_wnd: int | None = None
    timer: int | None = None
    timer_ms: int | None = None
