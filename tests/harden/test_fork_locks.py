"""Every module-level lock is replaced in a child forked while another thread held it.

Each case runs in a fresh interpreter: a thread takes the lock and keeps it, the main thread
forks, and the child must take the lock (as the next sockwise call would) within two seconds.
The parent waits at most ten seconds and kills a hung child by its PID.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

LOCKS = [
    ("sockwise._log", "_seen_lock"),
    ("sockwise._imports", "_lock"),
    ("sockwise._hooks", "_lock"),
    ("sockwise.harden._api", "_lock"),
    ("sockwise.guard._source", "_lock"),
    ("sockwise.metrics._registry", "_lock"),
    ("sockwise.policy._env", "_warned_lock"),
    ("sockwise.guard._guard", "_registry_lock"),
    ("sockwise.guard._guard", "_counts_lock"),
    ("sockwise.guard._claims", "_claims_lock"),
    ("sockwise.guard._origin", "_state.lock"),
    ("sockwise.guard._origin", "_state.drain_lock"),
]

SCRIPT = textwrap.dedent(
    """
    import importlib, os, sys, threading, time
    import sockwise
    from sockwise.guard import Guard

    MODULE, ATTR = sys.argv[1], sys.argv[2]
    guard = Guard(interval=60).start()
    module = importlib.import_module(MODULE)

    def current():
        obj = module
        for part in ATTR.split("."):
            obj = getattr(obj, part)
        return obj

    lock = current()
    held, release = threading.Event(), threading.Event()

    def hold():
        with lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    pid = os.fork()
    if pid == 0:
        ok = current().acquire(timeout=2)
        if ok and MODULE == "sockwise._log":
            current().release()
            from sockwise._log import log_once
            log_once("fork-test", 10, "fork test")
        os._exit(0 if ok else 3)
    release.set()
    holder.join()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        print("child hung")
        sys.exit(1)
    guard.stop()
    code = os.waitstatus_to_exitcode(status)
    print("child exit", code)
    sys.exit(code)
    """
)


@pytest.mark.parametrize(("module", "attr"), LOCKS, ids=[f"{m}.{a}" for m, a in LOCKS])
def test_child_forked_while_lock_held_does_not_hang(module: str, attr: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, module, attr],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_misspelt_lock_name_fails_at_import_not_at_fork() -> None:
    from sockwise._forksafe import renew_after_fork

    with pytest.raises(KeyError, match="no global '_lokc'"):
        renew_after_fork({"_lock": object()}, "_lokc", object)
