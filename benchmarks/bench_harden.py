"""What sockwise.harden() costs per loopback connection, side by side with bare sockets.

Run: ``python benchmarks/bench_harden.py [--quick]``; prints a table and writes
``benchmarks/results/harden.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sockwise._bench import harden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args()
    result = harden.run(quick=args.quick)
    print(harden.format_table(result))
    out = Path(__file__).parent / "results" / "harden.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
