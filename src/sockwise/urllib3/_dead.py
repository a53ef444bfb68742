"""Explain a dead peer: turn the kernel's ETIMEDOUT into an error that says what happened.

Python reports the kernel's ``ETIMEDOUT`` (the connection was aborted because
``TCP_USER_TIMEOUT`` expired, or keepalive probes went unanswered) as ``TimeoutError`` -- the
same class as an ordinary socket timeout -- and urllib3 then reports it as
``ReadTimeoutError("Read timed out. (read timeout=...)")``, naming a timeout that did not fire.
The two differ in one detail: the kernel's error carries ``errno == ETIMEDOUT`` while Python's
own timeout has no errno. sockwise pools raise the subclasses below for the former, so existing
``except ReadTimeoutError`` / ``except ProtocolError`` clauses keep working.
"""

from __future__ import annotations

import errno

from urllib3.exceptions import ProtocolError, ReadTimeoutError

from sockwise._errors import SockwiseError
from sockwise.policy import Policy


class DeadPeerError(SockwiseError):
    """The kernel declared the peer dead under the policy (base of the two classes below).

    Attributes:
        peer: ``host:port`` of the peer that stopped answering (the proxy, when proxied).
        elapsed: Seconds from the start of the request to the failure.
        setting: Which policy setting made the kernel give up, in words.

    """

    __module__ = "sockwise.urllib3"
    peer: str = ""
    elapsed: float = 0.0
    setting: str = ""


class DeadPeerReadTimeoutError(ReadTimeoutError, DeadPeerError):
    """Raised where urllib3 raises ``ReadTimeoutError``, when the kernel aborted the read."""

    __module__ = "sockwise.urllib3"


class DeadPeerProtocolError(ProtocolError, DeadPeerError):
    """Raised where urllib3 raises ``ProtocolError``, when the kernel aborted sending."""

    __module__ = "sockwise.urllib3"


def kernel_timeout(exc: BaseException) -> OSError | None:
    """The kernel ``ETIMEDOUT`` error in *exc* or its direct cause, if there is one."""
    for candidate in (exc, exc.__cause__, exc.__context__):
        if isinstance(candidate, OSError) and candidate.errno == errno.ETIMEDOUT:
            return candidate
    return None


def describe_setting(policy: Policy) -> str:
    """Which setting of *policy* bounds how long a silent peer is tolerated, in words."""
    timeout = policy.user_timeout
    bound = policy.dead_peer_bound
    if isinstance(timeout, (int, float)) and timeout > 0:
        text = (
            f"policy.user_timeout={timeout:g} s (TCP_USER_TIMEOUT: data may stay "
            "unacknowledged that long)"
        )
        if bound is not None:
            text += f"; an idle connection is declared dead within {bound:g} s by keepalive"
        return text
    if bound is not None:
        return (
            f"policy keepalive (first probe after keepalive_idle={policy.keepalive_idle} s, "
            f"then {policy.keepalive_count} probes every keepalive_interval="
            f"{policy.keepalive_interval} s: dead within {bound:g} s)"
        )
    return (
        "the kernel's retransmission limit (net.ipv4.tcp_retries2, about 15 minutes): the "
        "policy sets neither user_timeout nor keepalive"
    )


def explain(
    exc: BaseException, policy: Policy, peer: str, elapsed: float
) -> DeadPeerReadTimeoutError | DeadPeerProtocolError:
    """Build the sockwise error for *exc*, a failure caused by the kernel's ``ETIMEDOUT``."""
    setting = describe_setting(policy)
    message = (
        f"peer {peer} stopped answering: the kernel aborted the connection (ETIMEDOUT) "
        f"after {elapsed:.1f} s of this request, under {setting}"
    )
    err: DeadPeerReadTimeoutError | DeadPeerProtocolError
    if isinstance(exc, ReadTimeoutError):
        err = DeadPeerReadTimeoutError(exc.pool, exc.url, message)
    else:
        err = DeadPeerProtocolError(message, exc)
    err.peer, err.elapsed, err.setting = peer, elapsed, setting
    return err
