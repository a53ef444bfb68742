"""Run under ``sockwise run``: the main process, a child per start method, a Python subprocess."""

import multiprocessing
import os
import subprocess
import sys
import warnings

import run_probe

HERE = os.path.dirname(os.path.abspath(__file__))


def child(tag: str) -> None:
    run_probe.record(tag)


if __name__ == "__main__":
    warnings.simplefilter("error")  # e.g. a spawn child sockwise believes unhardened
    run_probe.record("main")
    for method in ("fork", "spawn", "forkserver"):
        proc = multiprocessing.get_context(method).Process(target=child, args=(method,))
        proc.start()
        proc.join(60)
        if proc.exitcode != 0:
            proc.kill()
            sys.exit(f"{method} child failed: exit code {proc.exitcode}")
    code = f"import sys; sys.path.insert(0, {HERE!r}); import run_probe; run_probe.record('sub')"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
