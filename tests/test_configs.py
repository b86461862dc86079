"""Every shipped config runs end to end through `sdeml run` with its smoke overrides."""

import json
from pathlib import Path

import pytest

from sdeml.run import _registry, load_yaml
from sdeml.run._cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_every_experiment_has_a_config():
    _registry.load_builtin()
    shipped = {load_yaml(p)["experiment"] for p in CONFIGS}
    missing = {e.name for e in _registry.all_experiments() if e.module.startswith("experiments.")}
    assert missing <= shipped, f"experiments without a shipped config: {missing - shipped}"
    assert CONFIGS[0].parent.joinpath("quickstart.yaml") in CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_runs(path, tmp_path, capsys):
    _registry.load_builtin()
    exp = _registry.get(load_yaml(path)["experiment"])
    try:
        code = main(["run", str(path), *exp.smoke, "--out", str(tmp_path), "--no-progress"])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 0, err
    (run_dir,) = (tmp_path / exp.name).iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["metrics"], "an experiment returns its final metrics"
    assert list(run_dir.glob("*.png")), "an experiment writes at least one plot"
