"""The one results file of a benchmark run: what ran, where, with which versions, and when.

``sockwise bench`` writes one file per run (``benchmarks/results/sockwise-bench.json`` for a full
run in a checkout); ``python benchmarks/bench_NAME.py`` writes the same structure with one
benchmark in it. README's benchmark table and the docs' tables are generated from such a file
(:mod:`sockwise._bench.report`), never typed by hand. The structure::

    {
      "schema": "sockwise-bench/2",
      "date": "2026-11-28T05:00:00Z",         # when the run finished (UTC)
      "quick": false,                          # a --quick run (fewer rounds, some cases skipped)
      "command": "sockwise bench",
      "machine": {"cpu_model", "cores", "kernel", "platform", "loadavg_1m"},
      "versions": {"python", "sockwise", "speedups", "urllib3", "psycopg", "psycopg_pool",
                   "libpq"},                 # speedups: sockwise's C extension, "built" or not
      "benchmarks": [{"name", "status", "seconds", "note", "result"}, ...]
    }
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

SCHEMA: Final = "sockwise-bench/2"
MACHINE_KEYS: Final = ("cpu_model", "cores", "kernel", "platform", "loadavg_1m")
VERSION_KEYS: Final = (
    "python",
    "sockwise",
    "speedups",
    "urllib3",
    "psycopg",
    "psycopg_pool",
    "libpq",
)
BENCHMARK_KEYS: Final = ("name", "status", "seconds", "note", "result")
STATUSES: Final = ("ok", "skipped", "error", "missing")


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """CPU model, cores, kernel, platform and 1-minute load average of this machine."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def versions() -> dict[str, str | None]:
    """Python, sockwise and the measured libraries' versions (``None``: not installed).

    ``speedups`` says whether sockwise's optional C extension ran (``"built"``) or not.
    """
    from sockwise import _native
    from sockwise._version import __version__

    out: dict[str, str | None] = {
        "python": platform.python_version(),
        "sockwise": __version__,
        "speedups": _native.status(),
        "urllib3": None,
        "psycopg": None,
        "psycopg_pool": None,
        "libpq": None,
    }
    try:
        import urllib3

        out["urllib3"] = str(urllib3.__version__)  # type: ignore[attr-defined]
    except ImportError:
        pass
    try:
        import psycopg

        out["psycopg"] = str(psycopg.__version__)
        v = psycopg.pq.version()
        out["libpq"] = f"{v // 10000}.{v % 100}" if v >= 100000 else str(v)
    except ImportError:
        pass
    try:
        import psycopg_pool

        out["psycopg_pool"] = str(psycopg_pool.__version__)
    except ImportError:
        pass
    return out


def build(benchmarks: Sequence[Mapping[str, Any]], quick: bool, command: str) -> dict[str, Any]:
    """The results structure of one run of *benchmarks* (dicts with :data:`BENCHMARK_KEYS`)."""
    return {
        "schema": SCHEMA,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": quick,
        "command": command,
        "machine": machine(),
        "versions": versions(),
        "benchmarks": [{k: b.get(k) for k in BENCHMARK_KEYS} for b in benchmarks],
    }


def write(path: str, data: Mapping[str, Any]) -> None:
    """Write *data* to *path* as indented JSON (directories created)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")


def problems(data: object) -> list[str]:
    """What is wrong with a results structure (empty when it follows the schema)."""
    if not isinstance(data, dict):
        return [f"expected a JSON object, got {type(data).__name__}"]
    out = []
    if data.get("schema") != SCHEMA:
        out.append(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    if not isinstance(data.get("date"), str) or not data["date"].endswith("Z"):
        out.append(f"date {data.get('date')!r} is not a UTC timestamp")
    if not isinstance(data.get("quick"), bool):
        out.append(f"quick {data.get('quick')!r} is not true/false")
    for key, names in (("machine", MACHINE_KEYS), ("versions", VERSION_KEYS)):
        section = data.get(key)
        if not isinstance(section, dict):
            out.append(f"{key} is missing")
            continue
        out += [f"{key}.{n} is missing" for n in names if n not in section]
    benches = data.get("benchmarks")
    if not isinstance(benches, list) or not benches:
        out.append("benchmarks is empty or missing")
        return out
    for i, bench in enumerate(benches):
        if not isinstance(bench, dict):
            out.append(f"benchmarks[{i}] is not an object")
            continue
        out += [f"benchmarks[{i}].{k} is missing" for k in BENCHMARK_KEYS if k not in bench]
        if bench.get("status") not in STATUSES:
            out.append(f"benchmarks[{i}].status {bench.get('status')!r} not in {STATUSES}")
        if bench.get("status") == "ok" and not isinstance(bench.get("result"), dict):
            out.append(f"benchmarks[{i}] is ok but has no result")
    return out


def load(path: str) -> dict[str, Any]:
    """Read and check a results file.

    Raises:
        OSError: The file cannot be read.
        ValueError: It is not JSON, or does not follow the schema (every problem named).

    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    found = problems(data)
    if found:
        raise ValueError(f"{path}: not a sockwise benchmark results file: {'; '.join(found)}")
    assert isinstance(data, dict)
    return data


def benchmark(data: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The result of benchmark *name* in *data* when it ran ``ok``, else ``None``."""
    for bench in data.get("benchmarks", []):
        if isinstance(bench, dict) and bench.get("name") == name and bench.get("status") == "ok":
            result = bench.get("result")
            return result if isinstance(result, dict) else None
    return None
