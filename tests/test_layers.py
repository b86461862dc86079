"""The layers of sdeml (shared/DESIGN.md): imports only go down, checked by walking the source.

core (sdeml.core, sdeml._typing, sdeml._io)  <  shared (nn, data, metrics)  <  themes  <
application (train, run, experiments)  <  the door (sdeml/__init__.py).

Every import in every module is read from its syntax tree (imports inside functions too), so a
lazy upward import is caught as well. Themes may use one another only through the other theme's
public package, never through its private modules.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "core": 0,
    "_typing": 0,
    "_io": 0,
    "_lazy": 0,
    "nn": 1,
    "data": 1,
    "metrics": 1,
    "sde": 2,
    "ode": 2,
    "dynamics": 2,
    "neural_ode": 2,
    "flows": 2,
    "diffusion": 2,
    "pfgm": 2,
    "langevin": 2,
    "optim_dynamics": 2,
    "pinn": 2,
    "ude": 2,
    "train": 3,
    "run": 3,
    "experiments": 3,
    "configs": 3,
    "__main__": 3,  # python -m sdeml: the command line
    "": 4,  # sdeml/__init__.py, the door
}
NAMES = {0: "core", 1: "shared", 2: "themes", 3: "application", 4: "the top-level door"}


def _modules():
    for path in sorted((ROOT / "sdeml").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, parts, path.name == "__init__.py"
    for path in sorted((ROOT / "experiments").glob("*.py")):
        name = path.stem
        yield (
            path,
            ["sdeml", "experiments"] + ([] if name == "__init__" else [name]),
            (name == "__init__"),
        )


def _imports(path: Path, parts: list[str], is_pkg: bool):
    """Absolute dotted names of the sdeml modules `path` imports."""
    package = parts if is_pkg else parts[:-1]
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sdeml" or alias.name.startswith("sdeml."):
                    yield alias.name.split("."), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = base + (node.module.split(".") if node.module else [])
            elif node.module and (node.module == "sdeml" or node.module.startswith("sdeml.")):
                mod = node.module.split(".")
            else:
                continue
            if node.module is None or mod == ["sdeml"]:
                # `from . import x` / `from sdeml import x`: each name may be a submodule
                for alias in node.names:
                    yield mod + [alias.name], node.lineno
            else:
                yield mod, node.lineno


def _layer(mod: list[str]) -> tuple[str, int]:
    top = mod[1] if len(mod) > 1 else ""
    if top not in LAYERS:  # a name imported from the door (`from sdeml import simulate`)
        top = ""
    return top, LAYERS[top]


def test_layer_table_covers_every_package():
    packages = {p.name for p in (ROOT / "sdeml").iterdir() if p.is_dir() and p.name[0] != "_"}
    packages -= {"__pycache__"}
    modules = {p.stem for p in (ROOT / "sdeml").glob("_*.py") if p.stem != "__init__"}
    missing = (packages | modules) - set(LAYERS)
    assert not missing, f"give these a layer in tests/test_layers.py: {sorted(missing)}"


def test_imports_only_go_down():
    bad = []
    for path, parts, is_pkg in _modules():
        here, level = _layer(parts)
        for mod, line in _imports(path, parts, is_pkg):
            there, target = _layer(mod)
            where = f"{path.relative_to(ROOT)}:{line} imports {'.'.join(mod)}"
            if target > level and not (here == "experiments" and there == ""):
                # (experiments are the door's users: `import sdeml` is how they read)
                bad.append(f"{where} ({NAMES[level]} -> {NAMES[target]})")
            private = [p for p in mod[2:] if p.startswith("_") and p != "__init__"]
            if there != here and private and there not in ("core", "_typing", "_io", "_lazy"):
                bad.append(f"{where} (a private module of another package)")
            if here == "train" and there in ("run", "experiments"):
                bad.append(f"{where} (the training loop must not depend on the CLI)")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "expect"),
    [
        ("from ..train import fit\n", "shared -> application"),
        ("from ..flows._cnf import CNF\n", "private module"),
    ],
)
def test_the_walk_sees_upward_and_private_imports(tmp_path, source, expect):
    # the checker itself must catch what it claims to (a metric importing the training loop)
    path = tmp_path / "_probe.py"
    path.write_text("def f():\n    " + source)
    parts = ["sdeml", "metrics", "_probe"]
    found = []
    for mod, _ in _imports(path, parts, False):
        there, target = _layer(mod)
        if target > LAYERS["metrics"]:
            found.append("shared -> application")
        if there != "metrics" and any(p.startswith("_") for p in mod[2:]):
            found.append("private module")
    assert expect in found
