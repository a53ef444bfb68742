"""``sockwise doctor``: the kernel TCP settings that matter, each with a verdict and a fix.

Theory of operation: every check reads one value from procfs (``/proc/sys/net/...`` or the
``TcpExt`` counters of ``/proc/net/netstat``), compares it with what sockwise's policy needs, and
says in plain words what it means and which command would change it. Nothing is ever written: the
fix is printed, not run. A value that cannot be read or parsed gives the verdict ``unknown`` with
the reason, never a traceback. The proc root is a parameter (``--proc-root`` or the
``SOCKWISE_PROC_ROOT`` environment variable) so tests can point it at malformed files.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final, Literal

from sockwise._net.proc import parse_netstat, read_text
from sockwise.cli._policy import PolicyError, load_policy
from sockwise.cli._render import dump_json, seconds
from sockwise.policy import MIDDLEBOX_IDLE_TIMEOUTS, Policy

Verdict = Literal["ok", "warn", "info", "unknown"]

#: The strictest common middlebox idle timeout (Azure load balancer), in seconds.
STRICTEST_IDLE: Final = min(v for k, v in MIDDLEBOX_IDLE_TIMEOUTS.items() if k != "linux-conntrack")


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    value: str | None
    verdict: Verdict
    meaning: str
    fix: str | None = None


class Unreadable(Exception):
    """A procfs value that is missing, unreadable or malformed (the message says which)."""


class Proc:
    """Reads procfs values under a root directory (``/proc`` normally)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def text(self, rel: str) -> str:
        """The stripped content of ``<root>/<rel>``."""
        path = os.path.join(self.root, rel)
        try:
            return read_text(path).strip()
        except OSError as exc:
            raise Unreadable(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None

    def ints(self, rel: str, count: int = 1) -> list[int]:
        """*count* whitespace-separated integers from ``<root>/<rel>``."""
        raw = self.text(rel)
        parts = raw.split()
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != count:
            raise Unreadable(f"malformed {os.path.join(self.root, rel)}: {raw[:40]!r}")
        return values

    def tcpext(self) -> dict[str, int]:
        """The ``TcpExt`` counters of ``net/netstat`` (names line followed by values line)."""
        counters = parse_netstat(self.text("net/netstat"))
        tcpext = {k[7:]: v for k, v in counters.items() if k.startswith("TcpExt.")}
        if not tcpext:
            raise Unreadable(f"no TcpExt counters in {os.path.join(self.root, 'net/netstat')}")
        return tcpext


def _verdict(table: dict[int, Verdict], value: int, default: Verdict) -> Verdict:
    return table.get(value, default)


def _sysctl_fix(name: str, value: object) -> str:
    return f"sysctl -w {name}={value}  (persist in /etc/sysctl.d/90-tcp.conf)"


def _keepalive(proc: Proc, policy: Policy) -> list[Check]:
    out: list[Check] = []
    per_socket = policy.keepalive and policy.keepalive_idle is not None
    covered = " sockwise's policy sets it per socket, so hardened sockets are covered."
    time_, intvl, probes = (
        proc.ints("sys/net/ipv4/tcp_keepalive_time")[0],
        proc.ints("sys/net/ipv4/tcp_keepalive_intvl")[0],
        proc.ints("sys/net/ipv4/tcp_keepalive_probes")[0],
    )
    bound = time_ + intvl * probes
    long_idle = time_ > STRICTEST_IDLE
    out.append(
        Check(
            "net.ipv4.tcp_keepalive_time",
            str(time_),
            ("info" if per_socket else "warn") if long_idle else "ok",
            f"Sockets that enable keepalive without their own numbers first probe after "
            f"{seconds(time_)} of silence; cloud NATs and load balancers forget idle flows after "
            f"{STRICTEST_IDLE}-350 s." + (covered if per_socket and long_idle else ""),
            _sysctl_fix("net.ipv4.tcp_keepalive_time", 60) if long_idle else None,
        )
    )
    out.append(
        Check(
            "net.ipv4.tcp_keepalive_intvl",
            str(intvl),
            "ok" if intvl <= 30 else ("info" if per_socket else "warn"),
            f"Seconds between unanswered probes. With {probes} probes a vanished peer is "
            f"noticed {seconds(bound)} after the connection went quiet (kernel numbers).",
            _sysctl_fix("net.ipv4.tcp_keepalive_intvl", 10) if intvl > 30 else None,
        )
    )
    out.append(
        Check(
            "net.ipv4.tcp_keepalive_probes",
            str(probes),
            "ok" if probes <= 5 else "info",
            "Unanswered probes before the kernel declares the peer dead.",
            _sysctl_fix("net.ipv4.tcp_keepalive_probes", 3) if probes > 5 else None,
        )
    )
    return out


def _retries(proc: Proc, policy: Policy) -> Check:
    retries2 = proc.ints("sys/net/ipv4/tcp_retries2")[0]
    covered = isinstance(policy.user_timeout, (int, float)) and policy.user_timeout > 0
    return Check(
        "net.ipv4.tcp_retries2",
        str(retries2),
        "info" if covered or retries2 <= 8 else "warn",
        f"Retransmissions of unacknowledged data before the connection is dropped "
        f"({retries2} is {'about 15 minutes' if retries2 >= 15 else 'shorter'} of retries). "
        + (
            f"sockwise's TCP_USER_TIMEOUT ({policy.user_timeout:g} s) bounds it per socket."
            if covered
            else "Set a TCP_USER_TIMEOUT (sockwise Policy.user_timeout) to bound it."
        ),
        None
        if covered
        else "sockwise.harden() with Policy(user_timeout='auto'), or "
        + _sysctl_fix("net.ipv4.tcp_retries2", 8),
    )


def _queues(proc: Proc, policy: Policy) -> list[Check]:
    somaxconn = proc.ints("sys/net/core/somaxconn")[0]
    wanted = policy.backlog or 4096
    out = [
        Check(
            "net.core.somaxconn",
            str(somaxconn),
            "ok" if somaxconn >= wanted else "warn",
            f"The kernel silently cuts every listen() backlog to {somaxconn}. "
            + (
                f"sockwise's backlog {wanted} fits."
                if somaxconn >= wanted
                else f"sockwise's backlog {wanted} is truncated: bursts of clients overflow."
            ),
            None if somaxconn >= wanted else _sysctl_fix("net.core.somaxconn", wanted),
        )
    ]
    syn = proc.ints("sys/net/ipv4/tcp_max_syn_backlog")[0]
    out.append(
        Check(
            "net.ipv4.tcp_max_syn_backlog",
            str(syn),
            "ok" if syn >= 1024 else "warn",
            "Half-open connections (SYN received, handshake unfinished) the kernel keeps per "
            "listener before it drops SYNs or falls back to SYN cookies.",
            None if syn >= 1024 else _sysctl_fix("net.ipv4.tcp_max_syn_backlog", 4096),
        )
    )
    cookies = proc.ints("sys/net/ipv4/tcp_syncookies")[0]
    out.append(
        Check(
            "net.ipv4.tcp_syncookies",
            str(cookies),
            _verdict({0: "warn", 1: "ok"}, cookies, "info"),
            {
                0: "Off: a full SYN queue drops new connections (a SYN flood takes the port down).",
                1: "On when the SYN queue overflows: new connections still succeed.",
            }.get(cookies, "Always on: TCP options (window scaling) may be lost on every connect."),
            _sysctl_fix("net.ipv4.tcp_syncookies", 1) if cookies != 1 else None,
        )
    )
    return out


def _counters(proc: Proc, policy: Policy) -> list[Check]:
    ext = proc.tcpext()
    out = []
    for key, what in (
        ("ListenOverflows", "a connection found an accept queue full"),
        ("ListenDrops", "an incoming connection was dropped at a listener"),
    ):
        if key not in ext:
            out.append(Check(f"TcpExt.{key}", None, "unknown", f"{key} is not in net/netstat."))
            continue
        n = ext[key]
        out.append(
            Check(
                f"TcpExt.{key}",
                str(n),
                "ok" if n == 0 else "warn",
                f"Times since boot (this network namespace) that {what}."
                + (" The application accepts too slowly or its backlog is too small." if n else ""),
                None
                if n == 0
                else "raise the listen backlog (sockwise Policy.backlog, or listen(4096)) and "
                "net.core.somaxconn; accept faster (more workers)",
            )
        )
    return out


def _ports(proc: Proc, policy: Policy) -> list[Check]:
    lo, hi = proc.ints("sys/net/ipv4/ip_local_port_range", 2)
    size = hi - lo + 1
    out = [
        Check(
            "net.ipv4.ip_local_port_range",
            f"{lo} {hi}",
            "ok" if size >= 16384 else "warn",
            f"{size} ephemeral ports per destination (ip, port); each closed outgoing connection "
            "holds one for 60 s in TIME_WAIT, so about "
            f"{size // 60} new connections a second to one destination exhaust them.",
            None if size >= 16384 else _sysctl_fix("net.ipv4.ip_local_port_range", '"10240 65535"'),
        )
    ]
    reuse = proc.ints("sys/net/ipv4/tcp_tw_reuse")[0]
    out.append(
        Check(
            "net.ipv4.tcp_tw_reuse",
            str(reuse),
            _verdict({1: "ok", 2: "info"}, reuse, "warn"),
            {
                0: "Outgoing connections never reuse a port held in TIME_WAIT.",
                1: "Outgoing connections may reuse a TIME_WAIT port when timestamps make it safe.",
                2: "TIME_WAIT ports are reused for loopback connections only (the default). "
                "Pool connections (sockwise pools) rather than churning them.",
            }.get(reuse, "An unexpected value."),
            _sysctl_fix("net.ipv4.tcp_tw_reuse", 1) if reuse == 0 else None,
        )
    )
    fin = proc.ints("sys/net/ipv4/tcp_fin_timeout")[0]
    out.append(
        Check(
            "net.ipv4.tcp_fin_timeout",
            str(fin),
            "ok" if fin <= 60 else "warn",
            f"Seconds an orphaned connection waits in FIN_WAIT2 for the peer's FIN ({fin} s).",
            None if fin <= 60 else _sysctl_fix("net.ipv4.tcp_fin_timeout", 30),
        )
    )
    return out


def _policy_check(policy: Policy, origin: str) -> Check:
    bound = policy.dead_peer_bound
    return Check(
        "sockwise policy",
        f"dead_peer_bound={seconds(bound)}" if bound is not None else "no keepalive",
        "ok" if bound is not None else "warn",
        f"The policy sockwise applies (from {origin}): "
        + (
            f"a silent peer is declared dead within {seconds(bound)}; NODELAY "
            f"{'on' if policy.nodelay else 'left to the OS'}; backlog {policy.backlog}."
            if bound is not None
            else "keepalive is not fully set, so dead peers are not bounded."
        ),
        None if bound is not None else "unset SOCKWISE_KEEPALIVE*/SOCKWISE_PRESET=kernel",
    )


def _clients(proc: Proc, policy: Policy) -> Check:
    """Installed clients whose C core opens its own sockets: ``harden()`` cannot reach them."""
    from sockwise.harden import installed_c_clients

    name = "clients with C sockets"
    found = installed_c_clients()
    if not found:
        meaning = "No installed client opens its sockets in C: harden() reaches them all."
        return Check(name, "none installed", "ok", meaning)
    return Check(
        name,
        ", ".join(dist for _, dist, _ in found),
        "info",
        "These open their sockets in their C core: sockwise.harden() does not reach them (a "
        "process importing one lists it in Hardening.unreached).",
        "; ".join(f"{dist}: set {advice}" for _, dist, advice in found),
    )


_GROUPS: Final[tuple[tuple[str, Callable[[Proc, Policy], Check | list[Check]]], ...]] = (
    ("net.ipv4.tcp_keepalive_*", _keepalive),
    ("net.ipv4.tcp_retries2", _retries),
    ("net.core.somaxconn and SYN queue", _queues),
    ("TcpExt counters", _counters),
    ("ephemeral ports", _ports),
    ("clients with C sockets", _clients),
)


def _group_unknown(label: str, exc: Unreadable) -> Check:
    return Check(label, None, "unknown", f"Could not check: {exc}.")


def run_checks(proc_root: str = "/proc") -> list[Check]:
    """Run every check against the procfs under *proc_root*; never raises for bad procfs."""
    proc = Proc(proc_root)
    out: list[Check] = []
    try:
        policy, origin = load_policy(None)
        out.append(_policy_check(policy, origin))
    except PolicyError as exc:
        policy = Policy()
        out.append(
            Check(
                "sockwise policy", None, "warn", f"Invalid environment: {exc}.", "fix the variable"
            )
        )
    for label, check in _GROUPS:
        try:
            found = check(proc, policy)
        except Unreadable as exc:
            out.append(_group_unknown(label, exc))
            continue
        out.extend(found if isinstance(found, list) else [found])
    return out


def render(checks: list[Check], proc_root: str) -> str:
    """The checks as an indented report with a summary line."""
    lines = [
        f"sockwise doctor: kernel TCP settings from {proc_root} (read only, nothing changed)",
        "",
    ]
    pad = " " * 10
    for c in checks:
        lines.append(f"  {c.verdict:<7} {c.name} = {c.value if c.value is not None else '?'}")
        lines.extend(textwrap.wrap(c.meaning, 96, initial_indent=pad, subsequent_indent=pad))
        if c.fix:
            lines.append(f"{pad}fix: {c.fix}")
    counts = {v: sum(c.verdict == v for c in checks) for v in ("ok", "warn", "info", "unknown")}
    lines.append("")
    lines.append("  " + ", ".join(f"{n} {v}" for v, n in counts.items() if n))
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    """``sockwise doctor [--json] [--proc-root DIR]``."""
    root = args.proc_root or os.environ.get("SOCKWISE_PROC_ROOT") or "/proc"
    checks = run_checks(root)
    if args.json:
        dump_json({"proc_root": root, "checks": [asdict(c) for c in checks]}, sys.stdout)
    else:
        print(render(checks, root))
    return 0
