"""Nagle + delayed ACK vs TCP_NODELAY, and http.server with and without harden().

Run: ``python benchmarks/bench_nodelay.py [--quick] [--json PATH]``; prints a table and saves a
results file (the structure ``sockwise bench`` writes) to ``benchmarks/results/nodelay.json``.
``sockwise bench --only nodelay`` runs the same code.
"""

from sockwise._bench.runner import script

if __name__ == "__main__":
    script("nodelay", __doc__)
