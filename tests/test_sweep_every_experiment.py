"""Every experiment sweeps (issue #19, item 1): each grid point equals the separate run of its
config, and a key that would change shapes or Python control flow is refused up front."""

import math
import re
from pathlib import Path

import pytest
from helpers import cli_captured, summary_of

from sdeml.run import _registry

_registry.load_builtin()

SEEDS = "sweep={seed: [0, 1]}"
# experiment -> (shipped config, a sweep over its sweepable keys, smaller-than-smoke overrides,
# a key it cannot sweep). The grid points compared with separate runs are the first and the last
# (they differ in every swept key), the last alone for a point-by-point sweep: each separate run
# costs as much as the sweep's evaluation.
CASES = {
    "score_sde": (
        "quickstart",
        "sweep={seed: [0, 1], train.lr: [0.001, 0.003]}",
        ["eval.dpm_nfe=[4]", "eval.exact_reference=false", "eval.n_samples=100"],
        "sweep={model.width: [8, 16]}",
    ),
    "flow_matching_2d": (
        "flow_matching_2d",
        "sweep={seed: [0, 1], train.lr: [0.001, 0.003]}",
        [],
        "sweep={model.sigma: [0.0, 0.1]}",
    ),
    "gradient_flow": (
        "gradient_flow",
        "sweep={loss.a: [1, 2.0], loss.c: [0.1, 0.2], loss.e: [0.3, -0.2]}",
        [],
        "sweep={study.horizon: [1.0, 2.0]}",
    ),
    "neural_ode_spiral": (
        "neural_ode_spiral",
        "sweep={seed: [0, 1], train.lr: [0.001, 0.003], data.t1: [20.0, 25.0]}",
        ["model.rtol=1e-5", "model.atol=1e-7"],
        "sweep={data.window: [5, 10]}",
    ),
    "cnf_2d": (
        "cnf_2d",
        "sweep={seed: [0, 1], train.lr: [0.001, 0.003]}",
        [],
        "sweep={model.kinetic: [0.0, 0.01]}",
    ),
    "time_series": (
        "time_series",
        "sweep={seed: [0, 1], train.lr: [0.001, 0.003]}",
        [],
        "sweep={data.noise_std: [0.0, 0.1]}",
    ),
    "pinn": (
        "pinn_heat",
        "sweep={seed: [0, 1], train.lr: [0.001, 0.003]}",
        [],
        "sweep={problem.alpha: [0.1, 0.2]}",
    ),
    # point by point (`run.per_point`) until their cores are vmapped: `seed` only
    "sgd_sde": ("sgd_sde", SEEDS, [], "sweep={data.n_data: [100, 200]}"),
    "langevin": (
        "langevin",
        "sweep={seed: [0, 1]}",
        [],
        "sweep={double_well.n_chains: [100, 200]}",
    ),
    "fokker_planck": (
        "fokker_planck",
        "sweep={seed: [0, 1]}",
        [],
        "sweep={problem.temperature: [0.5, 1.0]}",
    ),
    "sde_convergence": (
        "sde_convergence",
        "sweep={seed: [0, 1]}",
        [],
        "sweep={textbook.a0: [1.0, 2.0]}",
    ),
    "dynamics": ("dynamics", SEEDS, [], "sweep={params.growth_rate: [-0.5, 0.5]}"),
    "ode_solvers": ("ode_solvers", SEEDS, [], "sweep={problem.decay: [0.5, 1.0]}"),
    "resnet_limit": ("resnet_limit", SEEDS, [], "sweep={model.width: [8, 16]}"),
    "sgld_logistic": (
        "sgld_logistic",
        "sweep={seed: [0, 1]}",
        [],
        "sweep={data.test_fraction: [0.2, 0.3]}",
    ),
    "pfgm_2d": (
        "pfgm_2d",
        "sweep={seed: [0, 1], train.lr: [0.001, 0.003]}",
        ["table.enabled=false"],
        "sweep={pfgm.D: [64.0, 128.0]}",
    ),
    "ude_lotka_volterra": (
        "ude_lotka_volterra",
        SEEDS,
        [],
        "sweep={model.width: [8, 16]}",
    ),
    "score_sde_digits": (
        "score_sde_digits",
        "sweep={seed: [0, 1]}",
        [],
        "sweep={sde.beta_min: [0.1, 0.2]}",
    ),
}


_run = cli_captured


_summary = summary_of


# measured times and memory peaks: not a function of the config
_MEASURED = re.compile(r"wall_s|wall_time|_time_s|_ms_per_|_peak_")


def _is_number(v):
    return isinstance(v, (int, float))


def _numbers(metrics):
    # numbers, and a sweep's per-point lists of numbers (text metrics, such as the equations a
    # UDE recovers, become lists of strings in a sweep and are not compared here)
    return {
        k: v
        for k, v in metrics.items()
        if (_is_number(v) or (isinstance(v, list) and all(map(_is_number, v))))
        and not _MEASURED.search(k)
    }


def _check_grid_equals_single_runs(name, tmp_path, capsys, rtol):
    config, sweep, extra, _ = CASES[name]
    smoke = [*_registry.get(name).smoke, *extra, "--no-progress"]
    code, out = _run(["run", config, sweep, *smoke, "--out", str(tmp_path / "sweep")], capsys)
    assert code == 0, out.err
    summary = _summary(tmp_path / "sweep")
    points, labels = summary["sweep"]["points"], summary["sweep"]["labels"]
    assert labels[-1] in out.out  # the per-point results table
    pngs = {p.name for p in Path(summary["run_dir"]).glob("*.png")}
    for i, label in enumerate(labels):  # the plots cover the grid: every point's, labelled
        assert any(n.endswith(f"-{i}.png") for n in pngs), (label, sorted(pngs))
    grid = _numbers(summary["metrics"])
    assert grid and all(isinstance(v, list) and len(v) == len(points) for v in grid.values())
    # a vmapped sweep: the first and the last member (batch position matters); a point-by-point
    # sweep (`per_point`) runs its first point exactly as a plain run, so the last point alone
    # (run after the others in the same process) carries the check
    compared = [len(points) - 1] if _registry.get(name).per_point else sorted({0, len(points) - 1})
    for i in compared:
        point = points[i]
        over = [f"{k}={v!r}" for k, v in point.items()]
        out_dir = tmp_path / f"single{i}"
        code, out = _run(["run", config, *smoke, *over, "--out", str(out_dir)], capsys)
        assert code == 0, out.err
        single = _numbers(_summary(out_dir)["metrics"])
        assert set(single) == set(grid), labels[i]
        for k, v in single.items():
            v = float(v) if isinstance(v, bool) else v  # a sweep's lists hold floats
            got = grid[k][i]
            if isinstance(v, float) and math.isnan(v):
                assert math.isnan(got), (labels[i], k)
            else:
                assert got == pytest.approx(v, rel=rtol, abs=1e-6), (labels[i], k)


def test_every_experiment_has_a_sweep_case():
    shipped = {e.name for e in _registry.all_experiments() if e.module.startswith("sdeml.")}
    # quickstart_ode's grid-equals-runs check lives in tests/test_sweep.py
    assert set(CASES) == shipped - {"quickstart_ode"}, shipped ^ set(CASES)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_grid_point_equals_its_separate_run(name, tmp_path, capsys):
    _check_grid_equals_single_runs(name, tmp_path, capsys, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unsweepable_key_is_refused_with_the_sweepable_keys(name, tmp_path, capsys):
    config, _, _, bad = CASES[name]
    exp = _registry.get(name)
    code, out = _run(["run", config, bad, "--out", str(tmp_path)], capsys)
    key = bad.removeprefix("sweep={").split(":")[0]
    assert code == 2, out.err
    assert f"sweep.{key}: experiment {name!r} cannot sweep this key" in out.err, out.err
    assert f"(sweepable keys: {', '.join(exp.sweep_keys)})" in out.err, out.err
    assert "seed" in exp.sweep_keys
    assert len(out.err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
