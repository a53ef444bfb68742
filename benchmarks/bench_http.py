"""HTTP and HTTPS: sockwise pool vs bare urllib3 pool vs a new connection per request.

Run: ``python benchmarks/bench_http.py [--quick] [--json PATH]``; prints a table and saves a
results file (the structure ``sockwise bench`` writes) to ``benchmarks/results/http.json``.
``sockwise bench --only http`` runs the same code.
"""

from sockwise._bench.runner import script

if __name__ == "__main__":
    script("http", __doc__)
