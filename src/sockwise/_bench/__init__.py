"""Benchmark implementations shared by ``benchmarks/`` scripts and ``sockwise bench``.

Each module exposes ``run(quick: bool = False) -> dict`` returning JSON-ready results.
"""
