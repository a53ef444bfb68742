"""Fixtures of the psycopg pool tests."""

from __future__ import annotations

import itertools
import time

import pytest

_names = itertools.count()


@pytest.fixture
def app_name() -> str:
    """A unique ``application_name``: lets a test terminate only its own backends."""
    return f"sw_test_{next(_names)}_{time.monotonic_ns() % 10**6}"
