"""What sockwise.harden() costs per loopback connection, side by side with bare sockets.

Run: ``python benchmarks/bench_harden.py [--quick] [--json PATH]``; prints a table and saves a
results file (the structure ``sockwise bench`` writes) to ``benchmarks/results/harden.json``.
``sockwise bench --only harden`` runs the same code.
"""

from sockwise._bench.runner import script

if __name__ == "__main__":
    script("harden", __doc__)
