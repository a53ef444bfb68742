"""The per-platform option tables, checked as tables, and skipping of missing options."""

from __future__ import annotations

import logging
import socket
import sys

import pytest

from sockwise import Policy
from sockwise.policy import _export, _platform

TCP = 6

#: The expected tables, copied from the platforms' headers (see _platform's docstring).
EXPECTED = {
    "linux": {
        "SO_KEEPALIVE": (1, 9),
        "TCP_KEEPIDLE": (TCP, 4),
        "TCP_KEEPINTVL": (TCP, 5),
        "TCP_KEEPCNT": (TCP, 6),
        "TCP_USER_TIMEOUT": (TCP, 18),
        "TCP_NODELAY": (TCP, 1),
    },
    "darwin": {
        "SO_KEEPALIVE": (0xFFFF, 0x8),
        "TCP_KEEPIDLE": (TCP, 0x10),  # spelled TCP_KEEPALIVE on macOS: the idle time
        "TCP_KEEPINTVL": (TCP, 0x101),
        "TCP_KEEPCNT": (TCP, 0x102),
        "TCP_USER_TIMEOUT": None,
        "TCP_NODELAY": (TCP, 1),
    },
    "win32": {
        "SO_KEEPALIVE": (0xFFFF, 8),
        "TCP_KEEPIDLE": (TCP, 3),
        "TCP_KEEPINTVL": (TCP, 17),
        "TCP_KEEPCNT": (TCP, 16),
        "TCP_USER_TIMEOUT": None,
        "TCP_NODELAY": (TCP, 1),
    },
    "freebsd": {
        "SO_KEEPALIVE": (0xFFFF, 8),
        "TCP_KEEPIDLE": (TCP, 256),
        "TCP_KEEPINTVL": (TCP, 512),
        "TCP_KEEPCNT": (TCP, 1024),
        "TCP_USER_TIMEOUT": None,
        "TCP_NODELAY": (TCP, 1),
    },
}

POLICY = Policy(keepalive_idle=30, keepalive_interval=5, keepalive_count=4, user_timeout=12.5)


@pytest.mark.parametrize(
    ("platform", "table"),
    [
        ("linux", _platform.LINUX),
        ("darwin", _platform.MACOS),
        ("win32", _platform.WINDOWS),
        ("freebsd", _platform.FREEBSD),
    ],
)
def test_tables(platform: str, table: _platform.PlatformOptions) -> None:
    assert table.name == platform
    assert table.options == EXPECTED[platform]
    assert set(table.options) == set(_platform.OPTION_NAMES)
    assert _platform.for_platform(platform) is table


@pytest.mark.parametrize(
    ("sys_platform", "name"),
    [("linux2", "linux"), ("cygwin", "win32"), ("freebsd14", "freebsd")],
)
def test_for_platform(sys_platform: str, name: str) -> None:
    assert _platform.for_platform(sys_platform).name == name


@pytest.mark.parametrize("sys_platform", ["openbsd7", "netbsd10", "sunos5", "aix7"])
def test_unknown_platforms_get_no_options_and_one_warning(
    sys_platform: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No guessing another system's numbers (Linux's are wrong on OpenBSD, NetBSD, illumos)."""
    caplog.set_level(logging.INFO, logger="sockwise")
    table = _platform.for_platform(sys_platform)
    assert table.name == sys_platform and not table.verified
    assert all(where is None for where in table.options.values())
    assert _export.socket_options(POLICY, table=table) == []
    assert _export.resolved_options(POLICY, table=table, accepted=True) == []
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1, messages  # once per platform, not per option or call
    assert caplog.records[0].levelno == logging.WARNING
    assert f"no verified socket option table for platform {sys_platform!r}" in messages[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="compares with Linux headers")
def test_linux_table_matches_the_running_kernel_constants() -> None:
    assert _platform.CURRENT is _platform.LINUX
    real = {
        "SO_KEEPALIVE": (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        "TCP_KEEPIDLE": (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        "TCP_KEEPINTVL": (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        "TCP_KEEPCNT": (socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        "TCP_USER_TIMEOUT": (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        "TCP_NODELAY": (socket.IPPROTO_TCP, socket.TCP_NODELAY),
    }
    assert _platform.LINUX.options == real


def test_macos_exports_idle_as_tcp_keepalive_and_skips_user_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sockwise")
    triples = _export.socket_options(POLICY, table=_platform.MACOS)
    assert triples == [
        (0xFFFF, 0x8, 1),
        (TCP, 0x10, 30),
        (TCP, 0x101, 5),
        (TCP, 0x102, 4),
        (TCP, 1, 1),
    ]
    for _ in range(3):  # logged once per process, not per call
        _export.socket_options(POLICY, table=_platform.MACOS)
    missing = [r for r in caplog.records if "TCP_USER_TIMEOUT" in r.getMessage()]
    assert len(missing) == 1
    assert missing[0].levelno == logging.INFO
    assert "darwin" in missing[0].getMessage()


def test_windows_numbers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sockwise")
    triples = _export.socket_options(POLICY, table=_platform.WINDOWS)
    assert triples == [(0xFFFF, 8, 1), (TCP, 3, 30), (TCP, 17, 5), (TCP, 16, 4), (TCP, 1, 1)]
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_linux_user_timeout_in_milliseconds() -> None:
    triples = _export.socket_options(POLICY, table=_platform.LINUX)
    assert (TCP, 18, 12500) in triples


def test_table_missing_every_option_yields_nothing_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sockwise")
    empty = _platform.PlatformOptions("plan9", dict.fromkeys(_platform.OPTION_NAMES))
    assert _export.socket_options(POLICY, table=empty) == []
    _export.socket_options(POLICY, table=empty)
    assert len(caplog.records) == len(_export.option_values(POLICY, empty)) == 6


def test_option_values_leave_out_keepalive_numbers_when_keepalive_is_off() -> None:
    names = [n for n, _ in _export.option_values(Policy(keepalive=False, user_timeout=None))]
    assert names == ["SO_KEEPALIVE", "TCP_NODELAY"]
    assert _export.option_values(Policy(keepalive=False, user_timeout=None))[0] == (
        "SO_KEEPALIVE",
        0,
    )


def test_windows_keepalive_ioctl_for_old_releases() -> None:
    assert _platform.keepalive_ioctl(30, 5) == (0x98000004, (1, 30000, 5000))
