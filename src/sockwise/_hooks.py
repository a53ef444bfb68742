"""One patch layer on the socket classes, shared by :func:`sockwise.harden` and the guard.

Theory of operation: the standard library's ``socket.socket`` is a Python subclass of the C type
``_socket.socket``. Every TCP client in Python -- ``socket.create_connection``, urllib3, asyncio's
``sock_connect``, ``ssl.SSLSocket`` -- ends in ``socket.socket.connect`` (or ``connect_ex``), and
every server in ``socket.socket.accept`` and ``listen``. Replacing those methods on the class
reaches all of them, including sockets created before the patch and code that imported ``socket``
long ago, with no per-socket wrapper.

Consumers register *hooks* here instead of patching themselves, so two consumers (the policy
applier and the guard's origin recorder) never wrap each other and the patch can be removed
exactly when the last hook goes:

* ``connect`` hooks run just before the real ``connect``/``connect_ex`` (options must be set
  before the SYN leaves), with the socket and the address it connects to;
* a blocking ``connect()`` on a socket with no timeout is bounded (:func:`set_connect_timeout`):
  by the kernel when a connect hook lowered ``TCP_USER_TIMEOUT`` to the bound for the handshake
  and says so by returning what to set back (one system call after the connect), else by a
  socket timeout on the handshake (four: non-blocking mode, ``poll``, ``SO_ERROR``, back);
* ``accept`` hooks run on each accepted socket, before ``accept()`` returns it;
* ``listen`` hooks run after ``listen()`` with the socket and the backlog actually requested;
  a *backlog provider* supplies the backlog when the caller passes none.

Hooks always receive a ``_socket.socket`` (the C object, whose ``setsockopt``/``family`` can be
called directly), whatever class the application's socket is.

``setsockopt`` is wrapped too while a hook wants to know which options the application set
itself (:func:`explicit_options`), so the policy never overrides an explicit choice.

**Chain, don't replace.** Each replacement calls whatever the class held before it (another
library's patch -- pytest-socket's host restrictions, a tracing agent -- or the C method), so an
earlier patch keeps working. When the last hook goes, a replacement that is still the class's
attribute is taken out and the previous value put back; one that a later patch has wrapped in the
meantime is left where it is (deleting it would cut the later patch's chain) and, with no hooks
registered, only passes calls through.

**Put back when taken out.** A library that "restores the original" -- pytest-socket sets
``socket.socket.connect`` back to the method it saved at import after every test; ``monkeypatch``
undo and some agents do the same -- drops the replacement while the hooks are still registered.
:func:`repair` notices (the class's entry is again what ours wrapped, the base class's method, or
gone) and applies the patch again, warning once per method; :func:`is_patched`, the guard's tick,
the pytest plugin (before each test) and ``sockwise.is_hardened()`` call it.

**Other socket classes.** The same patch covers every copy of the standard library class (eventlet
imports a second copy of the :mod:`socket` module for its green sockets, which wrap instances of
it), gevent's socket class (not a subclass of ``_socket.socket``: it wraps one in ``_sock``),
gevent's ``StreamServer.do_read`` (it accepts below the socket class), and uvloop's ``Loop``
(libuv connects and accepts in C: see :mod:`sockwise._uvloop`). Each is patched when it is
imported, before or after the hooks were registered.

Hooks must be cheap; an exception from a hook is logged once and swallowed -- a hook never breaks
the application's connect. The one exception is a warning that the application's own filters
turned into an error (``-W error``): that is what the application asked for, so it propagates.
"""

from __future__ import annotations

import _socket
import contextlib
import logging
import socket
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from types import FrameType, ModuleType
from typing import Any, Final, NamedTuple

from sockwise import _green, _imports, _uvloop
from sockwise._forksafe import renew_after_fork
from sockwise._log import log_once
from sockwise._net.sockets import TCP_FAMILIES

SocketHook = Callable[[socket.socket], None]
#: A connect hook returns ``None``, or -- when it bounded a blocking connect's handshake in the
#: kernel -- :data:`BOUNDED` or the ``(level, optname, value)`` to set back once connected.
ConnectHook = Callable[[socket.socket, Any], "tuple[int, int, int] | tuple[()] | None"]
ListenHook = Callable[[socket.socket, int], None]
BacklogProvider = Callable[[], "int | None"]
_Factory = Callable[[Any], Any]


class ConnectPlan(NamedTuple):
    """A policy's client options, applied by the ``connect`` replacement itself.

    Set by :func:`sockwise.harden` (:func:`set_connect_plan`). The replacement checks the socket
    (TCP? options the application set itself?) and makes one call -- no hook call, no loop:
    this runs before every connect of the process.

    Attributes:
        apply: Sets the options (unrolled ``setsockopt`` calls), for a connect not bounded here.
        apply_bounded: For a blocking connect with no timeout: the options with
            ``TCP_USER_TIMEOUT`` at the handshake bound (``None``: not bounded in the kernel).
        set_back: What to set back once a bounded connect returns (``()``: nothing).
        with_explicit: The slow path, for a socket on which the application set options itself:
            a connect hook (it returns what to set back, or ``None``).

    """

    apply: Callable[[Any], None]
    apply_bounded: Callable[[Any], None] | None
    set_back: tuple[int, int, int] | tuple[()]
    with_explicit: ConnectHook


class ConnectRecorder(NamedTuple):
    """Where the ``connect`` replacement records the line that opened a socket (the guard).

    Attributes:
        sites: ``(id(code), f_lasti)`` of a call site known to be the application's own line
            -> its token. The recorder keeps each code object alive while its id is a key.
        queue: Gets ``(weak reference to the socket, token, address, "connect", None)`` for a
            connect made from a known site (one append: no call, no lock).
        slow: ``slow(sock, address, frame)`` for any other connect (*frame*: the caller of
            ``connect``, ``None`` when it was called from C).

    """

    sites: Mapping[tuple[int, int], Any]
    queue: deque[Any]
    slow: Callable[[Any, Any, FrameType | None], None]


_PATCHED: Final = ("connect", "connect_ex", "accept", "listen", "setsockopt")
#: Modules whose arrival brings new classes to patch.
_WATCHED: Final = (
    "gevent.socket",
    "gevent.server",
    "gevent.events",
    "eventlet",
    "eventlet.greenio.base",
    "uvloop",
)

_lock = threading.RLock()
_connect_hooks: tuple[ConnectHook, ...] = ()
_accept_hooks: tuple[SocketHook, ...] = ()
_listen_hooks: tuple[ListenHook, ...] = ()
_backlog_provider: BacklogProvider | None = None
_track_explicit = False
_connect_timeout: float | None = None
_plan: ConnectPlan | None = None
_recorder: ConnectRecorder | None = None
_active = False  # the patch is wanted (something is registered) and installed

#: Options the application itself set, per socket: ``{id(sock): (weak reference, {(level,
#: optname), ...})}``. A plain dict rather than a ``WeakKeyDictionary``: no Python callback runs
#: when a socket dies and a lookup is one C call (the connect hook reads it on every connect). An
#: entry counts only while its reference still gives that socket back; dead ones are swept when
#: the table has doubled since the last sweep (under ``_explicit_lock``, like every insertion).
_explicit: dict[int, tuple[weakref.ref[Any], set[tuple[int, int]]]] = {}
_EXPLICIT_SWEEP_MIN: Final = 1024
_explicit_sweep_at = _EXPLICIT_SWEEP_MIN
_explicit_lock = threading.Lock()
_weakref: Final = weakref.ref
#: Non-blocking sockets whose ``connect_ex`` already ran the hooks (eventlet and select loops
#: call it again until it reports ``EISCONN``; the hooks run once per socket).
_connecting: weakref.WeakSet[socket.socket] = weakref.WeakSet()

_gettimeout: Final = _socket.socket.gettimeout
_type: Final = _socket.socket.type.__get__  # the C getters: an int, no enum conversion
_family: Final = _socket.socket.family.__get__
_STREAM: Final = int(socket.SOCK_STREAM)
_getframe: Final = sys._getframe
_settimeout: Final = _socket.socket.settimeout
_setsockopt: Final = _socket.socket.setsockopt
#: Returned by a connect hook that bounded a blocking connect's handshake in the kernel (it set
#: ``TCP_USER_TIMEOUT`` to the bound) with nothing to set back afterwards.
BOUNDED: Final[tuple[()]] = ()
_MISSING: Final = object()


class _Patch:
    """One attribute of one class replaced by ours.

    ``own`` is what the class itself held (its ``__dict__`` entry, or ``_MISSING``), ``prev``
    what the class answered (inherited or not): the original that ``func`` calls.
    """

    __slots__ = ("cls", "func", "name", "own", "prev")

    def __init__(self, cls: type, name: str, own: object, prev: object, func: object) -> None:
        self.cls = cls
        self.name = name
        self.own = own
        self.prev = prev
        self.func = func

    def lost(self) -> str | None:
        """How another library took ours out (``None``: on top, or wrapped by a later patch).

        Putting back the original ours wrapped -- the class's own entry, what it answered, or
        the base class's method (pytest-socket sets ``socket.socket.connect`` to the C method it
        saved at import) -- or deleting the attribute, leaves no chain to ours: the hook is gone.
        Anything else is a later patch, which calls ours or deliberately does not.
        """
        current = self.cls.__dict__.get(self.name, _MISSING)
        if current is self.func:
            return None
        if current is _MISSING:
            return "removed"
        if current is self.own or current is self.prev:
            return "reset to the original"
        if current is _inherited(self.cls, self.name):
            return "reset to the original"
        return None


def _inherited(cls: type, name: str) -> object:
    """What *cls* would answer for *name* without an entry of its own."""
    for base in cls.__mro__[1:]:
        if name in base.__dict__:
            return base.__dict__[name]
    return _MISSING


_installed: dict[tuple[type, str], _Patch] = {}


# -- running the hooks -------------------------------------------------------------------------


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


def _run_connect(
    hooks: tuple[ConnectHook, ...], sock: socket.socket, address: Any, depth: int = 3
) -> tuple[int, int, int] | tuple[()] | None:
    """Apply the plan, record the caller and run the hooks; return how the handshake is bounded.

    ``None``: not bounded here; else what to set back once connected (``()``: nothing). The
    caller of ``connect`` is *depth* frames above this function. The ``connect`` replacement
    does the same inline (see :func:`_native_connect`); this serves ``connect_ex`` and the
    green sockets.
    """
    bounded = None
    plan = _plan
    if plan is not None and _type(sock) == _STREAM and _family(sock) in TCP_FAMILIES:
        bounded = _apply_plan(plan, sock, address)
    recorder = _recorder
    if recorder is not None:
        try:
            frame: FrameType | None = _getframe(depth)
        except ValueError:  # called from C with no Python frame above
            frame = None
        _record(recorder, sock, address, frame)
    for hook in hooks:
        try:
            undo = hook(sock, address)
        except Exception as exc:  # a hook never breaks the application's call
            _hook_failed(hook, exc)
            continue
        if undo is not None:
            bounded = undo
    return bounded


def _apply_plan(
    plan: ConnectPlan, sock: socket.socket, address: Any
) -> tuple[int, int, int] | tuple[()] | None:
    """Set the plan's options on a TCP *sock*; return what to set back (``None``: unbounded)."""
    try:
        entry = _explicit.get(id(sock)) if _explicit else None
        if entry is not None and entry[0]() is sock:
            return plan.with_explicit(sock, address)
        if plan.apply_bounded is not None and _gettimeout(sock) is None:
            plan.apply_bounded(sock)
            return plan.set_back
        plan.apply(sock)
    except Exception as exc:  # a hook never breaks the application's call
        _hook_failed(plan.with_explicit, exc)
    return None


def _record(
    recorder: ConnectRecorder, sock: socket.socket, address: Any, frame: FrameType | None
) -> None:
    try:
        site = None if frame is None else recorder.sites.get((id(frame.f_code), frame.f_lasti))
        if site is None:
            recorder.slow(sock, address, frame)
        else:
            recorder.queue.append((_weakref(sock), site, address, "connect", None))
    except Exception as exc:  # a hook never breaks the application's call
        _hook_failed(recorder.slow, exc)


def _run_connect_unbounded(
    hooks: tuple[ConnectHook, ...], sock: socket.socket, address: Any
) -> None:
    """Run the connect hooks for a connect not bounded here (``connect_ex``, green sockets).

    A handshake bound a hook set (meant for ``connect()``) is taken back at once: these calls
    keep the socket's own behaviour.
    """
    undo = _run_connect(hooks, sock, address, depth=3)
    if undo:
        _set_back(sock, undo)


def _set_back(sock: socket.socket, undo: tuple[int, int, int]) -> None:
    """Put back the option a hook lowered to bound the handshake (the socket may be dead)."""
    # Not contextlib.suppress: this runs after every bounded connect, and a context manager
    # costs two Python calls.
    try:
        _setsockopt(sock, *undo)
    except OSError:  # closed meanwhile: nothing to put back
        return


def _run_listen(sock: socket.socket, args: tuple[int, ...]) -> None:
    hooks = _listen_hooks
    if hooks:
        requested = args[0] if args else min(socket.SOMAXCONN, 128)
        for hook in hooks:
            try:
                hook(sock, requested)
            except Warning:  # a warning the application's filters turned into an error
                raise
            except Exception as exc:
                _hook_failed(hook, exc)


def _listen_args(args: tuple[int, ...]) -> tuple[int, ...]:
    provider = _backlog_provider
    if not args and provider is not None:
        try:
            backlog = provider()
        except Exception as exc:  # Defensive: fall back to Python's own default
            _hook_failed(provider, exc)
            backlog = None
        if backlog is not None:
            return (backlog,)
    return args


def _record_explicit(raw: Any, level: int, optname: int) -> None:
    global _explicit_sweep_at
    entry = _explicit.get(id(raw))
    if entry is None or entry[0]() is not raw:
        try:
            ref = _weakref(raw)
        except TypeError:  # an object that cannot be weakly referenced (a bare _socket.socket)
            return
        with _explicit_lock:
            entry = _explicit.get(id(raw))
            if entry is None or entry[0]() is not raw:
                entry = _explicit[id(raw)] = (ref, set())
                if len(_explicit) > _explicit_sweep_at:
                    for key, (old, _) in list(_explicit.items()):
                        if old() is None:
                            del _explicit[key]
                    _explicit_sweep_at = max(_EXPLICIT_SWEEP_MIN, 2 * len(_explicit))
    entry[1].add((level, optname))


def explicit_set(raw: Any) -> set[tuple[int, int]] | None:
    """The options the application set on *raw* (the live set, not a copy), or ``None``."""
    entry = _explicit.get(id(raw))
    return entry[1] if entry is not None and entry[0]() is raw else None


def run_accept_hooks(sock: socket.socket) -> None:
    """Run the accept hooks on *sock*, accepted by code that bypasses ``accept()`` (uvloop)."""
    hooks = _accept_hooks
    if hooks:
        _run(hooks, sock)


def has_accept_hooks() -> bool:
    """Whether any accept hook is registered (callers skip their own work when not)."""
    return bool(_accept_hooks)


# -- replacements for the standard library class (and its copies) -------------------------------
# Each factory gets ``prev``, what the class answered before the patch (a C method, or another
# library's patch), and returns the replacement that runs the hooks and then calls it.


def _native_connect(prev: Any) -> Any:
    # The hot path of every client in the process: _run_connect, _apply_plan and _record are
    # inlined here (three Python calls, ~0.5 us per connect in situ, measured), and so is
    # _set_back. Keep it in step with them.
    def connect(self: socket.socket, address: Any, /) -> None:
        bounded = None
        plan = _plan
        if plan is not None and _type(self) == _STREAM and _family(self) in TCP_FAMILIES:
            try:
                entry = _explicit.get(id(self)) if _explicit else None
                if entry is not None and entry[0]() is self:
                    bounded = plan.with_explicit(self, address)
                elif plan.apply_bounded is not None and _gettimeout(self) is None:
                    plan.apply_bounded(self)
                    bounded = plan.set_back
                else:
                    plan.apply(self)
            except Exception as exc:  # a hook never breaks the application's call
                _hook_failed(plan.with_explicit, exc)
        recorder = _recorder
        if recorder is not None:
            try:
                frame: FrameType | None = _getframe(1)
            except ValueError:  # called from C with no Python frame above
                frame = None
            try:
                site = (
                    None if frame is None else recorder.sites.get((id(frame.f_code), frame.f_lasti))
                )
                if site is None:
                    recorder.slow(self, address, frame)
                else:
                    recorder.queue.append((_weakref(self), site, address, "connect", None))
            except Exception as exc:  # a hook never breaks the application's call
                _hook_failed(recorder.slow, exc)
        hooks = _connect_hooks
        for hook in hooks:
            try:
                undo = hook(self, address)
            except Exception as exc:  # a hook never breaks the application's call
                _hook_failed(hook, exc)
                continue
            if undo is not None:
                bounded = undo
        if bounded is not None:
            # The handshake is bounded in the kernel (TCP_USER_TIMEOUT): one system call to
            # set the option back, instead of the four of a socket timeout (below).
            if not bounded:
                return prev(self, address)  # type: ignore[no-any-return]
            try:
                return prev(self, address)  # type: ignore[no-any-return]
            finally:
                # Not contextlib.suppress, which costs two Python calls.
                try:  # noqa: SIM105
                    _setsockopt(self, *bounded)
                except OSError:  # closed meanwhile: nothing to put back
                    pass
        bound = _connect_timeout
        if bound is None or _gettimeout(self) is not None:
            return prev(self, address)  # type: ignore[no-any-return]
        # A blocking socket with no timeout: bound the handshake only, then restore "no timeout"
        # (a socket timeout: non-blocking connect, poll, SO_ERROR, blocking again).
        _settimeout(self, bound)
        try:
            return prev(self, address)  # type: ignore[no-any-return]
        finally:
            _settimeout(self, None)

    return connect


def _native_connect_ex(prev: Any) -> Any:
    def connect_ex(self: socket.socket, address: Any, /) -> int:
        if _plan is not None or _recorder is not None or _connect_hooks:
            if _gettimeout(self) != 0.0:
                _run_connect_unbounded(_connect_hooks, self, address)
            elif self not in _connecting:  # a non-blocking loop: the first call only
                with contextlib.suppress(TypeError):
                    _connecting.add(self)
                _run_connect_unbounded(_connect_hooks, self, address)
        return prev(self, address)  # type: ignore[no-any-return]

    return connect_ex


def _native_accept(prev: Any) -> Any:
    def accept(self: socket.socket) -> tuple[socket.socket, Any]:
        conn, addr = prev(self)
        hooks = _accept_hooks
        if hooks:
            _run(hooks, conn)
        return conn, addr

    return accept


def _native_listen(prev: Any) -> Any:
    def listen(self: socket.socket, *args: int) -> None:
        args = _listen_args(args)
        prev(self, *args)
        _run_listen(self, args)

    return listen


def _native_setsockopt(prev: Any) -> Any:
    def setsockopt(self: socket.socket, level: int, optname: int, *value: Any) -> None:
        prev(self, level, optname, *value)
        if _track_explicit:
            _record_explicit(self, level, optname)

    return setsockopt


_NATIVE: Final[dict[str, _Factory]] = {
    "connect": _native_connect,
    "connect_ex": _native_connect_ex,
    "accept": _native_accept,
    "listen": _native_listen,
    "setsockopt": _native_setsockopt,
}


# -- replacements for gevent's socket class: the C socket is ``self._sock`` ---------------------


def _green_connect(prev: Any) -> Any:
    def connect(self: Any, address: Any, /) -> None:
        if _plan is not None or _recorder is not None or _connect_hooks:
            _run_connect_unbounded(_connect_hooks, self._sock, address)
        bound = _connect_timeout
        if bound is None or self.gettimeout() is not None:
            return prev(self, address)  # type: ignore[no-any-return]
        self.settimeout(bound)
        try:
            return prev(self, address)  # type: ignore[no-any-return]
        finally:
            self.settimeout(None)

    return connect


def _green_connect_ex(prev: Any) -> Any:
    def connect_ex(self: Any, address: Any, /) -> int:
        if _plan is not None or _recorder is not None or _connect_hooks:
            _run_connect_unbounded(_connect_hooks, self._sock, address)
        return prev(self, address)  # type: ignore[no-any-return]

    return connect_ex


def _green_accept(prev: Any) -> Any:
    def accept(self: Any) -> tuple[Any, Any]:
        conn, addr = prev(self)
        hooks = _accept_hooks
        if hooks:
            _run(hooks, conn._sock)
        return conn, addr

    return accept


def _green_listen(prev: Any) -> Any:
    def listen(self: Any, *args: int) -> None:
        args = _listen_args(args)
        prev(self, *args)
        _run_listen(self._sock, args)

    return listen


def _green_setsockopt(prev: Any) -> Any:
    def setsockopt(self: Any, level: int, optname: int, *value: Any) -> None:
        prev(self, level, optname, *value)
        if _track_explicit:
            _record_explicit(self._sock, level, optname)

    return setsockopt


_GREEN: Final[dict[str, _Factory]] = {
    "connect": _green_connect,
    "connect_ex": _green_connect_ex,
    "accept": _green_accept,
    "listen": _green_listen,
    "setsockopt": _green_setsockopt,
}


def _server_do_read(prev: Any) -> Any:
    """For ``gevent.server.StreamServer.do_read``, which accepts below the socket class."""

    def do_read(self: Any) -> Any:
        result = prev(self)
        hooks = _accept_hooks
        if hooks and result is not None:
            raw = getattr(result[0], "_sock", result[0])
            if isinstance(raw, _socket.socket):
                _run(hooks, raw)  # type: ignore[arg-type]
        return result

    return do_read


# -- which classes, and installing/removing -----------------------------------------------------


def native_classes() -> list[type]:
    """Every copy of the standard library's ``socket.socket`` class in this process.

    Normally one; eventlet imports a second copy of the :mod:`socket` module for the sockets its
    green sockets wrap, and gevent replaces the module's ``socket`` attribute, so the class is
    found as a subclass of the C type rather than as ``socket.socket``.
    """
    return [
        cls
        for cls in _socket.socket.__subclasses__()
        if cls.__module__ == "socket" and cls.__qualname__ == "socket"
    ]


def _targets() -> Iterator[tuple[type, str, _Factory]]:
    for cls in native_classes():
        for name, factory in _NATIVE.items():
            yield cls, name, factory
    gsocket = sys.modules.get("gevent.socket")
    green = getattr(gsocket, "socket", None)
    if isinstance(green, type) and not issubclass(green, _socket.socket):
        for name, factory in _GREEN.items():
            yield green, name, factory
    gserver = sys.modules.get("gevent.server")
    stream_server = getattr(gserver, "StreamServer", None)
    if isinstance(stream_server, type):
        yield stream_server, "do_read", _server_do_read
    loop = getattr(sys.modules.get("uvloop"), "Loop", None)
    if isinstance(loop, type):
        yield loop, "create_connection", _uvloop.wrap_create_connection
        yield loop, "create_server", _uvloop.wrap_create_server


def _install() -> None:
    """Patch every target not patched yet, or whose patch another library took out (under _lock)."""
    for cls, name, factory in _targets():
        patch = _installed.get((cls, name))
        if patch is None:
            _apply(cls, name, factory)
            continue
        how = patch.lost()
        if how is not None:  # else ours is on top, or a later patch wraps it: it runs as it is
            _apply(cls, name, factory)
            _warn_lost(cls, name, how)


def _apply(cls: type, name: str, factory: _Factory) -> None:
    current = cls.__dict__.get(name, _MISSING)
    prev = getattr(cls, name)
    func = factory(prev)
    func.__wrapped__ = prev
    func.__qualname__ = f"{cls.__qualname__}.{name}"
    setattr(cls, name, func)
    _installed[(cls, name)] = _Patch(cls, name, current, prev, func)


def _warn_lost(cls: type, name: str, how: str) -> None:
    where = f"{cls.__module__}.{cls.__qualname__}.{name}"
    log_once(
        f"hooks-lost:{where}",
        logging.WARNING,
        "sockwise: %s was %s by another library; sockwise re-applied its hook",
        where,
        how,
    )


def repair() -> bool:
    """Re-apply the patch where another library took it out; return whether it is in force.

    pytest-socket (after every test), ``monkeypatch`` undo and some agents set
    ``socket.socket.connect`` back to the original they saved, silently dropping ours. Called by
    the guard's tick, the pytest plugin before each test, :func:`is_patched` and
    ``sockwise.is_hardened()``. Cheap when nothing was lost (one ``__dict__`` look-up per
    patched method, no lock); never raises.
    """
    if not _active:
        return False
    try:
        if not any(patch.lost() for patch in list(_installed.values())):
            return True
        with _lock:
            if _active:
                _install()
        return _active
    except Exception as exc:  # Defensive: e.g. a class that refuses the attribute
        log_once(
            f"hooks-repair:{type(exc).__name__}",
            logging.ERROR,
            "sockwise: could not re-apply the socket hooks: %r",
            exc,
        )
        return False


def _uninstall() -> None:
    """Take out every replacement still on top; leave the wrapped ones passing through."""
    for key, patch in list(_installed.items()):
        if patch.cls.__dict__.get(patch.name, _MISSING) is not patch.func:
            if patch.lost() is not None:
                del _installed[key]  # someone already put the original back: nothing of ours
            else:
                log_once(
                    f"hooks-buried:{patch.cls.__qualname__}.{patch.name}",
                    logging.DEBUG,
                    "sockwise: %s.%s was wrapped by a later patch; ours stays, passing through",
                    patch.cls.__qualname__,
                    patch.name,
                )
            continue
        if patch.own is _MISSING:
            delattr(patch.cls, patch.name)
        else:
            setattr(patch.cls, patch.name, patch.own)
        del _installed[key]


def _on_import(module: ModuleType) -> None:
    with _lock:
        if module.__name__ == "gevent.events":
            _green.watch_gevent(module)
        elif module.__name__ == "eventlet":
            _green.watch_eventlet(module)
        if _active:
            _install()


def _forget_explicit() -> None:
    global _explicit_sweep_at
    with _explicit_lock:
        _explicit.clear()
        _explicit_sweep_at = _EXPLICIT_SWEEP_MIN


def explicit_options(sock: socket.socket) -> frozenset[tuple[int, int]]:
    """The ``(level, optname)`` pairs the application set on *sock* while tracking was on."""
    found = explicit_set(sock)
    return frozenset(found) if found else frozenset()


renew_after_fork(globals(), "_lock", threading.RLock)
renew_after_fork(globals(), "_explicit_lock", threading.Lock)

_uvloop.bindings.active = lambda: _active
_uvloop.bindings.accept = run_accept_hooks
_uvloop.bindings.listen = _run_listen


def _sync() -> None:
    """Install the patch when anything is registered, remove it when nothing is (under _lock)."""
    global _active
    wanted = bool(
        _connect_hooks
        or _plan is not None
        or _recorder is not None
        or _accept_hooks
        or _listen_hooks
        or _backlog_provider
        or _track_explicit
        or _connect_timeout is not None
    )
    if wanted and not _active:
        _active = True
        _install()
        for name in _WATCHED:
            _imports.when_imported(name, _on_import)
    elif not wanted and _active:
        _active = False
        for name in _WATCHED:
            _imports.cancel(name, _on_import)
        _uninstall()
        _forget_explicit()


def is_patched() -> bool:
    """Whether the socket classes currently carry sockwise's patch (re-applied if taken out)."""
    return repair()


def _change(name: str, hook: object, add: bool) -> None:
    """Add *hook* to, or take it out of, the hook tuple held by the global *name*; then sync.

    The tuples are replaced, never mutated: the replacements read them without the lock.
    """
    with _lock:
        hooks: tuple[object, ...] = globals()[name]
        if not add:
            globals()[name] = tuple(h for h in hooks if h != hook)
        elif hook not in hooks:
            globals()[name] = (*hooks, hook)
        _sync()


def add_connect_hook(hook: ConnectHook) -> None:
    """Run *hook(sock, address)* before every ``connect``/``connect_ex`` of the process."""
    _change("_connect_hooks", hook, add=True)


def remove_connect_hook(hook: ConnectHook) -> None:
    """Stop running *hook* on connect (no error if it was not registered)."""
    _change("_connect_hooks", hook, add=False)


def add_accept_hook(hook: SocketHook) -> None:
    """Run *hook(conn)* on every socket returned by ``accept()``."""
    _change("_accept_hooks", hook, add=True)


def remove_accept_hook(hook: SocketHook) -> None:
    """Stop running *hook* on accept."""
    _change("_accept_hooks", hook, add=False)


def add_listen_hook(hook: ListenHook) -> None:
    """Run *hook(sock, backlog)* after every ``listen()``."""
    _change("_listen_hooks", hook, add=True)


def remove_listen_hook(hook: ListenHook) -> None:
    """Stop running *hook* after listen."""
    _change("_listen_hooks", hook, add=False)


def set_connect_plan(plan: ConnectPlan | None) -> None:
    """Apply *plan*'s options before every TCP client's connect (``None`` removes it)."""
    global _plan
    with _lock:
        _plan = plan
        _sync()


def set_connect_recorder(recorder: ConnectRecorder | None) -> None:
    """Record the caller of every connect through *recorder* (``None`` removes it)."""
    global _recorder
    with _lock:
        _recorder = recorder
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
            _forget_explicit()
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
