"""How long a client takes to notice a peer that vanished: kernel defaults vs sockwise's policy.

Two network namespaces joined by a veth pair (:class:`sockwise.testing.NetnsPair`); the server
accepts connections and holds them. Then the server's link goes down: from the client's side the
peer vanishes without a FIN, RST or ICMP -- a crashed host, a NAT that forgot the flow. Four (six
in a full run) connections wait at once:

* idle, blocked in ``recv()``: only keepalive can notice (kernel default: after 7200 + 9 x 75 s);
* with unacknowledged data sent after the fault: retransmissions run for about 15 minutes
  (``tcp_retries2=15``) unless ``TCP_USER_TIMEOUT`` bounds them.

Each is measured under kernel defaults and under a policy; a wait longer than the cap is reported
as ``> cap``. Skipped, with the reason, where namespaces cannot be created (not root, no iproute2).
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from typing import Any

from sockwise.policy import Policy


def _policies(quick: bool) -> list[tuple[str, Policy | None]]:
    short = Policy(keepalive_idle=2, keepalive_interval=1, keepalive_count=3)
    if quick:
        return [("kernel defaults", None), ("policy 2/1/3 (bound 5 s)", short)]
    return [
        ("kernel defaults", None),
        ("Policy.interactive()", Policy.interactive()),
        ("Policy() default", Policy()),
    ]


def _wait_dead(
    sock: socket.socket, send: bool, started: float, cap: float, out: dict[str, Any]
) -> None:
    """Block on *sock* until the kernel declares the peer dead or *cap* seconds pass."""
    try:
        if send:
            sock.sendall(b"x" * 512)
        sock.settimeout(max(0.1, cap - (time.monotonic() - started)))
        data = sock.recv(1)
        out["outcome"] = "closed" if not data else "data"
    except OSError as exc:
        out["outcome"] = "capped" if exc.errno is None else errno.errorcode.get(exc.errno or 0, "?")
    out["elapsed"] = time.monotonic() - started


#: Kernel defaults: keepalive 7200 + 9 x 75 s; ``tcp_retries2=15`` retransmissions (about 924.6 s).
KERNEL_IDLE_BOUND = 7200 + 9 * 75
KERNEL_SEND_BOUND = 924.6


def _bound(policy: Policy | None, send: bool) -> float | None:
    if policy is None:
        return KERNEL_SEND_BOUND if send else KERNEL_IDLE_BOUND
    if send:
        timeout = policy.user_timeout
        return float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None
    return policy.dead_peer_bound


def run(quick: bool = False) -> dict[str, Any]:
    """Measure dead-peer detection in network namespaces (see the module docstring).

    Args:
        quick: Two policies and a 12 s cap instead of three and a 120 s cap.

    """
    from sockwise.testing import NetnsPair, netns_unavailable_reason

    reason = netns_unavailable_reason()
    if reason is not None:
        return {"skipped": f"network namespaces unavailable: {reason}"}
    cap = 12.0 if quick else 120.0
    policies = _policies(quick)
    with NetnsPair.create() as pair:
        listener = pair.run_in_server(
            lambda: socket.create_server((pair.server_addr, 0), backlog=16)
        )
        port = listener.getsockname()[1]
        held: list[socket.socket] = [listener]
        cases: list[tuple[str, Policy | None, bool, socket.socket]] = []
        try:
            for label, policy in policies:
                for send in (False, True):

                    def connect(policy: Policy | None = policy) -> socket.socket:
                        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                        if policy is not None:
                            policy.apply(s)
                        s.settimeout(5)
                        s.connect((pair.server_addr, port))
                        return s

                    client = pair.run_in_client(connect, timeout=10)
                    held.append(client)
                    held.append(listener.accept()[0])
                    kind = "send pending" if send else "idle recv"
                    cases.append((f"{kind}, {label}", policy, send, client))
            pair.blackhole()
            started = time.monotonic()
            results: list[dict[str, Any]] = [{} for _ in cases]
            threads = [
                threading.Thread(target=_wait_dead, args=(c[3], c[2], started, cap, r), daemon=True)
                for c, r in zip(cases, results, strict=True)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(cap + 10)
        finally:
            for s in held:
                s.close()
    rows = []
    for (label, policy, _send, _sock), res in zip(cases, results, strict=True):
        elapsed = float(res.get("elapsed", cap))
        capped = res.get("outcome", "capped") == "capped"
        rows.append(
            {
                "case": label,
                "detected_s": round(cap if capped else elapsed, 2),
                "shown": f"> {cap:g} s (still waiting)"
                if capped
                else f"{elapsed:.1f} s ({res['outcome']})",
                "capped": capped,
                "bound_s": _bound(policy, _send),
            }
        )
    best = min((r for r in rows if not r["capped"]), key=lambda r: r["detected_s"], default=None)
    summary = (
        f"kernel defaults: still waiting after {cap:g} s; policy: dead peer noticed in "
        f"{best['detected_s']:.1f} s"
        if best
        else f"nothing detected within {cap:g} s"
    )
    return {
        "name": "deadpeer",
        "title": "Time to notice a vanished peer (network namespaces, black-holed link)",
        "metric": "detected_s",
        "cap_s": cap,
        "rows": rows,
        "summary": summary,
    }
