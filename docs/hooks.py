"""MkDocs hook: API pages list exactly the names each package's ``__init__.py`` re-exports.

An API page writes

    ::: sdeml.core
        options:
          members: from-init

and this hook replaces ``members: from-init`` by the list of names imported as ``X as X`` in
``sdeml/core/__init__.py`` (read as text: nothing is imported), in the file's order. Packages
that load their names lazily (``sdeml.data``, ``sdeml.train``, ``sdeml.run``) declare them under
``if TYPE_CHECKING:`` in the same form, so one rule covers every package, and a name added to or
removed from a package shows up in (or leaves) the reference without editing the page. A name
that griffe cannot resolve fails the strict build.
"""

from __future__ import annotations

import re
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_DIRECTIVE = re.compile(r"^::: (sdeml(?:\.\w+)*)\s*$", re.M)
_MARKER = re.compile(r"^(\s*)members: from-init\s*$", re.M)
_REEXPORT = re.compile(r"^\s*from [.\w]+ import (\w+) as (\w+)\s*$", re.M)


def package_names(package: str) -> list[str]:
    """The names ``package`` re-exports (``from m import X as X``), constants last."""
    init = _ROOT.joinpath(*package.split("."), "__init__.py")
    names: list[str] = []
    for a, b in _REEXPORT.findall(init.read_text(encoding="utf-8")):
        if a == b and not b.startswith("_") and b not in names:
            names.append(b)
    # Classes and functions in the file's order, then ALL_CAPS constants; the door (``sdeml``)
    # lists its theme namespaces too, which have their own pages.
    names = [n for n in names if not n.isupper()] + [n for n in names if n.isupper()]
    if package == "sdeml":
        themes = {p.name for p in _ROOT.joinpath("sdeml").iterdir() if p.is_dir()}
        names = [n for n in names if n not in themes]
    return names


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "members: from-init" not in markdown:
        return markdown
    out, pos = [], 0
    for m in _MARKER.finditer(markdown):
        directives = _DIRECTIVE.findall(markdown, 0, m.start())
        if not directives:
            raise ValueError(f"{page.file.src_path}: 'members: from-init' without a ::: line")
        pad = m.group(1)
        items = "".join(f"\n{pad}  - {n}" for n in package_names(directives[-1]))
        out.append(markdown[pos : m.start()] + f"{pad}members:{items}")
        pos = m.end()
    out.append(markdown[pos:])
    return "".join(out)
