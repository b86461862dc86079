"""Names loaded on first use (PEP 562): the one mechanism behind every lazy ``__init__``.

`import sdeml` and the ``sdeml`` command stay free of JAX until a name that needs it is read
(issue #18: instant CLI). A package writes its re-exports as explicit ``X as X`` imports under
``typing.TYPE_CHECKING`` (for type checkers and readers); `attach` reads those lines and returns
the package's module-level ``__getattr__`` and ``__dir__``.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Iterable
from typing import Any


def written_imports(source: str) -> tuple[dict[str, str], frozenset[str]]:
    """The ``from .x import Name as Name`` lines under ``if _typing.TYPE_CHECKING:`` in `source`.

    Returns:
        ``(names, subpackages)``: public name -> submodule (``x``), and the submodules imported
        as themselves (``from . import core as core``).
    """
    names: dict[str, str] = {}
    subs: set[str] = set()
    for node in ast.parse(source).body:
        if not isinstance(node, ast.If):
            continue
        if ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
            "_typing.TYPE_CHECKING",
        ):
            for imp in node.body:
                if not (isinstance(imp, ast.ImportFrom) and imp.level == 1):
                    raise ValueError(f"not a relative import: {ast.unparse(imp)}")
                for alias in imp.names:
                    if imp.module is None:
                        subs.add(alias.name)
                    else:
                        names[alias.name] = imp.module
    return names, frozenset(subs)


def attach(
    package: str, init_file: str, extra_dir: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for `package`, from the imports written out in its ``__init__``.

    The package's ``__init__`` writes every re-export as ``from ._module import Name as Name``
    (or ``from . import sub as sub``) under ``if _typing.TYPE_CHECKING:``; those lines are the
    one list of where each name lives, read here (`written_imports`) rather than repeated in a
    table.

    Args:
        package: the package's ``__name__``.
        init_file: its ``__file__``.
        extra_dir: further names `__dir__` lists (e.g. ``__version__``).

    Sets the package's ``__all__`` to the written-out names when it does not define one.

    Returns:
        ``__getattr__(name)`` imports the submodule holding `name` on first use and caches the
        value in the package's namespace (later reads are plain attribute reads); an unknown
        name raises `AttributeError`. ``__dir__()`` lists every public name without importing.

    Examples:
        >>> __getattr__, __dir__ = attach(__name__, __file__)
    """
    with open(init_file, encoding="utf-8") as f:
        names, subpackages = written_imports(f.read())
    subs = frozenset(subpackages)
    extra = frozenset(extra_dir)
    module = importlib.import_module(package)  # being initialised: already in sys.modules
    if not hasattr(module, "__all__"):  # the written-out names are the public API
        module.__dict__["__all__"] = sorted(names)

    def __getattr__(name: str) -> Any:
        if name in subs:
            value = importlib.import_module(f"{package}.{name}")
        elif name in names:
            value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(package)
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        module = importlib.import_module(package)
        loaded = {n for n in vars(module) if not n.startswith("_")}
        return sorted(loaded | subs | set(names) | extra)

    return __getattr__, __dir__
