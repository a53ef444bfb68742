"""Real commands under ``sockwise run``: every Python process they start is hardened.

Each process records, from inside itself, ``getsockopt`` of a fresh loopback connection (client
and accepted side), whether sockwise is hardened and how many guards run (``run_probe.py``).
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from typing import Any

import pytest
from run_support import Launcher

from sockwise import Policy


def expected(policy: Policy, *, accepted: bool = False) -> dict[str, int]:
    """``level:option`` -> value, as ``getsockopt`` reads back the policy's options.

    Accepted (server-side) sockets follow ``accepted_user_timeout``: by default no
    ``TCP_USER_TIMEOUT`` (0, the kernel's default), so a slow reader is not cut off.
    """
    options = policy.socket_options(accepted=accepted)
    out = {f"{level}:{opt}": value for level, opt, value in options}
    out.setdefault(f"{socket.IPPROTO_TCP}:{socket.TCP_USER_TIMEOUT}", 0)
    return {k: int(bool(v)) if k.endswith(f":{socket.SO_KEEPALIVE}") else v for k, v in out.items()}


def assert_hardened(probe: dict[str, Any], policy: Policy, *, guards: int = 1) -> None:
    assert expected(policy)[f"{socket.IPPROTO_TCP}:{socket.TCP_KEEPIDLE}"] == policy.keepalive_idle
    for side in ("client", "accepted", "request"):
        if side in probe:
            # "request": the socket a gunicorn worker accepted for the HTTP request.
            want = expected(policy, accepted=side != "client")
            got = {k: probe[side][k] for k in want}
            assert got == want, (probe["tag"], side)
    assert probe["hardened"] is True, probe["tag"]
    assert probe["guards"] == guards, probe["tag"]


def by_tag(probes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for p in probes:
        out.setdefault(p["tag"], []).append(p)
    return out


def test_multiprocessing_every_start_method_and_subprocess(launcher: Launcher) -> None:
    """Default settings: main, fork/spawn/forkserver children and a Python subprocess."""
    proc = launcher.start("--", sys.executable, "mp_script.py")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "sockwise" not in err, err
    tags = by_tag(launcher.probes())
    assert sorted(tags) == ["fork", "forkserver", "main", "spawn", "sub"]
    main = tags["main"][0]
    assert main["pid"] == proc.pid  # exec: the command kept sockwise run's PID
    for (probe,) in tags.values():
        assert_hardened(probe, Policy())
    assert len({p[0]["pid"] for p in tags.values()}) == 5
    assert all(tags[m][0]["ppid"] == proc.pid for m in ("fork", "spawn", "sub"))


def test_no_guard_flag_and_policy_preset(launcher: Launcher) -> None:
    """--policy picks the preset, a SOCKWISE_ variable overrides one field, --no-guard: 0 guards."""
    proc = launcher.start(
        "--policy",
        "interactive",
        "--no-guard",
        "--",
        sys.executable,
        "mp_script.py",
        env={"SOCKWISE_KEEPALIVE_COUNT": "7"},
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    policy = Policy.interactive().replace(keepalive_count=7)
    probes = launcher.probes()
    assert len(probes) == 5
    for probe in probes:
        assert_hardened(probe, policy, guards=0)


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["sync", "gthread", "gevent"])
def test_gunicorn_workers(launcher: Launcher, worker: str) -> None:
    """gunicorn master and both workers hardened; a request's own socket carries the policy."""
    proc = launcher.start(
        "--policy",
        "interactive",
        "--",
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "gunicorn_conf.py",
        "-k",
        worker,
        "-w",
        "2",
        "-b",
        "127.0.0.1:0",
        "wsgi_app:app",
    )

    def booted(probes: list[dict[str, Any]]) -> bool:
        tags = by_tag(probes)
        return (
            len(tags.get("gunicorn-master", [])) == 1 and len(tags.get("gunicorn-worker", [])) == 2
        )

    tags = by_tag(launcher.wait_for(booted, proc, timeout=60))
    (master,) = tags["gunicorn-master"]
    assert master["pid"] == proc.pid
    with urllib.request.urlopen(f"http://127.0.0.1:{master['port']}/", timeout=10) as resp:
        answer = json.loads(resp.read())
    policy = Policy.interactive()
    assert_hardened(master, policy)
    workers = tags["gunicorn-worker"]
    assert {w["ppid"] for w in workers} == {proc.pid}
    for probe in workers:
        assert_hardened(probe, policy)
    assert answer["pid"] in {w["pid"] for w in workers}
    assert "request" in answer
    assert_hardened(answer, policy)
    _, err = launcher.stop(proc)
    assert proc.returncode == 0, err


@pytest.mark.slow
def test_uvicorn_workers(launcher: Launcher) -> None:
    """uvicorn with 2 worker processes (spawned): each hardened, its guard running."""
    proc = launcher.start(
        "--",
        sys.executable,
        "-m",
        "uvicorn",
        "--workers",
        "2",
        "--lifespan",
        "on",
        "--port",
        "0",
        "asgi_app:app",
        env={"SOCKWISE_KEEPALIVE_IDLE": "17"},
    )
    probes = launcher.wait_for(lambda p: len(p) == 2, proc, timeout=60)
    policy = Policy(keepalive_idle=17)
    assert len({p["pid"] for p in probes}) == 2
    assert proc.pid not in {p["pid"] for p in probes}
    for probe in probes:
        assert_hardened(probe, policy)
    launcher.stop(proc)
