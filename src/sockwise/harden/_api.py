"""``sockwise.harden()`` and ``sockwise.unharden()``: the process-wide drop-in.

Theory of operation: one process-wide state, guarded by a lock. :func:`harden` installs the
standard library socket hooks, arranges for urllib3 and psycopg to be patched now or as soon as
they are imported, and starts the runtime guard. Calling it again patches nothing twice: it only
swaps the policy the hooks use. Each call returns a :class:`Hardening` that remembers the policy
in force before it, so ``with sockwise.harden(p):`` restores exactly that on exit; and
:func:`unharden` removes everything at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any

from sockwise import _hooks
from sockwise._forksafe import renew_after_fork
from sockwise._log import log_once, logger
from sockwise.harden import _imports, _psycopg, _reach, _spawn, _stdlib, _urllib3
from sockwise.policy import Policy, set_policy_provider


@dataclass
class _State:
    policy: Policy
    stdlib: bool
    urllib3: bool
    psycopg: bool
    guard: Any = None  # a running sockwise.Guard, when guard=True
    changes: list[str] = field(default_factory=list)


_lock = threading.RLock()
_state: _State | None = None

renew_after_fork(globals(), "_lock", threading.RLock)


@dataclass(frozen=True)
class Hardening:
    """What one :func:`harden` call did; a context manager that undoes it.

    Attributes:
        policy: The policy now in force.
        changes: What is patched, e.g. ``"socket.socket.connect"``,
            ``"urllib3.connection.HTTPConnection socket_options"``, ``"psycopg (on import)"``,
            ``"guard"``.
        already_active: ``True`` when sockwise was already hardened before this call (nothing
            was patched again; at most the policy changed).
        previous_policy: The policy in force before this call (``None`` if it was not hardened).
        unreached: What this process uses that the drop-in does not reach, each with the
            setting to use instead: a client whose C core opens its own sockets (grpcio,
            confluent-kafka, mysqlclient, psycopg2, pycurl, pyzmq) or an event loop other than
            asyncio's and uvloop's. Empty when everything is reached. See
            :doc:`/howto/stacks`.

    """

    policy: Policy
    changes: tuple[str, ...]
    already_active: bool
    previous_policy: Policy | None
    unreached: tuple[str, ...] = ()

    def __enter__(self) -> Hardening:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.previous_policy is None:
            unharden()
        else:
            with _lock:
                if _state is not None:
                    _set_policy(_state, self.previous_policy)


def is_hardened() -> bool:
    """Whether :func:`harden` is in force.

    A socket hook another library took out (pytest-socket puts ``socket.socket.connect`` back
    after every test) is re-applied first, so a ``True`` here means the hooks are in place.
    """
    if _state is None:
        return False
    _hooks.repair()
    return True


def current_policy() -> Policy | None:
    """The policy :func:`harden` put in force, or ``None`` when not hardened."""
    state = _state
    return state.policy if state is not None else None


set_policy_provider(current_policy)  # resolve_policy(None) follows harden()


def _record(state: _State, library: str, changes: list[str]) -> None:
    pending = f"{library} (on import)"
    if pending in state.changes:
        state.changes.remove(pending)
    state.changes.extend(c for c in changes if c not in state.changes)


def _patch_urllib3(module: ModuleType) -> None:
    state = _state
    if state is not None and state.urllib3:
        _record(state, "urllib3", _urllib3.install(module, state.policy))


def _patch_psycopg(module: ModuleType) -> None:
    state = _state
    if state is not None and state.psycopg:
        _record(state, "psycopg", _psycopg.install(module, state.policy))


def _set_policy(state: _State, policy: Policy) -> None:
    state.policy = policy
    if state.stdlib:
        _stdlib.install(policy)
    if state.urllib3:
        _imports.when_imported("urllib3", _patch_urllib3)
    if state.psycopg:
        _imports.when_imported("psycopg", _patch_psycopg)


def _start_guard() -> Any:
    try:
        from sockwise.guard import Guard

        guard = Guard()
        guard.start()
    except Exception:  # the drop-in still hardens sockets without its guard
        logger.exception("sockwise: the runtime guard could not be started")
        return None
    return guard


def harden(
    policy: Policy | None = None,
    *,
    guard: bool = True,
    stdlib: bool = True,
    urllib3: bool = True,
    psycopg: bool = True,
) -> Hardening:
    """Make every new TCP connection of this process follow *policy*, with no other code change.

    * The standard library: sockets connected through ``socket.create_connection``,
      ``socket.socket.connect``/``connect_ex``, asyncio and ``ssl`` get the policy's options
      before their SYN leaves (options the application set itself on a socket are kept), and a
      blocking connect with no timeout of its own is bounded by ``policy.connect_timeout``
      (``TCP_USER_TIMEOUT`` lowered to it for the handshake only, so it fails with
      :class:`TimeoutError`; an application's own timeout is kept, see
      :meth:`~sockwise.Policy.connect_bound`). Accepted sockets get the options too, with
      ``policy.accepted_user_timeout`` as their ``TCP_USER_TIMEOUT`` (a hardened
      ``http.server`` no longer answers 40 ms late),
      ``listen()`` without a backlog gets ``policy.backlog``, and a backlog that
      ``net.core.somaxconn`` silently truncates is reported
      (:class:`~sockwise.SomaxconnTruncationWarning`).
    * urllib3 (and so requests): the default ``socket_options`` of its connection classes.
    * psycopg 3 (sync and async, pools included): the policy's libpq keywords, with anything the
      caller set explicitly winning.
    * The runtime guard (:class:`sockwise.Guard`) is started unless ``guard=False``.
    * gevent and eventlet sockets (monkey-patched before or after this call, servers included)
      and uvloop's connections and servers are covered the same way; clients whose C core opens
      its own sockets are not, and are listed in :attr:`Hardening.unreached` (and logged once).

    urllib3 and psycopg are patched now if imported, else right after their import. Calling
    :func:`harden` again patches nothing twice (it swaps the policy); it is thread-safe, and
    :func:`unharden` restores exactly what was there.

    Args:
        policy: The policy to apply; ``Policy.from_env()`` when omitted (``SOCKWISE_*``
            variables, else the defaults).
        guard: Start the runtime guard.
        stdlib: Hook the standard library's sockets.
        urllib3: Patch urllib3.
        psycopg: Patch psycopg.

    Returns:
        A :class:`Hardening` describing what changed; as a context manager it restores the
        previous state on exit.

    .. versionadded:: 0.1.0

    """
    global _state
    if policy is None:
        policy = Policy.from_env()
    elif not isinstance(policy, Policy):
        raise TypeError(f"harden(policy=...) must be a sockwise.Policy, got {policy!r}")
    with _lock:
        previous = _state.policy if _state is not None else None
        if _state is None:
            state = _State(policy=policy, stdlib=stdlib, urllib3=urllib3, psycopg=psycopg)
            _state = state
            _spawn.on_harden(is_hardened)  # warn about spawn/forkserver children left unhardened
            if stdlib:
                state.changes.extend(_stdlib.install(policy))
            if urllib3 and not _imports.when_imported("urllib3", _patch_urllib3):
                state.changes.append("urllib3 (on import)")
            if psycopg and not _imports.when_imported("psycopg", _patch_psycopg):
                state.changes.append("psycopg (on import)")
            if guard:
                state.guard = _start_guard()
                if state.guard is not None:
                    state.changes.append("guard")
            logger.info("sockwise: hardened with %r", policy)
        else:
            state = _state
            if policy != state.policy:
                _set_policy(state, policy)
                logger.info("sockwise: policy changed to %r", policy)
        unreached = _reach.unreached()
        for item in unreached:
            log_once(f"harden-unreached:{item}", logging.WARNING, "sockwise: not reached: %s", item)
        return Hardening(
            policy=state.policy,
            changes=tuple(state.changes),
            already_active=previous is not None,
            previous_policy=previous,
            unreached=unreached,
        )


class Unhardened:
    """What :func:`unharden` did; as a context manager, hardens again on exit.

    ``with sockwise.unharden(): ...`` runs a block with the process's sockets untouched and puts
    the previous hardening (same policy, same parts) back afterwards.

    Attributes:
        was_hardened: Whether anything was undone.
        policy: The policy that was in force, or ``None``.

    """

    def __init__(self, state: _State | None) -> None:
        self._state = state
        self.was_hardened = state is not None
        self.policy = state.policy if state is not None else None

    def __bool__(self) -> bool:
        return self.was_hardened

    def __enter__(self) -> Unhardened:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = self._state
        if state is not None:
            harden(
                state.policy,
                guard=state.guard is not None,
                stdlib=state.stdlib,
                urllib3=state.urllib3,
                psycopg=state.psycopg,
            )

    def __repr__(self) -> str:
        return f"<Unhardened was_hardened={self.was_hardened} policy={self.policy!r}>"


def unharden() -> Unhardened:
    """Undo :func:`harden`: restore exactly what was patched and stop the guard it started.

    Idempotent: with nothing hardened it does nothing. Sockets already created keep their
    options (they are the kernel's now); only new ones are affected.

    Returns:
        An :class:`Unhardened`, truthy when something was undone; as a context manager it
        hardens again on exit.

    """
    global _state
    with _lock:
        state = _state
        if state is None:
            return Unhardened(None)
        _state = None
        _imports.cancel("urllib3", _patch_urllib3)
        _imports.cancel("psycopg", _patch_psycopg)
        if state.stdlib:
            _stdlib.uninstall()
        _urllib3.uninstall()
        _psycopg.uninstall()
        if state.guard is not None:
            try:
                state.guard.stop()
            except Exception:  # Defensive: never fail an unharden over the guard
                logger.log(logging.WARNING, "sockwise: stopping the guard failed", exc_info=True)
        logger.info("sockwise: unhardened")
        return Unhardened(state)
