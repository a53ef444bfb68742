"""Sphinx configuration for the sockwise documentation (MyST Markdown, built with -W)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # document the checkout, even if not installed
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

import sockwise  # noqa: E402

project = "sockwise"
author = "sockwise developers"
copyright = "2026, sockwise developers"
release = sockwise.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sockwise_bench",  # docs/_ext: tables and plots from benchmarks/results/*.json
    "sockwise_exports",  # docs/_ext: document what __all__ holds beyond the written sections
    "sockwise_bounds",  # docs/_ext: the measured bounds table from docs/_data/bounds.json
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# -- MyST -----------------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- strictness -----------------------------------------------------------------------------------
# Every cross-reference must resolve. There is no intersphinx: the docs build offline (CI has no
# internet), so names from the standard library and the wrapped libraries are listed here instead
# of being fetched; they render as plain code.
nitpicky = True
_EXTERNAL = (
    "socket",
    "ssl",
    "asyncio",
    "logging",
    "collections",
    "collections.abc",
    "typing",
    "typing_extensions",
    "types",
    "os",
    "pathlib",
    "threading",
    "_thread",
    "subprocess",
    "warnings",
    "urllib3",
    "requests",
    "httpx",
    "aiohttp",
    "psycopg",
    "psycopg_pool",
    "prometheus_client",
    "opentelemetry",
    "pytest",
    "_pytest",
    "psutil",
    "matplotlib",
)
_EXTERNAL_RE = "|".join(re.escape(name) for name in _EXTERNAL)
nitpick_ignore_regex = [
    (r"py:.*", rf"({_EXTERNAL_RE})(\..+)?"),
    # Names that appear in annotations without their module (TYPE_CHECKING-only imports).
    (r"py:.*", r"(Self|Literal|Final|Any|Mapping|Sequence|Iterator|Callable|ClassVar)"),
    (r"py:.*", r"(socket|SSLContext|Logger|Path|Thread|TracebackType|Awaitable|Coroutine)"),
    # Private implementation names (a module or class starting with "_") in signatures and base
    # classes: not public API, so they have no page of their own; they render as plain code.
    (r"py:.*", r"sockwise(\.\w+)*\._\w+(\.\w+)*"),
    # Sphinx splits the annotation of a private dataclass field that a signature shows
    # (sockwise.metrics.opentelemetry.Instrumentation._cache) at its comma.
    (r"py:class", r"tuple\[float"),
]

# sockwise.harden's docstring names sockwise.Guard, which the package re-exports from
# sockwise.guard once the guard is wired into harden(); until then the name renders as code.
if not hasattr(sockwise, "Guard"):
    nitpick_ignore = [("py:class", "sockwise.Guard")]

# -- autodoc / napoleon ---------------------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_class_signature = "mixed"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"sockwise {release}"
html_static_path: list[str] = []


# -- public constants defined in private modules --------------------------------------------------
# A constant such as sockwise.psycopg.DEFAULT_MAX_IDLE is documented by a ``#:`` comment where it
# is defined (sockwise/psycopg/_common.py), but autodoc only reads comments in the module it is
# asked about (sockwise.psycopg), and otherwise shows the docstring of the value's type (float,
# dict). This hook finds the comment in the private module that defines the constant.


def _doc_comment_from_private_module(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    if what not in {"data", "attribute"}:
        return
    from sphinx.pycode import ModuleAnalyzer, PycodeError

    modname, _, attr = name.rpartition(".")
    private = sorted(
        m
        for m in list(sys.modules)
        if m.startswith(modname + ".") and any(p.startswith("_") for p in m.split("."))
    )
    for candidate in private:
        module = sys.modules[candidate]
        if module is None or getattr(module, attr, _MISSING) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(candidate).find_attr_docs()
        except PycodeError:
            continue
        if ("", attr) in docs:
            lines[:] = [*docs[("", attr)]]
            return
    type_doc = (type(obj).__doc__ or "").strip().splitlines()
    if type_doc and [line.strip() for line in lines if line.strip()][:1] == type_doc[:1]:
        lines[:] = []  # the docstring of int/float/dict/frozenset says nothing about this value


_MISSING = object()


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("autodoc-process-docstring", _doc_comment_from_private_module)
