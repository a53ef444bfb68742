"""Remember which code opened each TCP socket, and which sockets sockwise pools hold idle.

Theory of operation: while a guard runs, hooks on ``connect``, ``accept`` and ``listen`` (the
shared layer in :mod:`sockwise._hooks`) find the first stack frame outside sockwise, the standard
library and the wrapped HTTP/PostgreSQL libraries, and append ``(weak reference to the socket,
origin, address or backlog, kind)`` to a bounded queue -- nothing else: no system call, no lock
(``deque.append`` is atomic). A frame is classified once per code object and an :class:`Origin`
is built once per call site, so recording costs a short walk up the stack and one append.

The queue is *drained* at the start of every guard tick and by every reader of the tables
(:func:`lookup`, :func:`listeners`, :func:`destination_connects`, :func:`sizes`...): a socket
still open is keyed by its *inode* (``os.fstat(fd).st_ino``, the number sock_diag and
``/proc/net/tcp`` report); one already closed (dead weak reference, or ``fileno() == -1``) only
counts toward its destination. The tables are bounded: the guard sweeps a slice of them each
tick and drops entries whose descriptor no longer refers to the same inode (the socket was
closed), and a hard cap evicts the oldest entry when an application holds more sockets than
that; the queue itself holds at most :data:`MAX_PENDING` entries (the guard drains it early when
it fills).
"""

from __future__ import annotations

import _socket
import contextlib
import dataclasses
import logging
import os
import re
import socket
import stat
import sys
import sysconfig
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from types import CodeType, FrameType
from typing import Any, Final

from sockwise import _hooks
from sockwise._log import log_once

#: Most sockets whose origin is remembered at once (memory: ~200 bytes each).
MAX_TRACKED: Final = 65536
#: Most pooled sockets remembered at once.
MAX_POOLED: Final = 65536
#: Most recorded events waiting to be drained (memory: ~250 bytes each); beyond, the oldest go.
MAX_PENDING: Final = 65536
#: The guard's thread drains early once this many events wait.
DRAIN_EARLY: Final = MAX_PENDING // 4
_MAX_CACHE: Final = 4096

#: Third-party libraries whose frames are never "the user's line": HTTP and database clients,
#: their pools and transports, and servers that accept on the application's behalf.
_WRAPPED: Final = (
    "urllib3",
    "psycopg",
    "psycopg_pool",
    "requests",
    "httpx",
    "httpcore",
    "h11",
    "h2",
    "aiohttp",
    "aiohappyeyeballs",
    "asyncio",
    "anyio",
    "sniffio",
    "redis",
    "asyncpg",
    "sqlalchemy",
    "uvicorn",
    "gunicorn",
    "starlette",
    "websockets",
    "uvloop",
    "gevent",
    "eventlet",
)
_LIB_RE: Final = re.compile(r"[/\\](?:site|dist)-packages[/\\](?:" + "|".join(_WRAPPED) + r")[/\\]")
_INET: Final = (socket.AF_INET, socket.AF_INET6)
_STREAM: Final = int(socket.SOCK_STREAM)
_raw_type = _socket.socket.type.__get__  # the C getter: an int, no enum conversion
_raw_family = _socket.socket.family.__get__
_ref: Final = weakref.ref
_getframe: Final = sys._getframe


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a socket was opened: the first frame outside sockwise and the libraries it wraps.

    Attributes:
        filename: Source file.
        lineno: Line number.
        function: Function name (qualified where Python knows it).
        module: The module's ``__name__`` (for :mod:`warnings` filters).
        kind: ``"connect"``, ``"accept"``, ``"listen"``, ``"checkout"`` (a pool handed out
            a connection it opened earlier) or ``"served"`` (accepted by library code in a
            server thread: the frame is the application's request handler, or the line that
            set up the listening socket).
        via: The outermost library between the socket call and this frame (``"requests"``,
            ``"urllib3"``, ``"http"`` for ``http.client``, ``"psycopg"``...), or ``""`` when
            the frame called ``socket`` itself. Advice in reports depends on it.

    """

    filename: str
    lineno: int
    function: str
    module: str
    kind: str
    via: str = ""

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno} in {self.function}()"


#: What owned a socket when it was opened: ``{"lib": name, "pool": weakref, "conn": weakref}``
#: (entries present when found), captured from the library's own frames (see :data:`_GRABBERS`).
Holder = dict[str, Any]

#: One recorded event: (weak reference to the socket, or ``(fd, inode)``, origin, address or
#: backlog, kind, holder).
_Pending = tuple[
    "weakref.ref[socket.socket] | tuple[int, int]", "Origin | None", Any, str, "Holder | None"
]


class _State:
    """Module state, replaced wholesale in a forked child."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.drain_lock = threading.Lock()  # guards the tables below (never taken by a hook)
        self.users = 0
        self.pending: deque[_Pending] = deque(maxlen=MAX_PENDING)
        self.tracked: dict[int, tuple[int, Origin | None]] = {}
        self.holders: dict[int, tuple[int, Holder]] = {}
        self.dest_sites: dict[tuple[tuple[str, int], int], list[Origin | int | None]] = {}
        self.dest_keys: dict[tuple[Any, ...], tuple[str, int]] = {}
        self.listen_sites: dict[tuple[str, int], Origin] = {}
        self.listeners: dict[int, tuple[int, int, Origin | None]] = {}
        self.pooled: dict[int, int] = {}
        self.connects = 0
        self.dest_connects: dict[tuple[str, int], int] = {}
        # The caches are keyed by id(code): hashing a code object hashes its bytecode, names and
        # constants (~0.1-0.3 us per frame of every walk). ``codes`` keeps each classified code
        # object alive, so an id in these tables names that object until they are all cleared.
        self.is_lib: dict[int, str] = {}  # id(code) -> library tag ("" for the user's code)
        self.codes: list[CodeType] = []
        self.grab: dict[int, Callable[[FrameType, Holder], None]] = {}
        self.origins: dict[tuple[int, int, str, str], Origin] = {}
        # (id(code), f_lasti) of connect() calls made by the application's own line -> its
        # Origin: the hook layer records those with no call (sockwise._hooks.ConnectRecorder).
        self.connect_sites: dict[tuple[int, int], Origin] = {}
        self.prefixes: tuple[str, ...] = ()


_state = _State()


def _lib_prefixes() -> tuple[str, ...]:
    # sockwise's own directory: this file's grandparent (importing the root package for its
    # __file__ would make the guard depend on everything the root package imports).
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = {package_dir + os.sep}
    for key in ("stdlib", "platstdlib"):
        try:
            paths.add(os.path.abspath(sysconfig.get_paths()[key]) + os.sep)
        except KeyError:  # Defensive: an unusual install scheme
            continue
    return tuple(paths)


def _weak(obj: object) -> Any:
    try:
        return _ref(obj)
    except TypeError:
        return None


def _grabber(lib: str, **slots: str) -> Callable[[FrameType, Holder], None]:
    """A reader of one library frame's locals into a holder (the first value found wins).

    It sets ``holder["lib"] = lib`` and, for each ``key=local``, ``holder[key]`` to a weak
    reference to the frame's local variable *local*.
    """
    pairs = tuple(slots.items())

    def grab(frame: FrameType, holder: Holder) -> None:
        loc = frame.f_locals
        holder.setdefault("lib", lib)
        for key, local in pairs:
            holder.setdefault(key, _weak(loc.get(local)))

    return grab


#: Library frames that reveal which pool a new connection belongs to, by ``(module, qualname)``.
#: Read only when a connect passes through them (a new connection, not every request): the
#: guard later asks the pool whether the connection is idle in it (see :mod:`._pools`). A
#: server frame names the server, whose handler class or application is then reported.
_GRABBERS: Final[dict[tuple[str, str], Callable[[FrameType, Holder], None]]] = {
    # HTTPConnectionPool._make_request(self, conn, ...): the pool and its connection.
    ("urllib3.connectionpool", "HTTPConnectionPool._make_request"): _grabber(
        "urllib3", pool="self", conn="conn"
    ),
    # HTTPConnection._connect(self, request): the connection (it knows when it is idle).
    ("httpcore._sync.connection", "HTTPConnection._connect"): _grabber("httpcore", conn="self"),
    ("httpcore._async.connection", "AsyncHTTPConnection._connect"): _grabber(
        "httpcore", conn="self"
    ),
    ("psycopg_pool.pool", "ConnectionPool._connect"): _grabber("psycopg_pool", pool="self"),
    ("psycopg_pool.pool_async", "AsyncConnectionPool._connect"): _grabber(
        "psycopg_pool", pool="self"
    ),
    # ConnectionPool.get_connection(self, ...): the pool and the connection it hands out.
    ("redis.connection", "ConnectionPool.get_connection"): _grabber(
        "redis", pool="self", conn="connection"
    ),
    ("redis.asyncio.connection", "ConnectionPool.get_connection"): _grabber(
        "redis", pool="self", conn="connection"
    ),
    # BaseServer._handle_request_noblock(self): the server, whose handler class is named.
    ("socketserver", "BaseServer._handle_request_noblock"): _grabber("socketserver", server="self"),
    # Server.startup(self): the uvicorn server, whose configured application is named.
    ("uvicorn.server", "Server.startup"): _grabber("uvicorn", server="self"),
    # SyncWorker.accept / ThreadWorker.accept: the worker, which serves self.wsgi.
    ("gunicorn.workers.sync", "SyncWorker.accept"): _grabber("gunicorn", server="self"),
    ("gunicorn.workers.gthread", "ThreadWorker.accept"): _grabber("gunicorn", server="self"),
}


def _classify(code: CodeType, module: str) -> str:
    """The library tag of *code* (its top package, e.g. ``"urllib3"``); ``""`` for user code."""
    name = code.co_filename
    if _classify_file(name):
        return module.partition(".")[0] or os.path.basename(name).partition(".")[0] or "?"
    return ""


def _classify_new(frame: FrameType, code: CodeType) -> str:
    st = _state
    if len(st.is_lib) >= _MAX_CACHE:
        # Every table keyed by id(code) goes at once: the ids are only unique while ``codes``
        # holds their objects.
        st.is_lib.clear()
        st.grab.clear()
        st.origins.clear()
        st.connect_sites.clear()
        st.codes.clear()
    module = frame.f_globals.get("__name__")
    module = module if isinstance(module, str) else ""
    tag = _classify(code, module)
    if tag:
        grabber = _GRABBERS.get((module, code.co_qualname))
        if grabber is not None:
            st.grab[id(code)] = grabber
    st.codes.append(code)
    st.is_lib[id(code)] = tag
    return tag


def find_origin(
    frame: FrameType | None, kind: str, want_holder: bool = False
) -> tuple[Origin | None, Holder | None]:
    """The first frame from *frame* upwards outside sockwise, the stdlib and wrapped libraries.

    Returns ``(origin, holder)``; *holder* (the pool a library opened the socket for) is only
    looked for when *want_holder* is true and a pool's frame is on the way.
    """
    st = _state
    tag_of = st.is_lib.get  # per frame: one field read, id() and a dict lookup (~0.1 us)
    grab = st.grab if want_holder else None
    via = ""
    holder: Holder | None = None
    for _ in range(64):
        if frame is None:
            return None, holder
        cid = id(frame.f_code)
        tag = tag_of(cid)
        if tag is None:
            tag = _classify_new(frame, frame.f_code)
        if not tag:
            # Keyed by instruction offset: f_lasti is a field, f_lineno decodes the line table.
            key = (cid, frame.f_lasti, kind, via)
            found = st.origins.get(key)
            if found is None:
                found = _new_origin(frame, frame.f_code, key)
            return found, holder
        if tag != "sockwise":
            via = tag
        if grab and cid in grab:
            if holder is None:
                holder = {}
            with contextlib.suppress(Exception):  # Defensive: a library changed its locals
                grab[cid](frame, holder)
        frame = frame.f_back
    return None, holder


def _new_origin(frame: FrameType, code: CodeType, key: tuple[int, int, str, str]) -> Origin:
    st = _state
    if len(st.origins) >= _MAX_CACHE:
        st.origins.clear()
    found = st.origins[key] = Origin(
        filename=code.co_filename,
        lineno=frame.f_lineno,
        function=code.co_qualname,
        module=str(frame.f_globals.get("__name__", "")),
        kind=key[2],
        via="" if key[3] == "socket" else key[3],
    )
    return found


# -- the hooks: the hot path. No system call, no lock, one append. ---------------------------
# A connect is recorded by the hook layer itself (:class:`sockwise._hooks.ConnectRecorder`): a
# connect from a call site seen before to be the application's own line appends its interned
# Origin with no call at all; any other goes through _record_connect with the caller's frame.
# Accepts and listens: _on_accept <- _hooks._run <- _hooks' accept <- caller; starting two
# frames up lands on the caller or on a sockwise frame (which find_origin skips).
# sys._getframe(n) creates a frame object for frame n only; each one walked through costs
# ~0.3 us right after a connect (measured), so the frames known to be sockwise's are jumped
# over, not walked.


def _record_connect(sock: socket.socket, address: object, frame: FrameType | None) -> None:
    # Not even the socket's type is read here: the drain counts TCP connects and skips the rest.
    st = _state
    origin, holder = find_origin(frame, "connect", True)
    st.pending.append((_ref(sock), origin, address, "connect", holder))
    if frame is not None and holder is None and origin is not None:
        code = frame.f_code
        if st.is_lib.get(id(code)) == "":  # the caller itself is the application's line
            if len(st.connect_sites) >= _MAX_CACHE:
                st.connect_sites.clear()
            st.connect_sites[(id(code), frame.f_lasti)] = origin


def _on_accept(sock: socket.socket) -> None:
    if _raw_type(sock) & 0xF == _STREAM and _raw_family(sock) in _INET:
        origin, holder = find_origin(_getframe(2), "accept", True)
        _state.pending.append((_ref(sock), origin, None, "accept", holder))


def _on_listen(sock: socket.socket, backlog: int) -> None:
    if _raw_type(sock) & 0xF == _STREAM and _raw_family(sock) in _INET:
        origin, holder = find_origin(_getframe(1), "listen", True)
        _state.pending.append((_ref(sock), origin, backlog, "listen", holder))


def note_origin(
    sock_or_fd: socket.socket | int,
    *,
    kind: str = "connect",
    address: tuple[str, int] | None = None,
    owner: object = None,
    depth: int = 1,
) -> None:
    """Record the calling application line as the origin of a socket opened outside ``socket``.

    For sockets the ``socket`` hooks cannot see -- opened in C (libpq), by libuv (uvloop), or
    handed out again by a pool (``kind="checkout"``, which replaces the earlier origin, so a
    leak names the line that took the connection out, and also does what
    :func:`unregister_pooled` does). Costs a short stack walk and one append
    while a guard runs; nothing (one attribute test) otherwise. A closed socket is ignored.

    Args:
        sock_or_fd: The socket, or its file descriptor (resolved to its inode right away).
        kind: ``"connect"`` (counted toward the destination, for churn reports),
            ``"accept"``, ``"listen"`` or ``"checkout"``.
        address: The destination ``(host, port)`` of a connect (default: the socket's peer).
        owner: The library object owning the socket (e.g. a psycopg connection), for pool
            recognition.
        depth: Frames above the caller of :func:`note_origin` to start from (1: its caller).

    Raises:
        TypeError: *sock_or_fd* is neither a socket nor an int.
        ValueError: *kind* is not one of the kinds above.

    .. versionadded:: 0.2.0

    """
    if kind not in _KINDS:
        raise ValueError(f"kind: {kind!r} is not allowed; allowed: {', '.join(_KINDS)}")
    fd = _fd_of(sock_or_fd, "sock_or_fd")
    st = _state
    if st.users == 0 or fd < 0:
        return
    try:
        ino = os.fstat(fd).st_ino  # now: by the drain the descriptor may be reused
    except (OSError, ValueError, OverflowError):
        return
    if kind == "checkout" and st.pooled:
        st.pooled.pop(ino, None)  # handed out: no longer an idle member (unregister_pooled)
    origin, holder = find_origin(_getframe(depth), kind, True)
    if owner is not None:
        holder = holder if holder is not None else {}
        holder["conn"] = _weak(owner)
    if kind == "connect" and address is None:
        address = _peer_of(fd)
    st.pending.append(((fd, ino), origin, address, kind, holder))


_KINDS: Final = ("connect", "accept", "listen", "checkout")


# -- draining: fstat and per-destination counting, off the hot path ---------------------------


def _evict_oldest(table: dict[Any, Any]) -> None:
    with contextlib.suppress(KeyError, StopIteration, RuntimeError):  # raced with the sweep
        del table[next(iter(table))]


_MAX_DESTINATIONS: Final = 4096
_MAX_SITES: Final = 16384


def destination_key(address: object) -> tuple[str, int] | None:
    """``(host, port)`` of a connect *address*, numeric IPv6 hosts in ``inet_ntop`` form."""
    if not (isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int)):
        return None
    host = address[0]
    host = host if isinstance(host, str) else str(host)
    if ":" in host:
        with contextlib.suppress(OSError, ValueError):
            host = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, host))
    return host, address[1]


def _drain_locked(st: _State) -> None:
    pending = st.pending
    if len(pending) == MAX_PENDING:
        log_once(
            "guard-origin-overflow",
            logging.WARNING,
            "sockwise guard: more than %d sockets were opened between two samples; the origins "
            "and destinations of the oldest were not recorded",
            MAX_PENDING,
        )
    tracked = st.tracked
    counts = st.dest_connects
    sites = st.dest_sites
    keys = st.dest_keys
    popleft = pending.popleft
    fstat = os.fstat
    for _ in range(len(pending)):
        try:
            ref, origin, extra, kind, holder = popleft()
        except IndexError:  # Defensive: only drainers pop, under drain_lock
            break
        noted = type(ref) is tuple
        sock = None if noted else ref()  # type: ignore[operator]
        if kind == "connect":
            if sock is not None and (
                _raw_type(sock) & 0xF != _STREAM or _raw_family(sock) not in _INET
            ):
                continue  # UDP, Unix: not the guard's business
            st.connects += 1
            key = keys.get(extra) if type(extra) is tuple else None
            if key is None:
                key = destination_key(extra)
                if key is not None and len(keys) < _MAX_DESTINATIONS:
                    keys[extra] = key
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
                # Keyed by identity (Origins are interned per call site; a dataclass hash is a
                # Python call over six fields); the entry keeps its Origin alive, so ids are stable.
                entry = sites.get((key, id(origin)))
                if entry is None:
                    sites[(key, id(origin))] = [origin, 1]
                else:
                    entry[1] += 1  # type: ignore[operator]
                if len(sites) > _MAX_SITES:
                    _evict_oldest(sites)
                    if len(counts) > _MAX_DESTINATIONS:
                        _evict_oldest(counts)
        if noted:
            fd, ino = ref  # type: ignore[misc]
        else:
            if sock is None:
                continue  # closed and collected already: nothing to watch
            try:
                fd = sock.fileno()
            except (OSError, ValueError):  # Defensive
                continue
            ino = -1
        if fd < 0:
            continue  # closed (or detached)
        try:
            found = fstat(fd).st_ino
        except (OSError, ValueError, OverflowError):
            continue
        if noted and found != ino:
            continue  # noted by descriptor, closed since (the number now names another file)
        if kind != "connect":
            origin = _other_kind(st, found, fd, ref, origin, extra, kind, holder)
        tracked[found] = (fd, origin)
        if len(tracked) > MAX_TRACKED:
            _evict_oldest(tracked)
        if holder:
            known = st.holders.get(found) if kind == "checkout" else None
            if known is not None and known[0] == fd:
                holder = {**holder, **known[1]}  # keep the pool the connection was opened for
            if "lib" not in holder and holder.get("conn") is not None:
                owner = holder["conn"]()
                holder["lib"] = type(owner).__module__.partition(".")[0] if owner else ""
            st.holders[found] = (fd, holder)
            if len(st.holders) > MAX_TRACKED:
                _evict_oldest(st.holders)


def _other_kind(
    st: _State,
    ino: int,
    fd: int,
    ref: Any,
    origin: Origin | None,
    extra: Any,
    kind: str,
    holder: Holder | None,
) -> Origin | None:
    """Drain an accept, listen or checkout event; return the origin to record."""
    if kind == "checkout" and origin is None and ino in st.tracked:
        return st.tracked[ino][1]
    sock = None if type(ref) is tuple else ref()
    if kind == "accept" and origin is None:
        return _served_origin(st, sock, holder)
    if kind == "listen":
        if origin is None:
            origin = _app_origin(holder)
        _remember_listener(st, sock, origin)
        st.listeners[ino] = (fd, extra, origin)
        if len(st.listeners) > MAX_TRACKED:
            _evict_oldest(st.listeners)
    return origin


def _served_origin(st: _State, sock: socket.socket | None, holder: Holder | None) -> Origin | None:
    """Who serves an accepted socket whose accept ran in library code only (a server thread).

    The application's request handler when the server is a :mod:`socketserver` one, else the
    line that set up the listening socket (``TCPServer(...)``, ``uvicorn.run(...)``).
    """
    if holder and holder.get("lib") == "gunicorn":  # the worker's WSGI application
        app = _app_origin(holder)
        if app is not None:
            return dataclasses.replace(app, kind="served")
    server_ref = holder.get("server") if holder else None
    server = server_ref() if server_ref is not None else None
    handler = getattr(getattr(server, "RequestHandlerClass", None), "handle", None)
    found = _definition(handler, getattr(handler, "__code__", None), "served", "socketserver")
    if found is not None:
        return found
    if sock is None:
        return None
    try:
        host, port = sock.getsockname()[:2]
    except (OSError, ValueError, TypeError):
        return None
    for key in ((host, port), ("0.0.0.0", port), ("::", port)):
        found = st.listen_sites.get(key)
        if found is not None:
            return Origin(
                filename=found.filename,
                lineno=found.lineno,
                function=found.function,
                module=found.module,
                kind="served",
                via=found.via,
            )
    return None


def _app_origin(holder: Holder | None) -> Origin | None:
    """The application a server library (uvicorn, gunicorn) serves, when no user frame is seen.

    uvicorn started from its command line, or in a thread, listens from library frames only;
    its configuration names the application (an object or ``"module:attribute"``), and the
    application's definition is the line to report. A gunicorn worker accepts in its own code;
    ``worker.wsgi`` is the application it loaded.
    """
    lib = holder.get("lib") if holder else None
    server_ref = holder.get("server") if holder and lib in ("uvicorn", "gunicorn") else None
    server = server_ref() if server_ref is not None else None
    if lib == "gunicorn":
        app = getattr(server, "wsgi", None)
    else:
        app = getattr(getattr(server, "config", None), "app", None)
    if isinstance(app, str):
        module_name, _, attr = app.partition(":")
        module = sys.modules.get(module_name)
        app = getattr(module, attr, None) if module is not None and attr else None
    if app is None:
        return None
    code = getattr(app, "__code__", None)
    if not isinstance(code, CodeType):
        code = getattr(type(app).__dict__.get("__call__"), "__code__", None)
    return _definition(app, code, "listen", str(lib))


def _definition(obj: object, code: object, kind: str, via: str) -> Origin | None:
    """The line that defines *obj* (its *code*), unless that is library code."""
    if isinstance(code, CodeType) and not is_library_file(code.co_filename):
        return Origin(
            filename=code.co_filename,
            lineno=code.co_firstlineno,
            function=code.co_qualname,
            module=str(getattr(obj, "__module__", "")),
            kind=kind,
            via=via,
        )
    return None


def _remember_listener(st: _State, sock: socket.socket | None, origin: Origin | None) -> None:
    if sock is None or origin is None:
        return
    try:
        host, port = sock.getsockname()[:2]
    except (OSError, ValueError, TypeError):
        return
    st.listen_sites[(host, port)] = origin
    if len(st.listen_sites) > 1024:
        _evict_oldest(st.listen_sites)


def is_library_file(filename: str) -> bool:
    """Whether *filename* belongs to sockwise, the standard library or a wrapped library."""
    if not _state.prefixes:
        _state.prefixes = _lib_prefixes()
    return bool(_classify_file(filename))


def _classify_file(name: str) -> bool:
    if name.startswith("<frozen") or _LIB_RE.search(name):
        return True
    return name.startswith(_state.prefixes) and (
        ("site-packages" not in name and "dist-packages" not in name) or "sockwise" in name
    )


def _peer_of(fd: int) -> tuple[str, int] | None:
    """The peer address of descriptor *fd* (a duplicate is queried; *fd* stays untouched)."""
    try:
        dup = os.dup(fd)
    except OSError:
        return None
    try:
        with socket.socket(fileno=dup) as sock:
            peer = sock.getpeername()
    except OSError:
        return None
    return (peer[0], peer[1]) if isinstance(peer, tuple) else None


def drain() -> None:
    """Resolve the recorded events: inodes of open sockets, connects per destination."""
    st = _state
    if st.pending:
        with st.drain_lock:
            _drain_locked(st)


def needs_drain() -> bool:
    """Whether enough events wait that the guard should drain before its next tick."""
    return len(_state.pending) >= DRAIN_EARLY


def enable() -> None:
    """Start recording origins (reference-counted: each guard start calls it once)."""
    with _state.lock:
        _state.users += 1
        if _state.users == 1:
            if not _state.prefixes:
                _state.prefixes = _lib_prefixes()
            _hooks.set_connect_recorder(
                _hooks.ConnectRecorder(_state.connect_sites, _state.pending, _record_connect)
            )
            _hooks.add_accept_hook(_on_accept)
            _hooks.add_listen_hook(_on_listen)


def disable() -> None:
    """Undo one :func:`enable`; the last one removes the hooks and forgets the origins."""
    with _state.lock:
        if _state.users == 0:
            return
        _state.users -= 1
        if _state.users == 0:
            _hooks.set_connect_recorder(None)
            _hooks.remove_accept_hook(_on_accept)
            _hooks.remove_listen_hook(_on_listen)
            with _state.drain_lock:
                _state.pending.clear()
                _state.tracked.clear()
                _state.dest_connects.clear()
                _state.dest_sites.clear()
                _state.dest_keys.clear()
                _state.holders.clear()
                _state.listen_sites.clear()
                _state.listeners.clear()
                _state.pooled.clear()  # pools stop telling once no guard runs


def recording() -> bool:
    """Whether origins are being recorded."""
    return _state.users > 0


def lookup(inode: int) -> tuple[int, Origin | None] | None:
    """``(fd, origin)`` recorded for *inode*, if any."""
    drain()
    return _state.tracked.get(inode)


def holder(inode: int) -> Holder | None:
    """What owned *inode* when it was opened (a pool, a connection object), if recorded."""
    entry = _state.holders.get(inode)
    return entry[1] if entry is not None else None


def destination_sites(dest: tuple[str, int]) -> dict[Origin | None, int]:
    """Connects toward *dest* per origin (cumulative, bounded: the oldest sites are dropped)."""
    drain()
    out: dict[Origin | None, int] = {}
    for (d, _), (origin, n) in list(_state.dest_sites.items()):
        if d == dest and not isinstance(origin, int) and isinstance(n, int):
            out[origin] = out.get(origin, 0) + n
    return out


def listeners() -> dict[int, tuple[int, int, Origin | None]]:
    """A snapshot of ``{inode: (fd, requested backlog, origin)}`` of listening sockets seen."""
    drain()
    return dict(_state.listeners)


def destination_connects() -> dict[tuple[str, int], int]:
    """A snapshot of this process's connects per ``(host, port)`` (cumulative, bounded)."""
    drain()
    return dict(_state.dest_connects)


def connects() -> int:
    """How many TCP connects this process made while recording (counted when drained)."""
    drain()
    return _state.connects


def sizes() -> dict[str, int]:
    """Entries in each internal table (to check that memory stays bounded)."""
    drain()
    st = _state
    return {
        "pending": len(st.pending),
        "tracked": len(st.tracked),
        "listeners": len(st.listeners),
        "pooled": len(st.pooled),
        "holders": len(st.holders),
        "code_cache": len(st.is_lib),
        "origin_cache": len(st.origins),
    }


def _alive(fd: int, inode: int) -> bool:
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return st.st_ino == inode and stat.S_ISSOCK(st.st_mode)


def _sweep_table(table: dict[int, tuple[int, ...]] | dict[int, int], count: int) -> int:
    dropped = 0
    for ino in list(islice(table, count)):  # oldest first; list(islice()) runs without a switch
        entry = table.pop(ino, None)
        if entry is None:
            continue
        fd = entry if isinstance(entry, int) else entry[0]
        if _alive(fd, ino):
            table[ino] = entry  # type: ignore[assignment]  # still open: rotate to the end
        else:
            dropped += 1
    return dropped


def sweep(minimum: int = 512) -> int:
    """Check the oldest slice of each table and drop closed sockets; return how many went."""
    dropped = 0
    drain()
    with _state.drain_lock:
        for table in (_state.tracked, _state.listeners, _state.pooled, _state.holders):
            count = min(max(minimum, len(table) // 8), 8192)
            dropped += _sweep_table(table, count)  # type: ignore[arg-type]
    return dropped


def _fd_of(sock_or_fd: socket.socket | int, what: str) -> int:
    if isinstance(sock_or_fd, socket.socket):
        return sock_or_fd.fileno()
    if isinstance(sock_or_fd, int) and not isinstance(sock_or_fd, bool):
        return sock_or_fd
    raise TypeError(f"{what}: expected a socket.socket or a file descriptor, got {sock_or_fd!r}")


def register_pooled(sock_or_fd: socket.socket | int) -> None:
    """Mark an idle pool member that its pool will close itself: never reported as a leak.

    Cheap and thread-safe; a closed socket is ignored. Call :func:`unregister_pooled` when the
    pool hands the connection out again. Free while no guard runs: nothing is judged then, so
    nothing is recorded (pools close peer-closed members within seconds, well before a guard
    started later would call one a leak).

    Args:
        sock_or_fd: The pooled socket or its file descriptor.

    Raises:
        TypeError: *sock_or_fd* is neither a socket nor an int.

    """
    fd = _fd_of(sock_or_fd, "sock_or_fd")
    if _state.users == 0:
        return
    try:
        ino = os.fstat(fd).st_ino
    except (OSError, ValueError, OverflowError):
        return  # already closed: nothing to protect
    pooled = _state.pooled
    pooled[ino] = fd
    if len(pooled) > MAX_POOLED:
        _evict_oldest(pooled)


def unregister_pooled(sock_or_fd: socket.socket | int) -> None:
    """Undo :func:`register_pooled` (no error if the socket was not registered or is closed).

    Args:
        sock_or_fd: The pooled socket or its file descriptor.

    Raises:
        TypeError: *sock_or_fd* is neither a socket nor an int.

    """
    fd = _fd_of(sock_or_fd, "sock_or_fd")
    if not _state.pooled:  # nothing registered (no guard ran): no system call
        return
    try:
        ino = os.fstat(fd).st_ino
    except (OSError, ValueError, OverflowError):
        return
    _state.pooled.pop(ino, None)


def is_pooled(inode: int) -> bool:
    """Whether *inode* is an idle member registered by a pool."""
    return inode in _state.pooled


def after_fork_in_child() -> None:
    """Replace the locks (they may have been held by another thread at fork time)."""
    _state.lock = threading.Lock()
    _state.drain_lock = threading.Lock()
