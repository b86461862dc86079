"""Report what the API reference's docstring parser complains about, without failing.

The strict site build turns every griffe warning into a failure, so mkdocs.yml switches the
Google-style parser's own warnings off (``docstring_options: {warnings: false}``): a docstring
whose ``Args:`` entry griffe cannot split still renders, as text. This script parses every
docstring of sdeml the same way (same parser options, same math extension) with the warnings
on, and lists them, so they stay visible. It reads the source statically (griffe), importing
neither sdeml nor JAX.

    python docs/docstring_report.py            # print the warnings, exit 0
    python docs/docstring_report.py --fail     # exit 1 if there are any
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parent.parent


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _walk(obj: griffe.Object, seen: set[str]):
    if obj.path in seen:
        return
    seen.add(obj.path)
    yield obj
    for member in obj.members.values():
        if member.is_alias:
            continue
        yield from _walk(member, seen)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fail", action="store_true", help="exit 1 when there are warnings")
    args = ap.parse_args()
    handler = _Collect()
    logging.getLogger("griffe").addHandler(handler)
    extensions = griffe.load_extensions(str(ROOT / "docs" / "griffe_math.py") + ":RstMath")
    pkg = griffe.load("sdeml", search_paths=[str(ROOT)], extensions=extensions,
                      docstring_parser="google")
    n_docs = 0
    for obj in _walk(pkg, set()):
        if obj.docstring is not None:
            n_docs += 1
            obj.docstring.parse("google", warn_unknown_params=False, warn_missing_types=False)
    msgs = sorted(set(handler.messages))
    kinds = Counter(m.split(": ", 2)[-1].split(" '")[0][:60] for m in msgs)
    print(f"{n_docs} docstrings parsed, {len(msgs)} parser warnings")
    for kind, n in kinds.most_common():
        print(f"  {n:4d}  {kind}")
    for m in msgs:
        print("  " + m)
    return 1 if (args.fail and msgs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
