"""The skip-or-fail rule for tests whose prerequisites (PostgreSQL, netns) may be missing.

On a laptop a missing prerequisite skips the test with a clear reason; on CI (``CI=true`` in the
environment) it fails, so a broken CI image can never turn the suite silently green.
"""

from __future__ import annotations

import os


def is_ci() -> bool:
    """Whether the ``CI`` environment variable is ``true`` (case-insensitive)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_or_skip(reason: str | None) -> None:
    """Skip the running test when *reason* is set, or fail it when running on CI.

    Args:
        reason: Why the test cannot run (for example from :func:`pg_unavailable_reason`), or
            ``None`` when everything it needs is available (then this does nothing).

    Raises:
        pytest.skip.Exception: *reason* is set and ``CI`` is not ``true``.
        pytest.fail.Exception: *reason* is set and ``CI`` is ``true``.

    """
    if reason is None:
        return
    import pytest

    if is_ci():
        pytest.fail(f"prerequisite missing on CI (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)
