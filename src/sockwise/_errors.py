"""The base exception and warning classes of sockwise.

Integration-specific errors (a dead peer under a urllib3 pool, a psycopg pool timeout) subclass
both :class:`SockwiseError` and the exception the wrapped library raises today, so existing
``except`` clauses keep catching them.
"""

from __future__ import annotations


class SockwiseError(Exception):
    """Base class of every exception sockwise raises itself."""

    __module__ = "sockwise"


class SockwiseWarning(UserWarning):
    """Base class of every warning sockwise emits (filter it to silence or escalate them all)."""

    __module__ = "sockwise"


class ConfigurationWarning(SockwiseWarning):
    """Settings that contradict each other or the network they run on (emitted once, at setup)."""

    __module__ = "sockwise"


class SomaxconnTruncationWarning(ConfigurationWarning):
    """A ``listen()`` backlog larger than ``net.core.somaxconn``, silently cut by the kernel."""

    __module__ = "sockwise"


def missing_extra(module: str, extra: str) -> ModuleNotFoundError:
    """The error an integration module raises when the library of its extra is not installed.

    Use it as ``raise missing_extra("sockwise.httpx", "httpx") from exc``: the message names the
    ``pip install`` command and ``name`` is the missing library, as Python's own error has it.

    Args:
        module: The sockwise module being imported, e.g. ``"sockwise.httpx"``.
        extra: The extra, named like the library it installs, e.g. ``"httpx"``.

    """
    return ModuleNotFoundError(f"{module} needs {extra}: pip install sockwise[{extra}]", name=extra)
