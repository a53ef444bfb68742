"""Turning a :class:`~sockwise.Policy` into what consumers take: setsockopt calls, triples, libpq.

Everything here goes through the running platform's table (:mod:`sockwise.policy._platform`), so
an option the platform lacks is skipped -- logged once at INFO, never raised.
"""

from __future__ import annotations

import _socket
import logging
import math
import socket
from typing import TYPE_CHECKING

from sockwise._log import log_once
from sockwise.policy import _platform

if TYPE_CHECKING:
    from sockwise.policy._model import Policy

_TCP_FAMILIES = frozenset({socket.AF_INET, socket.AF_INET6})


def option_values(
    policy: Policy, table: _platform.PlatformOptions | None = None
) -> list[tuple[str, int]]:
    """Return ``(option name, value)`` for every option *policy* sets, in setting order.

    Keepalive numbers are left out when ``keepalive`` is ``False`` (they would be meaningless).
    """
    tbl = table or _platform.CURRENT
    out: list[tuple[str, int]] = []
    if policy.keepalive is not None:
        out.append(("SO_KEEPALIVE", int(policy.keepalive)))
    if policy.keepalive is not False:
        for name, value in (
            ("TCP_KEEPIDLE", policy.keepalive_idle),
            ("TCP_KEEPINTVL", policy.keepalive_interval),
            ("TCP_KEEPCNT", policy.keepalive_count),
        ):
            if value is not None:
                out.append((name, value))
    timeout = policy.user_timeout
    if isinstance(timeout, (int, float)):
        out.append(("TCP_USER_TIMEOUT", round(timeout * tbl.user_timeout_scale)))
    if policy.nodelay is not None:
        out.append(("TCP_NODELAY", int(policy.nodelay)))
    return out


def resolved_options(
    policy: Policy, table: _platform.PlatformOptions | None = None
) -> list[tuple[str, int, int, int]]:
    """Return ``(name, level, optname, value)`` for each option the platform supports."""
    tbl = table or _platform.CURRENT
    out: list[tuple[str, int, int, int]] = []
    for name, value in option_values(policy, tbl):
        where = tbl.lookup(name)
        if where is None:
            log_once(
                f"missing-option:{tbl.name}:{name}",
                logging.INFO,
                "sockwise: %s is not available on %s; that part of the policy is skipped",
                name,
                tbl.name,
            )
            continue
        out.append((name, where[0], where[1], value))
    return out


def socket_options(
    policy: Policy, table: _platform.PlatformOptions | None = None
) -> list[tuple[int, int, int]]:
    """Return the ``(level, option, value)`` triples urllib3 and httpx take."""
    return [(level, opt, value) for _, level, opt, value in resolved_options(policy, table)]


def is_tcp(sock: socket.socket) -> bool:
    """Whether *sock* is a TCP socket (AF_INET/AF_INET6 and SOCK_STREAM)."""
    try:
        return sock.family in _TCP_FAMILIES and sock.type == socket.SOCK_STREAM
    except (OSError, ValueError):  # Defensive: a closed or foreign socket object
        return False


def apply(policy: Policy, sock: socket.socket, *, strict: bool = False) -> tuple[str, ...]:
    """Set *policy* on *sock*; see :meth:`sockwise.Policy.apply`."""
    if not is_tcp(sock):
        if strict:
            raise ValueError(
                f"Policy.apply() needs a TCP socket (AF_INET/AF_INET6, SOCK_STREAM), got "
                f"family={sock.family!r} type={sock.type!r}"
            )
        return ()
    applied: list[str] = []
    setsockopt = _socket.socket.setsockopt  # the unpatched one: never counted as "explicit"
    for name, level, opt, value in resolved_options(policy):
        setsockopt(sock, level, opt, value)
        applied.append(name)
    return tuple(applied)


def libpq_params(policy: Policy) -> dict[str, int]:
    """Return the libpq keywords for *policy* (see :meth:`sockwise.Policy.libpq_params`)."""
    out: dict[str, int] = {}
    if policy.keepalive is not None:
        out["keepalives"] = int(policy.keepalive)
    if policy.keepalive is not False:
        if policy.keepalive_idle is not None:
            out["keepalives_idle"] = policy.keepalive_idle
        if policy.keepalive_interval is not None:
            out["keepalives_interval"] = policy.keepalive_interval
        if policy.keepalive_count is not None:
            out["keepalives_count"] = policy.keepalive_count
    timeout = policy.user_timeout
    if isinstance(timeout, (int, float)):
        out["tcp_user_timeout"] = round(timeout * 1000)
    if policy.connect_timeout is not None:
        out["connect_timeout"] = math.ceil(policy.connect_timeout)
    return out
