"""Relative links on the docs pages resolve, snippets included.

``mkdocs build --strict`` (docs CI, the last CI step) fails on a link whose target is not a
documentation file. A page that includes a file from elsewhere in the repository with
``--8<-- "benchmarks/x.md"`` gets that file's links resolved against the *page's* folder, so a
link that works on GitHub (``[ode.md](ode.md)`` inside ``benchmarks/``) breaks the site. This
test finds such links in a second, in the default run, instead of at the end of CI.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
_SNIPPET = re.compile(r'^(\s*)--8<-- "([^"]+)"\s*$', re.M)
_FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1", re.M | re.S)
_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _inline(text: str, depth: int = 0) -> str:
    """The page with its ``--8<--`` snippets (paths from the repository root) written in."""
    if depth > 4:
        raise RecursionError("snippets nested more than 4 deep")

    def sub(m: re.Match[str]) -> str:
        return _inline((ROOT / m.group(2)).read_text(encoding="utf-8"), depth + 1)

    return _SNIPPET.sub(sub, text)


def _relative_targets(text: str) -> list[str]:
    text = _FENCE.sub("", text)
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    out = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            continue  # a URL, an anchor on the page, or a site-absolute path
        out.append(target.split("#", 1)[0])
    return [t for t in out if t]


PAGES = sorted(p for p in DOCS.rglob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    text = _inline(page.read_text(encoding="utf-8"))
    missing = [t for t in _relative_targets(text) if not (page.parent / t).exists()]
    assert not missing, (
        f"docs/{page.relative_to(DOCS)}: links with no target on the site: {missing} "
        "(a snippet's links resolve against the page that includes it)"
    )


def test_the_check_finds_a_broken_snippet_link(tmp_path: Path) -> None:
    # the class of failure CI met on 2026-12-07: a benchmarks/ table linking its neighbour
    text = _relative_targets("see [ode.md](ode.md) and [site](https://x.org) and [a](#b)")
    assert text == ["ode.md"]
    assert not (DOCS / "ode.md").exists()
    assert _relative_targets("```\n[x](nowhere.md)\n```\n`[y](z.md)`") == []
