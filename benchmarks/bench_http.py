"""HTTP/HTTPS: sockwise pool vs bare urllib3 pool vs a new connection per request (loopback)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sockwise._bench.http import format_table, run

RESULTS = Path(__file__).parent / "results" / "http.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
    args = parser.parse_args()
    data = run(quick=args.quick)
    print(format_table(data))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
