"""Issue #18 item 5: an instant CLI and a light ``import sdeml``.

``sdeml --help``, ``sdeml list`` and ``sdeml check`` read configs and schemas only: they import
neither JAX nor a theme. ``import sdeml`` loads names on first use; scipy and matplotlib are
imported only by the functions that use them. Each check runs in a fresh interpreter, since this
test session has long since imported everything. (The times themselves are measured as whole
processes on a quiet machine, not here.)
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("jax", "jaxlib", "equinox", "diffrax", "optax", "numpy", "scipy", "matplotlib")
THEMES = (
    "core",
    "sde",
    "ode",
    "dynamics",
    "neural_ode",
    "flows",
    "diffusion",
    "langevin",
    "optim_dynamics",
    "pinn",
    "nn",
    "data",
    "metrics",
)


def _python(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON object as its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


_LOADED = f"""
import json, sys
HEAVY, THEMES = {HEAVY!r}, {THEMES!r}
def loaded():
    heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set(HEAVY))
    # a lazy package's __init__ and its JAX-free constants are allowed (`sdeml.data` sizes)
    themes = sorted(
        m for m in sys.modules
        if m.startswith("sdeml.") and m.split(".")[1] in THEMES
        and m not in ("sdeml.data", "sdeml.data._constants")
    )
    return {{"heavy": heavy, "themes": themes}}
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["list"],
        ["check", "quickstart"],
        ["check", "configs/langevin.yaml"],
        ["check", "configs/sgld_logistic.yaml"],  # reads a data-set size
    ],
)
def test_cli_reads_configs_without_jax_or_themes(argv):
    code = _LOADED + (
        "import contextlib, io\n"
        "from sdeml.run._cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        code = main({argv!r})\n"
        "    except SystemExit as e:\n"
        "        code = e.code\n"
        "print(json.dumps({'code': code, **loaded()}))\n"
    )
    out = _python(code)
    assert out["code"] == 0, out
    assert out["heavy"] == [] and out["themes"] == [], f"sdeml {' '.join(argv)} imported {out}"


def test_import_sdeml_loads_names_on_first_use():
    code = _LOADED + (
        "import sdeml\n"
        "before = loaded()\n"
        "names = dir(sdeml)\n"
        "listed = loaded()\n"
        "solver = sdeml.simulate\n"
        "after_core = loaded()\n"
        + "".join(f"sdeml.{t}\n" for t in THEMES)
        + "import sdeml.run, sdeml.train\n"
        "print(json.dumps({'before': before, 'listed': listed, 'after_core': after_core,\n"
        "                  'all': loaded(), 'names': names}))\n"
    )
    out = _python(code)
    assert out["before"] == {"heavy": [], "themes": []}
    assert out["listed"] == {"heavy": [], "themes": []}  # dir() names without importing them
    assert {"SDE", "simulate", "langevin", "run", "__version__"} <= set(out["names"])
    assert "jax" in out["after_core"]["heavy"]
    # every theme loaded: scipy and matplotlib still wait for the functions that use them
    assert not {"scipy", "matplotlib"} & set(out["all"]["heavy"]), out["all"]


@pytest.mark.parametrize("package", ["", "run", "train", "data"])
def test_lazy_names_are_the_written_out_reexports(package):
    # readers and type checkers see the `X as X` imports; the runtime loads from the same lines
    import importlib

    from sdeml import _lazy

    name = "sdeml" + (f".{package}" if package else "")
    names, subpackages = _lazy.written_imports(
        (ROOT / "sdeml" / package / "__init__.py").read_text()
    )
    module = importlib.import_module(name)
    assert names and set(names) <= set(dir(module)) and subpackages <= set(dir(module))
    assert set(getattr(module, "__all__", names)) <= set(names) | subpackages | {"__version__"}
    for n, home in names.items():  # each name is the object its module defines
        assert getattr(module, n) is getattr(importlib.import_module(f"{name}.{home}"), n), n
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018
