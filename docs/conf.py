"""Sphinx configuration for the sockwise documentation (MyST Markdown, built with -W)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # document the checkout, even if not installed

import sockwise  # noqa: E402

project = "sockwise"
author = "sockwise developers"
copyright = "2026, sockwise developers"  # noqa: A001
release = sockwise.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
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
]

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
