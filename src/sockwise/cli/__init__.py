"""The ``sockwise`` command line: policy, doctor, inspect, bench, run and alerts.

Run ``sockwise --help`` (or ``python -m sockwise --help``). :func:`main` is the console-script
entry point; it returns the exit status instead of exiting, so it can be called from code.
"""

from sockwise.cli._app import COMMANDS, main

__all__ = ["COMMANDS", "main"]
