"""The socket policy: one immutable, validated description of how TCP sockets should behave.

Theory of operation: a :class:`Policy` is a frozen dataclass. Every field is either a value
sockwise sets on a socket, or ``None``, which means "leave the operating system's default alone"
(:meth:`Policy.kernel_defaults` is all ``None`` and changes nothing). Validation runs once, in
``__post_init__``, and checks every field before the object exists, so a bad value never gets
half-applied: either the whole policy is valid or construction raises.

``user_timeout`` defaults to ``"auto"``, which is resolved at construction to
``keepalive_idle + keepalive_interval * keepalive_count`` -- the usual advice, and the value at
which an idle connection's keepalive probes would give up anyway. :meth:`Policy.replace` re-derives
it when a keepalive number changes and ``user_timeout`` was derived.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from sockwise.policy import _env, _export

if TYPE_CHECKING:
    from typing import Self

#: Kernel limits for the keepalive settings (``include/net/tcp.h``: ``MAX_TCP_KEEPIDLE`` and
#: ``MAX_TCP_KEEPINTVL`` are 32767 seconds, ``MAX_TCP_KEEPCNT`` is 127 probes).
KEEPIDLE_RANGE: Final = (1, 32767)
KEEPINTVL_RANGE: Final = (1, 32767)
KEEPCNT_RANGE: Final = (1, 127)
#: ``TCP_USER_TIMEOUT`` is an ``int`` of milliseconds; the kernel rejects negative values.
USER_TIMEOUT_MAX: Final = 2_147_483.647
#: Seconds from a send to its first retransmission on a fast path (Linux): a tail loss probe
#: after ~200 ms (2 x RTT plus the delayed-ACK allowance), then ``TCP_RTO_MIN`` (200 ms).
#: ``TCP_USER_TIMEOUT`` counts from that retransmission. Measured here: 0.42 s.
FIRST_RETRANSMISSION: Final = 0.4
#: ``listen()`` takes an ``int``; the kernel caps it at ``net.core.somaxconn`` (and 65535).
BACKLOG_RANGE: Final = (1, 2**31 - 1)

#: Idle timeouts of common middleboxes, in seconds: after this long without a packet, the box
#: forgets the flow and the next packet on it is dropped (a black hole) or answered with a RST.
MIDDLEBOX_IDLE_TIMEOUTS: Final[Mapping[str, int]] = {
    "aws-nlb": 350,
    "aws-nat-gateway": 350,
    "azure-lb": 240,
    "gcp-cloud-nat": 1200,
    "gcp-lb": 600,
    "linux-conntrack": 432000,
}

_AUTO: Final = "auto"
_SAME: Final = "same"


def _fail_type(name: str, value: object, expected: str) -> TypeError:
    return TypeError(f"Policy.{name} must be {expected}, got {value!r} ({type(value).__name__})")


def _check_bool(name: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise _fail_type(name, value, "a bool (True or False) or None")


def _check_int(name: str, value: object, lo: int, hi: int, unit: str = "") -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail_type(name, value, f"an int in {lo}..{hi}{unit} or None")
    if not lo <= value <= hi:
        raise ValueError(f"Policy.{name}={value!r} is out of range: allowed {lo}..{hi}{unit}")


def _check_seconds(name: str, value: object, hi: float | None = None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail_type(name, value, "a number of seconds (int or float) or None")
    allowed = f"0 <= {name} <= {hi} seconds" if hi is not None else f"{name} >= 0 seconds"
    if not math.isfinite(value) or value < 0 or (hi is not None and value > hi):
        raise ValueError(f"Policy.{name}={value!r} is out of range: allowed {allowed}")


@dataclass(frozen=True, kw_only=True)
class Policy:
    """How TCP sockets should behave: keepalive, TCP_USER_TIMEOUT, TCP_NODELAY, backlog, timeouts.

    Every field may be ``None``, meaning "leave the operating system default". The defaults are
    chosen for a service talking to databases and HTTP APIs across a cloud network:

    * ``keepalive_idle=60``: the first probe after 60 s of silence. Cloud middleboxes forget idle
      flows after 350 s (AWS NLB and NAT gateway) or 240 s (Azure load balancer), and Linux waits
      7200 s; 60 s keeps every flow alive well below the strictest common timeout while costing
      one tiny packet a minute per idle connection.
    * ``keepalive_interval=10`` and ``keepalive_count=3``: a peer that stops answering is given
      three probes ten seconds apart, so it is declared dead after 60 + 3 x 10 = 90 s instead of
      the kernel's 2 h 11 min (7200 + 9 x 75 s).
    * ``user_timeout="auto"``: resolved to ``keepalive_idle + keepalive_interval *
      keepalive_count`` (90 s). Keepalive only probes *idle* connections; TCP_USER_TIMEOUT bounds
      how long sent data may stay unacknowledged, which otherwise lasts for the whole
      retransmission schedule (``tcp_retries2=15``, about 15 minutes).
    * ``nodelay=True``: disables Nagle's algorithm, which together with the peer's delayed ACK
      stalls small request/response exchanges by about 40 ms.
    * ``backlog=4096``: the accept queue ``listen()`` gets when the caller names none. Python's
      default is ``min(SOMAXCONN, 128)``, too small for a burst of clients; 4096 is the default
      ``net.core.somaxconn`` of Linux 5.4+, so the kernel grants it without truncation there.
    * ``accepted_user_timeout=None``: accepted (server-side) sockets get no TCP_USER_TIMEOUT.
      Linux applies TCP_USER_TIMEOUT to zero-window probing too, so a server with one aborts a
      *live* client that pauses reading for longer (a paused download, a slow SSE consumer).
      ``"same"`` gives accepted sockets ``user_timeout`` (stream to slow readers is cut), a
      number its own bound. Client sockets always get ``user_timeout``: a client whose server
      stops reading its request gives up after it.
    * ``connect_timeout=10``: a bound on establishing a connection, where the client library
      takes one; :func:`sockwise.harden` applies it to blocking connects that have no timeout
      of their own (a silently dropped SYN: a full accept queue, a firewall). An application's
      own timeout, shorter or longer, is kept. ``0`` means "wait indefinitely" (libpq's
      meaning).

    Args:
        keepalive: Turn ``SO_KEEPALIVE`` on (``True``) or off (``False``).
        keepalive_idle: Seconds of silence before the first probe (``TCP_KEEPIDLE``), 1..32767.
        keepalive_interval: Seconds between probes (``TCP_KEEPINTVL``), 1..32767.
        keepalive_count: Unanswered probes before the peer is declared dead (``TCP_KEEPCNT``),
            1..127.
        user_timeout: Seconds sent data may stay unacknowledged before the connection is
            aborted (``TCP_USER_TIMEOUT``, fractional allowed), 0..2147483.647; ``0`` turns it
            off explicitly; ``"auto"`` derives it from the keepalive settings.
        accepted_user_timeout: ``TCP_USER_TIMEOUT`` of accepted sockets, in seconds
            (0..2147483.647, ``0`` off); ``"same"`` uses ``user_timeout``; ``None`` leaves it
            unset, so slow readers are never cut off.
        nodelay: Set ``TCP_NODELAY`` (disable Nagle's algorithm).
        backlog: The listen backlog given to ``listen()`` calls that name none, >= 1.
        connect_timeout: Seconds allowed to establish a connection, >= 0 (0: no bound).

    Raises:
        TypeError: A field has the wrong type (the message names the field and the value).
        ValueError: A field is out of range (the message names the allowed range).

    .. versionadded:: 0.1.0

    """

    keepalive: bool | None = True
    keepalive_idle: int | None = 60
    keepalive_interval: int | None = 10
    keepalive_count: int | None = 3
    user_timeout: float | Literal["auto"] | None = _AUTO
    accepted_user_timeout: float | Literal["same"] | None = None
    nodelay: bool | None = True
    backlog: int | None = 4096
    connect_timeout: float | None = 10.0
    _user_timeout_derived: bool = field(default=False, init=False, repr=False, compare=False)

    #: Field names in declaration order (the public ones).
    FIELDS: ClassVar[tuple[str, ...]] = (
        "keepalive",
        "keepalive_idle",
        "keepalive_interval",
        "keepalive_count",
        "user_timeout",
        "accepted_user_timeout",
        "nodelay",
        "backlog",
        "connect_timeout",
    )

    def __post_init__(self) -> None:
        _check_bool("keepalive", self.keepalive)
        _check_int("keepalive_idle", self.keepalive_idle, *KEEPIDLE_RANGE, " seconds")
        _check_int("keepalive_interval", self.keepalive_interval, *KEEPINTVL_RANGE, " seconds")
        _check_int("keepalive_count", self.keepalive_count, *KEEPCNT_RANGE, " probes")
        _check_bool("nodelay", self.nodelay)
        _check_int("backlog", self.backlog, *BACKLOG_RANGE)
        _check_seconds("connect_timeout", self.connect_timeout)
        if self.user_timeout == _AUTO:
            object.__setattr__(self, "user_timeout", self._derive_user_timeout())
            object.__setattr__(self, "_user_timeout_derived", True)
        elif isinstance(self.user_timeout, str):
            raise ValueError(
                f"Policy.user_timeout={self.user_timeout!r} is not allowed: "
                f"use 'auto', None, or seconds in 0..{USER_TIMEOUT_MAX}"
            )
        else:
            _check_seconds("user_timeout", self.user_timeout, USER_TIMEOUT_MAX)
        accepted = self.accepted_user_timeout
        if isinstance(accepted, str) and accepted != _SAME:
            raise ValueError(
                f"Policy.accepted_user_timeout={accepted!r} is not allowed: "
                f"use 'same', None, or seconds in 0..{USER_TIMEOUT_MAX}"
            )
        if accepted != _SAME:
            _check_seconds("accepted_user_timeout", accepted, USER_TIMEOUT_MAX)

    def _derive_user_timeout(self) -> float | None:
        if (
            self.keepalive
            and self.keepalive_idle is not None
            and self.keepalive_interval is not None
            and self.keepalive_count is not None
        ):
            total = self.keepalive_idle + self.keepalive_interval * self.keepalive_count
            return min(float(total), USER_TIMEOUT_MAX)  # the kernel's limit (INT_MAX ms)
        return None

    # -- presets -----------------------------------------------------------------------------

    @classmethod
    def default(cls) -> Self:
        """The default policy: keepalive 60/10/3, dead peer declared within 90 s, NODELAY on."""
        return cls()

    @classmethod
    def interactive(cls) -> Self:
        """Low latency for interactive services: a dead peer is noticed within 20 s.

        Idle 10 s / interval 5 s / count 2, TCP_NODELAY, and a 3 s connect timeout: for RPC and
        request/response traffic inside a data centre, where a few extra probe packets are cheap
        and a hung request costs more than a reconnect.
        """
        return cls(keepalive_idle=10, keepalive_interval=5, keepalive_count=2, connect_timeout=3.0)

    @classmethod
    def behind_nat(cls, idle_timeout: float = 350) -> Self:
        """A policy that keeps flows alive through a NAT or load balancer forgetting idle flows.

        The first probe is sent at a third of *idle_timeout* (at most 60 s), so even a lost probe
        and its retry arrive before the middlebox forgets the flow.

        Args:
            idle_timeout: The middlebox's idle timeout in seconds (350 for AWS NLB and NAT
                gateway, 240 for Azure load balancer; see ``MIDDLEBOX_IDLE_TIMEOUTS``), >= 3.

        """
        if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)):
            raise _fail_type("behind_nat(idle_timeout)", idle_timeout, "a number of seconds")
        if not math.isfinite(idle_timeout) or idle_timeout < 3:
            raise ValueError(
                f"Policy.behind_nat(idle_timeout={idle_timeout!r}) is out of range: "
                "allowed >= 3 seconds"
            )
        idle = max(1, min(60, int(idle_timeout // 3)))
        interval = max(1, min(10, idle // 3))
        return cls(keepalive_idle=idle, keepalive_interval=interval, keepalive_count=3)

    @classmethod
    def aws_nlb(cls) -> Self:
        """:meth:`behind_nat` for the AWS Network Load Balancer's 350 s idle timeout."""
        return cls.behind_nat(MIDDLEBOX_IDLE_TIMEOUTS["aws-nlb"])

    @classmethod
    def azure_lb(cls) -> Self:
        """:meth:`behind_nat` for the Azure Load Balancer's default 240 s idle timeout."""
        return cls.behind_nat(MIDDLEBOX_IDLE_TIMEOUTS["azure-lb"])

    @classmethod
    def kernel_defaults(cls) -> Self:
        """A policy that changes nothing: every setting is left to the operating system."""
        return cls(
            keepalive=None,
            keepalive_idle=None,
            keepalive_interval=None,
            keepalive_count=None,
            user_timeout=None,
            accepted_user_timeout=None,
            nodelay=None,
            backlog=None,
            connect_timeout=None,
        )

    @classmethod
    def preset(cls, name: str) -> Policy:
        """The preset *name*, as ``SOCKWISE_PRESET`` and ``sockwise policy --preset`` take it.

        ``default``, ``interactive``, ``kernel``, ``aws-nlb``, ``azure-lb`` or ``nat:SECONDS``
        (:meth:`behind_nat`); case and surrounding blanks are ignored.

        Raises:
            ValueError: An unknown name (the message lists the known ones).

        """
        return _preset(*_env.parse_preset(name))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, base: Policy | None = None
    ) -> Self:
        """Build a policy from ``SOCKWISE_*`` environment variables.

        ``SOCKWISE_PRESET`` picks the starting point (``default``, ``interactive``, ``kernel``,
        ``aws-nlb``, ``azure-lb`` or ``nat:SECONDS``); ``SOCKWISE_KEEPALIVE``,
        ``SOCKWISE_KEEPALIVE_IDLE``, ``SOCKWISE_KEEPALIVE_INTERVAL``,
        ``SOCKWISE_KEEPALIVE_COUNT``, ``SOCKWISE_USER_TIMEOUT``,
        ``SOCKWISE_ACCEPTED_USER_TIMEOUT``, ``SOCKWISE_NODELAY``, ``SOCKWISE_BACKLOG`` and
        ``SOCKWISE_CONNECT_TIMEOUT`` override single fields. Booleans take
        ``1/0/true/false/yes/no/on/off``; ``none`` (or ``default``) means "OS default";
        ``SOCKWISE_USER_TIMEOUT`` also takes ``auto``, ``SOCKWISE_ACCEPTED_USER_TIMEOUT``
        ``same``.

        A ``SOCKWISE_*`` name sockwise does not know (see :data:`sockwise.policy.ENV_VARS`) is
        ignored with one :class:`~sockwise.ConfigurationWarning` per process that names the
        closest known variable; it never stops the application.

        Args:
            environ: The variables to read; ``os.environ`` when omitted.
            base: The policy to start from when no preset is named (default: ``Policy()``).

        Raises:
            ValueError: A malformed value of a known variable (the message names the variable
                and the value).

        """
        preset, changes = _env.policy_kwargs_from_env(environ)
        start = _preset(*preset) if preset is not None else None
        origin = start if start is not None else (base if base is not None else Policy())
        values: dict[str, Any] = {name: getattr(origin, name) for name in cls.FIELDS}
        if origin.user_timeout_derived:
            values["user_timeout"] = _AUTO
        values.update(changes)
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """Return the ``SOCKWISE_*`` variables that :meth:`from_env` turns back into this policy."""
        return _env.policy_to_env(self)

    # -- derived values ------------------------------------------------------------------------

    def replace(self, **changes: Any) -> Self:
        """Return a copy with *changes* applied (validated like the constructor).

        A ``user_timeout`` that was derived (``"auto"``) is derived again from the new keepalive
        numbers unless *changes* sets it.
        """
        unknown = set(changes) - set(self.FIELDS)
        if unknown:
            raise TypeError(
                f"Policy.replace() got unknown field(s) {sorted(unknown)}; "
                f"fields are {', '.join(self.FIELDS)}"
            )
        values: dict[str, Any] = {name: getattr(self, name) for name in self.FIELDS}
        if self._user_timeout_derived:
            values["user_timeout"] = _AUTO
        values.update(changes)
        return type(self)(**values)

    @property
    def user_timeout_derived(self) -> bool:
        """Whether ``user_timeout`` was derived from the keepalive settings (``"auto"``)."""
        return self._user_timeout_derived

    @property
    def dead_peer_bound(self) -> float | None:
        """Seconds within which an idle connection to a vanished peer is declared dead.

        This describes what Linux does (``tcp_keepalive_timer`` in ``net/ipv4/tcp_timer.c``):
        the first probe goes out after ``keepalive_idle`` seconds of silence, then one every
        ``keepalive_interval``. Without ``TCP_USER_TIMEOUT`` the connection dies when
        ``keepalive_count`` probes are unanswered: ``idle + interval x count``. With
        ``TCP_USER_TIMEOUT`` set, the count is *ignored*: at each probe tick the kernel aborts
        once at least one probe is out and ``user_timeout`` seconds have passed since the peer
        was last heard, so the connection dies at the first tick ``idle + k x interval`` (k >= 1)
        that reaches ``user_timeout``.

        ``None`` when keepalive is not enabled with all three numbers set: the policy then
        guarantees no bound (the kernel's own default is 7200 + 9 x 75 s).

        A connection with unacknowledged data in flight is not idle: :meth:`unacked_data_bound`
        bounds it instead.
        """
        idle, intvl, count = self.keepalive_idle, self.keepalive_interval, self.keepalive_count
        if not self.keepalive or idle is None or intvl is None or count is None:
            return None
        timeout = self.user_timeout
        if isinstance(timeout, (int, float)) and timeout > 0:
            ticks = max(1, math.ceil((timeout - idle) / intvl))
            return float(idle + ticks * intvl)
        return float(idle + intvl * count)

    def unacked_data_bound(self, *, accepted: bool = False) -> float | None:
        """Seconds within which a connection whose sent data stays unacknowledged is aborted.

        Covers data in flight to a peer that vanished, and a live peer that stops reading (its
        zero window: Linux applies ``TCP_USER_TIMEOUT`` to the window probes too, although the
        peer answers them). The kernel counts ``user_timeout`` from the first retransmission
        (or window probe), which leaves about 0.4 s after the send on a fast path (a tail loss
        probe, then ``TCP_RTO_MIN``), so the bound is ``user_timeout + 0.4`` s from the send.
        A slow path adds its larger retransmission timeout, and so does a connection less than
        about a second old, whose timeout still starts from the initial 1 s (measured: data sent
        right after connect() failed ``user_timeout + 1.5`` s later).

        ``accepted=True`` gives the bound of accepted (server-side) sockets, which follow
        :attr:`accepted_user_timeout`: ``None`` by default, so a server waits for a slow reader
        as long as it keeps answering (a peer that vanished is still found by keepalive or, with
        data in flight, after ``tcp_retries2``, about 15 minutes).

        ``None`` when no ``TCP_USER_TIMEOUT`` applies.
        """
        timeout = _export.user_timeout_for(self, accepted=accepted)
        if timeout is None or timeout <= 0:
            return None
        return timeout + FIRST_RETRANSMISSION

    def connect_bound(self, timeout: float | None = None) -> float | None:
        """Seconds within which a hardened connect fails when nothing answers its SYN.

        What :func:`sockwise.harden` does to a connect whose SYNs are silently dropped:

        * A blocking connect with no timeout of its own (*timeout* ``None``) is bounded by
          ``connect_timeout`` (``TCP_USER_TIMEOUT`` lowered to it for the handshake only, or a
          socket timeout where the application set ``TCP_USER_TIMEOUT`` itself).
        * A connect with the application's own *timeout* keeps it, shorter or longer than
          ``connect_timeout``: sockwise never shortens it with ``TCP_SYNCNT``.
        * In both cases ``TCP_USER_TIMEOUT`` is set before the SYN leaves, and Linux gives up on
          a SYN unanswered for ``user_timeout`` seconds (exactly, not at a retransmission):
          the bound is never longer than ``user_timeout``.

        ``None`` when neither applies (then the kernel's SYN schedule decides: on Linux 6.x
        with ``tcp_syn_retries=6`` and ``tcp_syn_linear_timeouts=4``, about 131 s).
        Non-blocking connects (asyncio) have no socket timeout: their bound is ``user_timeout``
        or the application's own (``asyncio.wait_for``, ``open_connection`` in a timeout).

        Args:
            timeout: The socket timeout the application set (``socket.create_connection(...,
                timeout=...)``), or ``None``.

        """
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0
        ):
            raise ValueError(f"connect_bound(timeout={timeout!r}): expected seconds >= 0 or None")
        candidates: list[float] = []
        if timeout is not None:
            candidates.append(float(timeout))
        elif self.connect_timeout:
            candidates.append(float(self.connect_timeout))
        user_timeout = self.user_timeout
        if isinstance(user_timeout, (int, float)) and user_timeout > 0:
            candidates.append(float(user_timeout))
        return min(candidates) if candidates else None

    # -- exports -------------------------------------------------------------------------------

    def socket_options(self, *, accepted: bool = False) -> list[tuple[int, int, int]]:
        """The ``(level, option, value)`` triples for ``setsockopt``, for the running platform.

        This is the format urllib3 (``HTTPConnection(socket_options=...)``) and httpx
        (``HTTPTransport(socket_options=...)``) take. Options the platform lacks are left out
        (logged once). With ``accepted=True``, the options of an accepted (server-side) socket:
        ``TCP_USER_TIMEOUT`` follows :attr:`accepted_user_timeout`.
        """
        return _export.socket_options(self, accepted=accepted)

    def apply(
        self, sock: socket.socket, *, strict: bool = False, accepted: bool = False
    ) -> tuple[str, ...]:
        """Set this policy's options on a live socket and return the names of those set.

        A socket that is not TCP (UDP, AF_UNIX, raw) is left untouched and ``()`` is returned;
        with ``strict=True`` it raises ``ValueError`` instead. Options the platform lacks are
        skipped with a one-time log message. ``accepted=True`` applies the options of an
        accepted socket (:attr:`accepted_user_timeout` instead of :attr:`user_timeout`).

        Applied *before* ``connect()``, ``TCP_USER_TIMEOUT`` also bounds the handshake: Linux
        gives up on a SYN that stays unanswered for ``user_timeout`` seconds.

        Raises:
            ValueError: ``strict=True`` and *sock* is not a TCP socket.
            OSError: The kernel refused an option (for example, the socket is closed).

        """
        return _export.apply(self, sock, strict=strict, accepted=accepted)

    def libpq_params(self) -> dict[str, int]:
        """The libpq connection keywords of this policy (for psycopg ``connect(**params)``).

        ``keepalives``, ``keepalives_idle``, ``keepalives_interval``, ``keepalives_count``,
        ``tcp_user_timeout`` (milliseconds) and ``connect_timeout`` (whole seconds, rounded up;
        libpq treats 1 as 2). Settings left to the OS are left out.
        """
        return _export.libpq_params(self)

    def grpc_options(self) -> list[tuple[str, int]]:
        """Channel arguments for a grpcio *client* channel (``grpc.insecure_channel(options=...)``).

        grpcio opens its sockets in C, out of :func:`sockwise.harden`'s reach; its keepalive is
        an HTTP/2 PING, not a TCP probe. ``grpc.keepalive_time_ms`` is ``keepalive_idle``,
        ``grpc.keepalive_timeout_ms`` the rest of :attr:`dead_peer_bound` (so a dead server is
        declared dead within the same bound), pings are sent on idle channels
        (``grpc.keepalive_permit_without_calls``, ``grpc.http2.max_pings_without_data=0``).
        ``[]`` when keepalive is not enabled with all three numbers. The server must accept
        pings that often: give it :meth:`grpc_server_options`.
        """
        bound = self.dead_peer_bound
        idle = self.keepalive_idle
        if bound is None or idle is None:
            return []
        return [
            ("grpc.keepalive_time_ms", idle * 1000),
            ("grpc.keepalive_timeout_ms", max(1, round((bound - idle) * 1000))),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]

    def grpc_server_options(self) -> list[tuple[str, int]]:
        """Channel arguments for a grpcio *server* that lets :meth:`grpc_options` clients ping.

        A gRPC server answers pings more frequent than its
        ``grpc.http2.min_ping_interval_without_data_ms`` (5 minutes by default) with GOAWAY
        ``too_many_pings``; this allows one per ``keepalive_idle`` and pings without calls, and
        pings idle clients itself with the same numbers. ``[]`` when keepalive is not enabled.
        """
        client = self.grpc_options()
        if not client or self.keepalive_idle is None:
            return []
        return [
            *client[:3],
            ("grpc.http2.min_ping_interval_without_data_ms", self.keepalive_idle * 1000),
            ("grpc.http2.max_ping_strikes", 0),
        ]

    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a redis-py client (``redis.Redis(**policy.redis_kwargs())``).

        ``socket_keepalive`` and ``socket_keepalive_options`` (redis-py sets each at
        ``IPPROTO_TCP``: ``TCP_KEEPIDLE``, ``TCP_KEEPINTVL``, ``TCP_KEEPCNT`` and
        ``TCP_USER_TIMEOUT``), and ``socket_connect_timeout``. redis-py applies the options
        only with ``socket_keepalive=True``, so a policy with keepalive off exports no options;
        it sets ``TCP_NODELAY`` itself. Options the platform lacks are left out.
        """
        out: dict[str, Any] = {}
        if self.keepalive is not None:
            out["socket_keepalive"] = self.keepalive
        if self.keepalive:
            tcp = socket.IPPROTO_TCP
            options = {
                opt: value
                for name, level, opt, value in _export.resolved_options(self)
                if level == tcp and name != "TCP_NODELAY"
            }
            if options:
                out["socket_keepalive_options"] = options
        if self.connect_timeout:
            out["socket_connect_timeout"] = self.connect_timeout
        return out

    def libpq_conninfo(self) -> str:
        """The same keywords as :meth:`libpq_params`, as a libpq conninfo string."""
        return " ".join(f"{k}={v}" for k, v in self.libpq_params().items())

    def describe(self) -> dict[str, object]:
        """A plain dict of the fields plus ``dead_peer_bound``, for logs, JSON and the CLI."""
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        out["user_timeout_derived"] = self._user_timeout_derived
        out["dead_peer_bound"] = self.dead_peer_bound
        out["connect_bound"] = self.connect_bound()
        out["unacked_data_bound"] = self.unacked_data_bound()
        out["accepted_unacked_data_bound"] = self.unacked_data_bound(accepted=True)
        return out


def _preset(name: str, seconds: float | None) -> Policy:
    """The preset that :func:`sockwise.policy._env.parse_preset` parsed."""
    if name == "nat":
        assert seconds is not None  # parse_preset guarantees it
        return Policy.behind_nat(seconds)
    presets = {
        "default": Policy.default,
        "interactive": Policy.interactive,
        "kernel": Policy.kernel_defaults,
        "aws-nlb": Policy.aws_nlb,
        "azure-lb": Policy.azure_lb,
    }
    return presets[name]()
