"""Guard cost: one tick vs psutil at 10,000 sockets, CPU share, origin recording per connect."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

from sockwise.guard._bench import run as _run
from sockwise.guard._bench import table

RESULTS = Path(__file__).parent / "results" / "guard.json"


def run(quick: bool = False) -> dict[str, Any]:
    """Measure, print a table and save the JSON; return the results."""
    result = _run(quick)
    result["machine"] = {"platform": platform.platform(), "python": platform.python_version()}
    result["quick"] = quick
    print(table(result))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 sockets instead of 10,000")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
