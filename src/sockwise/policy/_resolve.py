"""Which policy a pool or client uses when its ``policy=`` argument is left out.

The policy in force is owned by :mod:`sockwise.harden`, which depends on this package. To keep
the dependency one-way, harden *registers* where to read it (:func:`set_policy_provider`) instead
of this module importing harden.
"""

from __future__ import annotations

from collections.abc import Callable

from sockwise.policy._model import Policy

PolicyProvider = Callable[[], "Policy | None"]

_provider: PolicyProvider | None = None


def set_policy_provider(provider: PolicyProvider | None) -> PolicyProvider | None:
    """Register the function that returns the policy in force (``None``: not hardened).

    :mod:`sockwise.harden` registers :func:`sockwise.current_policy` on import; there is
    one provider per process. Returns the previous one (``None`` removes it).
    """
    global _provider
    previous, _provider = _provider, provider
    return previous


def resolve_policy(value: object, parameter: str = "policy") -> Policy:
    """The policy for a ``policy=`` argument: *value* itself, or the one in force when ``None``.

    ``None`` means the policy :func:`sockwise.harden` put in force, and when the process is
    not hardened, :meth:`sockwise.Policy.from_env` (the ``SOCKWISE_*`` variables, else the
    defaults). So one ``harden(policy)`` call, or one set of environment variables, configures
    every pool and client that is not given a policy of its own.

    Args:
        value: A :class:`~sockwise.Policy` or ``None``.
        parameter: The argument's name, for the error message.

    Raises:
        TypeError: *value* is neither a :class:`~sockwise.Policy` nor ``None``.
        ValueError: A malformed ``SOCKWISE_*`` variable (from :meth:`sockwise.Policy.from_env`).

    """
    if value is None:
        provider = _provider
        hardened = provider() if provider is not None else None
        return hardened if hardened is not None else Policy.from_env()
    if not isinstance(value, Policy):
        raise TypeError(
            f"{parameter} must be a sockwise.Policy or None, got {value!r} ({type(value).__name__})"
        )
    return value
