"""``sockwise run [--policy PRESET] [--no-guard] -- CMD ARGS...``: harden every Python process.

The command replaces ``sockwise run`` (``execvpe``): same PID, signals reach it directly, and
its exit status is the command's own. Before that, the environment is built and checked
(:func:`sockwise.autorun.child_environ`): ``SOCKWISE_AUTO=1`` and sockwise's start-up hook
first on ``PYTHONPATH``, so each Python process the command starts -- itself, ``subprocess``
children, ``multiprocessing`` children with any start method, gunicorn and uvicorn workers --
hardens itself. A malformed flag or ``SOCKWISE_*`` variable is a one-line error and exit
status 2, with nothing started; a command that cannot be found exits 127, one that cannot be
executed 126 (the shell's convention).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

DESCRIPTION = (
    "Run CMD with every Python process it starts hardened (the command, its subprocesses, "
    "multiprocessing children, gunicorn and uvicorn workers), configured by the SOCKWISE_* "
    "variables and these flags. The command replaces sockwise run: same PID, signals and exit "
    "status."
)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``sockwise run: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"sockwise run: error: {message}\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sockwise run`` (shared by ``sockwise --help`` and the run parser)."""
    parser.add_argument(
        "--policy",
        metavar="PRESET",
        help="start from a preset (default, interactive, kernel, aws-nlb, azure-lb, nat:SECONDS);"
        " sets SOCKWISE_PRESET; SOCKWISE_<FIELD> variables still override single fields",
    )
    parser.add_argument(
        "--no-guard",
        action="store_true",
        help="do not start the runtime guard in each process (sets SOCKWISE_GUARD=0)",
    )
    parser.add_argument(
        "cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...", help="the command to run"
    )


def _parser() -> _Parser:
    parser = _Parser(prog="sockwise run", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def run(argv: Sequence[str]) -> int:
    """Parse *argv* (after ``run``), build the environment and exec the command.

    Returns only on failure: 2 for bad usage, 126/127 when the command cannot be executed.
    """
    from sockwise.autorun import child_environ
    from sockwise.policy import ENV_VARS, Policy

    parser = _parser()
    args = parser.parse_args(list(argv))
    cmd: list[str] = list(args.cmd)
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    if not cmd:
        parser.error("no command given (usage: sockwise run [OPTIONS] -- CMD ARGS...)")
    if args.policy is not None:
        try:
            Policy.from_env({"SOCKWISE_PRESET": args.policy})
        except ValueError as exc:
            allowed = str(exc).rpartition("expected ")[2]
            parser.error(f"argument --policy: {args.policy!r} is not a preset: expected {allowed}")
    unknown = sorted(n for n in os.environ if n.startswith("SOCKWISE_") and n not in ENV_VARS)
    if unknown:  # harden() only warns about these; before anything starts, a typo is an error
        close = difflib.get_close_matches(unknown[0], ENV_VARS, n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        known = ", ".join(ENV_VARS)
        parser.error(f"unknown environment variable {unknown[0]}{hint}; known: {known}")
    try:
        with warnings.catch_warnings():  # a variable sockwise only warns about is an error here
            warnings.simplefilter("error")
            env = child_environ(preset=args.policy, guard=False if args.no_guard else None)
    except (TypeError, ValueError, Warning) as exc:
        parser.error(str(exc).replace("\n", " "))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(cmd[0], cmd, env)
    except FileNotFoundError:
        print(f"sockwise run: error: command not found: {cmd[0]}", file=sys.stderr)
        return 127
    except OSError as exc:
        print(f"sockwise run: error: cannot execute {cmd[0]}: {exc.strerror}", file=sys.stderr)
        return 126
    raise AssertionError("unreachable")  # pragma: no cover
