"""Every CLI command has end-to-end tests (like psutil's test_coverage for its scripts)."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from sockwise.cli import COMMANDS
from sockwise.cli._app import build_parser

HERE = Path(__file__).parent


def _test_names() -> set[str]:
    names = set()
    for path in HERE.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        names |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return names


def test_commands_list_matches_parser() -> None:
    """COMMANDS names exactly the sub-commands the parser offers."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == set(COMMANDS)


def test_every_command_has_a_test() -> None:
    """Each command has a ``test_<command>_*`` test in tests/cli, and its own test module."""
    names = _test_names()
    missing = [c for c in COMMANDS if not any(n.startswith(f"test_{c}_") for n in names)]
    assert missing == [], f"CLI commands without an end-to-end test: {missing}"
    modules = {p.stem for p in HERE.glob("test_cli_*.py")}
    assert {f"test_cli_{c}" for c in COMMANDS} <= modules
