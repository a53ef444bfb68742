"""``.. sockwise-exports:: MODULE`` documents the names in ``MODULE.__all__`` not listed elsewhere.

The reference pages group the public names by topic. Names that a package re-exports from another
module (``sockwise.Guard`` from ``sockwise.guard``) may appear before anyone has written a
section for them; this directive documents whatever ``__all__`` holds minus ``:exclude:``, so the
reference can never silently miss a public name. Each name gets the autodoc directive its kind
calls for.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def autodoc_lines(modname: str, names: list[str]) -> list[str]:
    """The reStructuredText autodoc directives for *names* of module *modname*."""
    module = importlib.import_module(modname)
    lines: list[str] = []
    for name in names:
        obj = getattr(module, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            lines += [f".. autoexception:: {modname}.{name}", ""]
        elif inspect.isclass(obj):
            lines += [f".. autoclass:: {modname}.{name}", "   :members:", ""]
        elif callable(obj):
            lines += [f".. autofunction:: {modname}.{name}", ""]
        else:
            lines += [f".. autodata:: {modname}.{name}", "   :no-value:", ""]
    return lines


class SockwiseExports(SphinxDirective):
    """``.. sockwise-exports:: MODULE`` with ``:exclude: NAME, NAME``."""

    required_arguments = 1
    option_spec = {"exclude": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        modname = self.arguments[0]
        module = importlib.import_module(modname)
        exclude = {n.strip() for n in self.options.get("exclude", "").split(",") if n.strip()}
        names = [n for n in getattr(module, "__all__", ()) if n not in exclude]
        if not names:
            return [nodes.paragraph(text="(There are none at the moment.)")]
        container = nodes.container()
        content = StringList(autodoc_lines(modname, names), source=f"<{modname}.__all__>")
        self.state.nested_parse(content, self.content_offset, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("sockwise-exports", SockwiseExports)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
