"""``python -m sockwise.autorun --path``: print the directory to put first on ``PYTHONPATH``."""

from __future__ import annotations

import argparse
import sys

from sockwise.autorun import path


def main(argv: list[str] | None = None) -> int:
    """Print the start-up hook's directory (``--path``) and return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m sockwise.autorun",
        description="Harden every Python process at start-up: set SOCKWISE_AUTO=1 and put the "
        "directory printed by --path first on PYTHONPATH.",
    )
    parser.add_argument("--path", action="store_true", help="print the directory and exit")
    args = parser.parse_args(argv)
    if not args.path:
        parser.print_help()
        return 2
    print(path())
    return 0


if __name__ == "__main__":
    sys.exit(main())
