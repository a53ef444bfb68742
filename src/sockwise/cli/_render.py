"""Plain-text tables and small formatting helpers for the CLI (no third-party dependency)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  ") -> str:
    """Render *rows* under *headers* as left-aligned columns (numbers right-aligned)."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [
        bool(rows) and all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
        for i in range(len(headers))
    ]
    lines = []
    for r in cells:
        parts = [
            c.rjust(w) if numeric[i] else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append(indent + "  ".join(parts).rstrip())
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def seconds(value: float | None) -> str:
    """A duration for people: ``90 s``, ``2 h 11 min``, ``-`` when unknown."""
    if value is None:
        return "-"
    if value < 120:
        return f"{value:g} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 120:
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def size(value: int) -> str:
    """A byte count for people: ``512 B``, ``3.9 MB`` (decimal units, as ``ss`` users read)."""
    amount = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} GB"  # Defensive: unreachable


def dump_json(data: Any, out: TextIO, *, lines: bool = False) -> None:
    """Write *data* as JSON (one line per object when *lines*), then a newline."""
    out.write(json.dumps(data, indent=None if lines else 2, sort_keys=False, default=str))
    out.write("\n")
    out.flush()
