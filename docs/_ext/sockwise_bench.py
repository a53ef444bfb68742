"""Sphinx directives that render saved benchmark results, so the docs never hold stale numbers.

``{bench-results} SOURCE [SOURCE ...]`` renders a table from the first SOURCE that has results.
A SOURCE is a JSON file in ``benchmarks/results/`` written by a ``benchmarks/bench_*.py`` script
(an object with a ``rows`` list), or ``FILE#NAME`` for benchmark NAME inside the combined file
``sockwise bench`` writes (``{"benchmarks": [{"name", "status", "note", "result"}]}``). Columns
are the scalar fields of the rows; ``summary``, ``description``, ``notes`` and ``machine`` are
shown when present. When no SOURCE has results, a paragraph names the ``:command:`` that
produces them instead -- never a warning, so a fresh checkout still builds with ``-W``.

``{bench-plot} FILE [FILE ...]`` shows the first PNG that exists, or the same kind of note.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
_SCALARS = (str, int, float, bool, type(None))


def load_result(source: str, results: Path = RESULTS) -> tuple[dict[str, Any], Path] | None:
    """The result object named by *source* (``FILE`` or ``FILE#NAME``), or ``None``."""
    name, _, part = source.partition("#")
    path = results / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if part:
        for entry in data.get("benchmarks", []):
            if isinstance(entry, dict) and entry.get("name") == part:
                result = entry.get("result")
                if entry.get("status") == "ok" and isinstance(result, dict) and result:
                    merged = {k: v for k, v in data.items() if k != "benchmarks"}
                    return {**merged, **result}, path
        return None
    return (data, path) if isinstance(data.get("rows"), list) and data["rows"] else None


def format_value(value: object) -> str:
    """A table cell: numbers rounded for reading, everything else as text."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def table_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The scalar columns of *rows*, in order of first appearance."""
    columns: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, _SCALARS):
                columns.setdefault(key, None)
    return list(columns)


def _table(rows: list[dict[str, Any]]) -> nodes.table:
    columns = table_columns(rows)
    table = nodes.table(classes=["bench-results"])
    group = nodes.tgroup(cols=len(columns))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in columns)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body

    def row_node(cells: list[str]) -> nodes.row:
        row = nodes.row()
        for text in cells:
            row += nodes.entry("", nodes.paragraph(text=text))
        return row

    head += row_node([c.replace("_", " ") for c in columns])
    for item in rows:
        body += row_node([format_value(item.get(c)) for c in columns])
    return table


def _note(text: str, command: str) -> nodes.Node:
    para = nodes.paragraph(text=text + " ")
    if command:
        para += nodes.Text("Run ")
        para += nodes.literal(text=command)
        para += nodes.Text(" and rebuild the docs to fill it in.")
    return nodes.note("", para)


class BenchResults(SphinxDirective):
    """``{bench-results} SOURCE [SOURCE ...]`` with ``:command:``."""

    required_arguments = 1
    optional_arguments = 10
    option_spec = {"command": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        command = self.options.get("command", "")
        for source in self.arguments:
            found = load_result(source)
            if found is None:
                continue
            result, path = found
            self.env.note_dependency(str(path))
            out: list[nodes.Node] = []
            if result.get("summary"):
                out.append(nodes.paragraph(text=str(result["summary"])))
            rows = [r for r in result.get("rows", []) if isinstance(r, dict)]
            if rows:
                out.append(_table(rows))
            details = [str(result[k]) for k in ("description", "notes") if result.get(k)]
            machine = result.get("machine")
            if isinstance(machine, dict):
                details.append(
                    "Machine: "
                    + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in machine.items())
                )
            else:
                bits = [f"{k} {result[k]}" for k in ("platform", "python", "cpus") if k in result]
                if bits:
                    details.append("Machine: " + ", ".join(bits))
            stamp = f" (finished {result['finished_at']})" if result.get("finished_at") else ""
            quick = ", a quick run" if result.get("quick") else ""
            details.append(f"Source: benchmarks/results/{path.name}{quick}{stamp}.")
            out.extend(nodes.paragraph(text=d, classes=["bench-details"]) for d in details)
            return out
        for source in self.arguments:
            self.env.note_dependency(str(RESULTS / source.partition("#")[0]))
        return [_note("No results have been recorded for this benchmark yet.", command)]


class BenchPlot(SphinxDirective):
    """``{bench-plot} FILE [FILE ...]`` with ``:command:`` and ``:alt:``."""

    required_arguments = 1
    optional_arguments = 10
    option_spec = {"command": directives.unchanged, "alt": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        for name in self.arguments:
            path = RESULTS / name
            self.env.note_dependency(str(path))
            if path.is_file():
                docdir = (Path(self.env.srcdir) / self.env.docname).parent
                node = nodes.image(
                    uri=os.path.relpath(path, docdir), alt=self.options.get("alt", name)
                )
                return [node]
        return [_note("No plot has been saved yet.", self.options.get("command", ""))]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives."""
    app.add_directive("bench-results", BenchResults)
    app.add_directive("bench-plot", BenchPlot)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
