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
