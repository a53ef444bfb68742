"""Where each policy setting lives on each operating system, in one place.

Each platform gets a table mapping a sockwise option name to the ``(level, optname)`` pair that
``setsockopt`` takes, or ``None`` when the platform has no such option. The numbers come from the
platforms' headers, so the tables can be checked on any machine; only the table of the running
platform is used at run time (chosen once, at import).

Sources:

* Linux: ``include/uapi/asm-generic/socket.h`` (``SOL_SOCKET`` 1, ``SO_KEEPALIVE`` 9) and
  ``include/uapi/linux/tcp.h`` (``TCP_NODELAY`` 1, ``TCP_KEEPIDLE`` 4, ``TCP_KEEPINTVL`` 5,
  ``TCP_KEEPCNT`` 6, ``TCP_USER_TIMEOUT`` 18, in milliseconds).
* macOS: ``sys/socket.h`` (``SOL_SOCKET`` 0xffff, ``SO_KEEPALIVE`` 0x8) and
  ``netinet/tcp.h`` (``TCP_KEEPALIVE`` 0x10 is the *idle* time, ``TCP_KEEPINTVL`` 0x101,
  ``TCP_KEEPCNT`` 0x102); there is no ``TCP_USER_TIMEOUT``.
* Windows: ``winsock2.h``/``ws2ipdef.h`` (``SOL_SOCKET`` 0xffff, ``SO_KEEPALIVE`` 8,
  ``TCP_KEEPALIVE``/``TCP_KEEPIDLE`` 3, ``TCP_KEEPCNT`` 16, ``TCP_KEEPINTVL`` 17, Windows 10
  1709+); older releases only have the ``SIO_KEEPALIVE_VALS`` ioctl, which :func:`keepalive_ioctl`
  describes. There is no ``TCP_USER_TIMEOUT`` (``TCP_MAXRT`` bounds retransmissions of *all*
  segments in whole seconds and is not the same thing, so it is not used).
* FreeBSD: ``netinet/tcp.h`` (``TCP_KEEPIDLE`` 256, ``TCP_KEEPINTVL`` 512, ``TCP_KEEPCNT`` 1024).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Final

IPPROTO_TCP: Final = 6

#: Every option sockwise may set, in the order it sets them.
OPTION_NAMES: Final = (
    "SO_KEEPALIVE",
    "TCP_KEEPIDLE",
    "TCP_KEEPINTVL",
    "TCP_KEEPCNT",
    "TCP_USER_TIMEOUT",
    "TCP_NODELAY",
)


@dataclass(frozen=True)
class PlatformOptions:
    """The ``(level, optname)`` of each option on one platform; ``None`` where it is missing.

    Attributes:
        name: The platform's name (``"linux"``, ``"darwin"``, ``"win32"``, ``"freebsd"``).
        options: Option name to ``(level, optname)``, or ``None`` when the platform lacks it.
        user_timeout_scale: Multiplier from seconds to the unit ``TCP_USER_TIMEOUT`` takes.
        verified: Whether the numbers were checked against the platform's headers; a table
            that is not verified is never used to set options.

    """

    name: str
    options: dict[str, tuple[int, int] | None]
    user_timeout_scale: int = 1000
    verified: bool = True

    def lookup(self, option: str) -> tuple[int, int] | None:
        """Return ``(level, optname)`` for *option*, or ``None`` if this platform lacks it."""
        return self.options.get(option)


LINUX: Final = PlatformOptions(
    "linux",
    {
        "SO_KEEPALIVE": (1, 9),
        "TCP_KEEPIDLE": (IPPROTO_TCP, 4),
        "TCP_KEEPINTVL": (IPPROTO_TCP, 5),
        "TCP_KEEPCNT": (IPPROTO_TCP, 6),
        "TCP_USER_TIMEOUT": (IPPROTO_TCP, 18),
        "TCP_NODELAY": (IPPROTO_TCP, 1),
    },
)

MACOS: Final = PlatformOptions(
    "darwin",
    {
        "SO_KEEPALIVE": (0xFFFF, 0x0008),
        "TCP_KEEPIDLE": (IPPROTO_TCP, 0x10),  # TCP_KEEPALIVE: the idle time, in seconds
        "TCP_KEEPINTVL": (IPPROTO_TCP, 0x101),
        "TCP_KEEPCNT": (IPPROTO_TCP, 0x102),
        "TCP_USER_TIMEOUT": None,
        "TCP_NODELAY": (IPPROTO_TCP, 0x01),
    },
)

WINDOWS: Final = PlatformOptions(
    "win32",
    {
        "SO_KEEPALIVE": (0xFFFF, 0x0008),
        "TCP_KEEPIDLE": (IPPROTO_TCP, 3),
        "TCP_KEEPINTVL": (IPPROTO_TCP, 17),
        "TCP_KEEPCNT": (IPPROTO_TCP, 16),
        "TCP_USER_TIMEOUT": None,
        "TCP_NODELAY": (IPPROTO_TCP, 0x0001),
    },
)

FREEBSD: Final = PlatformOptions(
    "freebsd",
    {
        "SO_KEEPALIVE": (0xFFFF, 0x0008),
        "TCP_KEEPIDLE": (IPPROTO_TCP, 256),
        "TCP_KEEPINTVL": (IPPROTO_TCP, 512),
        "TCP_KEEPCNT": (IPPROTO_TCP, 1024),
        "TCP_USER_TIMEOUT": None,
        "TCP_NODELAY": (IPPROTO_TCP, 1),
    },
)

#: ``SIO_KEEPALIVE_VALS`` (``_WSAIOW(IOC_VENDOR, 4)``), the ioctl older Windows releases take.
SIO_KEEPALIVE_VALS: Final = 0x98000004


def keepalive_ioctl(idle: int, interval: int) -> tuple[int, tuple[int, int, int]]:
    """Return the ``socket.ioctl`` arguments for keepalive on Windows releases before 1709.

    ``SIO_KEEPALIVE_VALS`` takes ``(onoff, keepalivetime_ms, keepaliveinterval_ms)``; the probe
    count is fixed by the system (10 since Vista) and cannot be set this way.
    """
    return SIO_KEEPALIVE_VALS, (1, idle * 1000, interval * 1000)


def unverified(platform: str) -> PlatformOptions:
    """The table of a platform sockwise has no verified numbers for: every option missing.

    OpenBSD, NetBSD, illumos and others number their options differently from Linux; guessing
    would set unrelated options, so nothing is set there (logged once).
    """
    return PlatformOptions(platform, dict.fromkeys(OPTION_NAMES), verified=False)


def for_platform(platform: str) -> PlatformOptions:
    """Return the option table for a ``sys.platform`` value (:func:`unverified` when unknown)."""
    if platform.startswith("linux"):
        return LINUX
    if platform == "darwin":
        return MACOS
    if platform in ("win32", "cygwin"):
        return WINDOWS
    if platform.startswith("freebsd"):
        return FREEBSD
    return unverified(platform)


#: The table for the platform this process runs on, chosen once at import.
CURRENT: Final = for_platform(sys.platform)
