"""Two network namespaces joined by a veth pair, for real network faults: :class:`NetnsPair`.

Layout (names unique per instance: ``{prefix}-{pid}-{n}-c`` / ``-s``)::

    client_ns: swc0 198.18.0.1/30  <-- veth -->  server_ns: sws0 198.18.0.2/30

198.18.0.0/15 is the benchmarking range (RFC 2544); it never leaves the two namespaces. Both
sides get *permanent* neighbour entries for each other, so no ARP traffic can fail and produce a
local "host unreachable" error: :meth:`NetnsPair.blackhole` takes the server's end down, after
which the client's packets are dropped silently -- no RST, no FIN, no ICMP -- exactly like a
peer that vanished behind a firewall or a NAT that forgot the flow.

Code runs in a namespace either as a subprocess (:meth:`NetnsPair.popen_server`, through
``ip netns exec``) or in a fresh thread that joined the namespace with ``setns(2)``
(:meth:`NetnsPair.run_in_client`): the network namespace is per thread on Linux, so only that
thread (and the threads it starts) moves; the rest of the process stays where it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import itertools
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from sockwise.testing._proc import Closing, LiveSet, run_command

if TYPE_CHECKING:
    from typing import Self

T = TypeVar("T")

CLONE_NEWNET: Final = 0x40000000
_NETNS_DIR: Final = "/run/netns"
_CLIENT_IF: Final = "swc0"
_SERVER_IF: Final = "sws0"
_CLIENT_ADDR: Final = "198.18.0.1"
_SERVER_ADDR: Final = "198.18.0.2"
_PREFIXLEN: Final = 30
_IP_TIMEOUT: Final = 20.0
#: Seconds a link that was set up may take to carry packets (the kernel's linkwatch attaches the
#: queueing discipline asynchronously, under the RTNL lock).
_LINK_READY_TIMEOUT: Final = 20.0
_NAME_RE: Final = re.compile(r"^(?P<prefix>[A-Za-z0-9_]+)-(?P<pid>\d+)-(?P<n>\d+)-[cs]$")

_counter = itertools.count(1)
_LIVE: LiveSet[NetnsPair] = LiveSet()


class NetnsError(RuntimeError):
    """Creating, entering or changing a test network namespace failed."""

    __module__ = "sockwise.testing"


def _ip(*args: str, check: bool = True) -> str:
    return run_command(["ip", *args], error=NetnsError, timeout=_IP_TIMEOUT, check=check)


@functools.cache
def _libc_setns() -> Callable[[int, int], int]:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    fn = libc.setns
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def enter_netns(name: str) -> None:
    """Move the *calling thread* into network namespace *name* (``setns(2)``).

    Sockets the thread creates afterwards, and threads it starts, live in that namespace.

    Raises:
        NetnsError: The namespace does not exist or ``setns`` failed (needs CAP_SYS_ADMIN).

    """
    path = os.path.join(_NETNS_DIR, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetnsError(f"cannot open network namespace {name!r} ({path}): {exc}") from exc
    try:
        if _libc_setns()(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"setns({name!r}) failed: {os.strerror(err)} (errno {err})")
    finally:
        os.close(fd)


@functools.cache
def _probe() -> str | None:
    if not hasattr(os, "geteuid") or not os.path.isdir("/proc/self/ns"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run as root or in a CI container"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is missing"
    name = f"swprobe-{os.getpid()}"
    try:
        _ip("netns", "add", name)
    except NetnsError as exc:
        return f"ip netns add does not work here: {exc}"
    try:
        done = threading.Event()
        errors: list[str] = []

        def probe_thread() -> None:
            try:
                enter_netns(name)
            except (NetnsError, OSError, AttributeError) as exc:
                errors.append(str(exc))
            finally:
                done.set()

        threading.Thread(target=probe_thread, daemon=True).start()
        if not done.wait(10):
            return "setns probe did not finish within 10 s"
        if errors:
            return f"setns(2) does not work here: {errors[0]}"
    finally:
        _ip("netns", "del", name, check=False)
    return None


def netns_unavailable_reason() -> str | None:
    """Return why :class:`NetnsPair` cannot work here, or ``None`` when it can (cached)."""
    return _probe()


def close_all_pairs() -> None:
    """Close every :class:`NetnsPair` this process created and has not closed yet."""
    _LIVE.close_all()


def remove_stale_namespaces(prefix: str = "sw") -> list[str]:
    """Delete namespaces left by *dead* processes (named ``{prefix}-{pid}-{n}-c|s``).

    Namespaces of live processes (parallel test runs) are left alone. Returns the names removed.
    """
    try:
        names = os.listdir(_NETNS_DIR)
    except OSError:
        return []
    removed: list[str] = []
    for name in names:
        m = _NAME_RE.match(name)
        if m is None or m["prefix"] != prefix:
            continue
        if os.path.exists(f"/proc/{m['pid']}"):
            continue
        with contextlib.suppress(NetnsError):
            _ip("netns", "del", name)
            removed.append(name)
    return removed


class NetnsPair(Closing):
    """Two network namespaces (client side, server side) joined by a veth pair.

    Use :meth:`create` (also a context manager). Every name is unique per instance, so
    parallel test runs never collide; :meth:`close` kills the processes started here and
    deletes both namespaces, and is idempotent.

    Attributes:
        client_ns: The client namespace's name.
        server_ns: The server namespace's name.
        client_addr: The client's address (``198.18.0.1``).
        server_addr: The server's address (``198.18.0.2``).
        client_if: The client's interface name inside ``client_ns``.
        server_if: The server's interface name inside ``server_ns``.

    """

    def __init__(self, client_ns: str, server_ns: str) -> None:
        self.client_ns = client_ns
        self.server_ns = server_ns
        self.client_addr = _CLIENT_ADDR
        self.server_addr = _SERVER_ADDR
        self.client_if = _CLIENT_IF
        self.server_if = _SERVER_IF
        self._procs: list[subprocess.Popen[Any]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._blackholed = False

    @classmethod
    def create(cls, prefix: str = "sw") -> Self:
        """Create both namespaces and the veth pair between them, addressed and up.

        Args:
            prefix: Start of the namespace names (letters, digits, ``_``).

        Raises:
            ValueError: *prefix* has other characters.
            NetnsError: Not root, no iproute2, or an ``ip`` command failed.

        """
        if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,20}", prefix):
            raise ValueError(f"NetnsPair.create(prefix={prefix!r}): use 1-20 of [A-Za-z0-9_]")
        reason = netns_unavailable_reason()
        if reason is not None:
            raise NetnsError(reason)
        base = f"{prefix}-{os.getpid()}-{next(_counter)}"
        pair = cls(f"{base}-c", f"{base}-s")
        _LIVE.add(pair)
        try:
            pair._setup()
        except BaseException:
            pair.close()
            raise
        return pair

    def _setup(self) -> None:
        c, s = self.client_ns, self.server_ns
        _ip("netns", "add", c)
        _ip("netns", "add", s)
        _ip("link", "add", _CLIENT_IF, "netns", c, "type", "veth",
            "peer", "name", _SERVER_IF, "netns", s)  # fmt: skip
        _ip("-n", c, "addr", "add", f"{_CLIENT_ADDR}/{_PREFIXLEN}", "dev", _CLIENT_IF)
        _ip("-n", s, "addr", "add", f"{_SERVER_ADDR}/{_PREFIXLEN}", "dev", _SERVER_IF)
        for ns, dev in ((c, _CLIENT_IF), (s, _SERVER_IF)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        self._pin_neighbours()
        self._wait_links_ready()

    def _wait_links_ready(self, timeout: float = _LINK_READY_TIMEOUT) -> None:
        """Wait (bounded) until both ends of the veth pair carry packets.

        ``ip link set up`` can return before the kernel's linkwatch work has run: until it does,
        the device's ``noop`` queueing discipline drops every packet, and a lost first SYN is
        retried only after 1 s. (On the machines this was written on the links were ready at the
        first look; the wait is a bound, not a delay.)
        """
        ends = ((self.client_ns, _CLIENT_IF), (self.server_ns, _SERVER_IF))
        deadline = time.monotonic() + timeout
        while True:
            links = [self._link(ns, dev) for ns, dev in ends]
            states = [(str(link.get("operstate")), str(link.get("qdisc"))) for link in links]
            if all(oper == "UP" and qdisc != "noop" for oper, qdisc in states):
                return
            if time.monotonic() >= deadline:
                seen = ", ".join(f"{dev}: operstate {o}, qdisc {q}" for (_, dev), (o, q) in
                                 zip(ends, states, strict=True))  # fmt: skip
                raise NetnsError(f"veth pair not ready within {timeout:g} s ({seen})")
            time.sleep(0.01)

    @staticmethod
    def _link(ns: str, dev: str) -> dict[str, Any]:
        """``ip -j link show`` of one interface: its address, operstate, qdisc..."""
        info: list[dict[str, Any]] = json.loads(_ip("-n", ns, "-j", "link", "show", "dev", dev))
        return info[0]

    def _mac(self, ns: str, dev: str) -> str:
        return str(self._link(ns, dev)["address"])

    def _pin_neighbours(self) -> None:
        c, s = self.client_ns, self.server_ns
        client_mac = self._mac(c, _CLIENT_IF)
        server_mac = self._mac(s, _SERVER_IF)
        _ip("-n", c, "neigh", "replace", _SERVER_ADDR, "lladdr", server_mac,
            "dev", _CLIENT_IF, "nud", "permanent")  # fmt: skip
        _ip("-n", s, "neigh", "replace", _CLIENT_ADDR, "lladdr", client_mac,
            "dev", _SERVER_IF, "nud", "permanent")  # fmt: skip

    # -- running code in a namespace -----------------------------------------------------------

    def _run_in(self, ns: str, fn: Callable[..., T], args: tuple[Any, ...], timeout: float) -> T:
        if self._closed:
            raise NetnsError(f"NetnsPair {self.client_ns}/{self.server_ns} is closed")
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                enter_netns(ns)
                box["value"] = fn(*args)
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=target, name=f"netns:{ns}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"{getattr(fn, '__name__', fn)!r} in {ns} ran over {timeout} s")
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]

    def run_in_client(self, fn: Callable[..., T], *args: Any, timeout: float = 60.0) -> T:
        """Call ``fn(*args)`` in a fresh thread inside ``client_ns`` and return its result.

        Sockets created by *fn*, and threads it starts, live in ``client_ns``. *fn*'s
        exception is re-raised here.

        Args:
            fn: The function to call.
            *args: Its positional arguments.
            timeout: Seconds to wait for it; the thread is abandoned (daemon) after that.

        Raises:
            TimeoutError: *fn* did not return within *timeout*.

        """
        return self._run_in(self.client_ns, fn, args, timeout)

    def run_in_server(self, fn: Callable[..., T], *args: Any, timeout: float = 60.0) -> T:
        """Like :meth:`run_in_client`, inside ``server_ns``."""
        return self._run_in(self.server_ns, fn, args, timeout)

    def _popen(self, ns: str, argv: list[str], kw: dict[str, Any]) -> subprocess.Popen[Any]:
        if self._closed:
            raise NetnsError(f"NetnsPair {self.client_ns}/{self.server_ns} is closed")
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc: subprocess.Popen[Any] = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        with self._lock:
            self._procs.append(proc)
        return proc

    def popen_server(self, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start *argv* inside ``server_ns`` (``subprocess.Popen`` keywords in *kw*).

        ``ip netns exec`` replaces itself with *argv*, so the returned PID is the program's.
        The process is killed by PID on :meth:`close`.
        """
        return self._popen(self.server_ns, argv, kw)

    def popen_client(self, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        """Like :meth:`popen_server`, inside ``client_ns``."""
        return self._popen(self.client_ns, argv, kw)

    # -- faults ---------------------------------------------------------------------------------

    @property
    def blackholed(self) -> bool:
        """Whether :meth:`blackhole` is in effect."""
        return self._blackholed

    def blackhole(self) -> None:
        """Make the server vanish silently: all traffic between the two is dropped.

        The server's end of the veth pair goes down; the client's packets are discarded by its
        carrier-less link without an error, and no RST, FIN or ICMP ever reaches the client.
        Established connections stay ESTABLISHED on both sides until a timeout ends them.
        """
        _ip("-n", self.server_ns, "link", "set", _SERVER_IF, "down")
        self._blackholed = True

    def heal(self) -> None:
        """Undo :meth:`blackhole`: the link comes back and packets flow again."""
        _ip("-n", self.server_ns, "link", "set", _SERVER_IF, "up")
        self._pin_neighbours()
        self._wait_links_ready()
        self._blackholed = False

    def sockets_report(self) -> str:
        """Return ``ss -tanoi`` of both namespaces, for a failing test's message."""
        parts = []
        for ns in (self.client_ns, self.server_ns):
            try:
                out = run_command(["ip", "netns", "exec", ns, "ss", "-tanoi"], error=NetnsError,
                                  timeout=_IP_TIMEOUT, check=False)  # fmt: skip
            except NetnsError as exc:  # the report must not replace the failure it explains
                out = str(exc)
            parts.append(f"--- {ns}\n{out.rstrip()}")
        return "\n".join(parts)

    # -- cleanup --------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill the processes started here (by PID) and delete both namespaces; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            procs, self._procs = self._procs, []
        _LIVE.discard(self)
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, OSError, ValueError):
                proc.communicate(timeout=10)
        for ns in (self.client_ns, self.server_ns):
            if os.path.exists(os.path.join(_NETNS_DIR, ns)):
                _ip("netns", "del", ns, check=False)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("blackholed" if self._blackholed else "up")
        return f"<NetnsPair {self.client_ns} <-> {self.server_ns} {state}>"
