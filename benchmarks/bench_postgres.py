"""PostgreSQL: sockwise pool vs psycopg_pool (with and without check) vs connect() per query.

Usage: ``python benchmarks/bench_postgres.py [--quick]``. Prints a table and saves the results
to ``benchmarks/results/postgres.json``; ``sockwise bench postgres`` runs the same code
(:mod:`sockwise._bench.postgres`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sockwise._bench import postgres

RESULTS = Path(__file__).resolve().parent / "results" / "postgres.json"


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark and return its JSON-ready results."""
    return postgres.run(quick=quick)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    result = run(quick=args.quick)
    print(postgres.table(result))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
