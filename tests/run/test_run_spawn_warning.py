"""UnhardenedChildWarning: once, when a hardened process starts a spawn/forkserver child unhardened.

Each case runs a real script whose children report whether they are hardened, so the warning is
checked against the truth.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from run_support import clean_env

from sockwise import autorun
from sockwise.harden._spawn import child_reruns_harden

CHILD = textwrap.dedent(
    """
    import multiprocessing, sys
    import sockwise

    def child():
        print("child", sockwise.is_hardened(), flush=True)

    def start(methods):
        for method in methods:
            p = multiprocessing.get_context(method).Process(target=child)
            p.start()  # START
            p.join(60)
    """
)

GUARDED = textwrap.dedent(
    """
    import helper, sockwise
    if __name__ == '__main__':
        sockwise.harden(guard=False)
        helper.start(sys.argv[1:])
    """
)
TOP_LEVEL = textwrap.dedent(
    """
    import helper, sockwise
    sockwise.harden(guard=False)
    if __name__ == '__main__':
        helper.start(sys.argv[1:])
    """
)


def _run(
    tmp_path: Path, main: str, *methods: str, env: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    (tmp_path / "helper.py").write_text(CHILD)
    (tmp_path / "main.py").write_text("import sys\n" + main)
    result = subprocess.run(
        [sys.executable, "main.py", *methods],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=clean_env(env),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "UnhardenedChildWarning" in line]
    return result.stdout.split("\n")[:-1], warnings


def test_guarded_harden_warns_once_and_the_children_are_unhardened(tmp_path: Path) -> None:
    out, warnings = _run(tmp_path, GUARDED, "spawn", "forkserver", "spawn", "fork")
    assert out == ["child False", "child False", "child False", "child True"]
    assert len(warnings) == 1
    start_line = CHILD.splitlines().index(next(x for x in CHILD.splitlines() if "# START" in x))
    assert warnings[0].startswith(f"{tmp_path / 'helper.py'}:{start_line + 1}: "), warnings[0]
    assert "sockwise run" in warnings[0]


def test_fork_only_does_not_warn(tmp_path: Path) -> None:
    out, warnings = _run(tmp_path, GUARDED, "fork", "fork")
    assert (out, warnings) == (["child True", "child True"], [])


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_top_level_harden_reaches_the_child_and_does_not_warn(tmp_path: Path, method: str) -> None:
    out, warnings = _run(tmp_path, TOP_LEVEL, method)
    assert (out, warnings) == (["child True"], [])


def test_harden_at_import_of_the_target_module_does_not_warn(tmp_path: Path) -> None:
    """harden() runs when a module is imported; the child imports it too (through the target)."""
    (tmp_path / "hardened.py").write_text("import sockwise\nsockwise.harden(guard=False)\n")
    (tmp_path / "helper.py").write_text("import hardened\n" + CHILD)
    main = "if __name__ == '__main__':\n    import helper\n    helper.start(['spawn'])\n"
    out, warnings = _run_prepared(tmp_path, main)
    assert (out, warnings) == (["child True"], [])


def _run_prepared(tmp_path: Path, main: str) -> tuple[list[str], list[str]]:
    (tmp_path / "main.py").write_text(main)
    result = subprocess.run(
        [sys.executable, "main.py"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\n")[:-1], [
        line for line in result.stderr.splitlines() if "UnhardenedChildWarning" in line
    ]


def test_under_sockwise_auto_no_warning_and_children_hardened(tmp_path: Path) -> None:
    env = {"SOCKWISE_AUTO": "1", "PYTHONPATH": autorun.path(), "SOCKWISE_GUARD": "0"}
    out, warnings = _run(tmp_path, GUARDED, "spawn", "forkserver", env=env)
    assert (out, warnings) == (["child True", "child True"], [])


def test_unhardened_again_does_not_warn(tmp_path: Path) -> None:
    main = GUARDED.replace("    helper.start", "    sockwise.unharden()\n    helper.start")
    out, warnings = _run(tmp_path, main, "spawn")
    assert (out, warnings) == (["child False"], [])


def test_process_pool_executor_warning_points_at_the_caller(tmp_path: Path) -> None:
    main = textwrap.dedent(
        """
        import concurrent.futures, multiprocessing, helper, sockwise
        if __name__ == "__main__":
            sockwise.harden(guard=False)
            ctx = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
                print("pool", pool.submit(sockwise.is_hardened).result(60), flush=True)
        """
    )
    out, warnings = _run_prepared_with_helper(tmp_path, main)
    assert out == ["pool False"]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{tmp_path / 'main.py'}:7: "), warnings[0]


def _run_prepared_with_helper(tmp_path: Path, main: str) -> tuple[list[str], list[str]]:
    (tmp_path / "helper.py").write_text(CHILD)
    return _run_prepared(tmp_path, main)


@pytest.mark.parametrize(
    ("source", "line", "reruns"),
    [
        ("import sockwise\nsockwise.harden()\n", 2, True),
        ("if __name__ == '__main__':\n    x = 1\n    h()\n", 3, False),
        ("if '__main__' == __name__:\n    h()\n", 2, False),
        ("if __name__ == '__main__':\n    pass\nelse:\n    h()\n", 4, True),
        ("try:\n    if __name__ == '__main__':\n        h()\nfinally:\n    pass\n", 3, False),
        ("if __name__ != '__main__':\n    h()\n", 2, True),
        ("def main():\n    h()\nmain()\n", 3, True),
    ],
)
def test_child_reruns_harden_reads_the_main_guard(
    tmp_path: Path, source: str, line: int, reruns: bool
) -> None:
    path = tmp_path / "m.py"
    path.write_text(source)
    assert child_reruns_harden((str(path), line)) is reruns
    assert child_reruns_harden(None) is False
    assert child_reruns_harden((str(tmp_path / "missing.py"), 1)) is True
