"""The first request/query after idle gaps of 0.2-10 s: sockwise pools vs bare urllib3/psycopg_pool.

Run: ``python benchmarks/bench_gaps.py [--quick] [--json PATH]``; prints a table and saves a
results file (the structure ``sockwise bench`` writes) to ``benchmarks/results/gaps.json``.
``sockwise bench --only gaps`` runs the same code.
"""

from sockwise._bench.runner import script

if __name__ == "__main__":
    script("gaps", __doc__)
