"""fork() while another thread is inside harden()/the hook layer never hangs the child."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# The parent: a helper thread holds LOCK (as a thread calling harden(), unharden() or
# Guard.start() does for a moment) while the main thread forks. The child then does CHILD, which
# needs that lock, and must exit 0 well within the timeout instead of waiting forever.
_TEMPLATE = """
import os, socket, threading, time
import sockwise
from sockwise import _hooks
from sockwise.harden import _api
{setup}
held, release = threading.Event(), threading.Event()

def hold():
    with {lock}:
        held.set()
        release.wait(10)

t = threading.Thread(target=hold)
t.start()
assert held.wait(10)
pid = os.fork()
if pid == 0:
    try:
        {child}
        with socket.create_server(("127.0.0.1", 0)) as srv:
            socket.create_connection(srv.getsockname()).close()
    finally:
        os._exit(0)
release.set()
t.join()
deadline = time.monotonic() + 8
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        assert os.waitstatus_to_exitcode(status) == 0, status
        break
    time.sleep(0.02)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise SystemExit("the child hung after fork")
{teardown}
"""


@pytest.mark.parametrize(
    ("setup", "lock", "child", "teardown"),
    [
        pytest.param(
            "g = sockwise.Guard(interval=0.05).start()",
            "_hooks._lock",
            "assert g.running; g.stop()",
            "g.stop()",
            id="guard-restart-needs-hook-lock",
        ),
        pytest.param(
            "sockwise.harden(guard=False)",
            "_api._lock",
            "sockwise.unharden()",
            "sockwise.unharden()",
            id="unharden-in-child-needs-harden-lock",
        ),
        pytest.param(
            "sockwise.harden(guard=False)",
            "_hooks._lock",
            "sockwise.unharden()",
            "sockwise.unharden()",
            id="unharden-in-child-needs-hook-lock",
        ),
    ],
)
def test_child_after_fork_does_not_hang(setup: str, lock: str, child: str, teardown: str) -> None:
    """The child of a fork taken while a sockwise lock was held elsewhere runs to completion."""
    code = _TEMPLATE.format(setup=setup, lock=lock, child=child, teardown=teardown)
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
