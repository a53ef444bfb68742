"""The guard's cost: one tick vs psutil at 10,000 sockets, CPU share, origin recording.

Run: ``python benchmarks/bench_guard.py [--quick] [--json PATH]``; prints a table and saves a
results file (the structure ``sockwise bench`` writes) to ``benchmarks/results/guard.json``.
``sockwise bench --only guard`` runs the same code.
"""

from sockwise._bench.runner import script

if __name__ == "__main__":
    script("guard", __doc__)
