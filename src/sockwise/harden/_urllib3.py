"""The urllib3 part of :func:`sockwise.harden`.

Theory of operation:

* **Default options.** With the standard library hooks on (``harden()``'s default), every
  urllib3 socket gets the policy at ``connect()`` like any other socket, and urllib3's own
  defaults are left exactly as they are (``HTTPConnection(...).socket_options`` stays
  urllib3's). With ``harden(stdlib=False)`` the hook does not run, so the policy goes into
  urllib3's defaults instead: urllib3 binds ``HTTPConnection.default_socket_options`` as the
  *default argument* of ``HTTPConnection.__init__`` when it is imported, so assigning the class
  attribute later changes nothing; the function's ``__kwdefaults__`` does. The policy's options
  are merged into the default ``socket_options`` of ``HTTPConnection`` and ``HTTPSConnection``
  (an explicit ``socket_options=`` argument still wins, since it replaces the default), and
  restored on :func:`sockwise.unharden`.
* **"No options" is honoured.** ``socket_options=None`` or ``[]`` is urllib3's documented way to
  switch every option off. The standard library hook of :func:`sockwise.harden` would still add
  the policy at ``connect()``, so urllib3's ``_set_socket_options`` (called on the new socket
  just before ``connect``) is wrapped: for such a connection it re-sets each option the policy
  would touch to the value the socket already has. That changes nothing in the kernel, but the
  hook sees the options as the application's own choice and leaves them alone.
* **Proxies.** urllib3 gives connections through a proxy ``socket_options=[]`` itself (to keep
  Nagle's algorithm on); that is not the application's choice, so those connections get the
  policy like every other socket of the process (a documented difference, "Nagle on
  proxies"; an explicit ``socket_options=[]``/``None`` is honoured). To tell the two
  apart, ``HTTPConnectionPool.__init__`` is wrapped to replace urllib3's own empty list for a
  proxied pool by a marked empty list.
"""

from __future__ import annotations

import contextlib
import functools
import socket
from types import ModuleType
from typing import Any

from sockwise import _hooks
from sockwise.policy import Policy

_saved: list[tuple[Any, Any]] = []  # (function, original socket_options default)
_saved_attrs: list[tuple[Any, str, Any]] = []  # (owner, attribute name, original value)
_keep_pairs: frozenset[tuple[int, int]] = frozenset()

#: ``TCP_SYNCNT``, which the hook adds on Linux to bound connect().
_TCP_SYNCNT = getattr(socket, "TCP_SYNCNT", 7)


class _ProxyDefault(list):  # type: ignore[type-arg]
    """urllib3's own empty ``socket_options`` for proxied connections (not the caller's)."""

    __slots__ = ()


def merged_options(
    defaults: list[tuple[int, int, int]] | None, policy: Policy
) -> list[tuple[int, int, int]]:
    """*defaults* with the policy's options added; the policy wins for the same option."""
    ours = policy.socket_options()
    taken = {(level, opt) for level, opt, _ in ours}
    kept = [t for t in (defaults or []) if (t[0], t[1]) not in taken]
    return kept + ours


def wants_no_options(options: object) -> bool:
    """Whether *options* is the caller's "no socket options" (``None`` or an empty list)."""
    if options is None:
        return True
    return type(options) in (list, tuple) and not options


def keep_kernel_defaults(sock: socket.socket, pairs: frozenset[tuple[int, int]]) -> None:
    """Re-set each option in *pairs* to its current value, marking it as the application's."""
    for level, opt in pairs:
        with contextlib.suppress(OSError):
            sock.setsockopt(level, opt, sock.getsockopt(level, opt))


def _wrap_set_socket_options(original: Any) -> Any:
    @functools.wraps(original)
    def _set_socket_options(sock: socket.socket, options: Any) -> None:
        if wants_no_options(options) and _hooks.is_patched():
            keep_kernel_defaults(sock, _keep_pairs)
        original(sock, options)

    _set_socket_options.__sockwise_original__ = original  # type: ignore[attr-defined]
    return _set_socket_options


def _wrap_pool_init(original: Any) -> Any:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        conn_kw = getattr(self, "conn_kw", None)
        if (
            getattr(self, "proxy", None) is not None
            and "socket_options" not in kwargs
            and isinstance(conn_kw, dict)
            and conn_kw.get("socket_options") == []
        ):
            conn_kw["socket_options"] = _ProxyDefault()

    __init__.__sockwise_original__ = original  # type: ignore[attr-defined]
    return __init__


def _patch_attr(owner: Any, name: str, wrap: Any) -> bool:
    current = getattr(owner, name, None)
    if current is None:
        return False  # Defensive: an urllib3 without this name
    if getattr(current, "__sockwise_original__", None) is None:
        _saved_attrs.append((owner, name, current))
        setattr(owner, name, wrap(current))
    return True


def install(module: ModuleType, policy: Policy) -> list[str]:
    """Patch urllib3's connection classes (the ``urllib3`` package, once imported)."""
    global _keep_pairs
    from urllib3 import connection, connectionpool
    from urllib3.util import connection as util_connection

    changed: list[str] = []
    if _stdlib_hooks_on():
        _restore_kwdefaults()
        changed.append("urllib3 connections (by the socket hooks)")
    for cls in () if changed else (connection.HTTPConnection, connection.HTTPSConnection):
        init = cls.__init__
        kwdefaults = init.__kwdefaults__
        if not kwdefaults or "socket_options" not in kwdefaults:
            continue  # Defensive: an urllib3 whose signature we do not know
        if not any(func is init for func, _ in _saved):
            _saved.append((init, kwdefaults["socket_options"]))
        original = next(orig for func, orig in _saved if func is init)
        kwdefaults["socket_options"] = merged_options(original, policy)
        changed.append(f"urllib3.connection.{cls.__name__} socket_options")
    _keep_pairs = frozenset(
        {(level, opt) for level, opt, _ in policy.socket_options()}
        | {(socket.IPPROTO_TCP, _TCP_SYNCNT)}
    )
    if _patch_attr(util_connection, "_set_socket_options", _wrap_set_socket_options):
        changed.append("urllib3.util.connection._set_socket_options (socket_options=[]/None)")
    _patch_attr(connectionpool.HTTPConnectionPool, "__init__", _wrap_pool_init)
    return changed


def _stdlib_hooks_on() -> bool:
    """Whether :func:`sockwise.harden`'s standard library hooks apply a policy right now."""
    from sockwise.harden import _stdlib

    return getattr(_stdlib, "_current", None) is not None


def _restore_kwdefaults() -> None:
    while _saved:
        init, original = _saved.pop()
        init.__kwdefaults__["socket_options"] = original


def uninstall() -> None:
    """Restore urllib3's default ``socket_options`` and the wrapped functions."""
    global _keep_pairs
    _restore_kwdefaults()
    while _saved_attrs:
        owner, name, value = _saved_attrs.pop()
        setattr(owner, name, value)
    _keep_pairs = frozenset()
