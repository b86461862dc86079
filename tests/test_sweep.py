"""Sweeps: a config's grid runs as one vmapped, device-sharded program and matches single runs."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import cli_captured, summary_of

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "configs" / "ode_quickstart.yaml")
SMOKE = [
    "train.steps=40",
    "train.log_every=10",
    "train.ckpt_every=20",
    "eval.n_traj=2",
    "eval.n_test=256",
    "--no-progress",
]


_run = cli_captured


_summary = summary_of


@pytest.mark.slow  # over 10 s; CI runs it after the default suite
@pytest.mark.e2e
def test_sweep_matches_separate_runs(tmp_path, capsys):
    sweep = "sweep={seed: [0, 3], train.lr: [0.001, 0.01]}"
    code, out = _run(["run", QUICK, sweep, *SMOKE, "--out", str(tmp_path / "sweep")], capsys)
    assert code == 0, out.err
    assert "seed=3,train.lr=0.01" in out.out  # the per-point results table
    summary = _summary(tmp_path / "sweep")
    labels = summary["sweep"]["labels"]
    assert labels == [
        "seed=0,train.lr=0.001",
        "seed=0,train.lr=0.01",
        "seed=3,train.lr=0.001",
        "seed=3,train.lr=0.01",
    ]
    for i, (seed, lr) in enumerate([(0, 0.001), (0, 0.01), (3, 0.001), (3, 0.01)]):
        out_dir = tmp_path / f"single{i}"
        code, out = _run(
            ["run", QUICK, f"seed={seed}", f"train.lr={lr}", *SMOKE, "--out", str(out_dir)], capsys
        )
        assert code == 0, out.err
        single = _summary(out_dir)["metrics"]
        for key in ["train_loss", "field_rmse", "trajectory_rel_error_max"]:
            # float64: vmapped and single programs differ only by rounding of batched matmuls
            assert summary["metrics"][key][i] == pytest.approx(single[key], rel=1e-7), key


@pytest.mark.parametrize(
    "sweep,fragment",
    [
        (
            "sweep={model.width: [8, 16]}",
            "sweep.model.width: experiment 'quickstart_ode' cannot "
            "sweep this key in one program (sweepable keys: seed, train.lr)",
        ),
        ("sweep={train.lr: [0.001, -1.0]}", "sweep.train.lr: Input should be greater than 0"),
        ("sweep={seed: []}", "sweep.seed: the list of values is empty"),
        ("sweep={seed: [a, b]}", "sweep.seed.0: Input should be a valid"),
    ],
)
def test_bad_sweeps(tmp_path, capsys, sweep, fragment):
    code, out = _run(["run", QUICK, sweep, "--out", str(tmp_path)], capsys)
    assert code == 2 and fragment in out.err, out.err
    assert len(out.err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


SHARDED = textwrap.dedent("""
    import equinox as eqx, jax, jax.numpy as jnp, jax.random as jr, numpy as np
    jax.config.update("jax_enable_x64", True)
    from sdeml.train import (TrainConfig, fit, init_state, init_states, make_optimizer,
                             make_step, set_learning_rate, shard_batch)
    assert len(jax.devices()) == 8
    cfg = TrainConfig(steps=30, batch_size=16, lr=1e-2)
    opt = make_optimizer(cfg)
    def init(key):
        k1, k2 = jr.split(key)
        return init_state(eqx.nn.MLP(1, 1, 8, 1, key=k1), opt, k2)
    loss = lambda m, x, k: jnp.mean((jax.vmap(m)(x) - jnp.sin(x)) ** 2)
    data = lambda k, s: jr.normal(k, (cfg.batch_size, 1))
    step = eqx.filter_vmap(make_step(loss, opt, data))
    lrs = jnp.linspace(1e-3, 1e-2, 8)
    plain = set_learning_rate(init_states(init, range(8)), lrs)
    sharded = shard_batch(plain)
    leaf = sharded.model.layers[0].weight
    assert len(leaf.sharding.device_set) == 8, leaf.sharding
    a, _ = fit(plain, step, cfg.steps, progress=False)
    b, _ = fit(sharded, step, cfg.steps, progress=False)
    assert len(b.model.layers[0].weight.sharding.device_set) == 8
    for x, y in zip(jax.tree.leaves(eqx.filter(a.model, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(b.model, eqx.is_array))):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-10, atol=1e-12)
    print("ok")
""")


@pytest.mark.slow
@pytest.mark.device
def test_sharded_sweep_on_8_devices_matches_unsharded():
    # eight forced host devices (the CPU backend alone, also on a machine with a GPU)
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


# ------------------------------------------------------------------------------------------------
# Aggregation over seeds and the sweep plot (issue #19, item 2)
def test_aggregate_matches_numpy_per_hyperparameter_point():
    import numpy as np

    from sdeml.run._aggregate import aggregate, format_aggregate

    grid = [{"seed": s, "lr": lr} for s in (0, 1, 2, 5) for lr in (1e-3, 1e-1)]
    rng = np.random.default_rng(0)
    loss = rng.normal(size=len(grid)).tolist()
    rows = aggregate(grid, {"loss": loss, "note": "text", "short": [1.0]})
    assert [r["point"] for r in rows] == [{"lr": 1e-3}, {"lr": 1e-1}]
    for r in rows:
        x = np.asarray([v for p, v in zip(grid, loss, strict=True) if p["lr"] == r["point"]["lr"]])
        m = r["metrics"]["loss"]
        assert r["n"] == 4 and set(r["metrics"]) == {"loss"}
        assert m["mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert m["std"] == pytest.approx(x.std(ddof=1), rel=1e-12)
        assert m["se"] == pytest.approx(x.std(ddof=1) / 2.0, rel=1e-12)
    text = format_aggregate(rows)
    assert "lr=0.001" in text and "±" in text and "seeds" in text
    one = aggregate([{"seed": 0}], {"loss": [2.0]})
    assert one[0]["metrics"]["loss"] == {"mean": 2.0, "std": None, "se": None}


def test_aggregate_and_plot_keep_a_diverged_seed_visible_without_warnings(tmp_path):
    # a seed whose metric is inf (a diverged fit) gives an infinite mean and a NaN spread, no
    # numpy "invalid value" warning (pytest turns warnings into errors), and the plot still draws
    import math
    import warnings

    from sdeml.run._aggregate import aggregate, format_aggregate, sweep_plot

    grid = [{"seed": s, "lr": lr} for s in (0, 1) for lr in (1e-3, 1e-1)]
    loss = [math.inf, 1.0, 3.0, math.nan]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = aggregate(grid, {"loss": loss})
        assert "inf" in format_aggregate(rows)
        assert sweep_plot(grid, {"loss": loss}, tmp_path / "s.png") is not None
        assert sweep_plot(grid[::2], {"loss": loss[::2]}, tmp_path / "t.png") is not None
    a, b = (r["metrics"]["loss"] for r in rows)
    assert a["mean"] == math.inf and math.isnan(a["std"]) and math.isnan(a["se"])
    assert math.isnan(b["mean"]) and math.isnan(b["std"])


def test_sweep_plot_axes(tmp_path):
    import matplotlib.image as mpimg

    from sdeml.run._aggregate import log_spaced, sweep_plot

    assert log_spaced([1e-3, 1e-2]) and not log_spaced([1.0, 2.0]) and not log_spaced([-1, 10])
    grid = [{"seed": s, "lr": lr, "beta": b} for s in (0, 1) for lr in (1e-3, 1e-1) for b in (1, 2)]
    out = sweep_plot(grid, {"loss": [float(i) for i in range(len(grid))]}, tmp_path / "s.png")
    assert out is not None and mpimg.imread(out).shape[0] > 100
    assert sweep_plot([{"seed": 0}], {"note": "x"}, tmp_path / "none.png") is None


SEEDS_ONLY = """
from sdeml.run import ExperimentConfig, register


class Cfg(ExperimentConfig):
    experiment: str = "noisy_number"
    scale: float = 1.0


@register("noisy_number", Cfg, "test-only: a number that depends on the seed", per_point=True)
def main(cfg, run):
    return {"value": cfg.scale * (cfg.seed % 3), "twice": 2.0 * cfg.seed}
"""


def test_cli_sweep_writes_aggregate_plot_and_show(tmp_path, capsys):
    mod = tmp_path / "noisy_number.py"
    mod.write_text(SEEDS_ONLY)
    cfg = tmp_path / "n.yaml"
    cfg.write_text("experiment: noisy_number\nsweep: {seed: [0, 1, 2, 3]}\n")
    out_dir = tmp_path / "run"
    code, out = _run(["run", str(cfg), "--import", str(mod), "--out", str(out_dir)], capsys)
    assert code == 0, out.err
    assert "over seeds (mean ± standard error)" in out.out
    agg = _summary(out_dir)["sweep"]["aggregate"]
    assert len(agg) == 1 and agg[0]["n"] == 4
    assert agg[0]["metrics"]["value"]["mean"] == pytest.approx((0 + 1 + 2 + 0) / 4)
    ((run_dir,),) = [list(d.iterdir()) for d in out_dir.iterdir()]
    assert (run_dir / "sweep.png").is_file()
    code, out = _run(["show", str(run_dir)], capsys)
    assert code == 0 and "over seeds" in out.out and "0.75 ±" in out.out


def test_per_point_text_metrics_stay_text(capsys):
    # a UDE sweep's recovered equations: "1" stayed "1" in a single run but became 1.0 in the
    # sweep's list, and a list of equations was written as one string
    from sdeml.run._cli import _check_metrics

    out = _check_metrics(
        {"terms": ["1", "1 + x y"], "loss": [0.5, 1], "exact": [False, True], "n": 3}, "t"
    )
    assert out == {"terms": ["1", "1 + x y"], "loss": [0.5, 1.0], "exact": [0.0, 1.0], "n": 3}
    from sdeml.run._cli import _print_table

    _print_table(out, ["seed=0", "seed=1"])  # the sweep's table: numbers, then text per point
    printed = capsys.readouterr().out
    assert "seed=1  1 + x y" in printed and "terms:" in printed, printed


def test_compiled_is_one_program_per_function():
    """`sdeml.run.compiled`: the same jitted wrapper for the same function, so a sweep's per-point
    evaluation compiles once per static argument set, not once per point."""
    import jax.numpy as jnp

    from sdeml.run import compiled

    traces = []

    def f(x, scale):
        traces.append(1)
        return x * scale

    assert compiled(f) is compiled(f)
    for point in range(3):  # three grid points: new arrays, the same shapes and static values
        out = compiled(f)(jnp.full(4, float(point)), 2.0)
        assert jnp.array_equal(out, jnp.full(4, 2.0 * point))
    assert len(traces) == 1
    compiled(f)(jnp.ones(4), 3.0)  # another static value: one more program
    assert len(traces) == 2
