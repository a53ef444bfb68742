"""Throwaway PostgreSQL clusters for tests: :class:`PostgresServer`.

A cluster is created with ``initdb`` in a fresh temporary directory (user ``postgres`` with a
random password, ``scram-sha-256`` authentication for every connection, TCP and Unix socket --
never ``trust``, which would let every local user in), started with ``pg_ctl start -w`` on a
free port, and removed by :meth:`close`. The password travels in :attr:`PostgresServer.dsn`.
``initdb`` and ``pg_ctl`` refuse to run as root, so when the test process is root they run as
the ``postgres`` system user through ``runuser``. The server also listens on a Unix socket in its
temporary directory: Unix sockets are not network-namespaced, so the administrative helpers
(:meth:`PostgresServer.terminate_backends`) reach a server running inside a network namespace
from anywhere on the host.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from sockwise.testing._proc import Closing, LiveSet, run_command

if TYPE_CHECKING:
    from typing import Self

_PG_USER: Final = "postgres"
_STOP_MODES: Final = ("smart", "fast", "immediate")
_FAST_SETTINGS: Final[Mapping[str, str]] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "16MB",
    "max_wal_size": "64MB",
    "logging_collector": "off",
    "log_min_messages": "warning",
}
_COMMAND_TIMEOUT: Final = 60.0

_LIVE: LiveSet[PostgresServer] = LiveSet()


class PostgresUnavailableError(RuntimeError):
    """A throwaway PostgreSQL cluster cannot be created or controlled here."""

    __module__ = "sockwise.testing"


def find_pg_bin() -> str | None:
    """Return the directory of the newest PostgreSQL server binaries, or ``None``.

    ``SOCKWISE_PG_BIN`` overrides the search; otherwise the newest
    ``/usr/lib/postgresql/*/bin`` holding ``initdb`` wins, then a ``pg_ctl`` on ``PATH``.
    """
    override = os.environ.get("SOCKWISE_PG_BIN")
    if override:
        return override if os.path.isfile(os.path.join(override, "initdb")) else None

    def version(path: str) -> tuple[int, ...]:
        part = path.rstrip("/").split("/")[-2]
        return tuple(int(p) for p in part.split(".") if p.isdigit())

    found = [p for p in glob.glob("/usr/lib/postgresql/*/bin") if os.path.isfile(f"{p}/initdb")]
    if found:
        return max(found, key=version)
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _need_runuser() -> bool:
    return os.geteuid() == 0


def pg_unavailable_reason() -> str | None:
    """Return why no throwaway cluster can be started here, or ``None`` if one can."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        where = os.environ.get("SOCKWISE_PG_BIN") or "/usr/lib/postgresql/*/bin or PATH"
        return f"PostgreSQL server binaries (initdb, pg_ctl) not found in {where}"
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not os.access(os.path.join(bin_dir, tool), os.X_OK):
            return f"{tool} missing or not executable in {bin_dir}"
    if _need_runuser():
        try:
            pwd.getpwnam(_PG_USER)
        except KeyError:
            return "running as root but there is no 'postgres' system user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root but runuser (util-linux) is missing"
    return None


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def close_all_servers() -> None:
    """Close every :class:`PostgresServer` this process started and has not closed yet."""
    _LIVE.close_all()


class PostgresServer(Closing):
    """A PostgreSQL server for tests: a throwaway cluster, or an external one from a DSN.

    Use :meth:`start` for a cluster this object owns (it can be stopped, restarted and is
    removed by :meth:`close`), or :meth:`from_dsn` for an external server (only the read-only
    helpers and :meth:`terminate_backends` work). Also a context manager.

    Attributes:
        dsn: A libpq conninfo string for clients, e.g.
            ``"host=127.0.0.1 port=54321 user=postgres password=... dbname=postgres"``.
        password: The password of user ``postgres`` of an own cluster (``None`` when external).
        host: The address the server listens on.
        port: The TCP port.
        datadir: The cluster's data directory, ``None`` for an external server.
        netns: The network namespace the server runs in, or ``None``.

    """

    def __init__(
        self,
        *,
        dsn: str,
        host: str,
        port: int,
        datadir: str | None = None,
        bin_dir: str | None = None,
        netns: str | None = None,
        root: str | None = None,
        password: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.password = password
        self.host = host
        self.port = port
        self.datadir = datadir
        self.netns = netns
        self._bin_dir = bin_dir
        self._root = root
        self._closed = False

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        bin_dir: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        netns: str | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> Self:
        """Create and start a throwaway cluster (user ``postgres``, scram-sha-256 password).

        Args:
            bin_dir: Directory with ``initdb`` and ``pg_ctl`` (default: :func:`find_pg_bin`).
            host: The address to listen on (inside *netns* when given).
            port: The TCP port; a free one when omitted.
            netns: Run the server inside this network namespace (``ip netns exec``).
            settings: Extra ``postgresql.conf`` settings, e.g. ``{"max_connections": "20"}``.

        Raises:
            PostgresUnavailableError: A binary, the ``postgres`` user or ``runuser`` is
                missing, or ``initdb``/``pg_ctl`` failed (the message carries their output).

        """
        if bin_dir is None:
            reason = pg_unavailable_reason()
            if reason is not None:
                raise PostgresUnavailableError(reason)
            bin_dir = find_pg_bin()
            assert bin_dir is not None
        elif not os.path.isfile(os.path.join(bin_dir, "initdb")):
            raise PostgresUnavailableError(f"bin_dir={bin_dir!r} has no initdb")
        root = tempfile.mkdtemp(prefix="sockwise-pg-")
        try:
            datadir = os.path.join(root, "data")
            if _need_runuser():
                ent = pwd.getpwnam(_PG_USER)
                os.chown(root, ent.pw_uid, ent.pw_gid)
            password = secrets.token_urlsafe(18)  # URL-safe: no quoting in the conninfo
            server = cls(
                dsn="",
                host=host,
                port=0,
                datadir=datadir,
                bin_dir=bin_dir,
                netns=netns,
                root=root,
                password=password,
            )
            pwfile = os.path.join(root, "pwfile")
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(password + "\n")
            if _need_runuser():
                os.chown(pwfile, ent.pw_uid, ent.pw_gid)
            try:
                server._run(
                    "initdb", "-D", datadir, "-U", _PG_USER, "--pwfile", pwfile,
                    "-A", "scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions",
                )  # fmt: skip
            finally:
                os.unlink(pwfile)
            conf = dict(_FAST_SETTINGS)
            conf.update(settings or {})
            conf["listen_addresses"] = f"'{host}'"
            conf["unix_socket_directories"] = f"'{root}'"
            with open(os.path.join(datadir, "postgresql.auto.conf"), "a", encoding="utf-8") as f:
                for key, value in conf.items():
                    f.write(f"{key} = {value}\n")
            # Clients in another network namespace connect from a non-loopback address.
            with open(os.path.join(datadir, "pg_hba.conf"), "a", encoding="utf-8") as f:
                f.write("host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n")
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        _LIVE.add(server)
        try:
            server._start_on_port(port)
        except BaseException:
            server.close()
            raise
        return server

    def _start_on_port(self, port: int | None) -> None:
        attempts = 1 if port is not None else 3
        last: Exception | None = None
        for _ in range(attempts):
            chosen = port if port is not None else self._pick_port()
            self.port = chosen
            self.dsn = f"host={self.host} port={chosen} {self._credentials()} dbname=postgres"
            try:
                self._pg_ctl_start(chosen)
                return
            except PostgresUnavailableError as exc:  # a port taken between pick and bind
                last = exc
        assert last is not None
        raise last

    def _pick_port(self) -> int:
        if self.netns is None:
            return _free_port(self.host)
        # A namespace created for the test is empty: any port in the dynamic range is free.
        return 20000 + (os.getpid() * 7 + int(time.monotonic_ns() // 1000)) % 30000

    @classmethod
    def from_dsn(cls, dsn: str) -> Self:
        """Wrap an external server given by a libpq conninfo string (``stop`` etc. raise).

        Args:
            dsn: ``key=value`` conninfo (``host``, ``port``, ``user``, ``dbname``...).

        Raises:
            ValueError: *dsn* is empty or not ``key=value`` pairs.

        """
        if not isinstance(dsn, str) or not dsn.strip():
            raise ValueError(f"from_dsn(dsn={dsn!r}): expected a libpq conninfo string")
        parts: dict[str, str] = {}
        for item in dsn.split():
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(
                    f"from_dsn(dsn={dsn!r}): {item!r} is not key=value (URLs are not supported)"
                )
            parts[key] = value.strip("'")
        host = parts.get("host", "localhost")
        try:
            port = int(parts.get("port", "5432"))
        except ValueError:
            raise ValueError(f"from_dsn(dsn={dsn!r}): port must be a number") from None
        return cls(dsn=dsn, host=host, port=port)

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def external(self) -> bool:
        """Whether this server was given by :meth:`from_dsn` (and cannot be stopped)."""
        return self.datadir is None

    @property
    def admin_dsn(self) -> str:
        """A conninfo for administrative connections (the Unix socket for own clusters)."""
        if self._root is None:
            return self.dsn
        return f"host={self._root} port={self.port} {self._credentials()} dbname=postgres"

    def _credentials(self) -> str:
        if self.password is None:
            return f"user={_PG_USER}"
        return f"user={_PG_USER} password={self.password}"

    @property
    def postmaster_pid(self) -> int | None:
        """The running postmaster's PID (from ``postmaster.pid``), or ``None``."""
        if self.datadir is None:
            return None
        try:
            with open(os.path.join(self.datadir, "postmaster.pid"), encoding="utf-8") as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def _own(self, what: str) -> tuple[str, str]:
        if self.datadir is None or self._bin_dir is None:
            raise PostgresUnavailableError(
                f"PostgresServer.{what}() needs a cluster started by PostgresServer.start(); "
                f"this one is external ({self.dsn!r})"
            )
        return self.datadir, self._bin_dir

    def _argv(self, tool: str, *args: str) -> list[str]:
        assert self._bin_dir is not None
        argv = [os.path.join(self._bin_dir, tool), *args]
        if _need_runuser():
            argv = ["runuser", "-u", _PG_USER, "--", *argv]
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        return argv

    def _run(self, tool: str, *args: str) -> str:
        return run_command(
            self._argv(tool, *args),
            error=PostgresUnavailableError,
            timeout=_COMMAND_TIMEOUT,
            cwd="/",
            detail=self._log_tail,
        )

    def _log_path(self) -> str | None:
        return os.path.join(self._root, "server.log") if self._root else None

    def _log_tail(self) -> str:
        path = self._log_path()
        if path is None:
            return ""
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-1500:]
        except OSError:
            return ""
        return f"\nserver log:\n{tail}" if tail else ""

    def _pg_ctl_start(self, port: int | None = None) -> None:
        datadir, _ = self._own("start_again")
        opts = [] if port is None else ["-o", f"-p {port}"]
        log = self._log_path()
        assert log is not None
        self._run("pg_ctl", "start", "-w", "-t", "30", "-D", datadir, "-l", log, *opts)

    # -- control ------------------------------------------------------------------------------

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``pg_ctl stop -m fast`` (or ``smart`` / ``immediate``: a crash).

        Args:
            mode: The ``pg_ctl`` shutdown mode: ``smart``, ``fast`` or ``immediate``.

        Raises:
            ValueError: *mode* is not one of the three.
            PostgresUnavailableError: The server is external, or ``pg_ctl`` failed.

        """
        if mode not in _STOP_MODES:
            raise ValueError(f"stop(mode={mode!r}): allowed {', '.join(_STOP_MODES)}")
        datadir, _ = self._own("stop")
        self._run("pg_ctl", "stop", "-w", "-t", "30", "-D", datadir, "-m", mode)

    def start_again(self) -> None:
        """Start a stopped server again on the same port and data directory."""
        self._pg_ctl_start(self.port)

    def restart(self, mode: str = "fast") -> None:
        """Stop (with *mode*, see :meth:`stop`) and start the server again, same port."""
        self.stop(mode)
        self.start_again()

    def kill_postmaster(self) -> None:
        """SIGKILL the postmaster (a crash without shutdown; backends notice and exit)."""
        self._own("kill_postmaster")
        pid = self.postmaster_pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def execute(self, sql: str) -> list[tuple[object, ...]]:
        """Run *sql* on a short administrative connection and return the rows (psycopg).

        Raises:
            PostgresUnavailableError: psycopg is not installed.

        """
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is in the test extras
            raise PostgresUnavailableError("PostgresServer.execute() needs psycopg") from exc
        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(sql.encode())
            return list(cur.fetchall()) if cur.description else []

    def terminate_backends(self, *, exclude_self: bool = True) -> int:
        """Terminate every client backend connected to this database; return how many.

        Args:
            exclude_self: Leave the administrative connection this call opens alive (when
                ``False`` it terminates itself last and is counted too).

        """
        rows = self.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()"
        )
        count = int(str(rows[0][0]))
        if not exclude_self:
            import psycopg

            with contextlib.suppress(psycopg.Error):
                self.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            count += 1
        return count

    def close(self) -> None:
        """Stop the server (immediately) and remove its directory; idempotent."""
        if self._closed:
            return
        self._closed = True
        _LIVE.discard(self)
        if self.datadir is None:
            return
        if self.postmaster_pid is not None:
            try:
                self._run("pg_ctl", "stop", "-w", "-t", "20", "-D", self.datadir, "-m", "immediate")
            except PostgresUnavailableError:
                self.kill_postmaster()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    def __repr__(self) -> str:
        where = f" netns={self.netns}" if self.netns else ""
        kind = "external" if self.external else f"datadir={self.datadir}"
        return f"<PostgresServer {self.host}:{self.port} {kind}{where}>"
