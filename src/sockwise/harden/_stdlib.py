"""The standard library part of :func:`sockwise.harden`: hooks on ``socket.socket``.

Clients (``connect``/``connect_ex``, which ``socket.create_connection``, asyncio, ``ssl`` and
urllib3 all end in) get the policy's options just before the SYN leaves, except those the
application set itself on that socket; a blocking connect with no timeout of its own is bounded
by ``connect_timeout``. Accepted sockets get them too (with ``accepted_user_timeout`` as their
``TCP_USER_TIMEOUT``), so a hardened server answers without Nagle's 40 ms stall; listening sockets
get what accepted ones get, since Linux copies a listener's options to every connection it
accepts, also below Python (uvloop, C extensions). ``listen()`` with no backlog gets the
policy's backlog (capped at ``net.core.somaxconn``), and a backlog the application asked for
that the kernel silently cuts is reported.
"""

from __future__ import annotations

import _socket
import logging
import socket
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sockwise import _hooks, _native
from sockwise._errors import SomaxconnTruncationWarning
from sockwise._log import logger
from sockwise._net.proc import read_int
from sockwise._net.sockets import TCP_FAMILIES, is_tcp
from sockwise.policy import Policy

# The C getters, bound once: the connect hook checks every socket with them (is_tcp also
# serves socket-like wrappers, which the hook never sees).
_family: Final = _socket.socket.family.__get__
_type: Final = _socket.socket.type.__get__
_setsockopt: Final = _socket.socket.setsockopt
_gettimeout: Final = _socket.socket.gettimeout
_STREAM: Final = int(socket.SOCK_STREAM)
_speedups: Final = _native.speedups()
SOMAXCONN_PATH: Final = Path("/proc/sys/net/core/somaxconn")


#: ``TCP_SYNCNT`` (``include/uapi/linux/tcp.h``): SYN retransmissions before connect() fails.
TCP_SYNCNT: Final = getattr(socket, "TCP_SYNCNT", 7)
SYN_LINEAR_TIMEOUTS_PATH: Final = Path("/proc/sys/net/ipv4/tcp_syn_linear_timeouts")


def read_syn_linear_timeouts(path: Path = SYN_LINEAR_TIMEOUTS_PATH) -> int:
    """``net.ipv4.tcp_syn_linear_timeouts`` (Linux 6.5+), or 0 when the kernel has none."""
    return read_int(str(path)) or 0


def syn_retries_within(seconds: float, linear: int | None = None) -> int | None:
    """The largest ``TCP_SYNCNT`` whose SYN schedule gives up within *seconds*, if any.

    A model of the kernel (``tcp_write_timeout``/``retransmits_timed_out`` in
    ``net/ipv4/tcp_timer.c``) when ``TCP_USER_TIMEOUT`` is *not* set: the first *linear*
    (``tcp_syn_linear_timeouts``, read from ``/proc`` when ``None``) + 1 retransmissions come
    1 s apart, then the wait doubles; connect() fails at the first timer tick where either
    ``retransmissions >= k + linear`` or ``2 ** (k + 1) - 1`` seconds have passed. With
    ``linear=4`` (Linux 6.5+ default): 1 -> 3 s, 2 -> 7 s, 3 -> 19 s (not 15 s). Below 3 s no
    count fits and ``None`` is returned.

    :func:`sockwise.harden` does not use it: the schedule is coarse, and ``TCP_USER_TIMEOUT``
    (which the policy sets before connect) replaces the time rule, so it would cut an
    application's own longer timeout. It bounds a blocking connect with no timeout of its own by
    lowering ``TCP_USER_TIMEOUT`` to ``connect_timeout`` for the handshake instead.
    """
    lin = read_syn_linear_timeouts() if linear is None else linear
    ticks: list[float] = []  # when the retransmission timer fires, from the first SYN
    now, rto = 0.0, 1.0
    for sent in range(1, 200):
        now += rto
        ticks.append(now)
        if sent > lin:
            rto = min(rto * 2, 120.0)
    best = None
    for k in range(1, 128):
        model = 2 ** (k + 1) - 1
        # Tick i (0-based) sees i retransmissions already sent.
        fail = next(t for i, t in enumerate(ticks) if i >= k + lin or t >= model)
        if fail > seconds:
            break
        best = k
    return best


_Option = tuple[int, int, int]
#: ``TCP_USER_TIMEOUT`` (Linux): lowered to ``connect_timeout`` for a blocking handshake.
_USER_TIMEOUT: Final = (socket.IPPROTO_TCP, getattr(socket, "TCP_USER_TIMEOUT", None))


_Apply = Callable[[socket.socket], None]


def _noop(sock: socket.socket) -> None:
    """Apply nothing (a policy that sets no option)."""


def _check_options(options: Sequence[_Option]) -> None:
    """Refuse anything but ``(int, int, int)`` tuples (the numbers become constants or C ints)."""
    if not all(
        type(option) is tuple and len(option) == 3 and all(type(x) is int for x in option)
        for option in options
    ):
        raise TypeError(f"options: expected (int, int, int) tuples, got {options!r}")


def applier(options: Sequence[_Option]) -> _Apply:
    """One function making exactly the *options* ``setsockopt`` calls on a socket, in order.

    ``apply(sock)`` does what ``_socket.socket.setsockopt(sock, level, optname, value)`` for
    each option in order does: the first failure raises :class:`OSError` and the options after
    it are not set. It runs before every client connect of the process, so it is built once per
    policy and made cheap: in C when the optional extension ``sockwise._speedups`` is built
    (one call that reads the descriptor once, then the system calls back to back), else in
    Python (:func:`python_applier`). Every number must be an ``int`` (a policy's options are),
    else :class:`TypeError`.
    """
    if _speedups is None:
        return python_applier(options)
    _check_options(options)
    if not options:
        return _noop
    native: _Apply = _speedups.applier(tuple(options))
    return native


def python_applier(options: Sequence[_Option]) -> _Apply:
    """:func:`applier` in Python: the ``setsockopt`` calls unrolled, with the numbers as constants.

    A ``for`` loop over the tuples costs ~0.2 us of bytecode per connect on top of the system
    calls (measured), the unrolled calls about half. Used when the C extension is not built.
    """
    _check_options(options)
    if not options:
        return _noop
    calls = "".join(f"    setsockopt(sock, {lv}, {opt}, {value})\n" for lv, opt, value in options)
    namespace: dict[str, Any] = {}
    source = f"def apply(sock, setsockopt=setsockopt):\n{calls}"
    exec(  # numbers only, checked above
        compile(source, "<sockwise policy options>", "exec"), {"setsockopt": _setsockopt}, namespace
    )
    apply: _Apply = namespace["apply"]
    apply.__doc__ = f"setsockopt {list(options)!r}"
    return apply


@dataclass(frozen=True)
class _Resolved:
    """A policy resolved once into the exact ``setsockopt`` calls the hooks make."""

    options: tuple[_Option, ...]  # for accepted sockets
    connect_options: tuple[_Option, ...]  # for clients
    backlog: int | None
    connect_timeout: float | None  # the handshake bound of blocking connects with no timeout
    #: For a blocking client with no timeout: ``connect_options`` with ``TCP_USER_TIMEOUT`` at
    #: the handshake bound, and what to set back once connected (``()``: nothing); ``None``
    #: where the kernel cannot bound the handshake (then a socket timeout does).
    bounded_options: tuple[_Option, ...] | None = None
    set_back: _Option | tuple[()] = ()
    #: ``connect_options`` and ``bounded_options`` as one call each (see :func:`applier`);
    #: ``apply_bounded`` is ``None`` exactly when ``bounded_options`` is.
    apply_connect: _Apply = _noop
    apply_bounded: _Apply | None = None


def _bounded(
    connect_options: tuple[_Option, ...], connect_timeout: float | None
) -> tuple[tuple[_Option, ...] | None, _Option | tuple[()]]:
    """``connect_options`` bounding the handshake by ``TCP_USER_TIMEOUT``, and the set-back.

    Linux gives up on a SYN unanswered for ``TCP_USER_TIMEOUT`` -- exactly (measured in
    tests/netns/test_bounds.py), whatever the retransmission schedule -- and, as with a socket
    timeout, the connect fails with :class:`TimeoutError` (``ETIMEDOUT``). Lowering the option
    the policy sets anyway costs no system call before the connect and one after it (the
    policy's value back), where a socket timeout costs four.
    """
    level, name = _USER_TIMEOUT
    if connect_timeout is None or name is None:
        return None, ()
    bound_ms = max(1, round(connect_timeout * 1000))
    policy_ms = next((v for lv, opt, v in connect_options if (lv, opt) == (level, name)), 0)
    if 0 < policy_ms <= bound_ms:  # the policy's own user timeout ends the handshake first
        return connect_options, ()
    lowered = tuple(
        (lv, opt, bound_ms if (lv, opt) == (level, name) else v) for lv, opt, v in connect_options
    )
    if not policy_ms:
        lowered += ((level, name, bound_ms),)
    return lowered, (level, name, policy_ms)


def resolve(policy: Policy) -> _Resolved:
    """Turn *policy* into the exact calls the hooks make (done once per policy).

    Clients get the policy's options before the SYN leaves and no ``TCP_SYNCNT``: a blocking
    connect without a timeout of its own is bounded by ``connect_timeout`` through
    ``TCP_USER_TIMEOUT``, lowered to it for the handshake and set back to the policy's value
    once connected (Linux gives up on a SYN unanswered for that long, exact to the millisecond,
    measured); where the application set ``TCP_USER_TIMEOUT`` itself, or the platform has none,
    through a socket timeout on the handshake. An application's own timeout is never cut short.
    The policy's ``TCP_USER_TIMEOUT`` also bounds the SYN, see
    :meth:`sockwise.Policy.connect_bound`.

    Accepted sockets get ``TCP_USER_TIMEOUT`` from ``accepted_user_timeout``.
    """
    connect_options = tuple(policy.socket_options())
    accepted = tuple(policy.socket_options(accepted=True))
    bound = policy.connect_timeout or None
    bounded, set_back = _bounded(connect_options, bound)
    return _Resolved(
        accepted,
        connect_options,
        policy.backlog,
        bound,
        bounded,
        set_back,
        applier(connect_options),
        applier(bounded) if bounded is not None else None,
    )


_current: _Resolved | None = None


def _on_connect(sock: socket.socket, address: object) -> _Option | tuple[()] | None:
    """Set the policy's options; for a blocking connect, bound the handshake in the kernel.

    Returns what :mod:`sockwise._hooks` sets back after the connect when the handshake is
    bounded by ``TCP_USER_TIMEOUT`` (``()``: nothing), ``None`` when it is not bounded here.
    The hook layer does the common case itself (:class:`sockwise._hooks.ConnectPlan`: a TCP
    socket on which the application set no option) and calls this for the others.
    """
    current = _current
    if current is None or _type(sock) != _STREAM or _family(sock) not in TCP_FAMILIES:
        return None
    table = _hooks._explicit
    entry = table.get(id(sock)) if table else None  # the live set, read without a call
    explicit = entry[1] if entry is not None and entry[0]() is sock else None
    options = current.connect_options
    bounded = current.bounded_options
    apply_bounded = current.apply_bounded
    if bounded is not None and apply_bounded is not None and _gettimeout(sock) is None:
        if not explicit:
            apply_bounded(sock)
            return current.set_back
        if _USER_TIMEOUT not in explicit:  # the application's own user timeout is kept
            options = bounded
    elif not explicit:
        current.apply_connect(sock)
        return None
    for level, opt, value in options:
        if (level, opt) not in explicit:
            _setsockopt(sock, level, opt, value)
    return current.set_back if options is bounded else None


def _on_accept(conn: socket.socket) -> None:
    current = _current
    if current is None or not is_tcp(conn):
        return
    for level, opt, value in current.options:
        _setsockopt(conn, level, opt, value)


def _backlog() -> int | None:
    """The policy's backlog for ``listen()`` calls that name none, capped at somaxconn.

    The kernel caps it anyway; capping here means the truncation report never fires about
    sockwise's own number, only about one the application asked for.
    """
    current = _current
    if current is None or current.backlog is None:
        return None
    somaxconn = read_somaxconn()
    return min(current.backlog, somaxconn) if somaxconn else current.backlog


def read_somaxconn(path: Path = SOMAXCONN_PATH) -> int | None:
    """Return ``net.core.somaxconn``, or ``None`` when it cannot be read."""
    return read_int(str(path))


def _on_listen(sock: socket.socket, backlog: int) -> None:
    current = _current
    if current is None or not is_tcp(sock):
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
    try:
        warnings.warn(message, SomaxconnTruncationWarning, stacklevel=3)
    except Warning:
        # The application's filters made the report an error, so its listen() fails; callers
        # such as socket.create_server close their socket only on OSError, so close it here
        # rather than leak a listening socket.
        sock.close()
        raise


def install(policy: Policy) -> list[str]:
    """Install (or update) the socket hooks for *policy*; return what was patched."""
    global _current
    _current = resolve(policy)
    _hooks.set_track_explicit(True)
    _hooks.set_connect_plan(
        _hooks.ConnectPlan(
            apply=_current.apply_connect,
            apply_bounded=_current.apply_bounded,
            set_back=_current.set_back,
            with_explicit=_on_connect,
        )
    )
    _hooks.add_accept_hook(_on_accept)
    _hooks.add_listen_hook(_on_listen)
    _hooks.set_backlog_provider(_backlog)
    _hooks.set_connect_timeout(_current.connect_timeout)
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
    _hooks.set_connect_plan(None)
    _hooks.remove_accept_hook(_on_accept)
    _hooks.remove_listen_hook(_on_listen)
    _hooks.set_backlog_provider(None)
    _hooks.set_connect_timeout(None)
    _hooks.set_track_explicit(False)
    _current = None
    logger.log(logging.DEBUG, "sockwise: socket hooks removed")
