"""Which policy a pool or client uses when its ``policy=`` argument is left out."""

from __future__ import annotations

from sockwise.policy._model import Policy


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
        from sockwise.harden._api import current_policy

        hardened = current_policy()
        return hardened if hardened is not None else Policy.from_env()
    if not isinstance(value, Policy):
        raise TypeError(
            f"{parameter} must be a sockwise.Policy or None, got {value!r} ({type(value).__name__})"
        )
    return value
