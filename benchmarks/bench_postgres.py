"""PostgreSQL: sockwise pool vs psycopg_pool (with and without a check) vs connect() per query.

Run: ``python benchmarks/bench_postgres.py [--quick] [--json PATH]``; prints a table and saves a
results file (the structure ``sockwise bench`` writes) to ``benchmarks/results/postgres.json``.
``sockwise bench --only postgres`` runs the same code.
"""

from sockwise._bench.runner import script

if __name__ == "__main__":
    script("postgres", __doc__)
