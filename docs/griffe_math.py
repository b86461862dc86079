"""A griffe extension for the API reference: reStructuredText math and roles -> Markdown.

sdeml's docstrings are Markdown with `$...$` math (rendered by pymdownx.arithmatex). Some
modules once wrote math the reStructuredText way (inline ``:math:`x```, display ``.. math::``
blocks, ``:func:`` / ``:class:`` roles); they were rewritten with `rst_to_markdown` below, and
``tests/test_api.py::test_docstrings_write_math_one_way`` keeps them out. mkdocstrings renders
docstrings as Markdown, where those forms would show up as literal text, so this extension still
rewrites any that appear when griffe loads each object, before any Markdown is rendered:

- ``:math:`x``` -> ``$x$``;
- ``.. math:: x`` (with indented continuation lines) -> a ``$$ ... $$`` display block;
- ``:func:`name``` / ``:class:`name``` / ``:meth:`name``` -> ``` `name` ```.

The docstrings themselves are not modified on disk (they belong to the library).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_CODE_ROLE = re.compile(r":(?:func|class|meth|attr|mod|obj|data):`~?([^`]+)`")
_DIRECTIVE = re.compile(r"^(\s*)\.\. math::\s*(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rst_to_markdown(text: str) -> str:
    """Rewrite the reStructuredText math and roles of one docstring (see the module doc)."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        pad, first = m.group(1), m.group(2).strip()
        body = [first] if first else []
        i += 1
        # The block: following lines indented deeper than the directive (blank lines inside it
        # are kept only when more indented lines follow).
        while i < len(lines):
            line = lines[i]
            if line.strip() and _indent(line) > len(pad):
                body.append(line.strip())
                i += 1
            elif not line.strip() and i + 1 < len(lines) and lines[i + 1].strip() and _indent(
                lines[i + 1]
            ) > len(pad) and not body:
                i += 1
            else:
                break
        if out and out[-1].strip():
            out.append("")
        out.extend([f"{pad}$$", *(f"{pad}{b}" for b in body), f"{pad}$$"])
        if i < len(lines) and lines[i].strip():
            out.append("")
    text = "\n".join(out)
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
    return _CODE_ROLE.sub(lambda m: f"`{m.group(1)}`", text)


class RstMath(griffe.Extension):
    """Rewrite every loaded docstring with `rst_to_markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
