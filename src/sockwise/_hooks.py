"""One patch layer on :class:`socket.socket`, shared by :func:`sockwise.harden` and the guard.

Theory of operation: the standard library's ``socket.socket`` is a Python subclass of the C type
``_socket.socket``. Every TCP client in Python -- ``socket.create_connection``, urllib3, asyncio's
``sock_connect``, ``ssl.SSLSocket`` -- ends in ``socket.socket.connect`` (or ``connect_ex``), and
every server in ``socket.socket.accept`` and ``listen``. Replacing those four methods on the class
reaches all of them, including sockets created before the patch and code that imported ``socket``
long ago, with no per-socket wrapper.

Consumers register *hooks* here instead of patching themselves, so two consumers (the policy
applier and the guard's origin recorder) never wrap each other and the patch can be removed
exactly when the last hook goes:

* ``connect`` hooks run just before the real ``connect``/``connect_ex`` (options must be set
  before the SYN leaves), with the socket and the address it connects to;
* ``accept`` hooks run on each accepted socket, before ``accept()`` returns it;
* ``listen`` hooks run after ``listen()`` with the socket and the backlog actually requested;
  a *backlog provider* supplies the backlog when the caller passes none.

``setsockopt`` is wrapped too while a hook wants to know which options the application set
itself (:func:`explicit_options`), so the policy never overrides an explicit choice.

Hooks must be cheap; an exception from a hook is logged once and swallowed -- a hook never breaks
the application's connect. The one exception is a warning that the application's own filters
turned into an error (``-W error``): that is what the application asked for, so it propagates.
"""

from __future__ import annotations

import _socket
import contextlib
import logging
import os
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final

from sockwise._log import log_once

SocketHook = Callable[[socket.socket], None]
ConnectHook = Callable[[socket.socket, Any], None]
ListenHook = Callable[[socket.socket, int], None]
BacklogProvider = Callable[[], "int | None"]

_PATCHED: Final = ("connect", "connect_ex", "accept", "listen", "setsockopt")
_CLS: Final = socket.socket

_lock = threading.RLock()
_connect_hooks: tuple[ConnectHook, ...] = ()
_accept_hooks: tuple[SocketHook, ...] = ()
_listen_hooks: tuple[ListenHook, ...] = ()
_backlog_provider: BacklogProvider | None = None
_track_explicit = False
_connect_timeout: float | None = None
_saved: dict[str, Any] | None = None  # what socket.socket.__dict__ held before the patch
_fork_handler_registered = False

#: Options the application itself set, per live socket: ``{(level, optname), ...}``.
_explicit: weakref.WeakKeyDictionary[socket.socket, set[tuple[int, int]]] = (
    weakref.WeakKeyDictionary()
)

_real_connect: Final = _socket.socket.connect
_real_connect_ex: Final = _socket.socket.connect_ex
_real_listen: Final = _socket.socket.listen
_real_setsockopt: Final = _socket.socket.setsockopt
_orig_accept: Final = socket.socket.accept
_gettimeout: Final = _socket.socket.gettimeout
_settimeout: Final = _socket.socket.settimeout


def _run(hooks: tuple[SocketHook, ...], sock: socket.socket) -> None:
    for hook in hooks:
        try:
            hook(sock)
        except Exception as exc:  # a hook never breaks the application's call
            _hook_failed(hook, exc)


def _hook_failed(hook: object, exc: BaseException) -> None:
    log_once(
        f"hook-failed:{getattr(hook, '__qualname__', hook)!s}:{type(exc).__name__}",
        logging.WARNING,
        "sockwise: hook %r failed and was skipped: %r",
        hook,
        exc,
    )


def _run_connect(hooks: tuple[ConnectHook, ...], sock: socket.socket, address: Any) -> None:
    for hook in hooks:
        try:
            hook(sock, address)
        except Exception as exc:  # a hook never breaks the application's call
            _hook_failed(hook, exc)


def _connect(self: socket.socket, address: Any, /) -> None:
    hooks = _connect_hooks
    if hooks:
        _run_connect(hooks, self, address)
    bound = _connect_timeout
    if bound is None or _gettimeout(self) is not None:
        return _real_connect(self, address)
    # A blocking socket with no timeout: bound the handshake only, then restore "no timeout".
    _settimeout(self, bound)
    try:
        return _real_connect(self, address)
    finally:
        _settimeout(self, None)


def _connect_ex(self: socket.socket, address: Any, /) -> int:
    hooks = _connect_hooks
    if hooks:
        _run_connect(hooks, self, address)
    return _real_connect_ex(self, address)


def _accept(self: socket.socket) -> tuple[socket.socket, Any]:
    conn, addr = _orig_accept(self)
    hooks = _accept_hooks
    if hooks:
        _run(hooks, conn)
    return conn, addr


def _listen(self: socket.socket, *args: int) -> None:
    provider = _backlog_provider
    if not args and provider is not None:
        try:
            backlog = provider()
        except Exception as exc:  # Defensive: fall back to Python's own default
            _hook_failed(provider, exc)
            backlog = None
        if backlog is not None:
            args = (backlog,)
    _real_listen(self, *args)
    hooks = _listen_hooks
    if hooks:
        requested = args[0] if args else min(socket.SOMAXCONN, 128)
        for hook in hooks:
            try:
                hook(self, requested)
            except Warning:  # a warning the application's filters turned into an error
                raise
            except Exception as exc:
                _hook_failed(hook, exc)


def _setsockopt(self: socket.socket, level: int, optname: int, *value: Any) -> None:
    _real_setsockopt(self, level, optname, *value)
    if _track_explicit:
        with contextlib.suppress(TypeError):  # an object that cannot be weakly referenced
            _explicit.setdefault(self, set()).add((level, optname))


_REPLACEMENTS: Final[dict[str, Any]] = {
    "connect": _connect,
    "connect_ex": _connect_ex,
    "accept": _accept,
    "listen": _listen,
    "setsockopt": _setsockopt,
}


def explicit_options(sock: socket.socket) -> frozenset[tuple[int, int]]:
    """The ``(level, optname)`` pairs the application set on *sock* while tracking was on."""
    found = _explicit.get(sock)
    return frozenset(found) if found else frozenset()


def after_fork_in_child() -> None:
    """A fresh lock: another thread of the parent may have held it at fork time."""
    global _lock
    _lock = threading.RLock()


def _sync() -> None:
    """Install the patch when anything is registered, remove it when nothing is (under _lock)."""
    global _saved, _fork_handler_registered
    if not _fork_handler_registered and hasattr(os, "register_at_fork"):
        _fork_handler_registered = True
        os.register_at_fork(after_in_child=after_fork_in_child)
    wanted = bool(
        _connect_hooks
        or _accept_hooks
        or _listen_hooks
        or _backlog_provider
        or _track_explicit
        or _connect_timeout is not None
    )
    if wanted and _saved is None:
        _saved = {name: _CLS.__dict__.get(name) for name in _PATCHED}
        for name, func in _REPLACEMENTS.items():
            setattr(_CLS, name, func)
    elif not wanted and _saved is not None:
        for name, previous in _saved.items():
            if previous is None:
                delattr(_CLS, name)
            else:
                setattr(_CLS, name, previous)
        _saved = None
        _explicit.clear()


def is_patched() -> bool:
    """Whether ``socket.socket`` currently carries sockwise's patch."""
    return _saved is not None


def add_connect_hook(hook: ConnectHook) -> None:
    """Run *hook(sock, address)* before every ``connect``/``connect_ex`` of the process."""
    global _connect_hooks
    with _lock:
        if hook not in _connect_hooks:
            _connect_hooks = (*_connect_hooks, hook)
        _sync()


def remove_connect_hook(hook: ConnectHook) -> None:
    """Stop running *hook* on connect (no error if it was not registered)."""
    global _connect_hooks
    with _lock:
        _connect_hooks = tuple(h for h in _connect_hooks if h != hook)
        _sync()


def add_accept_hook(hook: SocketHook) -> None:
    """Run *hook(conn)* on every socket returned by ``accept()``."""
    global _accept_hooks
    with _lock:
        if hook not in _accept_hooks:
            _accept_hooks = (*_accept_hooks, hook)
        _sync()


def remove_accept_hook(hook: SocketHook) -> None:
    """Stop running *hook* on accept."""
    global _accept_hooks
    with _lock:
        _accept_hooks = tuple(h for h in _accept_hooks if h != hook)
        _sync()


def add_listen_hook(hook: ListenHook) -> None:
    """Run *hook(sock, backlog)* after every ``listen()``."""
    global _listen_hooks
    with _lock:
        if hook not in _listen_hooks:
            _listen_hooks = (*_listen_hooks, hook)
        _sync()


def remove_listen_hook(hook: ListenHook) -> None:
    """Stop running *hook* after listen."""
    global _listen_hooks
    with _lock:
        _listen_hooks = tuple(h for h in _listen_hooks if h != hook)
        _sync()


def set_backlog_provider(provider: BacklogProvider | None) -> None:
    """Supply the backlog of ``listen()`` calls that pass none (``None`` removes it)."""
    global _backlog_provider
    with _lock:
        _backlog_provider = provider
        _sync()


def set_track_explicit(enabled: bool) -> None:
    """Record which options the application sets itself (see :func:`explicit_options`)."""
    global _track_explicit
    with _lock:
        _track_explicit = enabled
        if not enabled:
            _explicit.clear()
        _sync()


def set_connect_timeout(seconds: float | None) -> None:
    """Bound blocking ``connect()`` calls on sockets with no timeout to *seconds* (None: off).

    Only the handshake is bounded: the socket gets its "no timeout" back once connected, so the
    application's later reads behave as before. Sockets with a timeout of their own, and
    non-blocking sockets (asyncio), are left alone.
    """
    global _connect_timeout
    with _lock:
        _connect_timeout = seconds if seconds else None
        _sync()
