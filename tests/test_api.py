"""The public surface: `import sdeml` re-exports each theme's `__all__`, without collisions."""

import importlib

import pytest

import sdeml

THEMES = [
    "sde",
    "ode",
    "dynamics",
    "neural_ode",
    "flows",
    "optim_dynamics",
    "langevin",
    "diffusion",
    "pinn",
]


def test_theme_exports_are_disjoint_and_reexported():
    owner: dict[str, str] = {}
    for theme in THEMES:
        module = importlib.import_module(f"sdeml.{theme}")
        for name in module.__all__:
            assert name not in owner, f"{name!r} is exported by both {owner[name]} and {theme}"
            owner[name] = theme
            assert getattr(sdeml, name) is getattr(module, name), name
    shared = {"data", "metrics", "nn", "run", "train", *THEMES}
    assert not shared & set(owner), f"a theme export shadows a subpackage: {shared & set(owner)}"


@pytest.mark.parametrize("theme", THEMES + ["data", "metrics", "nn", "run", "train"])
def test_every_public_name_has_a_docstring(theme):
    module = importlib.import_module(f"sdeml.{theme}")
    missing = [
        n
        for n in module.__all__
        if callable(getattr(module, n)) and not (getattr(module, n).__doc__ or "").strip()
    ]
    assert not missing, f"sdeml.{theme}: public names without a docstring: {missing}"
