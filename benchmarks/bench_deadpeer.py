"""Dead-peer detection time in network namespaces: kernel defaults vs the policy.

Run: ``python benchmarks/bench_deadpeer.py [--quick] [--json PATH]``; prints a table and saves a
results file (the structure ``sockwise bench`` writes) to ``benchmarks/results/deadpeer.json``.
``sockwise bench --only deadpeer`` runs the same code.
"""

from sockwise._bench.runner import script

if __name__ == "__main__":
    script("deadpeer", __doc__)
