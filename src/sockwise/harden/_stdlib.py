"""The standard library part of :func:`sockwise.harden`: hooks on ``socket.socket``.

Clients (``connect``/``connect_ex``, which ``socket.create_connection``, asyncio, ``ssl`` and
urllib3 all end in) get the policy's options just before the SYN leaves, except those the
application set itself on that socket. Accepted sockets get them too, so a hardened server
answers without Nagle's 40 ms stall; listening sockets get them as well, since Linux copies them
to every connection accepted below Python (uvloop, C extensions). ``listen()`` with no backlog
gets the policy's backlog, and a backlog the kernel silently cuts to ``net.core.somaxconn`` is
reported.
"""

from __future__ import annotations

import _socket
import logging
import socket
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sockwise import _hooks
from sockwise._errors import SomaxconnTruncationWarning
from sockwise._log import logger
from sockwise.policy import Policy

_TCP_FAMILIES: Final = frozenset({socket.AF_INET, socket.AF_INET6})
_family: Final = _socket.socket.family.__get__
_type: Final = _socket.socket.type.__get__
_setsockopt: Final = _socket.socket.setsockopt
SOMAXCONN_PATH: Final = Path("/proc/sys/net/core/somaxconn")


#: ``TCP_SYNCNT`` (``include/uapi/linux/tcp.h``): SYN retransmissions before connect() fails.
TCP_SYNCNT: Final = getattr(socket, "TCP_SYNCNT", 7)


def syn_retries_within(seconds: float) -> int | None:
    """The largest ``TCP_SYNCNT`` whose SYN schedule gives up within *seconds*, if any.

    Linux retransmits a SYN after 1 s, then doubles the wait (``TCP_TIMEOUT_INIT``), so with
    *k* retries connect() fails after ``2 ** (k + 1) - 1`` seconds: 1 -> 3 s, 2 -> 7 s,
    3 -> 15 s. Below 3 s no count fits and ``None`` is returned (the hook layer then bounds the
    connect with a socket timeout instead, which costs three more system calls).
    """
    best = None
    for k in range(1, 128):
        if 2 ** (k + 1) - 1 > seconds:
            break
        best = k
    return best


@dataclass(frozen=True)
class _Resolved:
    """A policy resolved once into the exact ``setsockopt`` calls the hooks make."""

    options: tuple[tuple[int, int, int], ...]  # for accepted sockets
    connect_options: tuple[tuple[int, int, int], ...]  # for clients: plus TCP_SYNCNT
    backlog: int | None
    connect_timeout_fallback: float | None  # a bound too short for TCP_SYNCNT


def resolve(policy: Policy) -> _Resolved:
    """Turn *policy* into the exact calls the hooks make (done once per policy)."""
    options = tuple(policy.socket_options())
    timeout = policy.connect_timeout
    retries = syn_retries_within(timeout) if timeout and sys.platform.startswith("linux") else None
    connect_options = (*options, (socket.IPPROTO_TCP, TCP_SYNCNT, retries)) if retries else options
    fallback = timeout if timeout and retries is None else None
    return _Resolved(options, connect_options, policy.backlog, fallback)


_current: _Resolved | None = None


def _is_tcp(sock: socket.socket) -> bool:
    return _family(sock) in _TCP_FAMILIES and _type(sock) == socket.SOCK_STREAM


def _on_connect(sock: socket.socket, address: object) -> None:
    current = _current
    if current is None or not _is_tcp(sock):
        return
    table = _hooks._explicit
    explicit = table.get(sock) if table else None  # skip the weakref when nothing was recorded
    if not explicit:
        for level, opt, value in current.connect_options:
            _setsockopt(sock, level, opt, value)
        return
    for level, opt, value in current.connect_options:
        if (level, opt) not in explicit:
            _setsockopt(sock, level, opt, value)


def _on_accept(conn: socket.socket) -> None:
    current = _current
    if current is None or not _is_tcp(conn):
        return
    for level, opt, value in current.options:
        _setsockopt(conn, level, opt, value)


def _backlog() -> int | None:
    current = _current
    return current.backlog if current is not None else None


def read_somaxconn(path: Path = SOMAXCONN_PATH) -> int | None:
    """Return ``net.core.somaxconn``, or ``None`` when it cannot be read."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _on_listen(sock: socket.socket, backlog: int) -> None:
    current = _current
    if current is None or not _is_tcp(sock):
        return
    # Linux copies a listening socket's options to every socket it accepts, so what _on_accept
    # sets reaches connections accepted below Python too (uvloop, C servers). Options the
    # application set on the listener itself are kept.
    explicit = _hooks.explicit_options(sock)
    if not explicit or not any((level, opt) in explicit for level, opt, _ in current.options):
        _on_accept(sock)
    else:
        for level, opt, value in current.options:
            if (level, opt) not in explicit:
                _setsockopt(sock, level, opt, value)
    somaxconn = read_somaxconn()
    if somaxconn is None or backlog <= somaxconn:
        return
    try:
        where = sock.getsockname()
    except OSError:  # Defensive: closed under us
        where = "?"
    message = (
        f"listen({backlog}) on {where} was silently truncated to {somaxconn} by "
        f"net.core.somaxconn: at most {somaxconn} connections can wait in the accept queue, "
        "the next SYNs are dropped. Raise it with `sysctl -w net.core.somaxconn="
        f"{backlog}` (and persist it in /etc/sysctl.d/), or ask for a smaller backlog."
    )
    logger.warning("sockwise: %s", message)
    warnings.warn(message, SomaxconnTruncationWarning, stacklevel=3)


def install(policy: Policy) -> list[str]:
    """Install (or update) the socket hooks for *policy*; return what was patched."""
    global _current
    _current = resolve(policy)
    _hooks.set_track_explicit(True)
    _hooks.add_connect_hook(_on_connect)
    _hooks.add_accept_hook(_on_accept)
    _hooks.add_listen_hook(_on_listen)
    _hooks.set_backlog_provider(_backlog)
    _hooks.set_connect_timeout(_current.connect_timeout_fallback)
    logger.debug("sockwise: socket hooks installed for %r", policy)
    return [
        "socket.socket.connect",
        "socket.socket.connect_ex",
        "socket.socket.accept",
        "socket.socket.listen",
        "socket.socket.setsockopt",
    ]


def uninstall() -> None:
    """Remove the socket hooks (the patch goes when no other user of the hook layer remains)."""
    global _current
    _hooks.remove_connect_hook(_on_connect)
    _hooks.remove_accept_hook(_on_accept)
    _hooks.remove_listen_hook(_on_listen)
    _hooks.set_backlog_provider(None)
    _hooks.set_connect_timeout(None)
    _hooks.set_track_explicit(False)
    _current = None
    logger.log(logging.DEBUG, "sockwise: socket hooks removed")
