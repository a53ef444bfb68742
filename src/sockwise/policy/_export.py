"""Turning a :class:`~sockwise.Policy` into what consumers take: setsockopt calls, triples, libpq.

Everything here goes through the running platform's table (:mod:`sockwise.policy._platform`), so
an option the platform lacks is skipped -- logged once at INFO, never raised. A platform without a
verified table gets no options at all (logged once at WARNING).

The functions read a policy's fields through :class:`PolicyFields` and do not import
:class:`~sockwise.Policy` (which imports this module), so the dependency runs one way.
"""

from __future__ import annotations

import _socket
import logging
import math
import socket
from typing import Literal, Protocol

from sockwise._log import log_once
from sockwise._net.sockets import is_tcp
from sockwise.policy import _platform


class PolicyFields(Protocol):
    """The fields of a :class:`~sockwise.Policy` that the exports read."""

    @property
    def keepalive(self) -> bool | None: ...  # pragma: no cover - a protocol
    @property
    def keepalive_idle(self) -> int | None: ...  # pragma: no cover
    @property
    def keepalive_interval(self) -> int | None: ...  # pragma: no cover
    @property
    def keepalive_count(self) -> int | None: ...  # pragma: no cover
    @property
    def user_timeout(self) -> float | Literal["auto"] | None: ...  # pragma: no cover
    @property
    def accepted_user_timeout(self) -> float | Literal["same"] | None: ...  # pragma: no cover
    @property
    def nodelay(self) -> bool | None: ...  # pragma: no cover
    @property
    def connect_timeout(self) -> float | None: ...  # pragma: no cover


def user_timeout_for(policy: PolicyFields, *, accepted: bool = False) -> float | None:
    """The ``TCP_USER_TIMEOUT`` in seconds for a client socket, or an accepted one (*accepted*).

    ``None`` when the option is left alone (``0`` is an explicit "off").
    """
    timeout: object = policy.user_timeout
    if accepted:
        chosen = policy.accepted_user_timeout
        timeout = policy.user_timeout if chosen == "same" else chosen
    return float(timeout) if isinstance(timeout, (int, float)) else None


def option_values(
    policy: PolicyFields, table: _platform.PlatformOptions | None = None, *, accepted: bool = False
) -> list[tuple[str, int]]:
    """Return ``(option name, value)`` for every option *policy* sets, in setting order.

    Keepalive numbers are left out when ``keepalive`` is ``False`` (they would be meaningless).
    With *accepted*, ``TCP_USER_TIMEOUT`` follows ``accepted_user_timeout`` (accepted sockets).
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
    timeout = user_timeout_for(policy, accepted=accepted)
    if timeout is not None:
        out.append(("TCP_USER_TIMEOUT", round(timeout * tbl.user_timeout_scale)))
    if policy.nodelay is not None:
        out.append(("TCP_NODELAY", int(policy.nodelay)))
    return out


def resolved_options(
    policy: PolicyFields, table: _platform.PlatformOptions | None = None, *, accepted: bool = False
) -> list[tuple[str, int, int, int]]:
    """Return ``(name, level, optname, value)`` for each option the platform supports.

    A platform without a verified table gets nothing (logged once at WARNING): guessing another
    system's option numbers could set an unrelated option.
    """
    tbl = table or _platform.CURRENT
    out: list[tuple[str, int, int, int]] = []
    if not tbl.verified:
        log_once(
            f"unverified-platform:{tbl.name}",
            logging.WARNING,
            "sockwise: no verified socket option table for platform %r; the policy's socket "
            "options are not applied on it",
            tbl.name,
        )
        return out
    for name, value in option_values(policy, tbl, accepted=accepted):
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
    policy: PolicyFields, table: _platform.PlatformOptions | None = None, *, accepted: bool = False
) -> list[tuple[int, int, int]]:
    """Return the ``(level, option, value)`` triples urllib3 and httpx take."""
    found = resolved_options(policy, table, accepted=accepted)
    return [(level, opt, value) for _, level, opt, value in found]


def apply(
    policy: PolicyFields, sock: socket.socket, *, strict: bool = False, accepted: bool = False
) -> tuple[str, ...]:
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
    for name, level, opt, value in resolved_options(policy, accepted=accepted):
        setsockopt(sock, level, opt, value)
        applied.append(name)
    return tuple(applied)


def libpq_params(policy: PolicyFields) -> dict[str, int]:
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
