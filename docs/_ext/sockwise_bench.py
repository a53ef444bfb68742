"""Sphinx directives that render saved benchmark results, so the docs never hold stale numbers.

Every table comes from ONE results file, ``benchmarks/results/sockwise-bench.json`` (a full
``sockwise bench`` run; schema in :mod:`sockwise._bench.results`), the same file README's table
is generated from (``sockwise bench --render-docs``):

``{bench-headline} FILE`` renders the headline table -- exactly the lines of README's block
(:func:`sockwise._bench.report.headline`) -- and the run's provenance (date, machine, versions).

``{bench-results} FILE#NAME`` renders benchmark NAME's rows from that file. Columns are the
scalar fields of the rows; ``summary``, ``description`` and ``notes`` are shown when present.

When the file is missing (or NAME did not run), a paragraph names the ``:command:`` that
produces it instead -- never a warning, so a fresh checkout still builds with ``-W``.

``{bench-plot} FILE [FILE ...]`` shows the first PNG that exists, or the same kind of note.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from sockwise._bench import report as bench_report
from sockwise._bench import results as bench_results

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
_SCALARS = (str, int, float, bool, type(None))


def load_run(name: str, results: Path = RESULTS) -> dict[str, Any] | None:
    """The results file *name* in *results*, checked against the schema (``None`` if absent).

    Raises:
        ValueError: The file exists but does not follow the schema (the build must fail).

    """
    path = results / name
    if not path.is_file():
        return None
    return bench_results.load(str(path))


def load_result(source: str, results: Path = RESULTS) -> tuple[dict[str, Any], Path] | None:
    """Benchmark NAME's result in ``FILE#NAME`` with the run's metadata, or ``None``."""
    name, _, part = source.partition("#")
    if not part:
        raise ValueError(f"bench-results {source!r}: expected FILE#NAME (one results file)")
    data = load_run(name, results)
    if data is None:
        return None
    result = bench_results.benchmark(data, part)
    if not result:
        return None
    merged = {k: v for k, v in data.items() if k != "benchmarks"}
    return {**merged, **result}, results / name


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
            quick = ", a QUICK run" if result.get("quick") else ""
            details.append(f"Source: benchmarks/results/{path.name}{quick} of {result['date']}.")
            out.extend(nodes.paragraph(text=d, classes=["bench-details"]) for d in details)
            return out
        for source in self.arguments:
            self.env.note_dependency(str(RESULTS / source.partition("#")[0]))
        return [_note("No results have been recorded for this benchmark yet.", command)]


def _two_column_table(header: tuple[str, str], lines: list[tuple[str, str]]) -> nodes.table:
    def plain(text: str) -> str:  # README's Markdown code spans, as plain text here
        return text.replace("`", "")

    rows = [{header[0]: plain(what), header[1]: plain(measured)} for what, measured in lines]
    return _table(rows)


class BenchHeadline(SphinxDirective):
    """``{bench-headline} FILE`` with ``:command:``: README's table, from the same file."""

    required_arguments = 1
    option_spec = {"command": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        path = RESULTS / name
        self.env.note_dependency(str(path))
        data = load_run(name)
        if data is None:
            return [_note("No results have been recorded yet.", self.options.get("command", ""))]
        return [
            nodes.paragraph(
                text=f"Measured in one {bench_report.provenance(data, name)}.".replace("`", "")
            ),
            _two_column_table(("what", "measured"), bench_report.headline(data)),
        ]


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
    app.add_directive("bench-headline", BenchHeadline)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
