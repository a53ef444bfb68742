"""Addresses: decoded from what the kernel (or psutil) reports, and formatted for people.

Every socket reader returns ``(host, port)`` tuples; :func:`format_address` is the one way they
are shown (``127.0.0.1:80``, ``[::1]:80``) in messages, metrics labels and CLI tables.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

Address = tuple[str, int]


def format_address(addr: Address) -> str:
    """``ip:port``, with brackets around an IPv6 address."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """Whether *host* is a loopback address (``127.0.0.0/8``, ``::1``, ``::ffff:127.x``)."""
    return host.startswith(("127.", "::ffff:127.")) or host == "::1"


def diag_address(family: int, raw: bytes, port: bytes) -> Address:
    """``(address, port)`` from sock_diag's raw address (16 bytes) and big-endian port."""
    try:
        if family == socket.AF_INET:
            host = socket.inet_ntop(socket.AF_INET, raw[:4])
        else:
            host = socket.inet_ntop(socket.AF_INET6, raw[:16])
    except (ValueError, OSError):
        host = "?"
    return host, int.from_bytes(port, "big")


def proc_address(text: str, family: int) -> Address:
    """Decode ``"0100007F:1F90"`` (``family`` AF_INET) into ``("127.0.0.1", 8080)``.

    ``/proc/net/tcp{,6}`` shows addresses as hexadecimal 32-bit words in host byte order.

    Raises:
        ValueError: *text* is not an address of *family* in ``/proc/net/tcp`` form.

    """
    host_hex, _, port_hex = text.partition(":")
    port = int(port_hex, 16)
    raw = bytes.fromhex(host_hex)
    if (family == socket.AF_INET and len(raw) == 4) or (
        family == socket.AF_INET6 and len(raw) == 16
    ):
        words = raw
    else:
        raise ValueError(f"bad address {text!r}")
    if sys.byteorder == "little":
        words = b"".join(words[i : i + 4][::-1] for i in range(0, len(words), 4))
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"bad port {port_hex!r}")
    return socket.inet_ntop(family, words), port


def psutil_address(value: Any, family: int) -> Address:
    """``(address, port)`` from psutil's ``laddr``/``raddr`` (the wildcard when empty)."""
    if value:
        return str(value[0]), int(value[1])
    return ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0
