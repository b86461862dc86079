"""Shipped configs: each runs end to end through `sdeml run` with its smoke overrides, states only
what differs from its schema, and is installed as package data (a non-editable install runs the
quickstart from an empty directory)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

import pytest
from helpers import assert_completed_run, first_config_of

from sdeml.run import _registry, load_yaml
from sdeml.run._cli import main, shipped_configs
from sdeml.run._config import validate

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_every_experiment_has_a_config():
    _registry.load_builtin()
    shipped = {load_yaml(p)["experiment"] for p in CONFIGS}
    builtin = [e for e in _registry.all_experiments() if e.module.startswith("sdeml.experiments.")]
    missing = {e.name for e in builtin}
    assert missing <= shipped, f"experiments without a shipped config: {missing - shipped}"
    assert CONFIGS[0].parent.joinpath("quickstart.yaml") in CONFIGS


# The README's quickstart runs end to end in the default test run and every config is validated
# here. Of the other smoke runs (10-60 s each on 2 cores, slow run), each experiment's first
# config's is the explicit example of tests/test_cli_fuzz.py::test_what_check_accepts_runs (the
# same run and checks, made once); this test runs the remaining configs.
DEFAULT_RUNS = {"quickstart"}
_SLOW_E2E = (pytest.mark.slow, pytest.mark.e2e)
_registry.load_builtin()
FUZZED = {
    p.stem
    for p in (first_config_of(e.name) for e in _registry.all_experiments())
    if p is not None and p.stem not in DEFAULT_RUNS
}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_checks(path, capsys):
    assert main(["check", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=() if p.stem in DEFAULT_RUNS else _SLOW_E2E, id=p.stem)
        for p in CONFIGS
        if p.stem not in FUZZED
    ],
)
def test_shipped_config_runs(path, tmp_path, capsys):
    exp = _registry.get(load_yaml(path)["experiment"])
    try:
        code = main(["run", str(path), *exp.smoke, "--out", str(tmp_path), "--no-progress"])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 0, err
    assert_completed_run(tmp_path, exp)


def test_configs_left_to_the_fuzz_property_are_run_there():
    # a config this file does not run is its experiment's first, and the fuzz property runs it
    # (an experiment dropped from the property would leave its config with no smoke run)
    from test_cli_fuzz import _EXPERIMENTS, _shipped

    fuzzed = {e.name: _shipped(e) for e in _EXPERIMENTS}
    for stem in FUZZED:
        exp = load_yaml(ROOT / "configs" / f"{stem}.yaml")["experiment"]
        assert fuzzed.get(exp) == str(ROOT / "configs" / f"{stem}.yaml"), stem


def _restated(raw, defaults, prefix=""):
    """Dotted keys of `raw` whose value equals the schema's default."""
    out = []
    for k, v in raw.items():
        if not prefix and k == "experiment":
            continue
        d = defaults.get(k, object())
        if isinstance(v, dict) and isinstance(d, dict):
            out += _restated(v, d, f"{prefix}{k}.")
        elif v == d:
            out.append(f"{prefix}{k}")
    return out


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_states_only_what_differs(path):
    _registry.load_builtin()
    raw = load_yaml(path)
    exp = _registry.get(raw["experiment"])
    defaults = validate(exp.config, {"experiment": exp.name}, "defaults").model_dump()
    assert not _restated(raw, defaults), f"{path.name} restates schema defaults"


def test_restated_defaults_are_detected():
    defaults = {"seed": 0, "train": {"lr": 1e-3, "steps": 10}}
    raw = {"experiment": "x", "seed": 0, "train": {"lr": 2e-3, "steps": 10}}
    assert _restated(raw, defaults) == ["seed", "train.steps"]


def test_experiments_and_configs_live_in_sdeml_namespace():
    _registry.load_builtin()
    assert "experiments" not in sys.modules  # never a top-level package named `experiments`
    modules = {e.module for e in _registry.all_experiments()}
    assert {m for m in modules if m.startswith("sdeml.experiments.")}
    assert not {m for m in modules if m.startswith("experiments.")}
    configs_dir = shipped_configs()
    assert configs_dir is not None
    assert sorted(p.name for p in configs_dir.glob("*.yaml")) == [p.name for p in CONFIGS]


def test_pyproject_installs_every_package():
    # the package list is explicit (package-dir mappings); a new folder under sdeml/ must be in it
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(meta["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "sdeml").rglob("__init__.py")
    }
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert meta["package-dir"] == {"sdeml.experiments": "experiments", "sdeml.configs": "configs"}
    assert not any(p == "experiments" or p.startswith("experiments.") for p in listed)


@pytest.mark.slow
def test_non_editable_install_runs_quickstart_from_an_empty_directory(tmp_path):
    # issue 16: after `pip install .` (not editable) `sdeml run quickstart` failed outside a
    # checkout. A fresh venv gets sdeml by a wheel build of a copy of the tree; its other
    # dependencies (jax, ...) come from this environment's site-packages through a .pth file.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("sdeml", "experiments", "configs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = subprocess.run(
        [py, "-m", "pip", "install", "--no-deps", "--quiet", str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    shutil.rmtree(src)  # nothing may depend on the source tree

    work = tmp_path / "empty"
    work.mkdir()
    show = "import sdeml.experiments as e, sdeml; print(e.__file__); print(sdeml.__file__)"
    where = subprocess.run(
        [py, "-c", show],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    assert where.returncode == 0, where.stderr[-3000:]
    assert all(line.startswith(site) for line in where.stdout.split()), where.stdout
    top = subprocess.run([py, "-c", "import experiments"], capture_output=True, cwd=work, env=env)
    assert top.returncode != 0  # no top-level `experiments` package is installed

    _registry.load_builtin()
    smoke = _registry.get("score_sde").smoke
    t0 = time.perf_counter()
    run = subprocess.run(
        [venv / "bin" / "sdeml", "run", "quickstart", *smoke, "--no-progress"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (run_dir,) = (work / "runs" / "score_sde").iterdir()
    assert run_dir.name.startswith("quickstart-")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["metrics"]
    assert (run_dir / "checkpoints" / "model" / "latest.json").is_file()
    print(f"non-editable install: quickstart smoke run in {time.perf_counter() - t0:.1f} s")
