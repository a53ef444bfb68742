"""The saved bounds (docs/_data/bounds.json, rendered into the docs) agree with the code.

No namespaces needed: this checks the file that test_bounds.py writes with
``SOCKWISE_UPDATE_BOUNDS=1``. It fails when a preset or formula changes without re-measuring,
when a case is added or removed, when a saved measurement is outside the tolerance of its stated
bound, or when the docs stop rendering the table from this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bounds_cases import BY_NAME, CASES, DATA, load, row, tolerance, within

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_case_is_saved_once_in_order() -> None:
    assert [r["case"] for r in load()["rows"]] == [c.name for c in CASES]


def test_saved_stated_bounds_are_what_the_code_states_now() -> None:
    for saved in load()["rows"]:
        case = BY_NAME[saved["case"]]
        fresh = row(case, {"elapsed": saved["measured_s"], "error": None})
        for key in ("situation", "policy", "stated_s"):
            assert saved[key] == fresh[key], (case.name, key, saved[key], fresh[key])


def test_saved_measurements_are_within_tolerance() -> None:
    for saved in load()["rows"]:
        case = BY_NAME[saved["case"]]
        stated = saved["stated_s"]
        if stated is None:  # the slow reader must survive its pause
            assert saved["outcome"] == "survived", saved
            pause = case.pause()
            assert saved["measured_s"] >= pause - tolerance(pause), saved
            continue
        assert within(stated, saved["measured_s"]), saved
        assert "timeout" in saved["outcome"].lower() or "ETIMEDOUT" in saved["outcome"], saved


def test_saved_on_the_kernel_the_docs_describe() -> None:
    data = load()
    assert data["tcp_syn_linear_timeouts"] is not None
    assert data["kernel"]


def test_docs_render_the_table_from_the_saved_file() -> None:
    page = (DOCS / "concepts" / "bounds.md").read_text(encoding="utf-8")
    assert "```{bounds-table} " + DATA.name in page
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import sockwise_bounds
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    assert DATA.parent == sockwise_bounds.DATA
    cells = sockwise_bounds.table_rows(load())
    assert len(cells) == len(CASES)
    for saved, rendered in zip(load()["rows"], cells, strict=True):
        assert rendered[0] == saved["situation"]
        assert rendered[1] == saved["policy"]
        assert rendered[3] == f"{saved['measured_s']:.2f} s"
