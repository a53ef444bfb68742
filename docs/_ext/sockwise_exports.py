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
from collections.abc import Sequence
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def public_home(name: str, obj: object, homes: Sequence[str]) -> str | None:
    """The first module of *homes* (documented on pages of their own) exporting *obj* as *name*.

    ``sockwise.Guard`` is ``sockwise.guard.Guard``: documented in full on the guard page, it is
    listed here as an alias, since autodoc would describe the same canonical object twice.
    """
    for home in homes:
        module = importlib.import_module(home)
        if name in getattr(module, "__all__", ()) and getattr(module, name, None) is obj:
            return home
    return None


def _kind(obj: object) -> str:
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return "exception"
    if inspect.isclass(obj):
        return "class"
    return "function" if callable(obj) else "data"


def autodoc_lines(modname: str, names: list[str], homes: Sequence[str] = ()) -> list[str]:
    """The reStructuredText directives that document *names* of module *modname*."""
    module = importlib.import_module(modname)
    lines: list[str] = []
    for name in names:
        obj = getattr(module, name)
        kind = _kind(obj)
        home = public_home(name, obj, homes)
        if home is not None:
            role = {"exception": "exc", "class": "class", "function": "func"}.get(kind, "data")
            lines += [f".. py:{kind}:: {name}", f"   :module: {modname}", ""]
            lines += [f"   Alias of :{role}:`{home}.{name}`.", ""]
        elif kind == "class":
            lines += [f".. autoclass:: {modname}.{name}", "   :members:", ""]
        elif kind == "data":
            lines += [f".. autodata:: {modname}.{name}", "   :no-value:", ""]
        else:
            lines += [f".. auto{kind}:: {modname}.{name}", ""]
    return lines


class SockwiseExports(SphinxDirective):
    """``.. sockwise-exports:: MODULE`` with ``:exclude: NAME, ...`` and ``:homes: MODULE, ...``.

    ``:homes:`` lists the modules documented on pages of their own; a name they export is
    listed as an alias of theirs instead of being described a second time.
    """

    required_arguments = 1
    option_spec = {"exclude": directives.unchanged, "homes": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        modname = self.arguments[0]
        module = importlib.import_module(modname)
        exclude = {n.strip() for n in self.options.get("exclude", "").split(",") if n.strip()}
        names = [n for n in getattr(module, "__all__", ()) if n not in exclude]
        if not names:
            return [nodes.paragraph(text="(There are none at the moment.)")]
        container = nodes.container()
        homes = [h.strip() for h in self.options.get("homes", "").split(",") if h.strip()]
        lines = autodoc_lines(modname, names, homes)
        content = StringList(lines, source=f"<{modname}.__all__>")
        self.state.nested_parse(content, self.content_offset, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("sockwise-exports", SockwiseExports)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
