"""``{bounds-table} FILE``: the table of measured bounds, rendered from ``docs/_data/FILE``.

The file is written by the network-namespace tests (``SOCKWISE_UPDATE_BOUNDS=1 pytest
tests/netns/test_bounds.py``): each row is a situation, the policy, the bound the policy states
and the time measured on a real kernel. The docs never hold a hand-typed number, and
``tests/netns/test_bounds_data.py`` checks the file against the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

DATA = Path(__file__).resolve().parents[1] / "_data"
HEADERS = ("situation", "policy", "stated bound", "measured", "how it ended")


def _seconds(value: object) -> str:
    return f"{value:g} s" if isinstance(value, (int, float)) else "none (never cut)"


def table_rows(data: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The cells of each row, as rendered."""
    return [
        (
            str(r["situation"]),
            str(r["policy"]),
            _seconds(r["stated_s"]),
            f"{r['measured_s']:.2f} s",
            str(r["outcome"]),
        )
        for r in data["rows"]
    ]


def _table(rows: list[tuple[str, ...]]) -> nodes.table:
    table = nodes.table(classes=["bounds-table"])
    group = nodes.tgroup(cols=len(HEADERS))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in HEADERS)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body

    def row_node(cells: tuple[str, ...]) -> nodes.row:
        row = nodes.row()
        for text in cells:
            row += nodes.entry("", nodes.paragraph(text=text))
        return row

    head += row_node(HEADERS)
    for cells in rows:
        body += row_node(cells)
    return table


class BoundsTable(SphinxDirective):
    """``{bounds-table} FILE``."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        path = DATA / self.arguments[0]
        self.env.note_dependency(str(path))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise self.error(f"bounds-table: cannot read {path}: {exc}") from exc
        machine = (
            f"Measured on Linux {data.get('kernel')} (tcp_syn_retries="
            f"{data.get('tcp_syn_retries')}, tcp_syn_linear_timeouts="
            f"{data.get('tcp_syn_linear_timeouts')}); regenerate with "
        )
        para = nodes.paragraph(text=machine)
        para += nodes.literal(text=str(data.get("generated_by", "")))
        para += nodes.Text(".")
        return [_table(table_rows(data)), para]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("bounds-table", BoundsTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
