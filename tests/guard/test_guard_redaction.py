"""Credentials on the line that opened a leaked socket never reach a warning."""

from __future__ import annotations

import socket
import time

import pytest

from sockwise.guard import CloseWaitLeakWarning, Guard, redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("connect(\"host=db password='s3 cr3t' dbname=x\")", "cr3t"),
        ('connect(password="sp ace")', "ace"),
        ('connect(**{"password": "hunter2"})', "hunter2"),
        ("env = {'PGPASSWORD': 'hunter2'}", "hunter2"),
        ("PGPASSWORD=hunter2 psql", "hunter2"),
        ("requests.get('http://u:p@ss@example.org/')", "ss@"),
    ],
)
def test_quoted_and_prefixed_credentials_are_redacted(text: str, secret: str) -> None:
    """Quoted values with spaces, dict keys and PGPASSWORD-style names are redacted too."""
    out = redact(text)
    assert secret not in out and "***" in out


def test_close_wait_warning_redacts_the_opening_line(listener: socket.socket) -> None:
    """A leak opened on a line holding a libpq password is reported without the password."""
    guard = Guard(interval=60, close_wait_after=0).start()
    addr = listener.getsockname()
    client = socket.create_connection(addr)  # the DSN was "host=db password='s3 cr3t'"
    listener.accept()[0].close()
    try:
        time.sleep(0.05)
        with pytest.warns(CloseWaitLeakWarning, match="CLOSE_WAIT leak") as record:
            report = guard.check()
        assert report.events
        for event in report.events:
            assert "cr3t" not in event.message, event.message
        assert all("cr3t" not in str(w.message) for w in record)
    finally:
        client.close()
        guard.stop()
