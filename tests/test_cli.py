"""The `sdeml` command: bad input, run dirs, show/list/check, resume after SIGKILL, NaN stop."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import QUICK, ROOT
from helpers import cli as _cli

TOY = str(ROOT / "tests" / "toy_experiment.py")
TOY_CFG = str(ROOT / "tests" / "toy.yaml")


def _write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


BAD = [
    # (config text or None for QUICK, overrides, expected fragment of the one-line message)
    ("experiment: quickstart_ode\ntrain: {steps: 10\n", [], "malformed YAML"),
    ("experiment: quickstart_ode\ntrain: {stepz: 10}\n", [], "train.stepz: unknown key"),
    (
        "experiment: quickstart_ode\ntrain: {steps: ten}\n",
        [],
        "train.steps: Input should be a valid integer",
    ),
    (None, ["train.steps=0"], "train.steps: Input should be greater than 0"),
    (None, ["train.steps=-5"], "train.steps: Input should be greater than 0"),
    (None, ["train.lr=-1e-3"], "train.lr: Input should be greater than 0"),
    (None, ["train.batch_size=0"], "train.batch_size: Input should be greater than 0"),
    (None, ["eval.t0=5", "eval.t1=1"], "eval: t1 must be greater than t0"),
    (None, ["train.steps=abc"], "train.steps: Input should be a valid integer"),
    (None, ["foo"], "override 'foo' is not of the form key=value"),
    (None, ["=3"], "is not a dotted key"),
    (None, ["train=3"], "train: Input should be a valid dictionary"),
    (
        None,
        ["train.optimizer=adamm"],
        "train.optimizer: Input should be 'adam', 'adamw', 'sgd' or 'rmsprop'",
    ),
    ("experiment: no_such_thing\n", [], "unknown experiment 'no_such_thing' (valid: "),
    ("seed: 1\n", [], "key 'experiment' must name an experiment"),
    ("- a\n- b\n", [], "the top level must be a mapping"),
]


@pytest.mark.parametrize("text,overrides,fragment", BAD)
@pytest.mark.parametrize("command", ["run", "check"])
def test_bad_input_is_one_line_exit_2_no_run_dir(
    tmp_path, capsys, text, overrides, fragment, command
):
    cfg = QUICK if text is None else _write(tmp_path, text)
    out_dir = tmp_path / "runs"
    extra = ["--out", str(out_dir)] if command == "run" else []
    code, out, err = _cli([command, cfg, *overrides, *extra], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sdeml: error: "), err
    assert fragment in lines[0], lines[0]
    assert not out_dir.exists()


def test_missing_file_and_bad_names(tmp_path, capsys):
    out_dir = tmp_path / "runs"
    for args, fragment in [
        (["run", str(tmp_path / "nope.yaml")], "config file not found"),
        (["check", str(tmp_path)], f"config {tmp_path} is a directory"),
        (["run", str(tmp_path)], f"config {tmp_path} is a directory"),
        (["run", QUICK, "--name", "../../x"], "--name '../../x'"),
        (["run", QUICK, "--name", "a/b"], "--name 'a/b'"),
        (["run", "--resume", str(tmp_path)], "not a run directory"),
        (["run", QUICK, "--bogus"], "unrecognized arguments: --bogus"),
        (["show", str(tmp_path)], "not a run directory"),
        (["run", QUICK, "--import", "no_such_module_xyz"], "cannot import module"),
    ]:
        code, _, err = _cli([*args, "--out", str(out_dir)] if args[0] == "run" else args, capsys)
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    assert not out_dir.exists()


def test_console_script_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sdeml.run._cli",
            "run",
            QUICK,
            "train.steps=abc",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"sdeml: error: invalid config {QUICK}: train.steps: Input should be a valid integer, "
        "unable to parse string as an integer (got 'abc')"
    )
    assert list(tmp_path.iterdir()) == []


def test_run_dir_layout_show_list_check(tmp_path, capsys):
    code, out, _ = _cli(
        [
            "run",
            TOY_CFG,
            "--import",
            TOY,
            "--out",
            str(tmp_path),
            "--name",
            "t1",
            "train.steps=30",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0 and "final_loss" in out
    (run_dir,) = (tmp_path / "toy_regression").iterdir()
    assert run_dir.name.startswith("t1-")
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "summary.json", "checkpoints"} <= names
    assert not [n for n in names if n.startswith(".tmp")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["training"]["model"]["compile_time_s"] > 0
    assert summary["training"]["model"]["step_time_s"] > 0
    assert summary["environment"]["versions"]["jax"]
    assert summary["environment"]["device"]["platform"] == "cpu"
    env = summary["environment"]
    assert env["dtype"] == ("float64" if env["x64"] else "float32")
    assert env["matmul_precision"] == str(
        getattr(jax.config, "jax_default_matmul_precision", None) or "default"
    )
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30] and all(r["tag"] == "model" for r in rows)
    assert "steps: 30" in (run_dir / "config.yaml").read_text()

    code, out, _ = _cli(["show", str(run_dir)], capsys)
    assert code == 0 and "completed" in out and "final_loss" in out and "ms/step" in out
    code, out, _ = _cli(["list", "--import", TOY], capsys)
    assert code == 0 and "toy_regression" in out and "quickstart_ode" in out
    assert "configs/quickstart.yaml" in out
    code, out, _ = _cli(["check", TOY_CFG, "--import", TOY, "train.lr=0.5"], capsys)
    assert code == 0 and "lr: 0.5" in out and "ema_decay: null" in out
    code, _, err = _cli(["run", "--resume", str(run_dir), "--import", TOY], capsys)
    assert code == 2 and "already completed" in err


def test_list_from_another_directory_names_paths_a_person_can_use(tmp_path, monkeypatch, capsys):
    # from a directory outside the shipped configs they used to print as ../../x/configs/...;
    # now absolute, and a ./configs file of the same name is listed first, the other shadowed
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "quickstart.yaml").write_text(
        (ROOT / "configs" / "quickstart.yaml").read_text()
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = _cli(["list"], capsys)
    lines = [ln.strip() for ln in out.splitlines()]
    ours = [ln for ln in lines if ln.startswith("configs/quickstart.yaml ")]
    shipped = [ln for ln in lines if ln.startswith(str(ROOT / "configs" / "quickstart.yaml"))]
    assert code == 0 and len(ours) == 1 and "score_sde" in ours[0]
    assert len(shipped) == 1 and shipped[0].endswith("(shadowed by ./configs)")
    assert not any(ln.startswith("..") for ln in lines)


def test_nan_stops_with_message_and_keeps_last_checkpoint(tmp_path, capsys):
    code, _, err = _cli(
        ["run", TOY_CFG, "--import", TOY, "--out", str(tmp_path), "nan_at=77", "--no-progress"],
        capsys,
    )
    assert code == 1
    assert "non-finite loss at step 77; the last good checkpoint is at step 50" in err
    (run_dir,) = (tmp_path / "toy_regression").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "step 77" in summary["error"]
    latest = json.loads((run_dir / "checkpoints/model/latest.json").read_text())
    assert latest["step"] == 50
    data = (run_dir / "checkpoints/model/step_000000050.eqx").read_bytes()
    assert len(data) > 0
    code, out, _ = _cli(["show", str(run_dir)], capsys)
    assert "failed" in out and "step 77" in out


def _sdeml(log: Path, *args):
    with open(log, "w") as f:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "sdeml.run._cli", *args], stdout=f, stderr=subprocess.STDOUT
        )


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    # Big enough that a step takes ~1 ms, so the kill lands between checkpoints.
    common = [
        "--import",
        TOY,
        "--no-progress",
        "width=256",
        "train.batch_size=512",
        "train.steps=3000",
        "train.log_every=50",
        "train.ckpt_every=250",
    ]
    ref = _sdeml(tmp_path / "ref.log", "run", TOY_CFG, "--out", str(tmp_path / "ref"), *common)
    assert ref.wait(timeout=300) == 0, (tmp_path / "ref.log").read_text()

    victim = _sdeml(
        tmp_path / "victim.log", "run", TOY_CFG, "--out", str(tmp_path / "kill"), *common
    )
    ckpt_glob = "toy_regression/*/checkpoints/model/latest.json"
    deadline = time.time() + 240
    while time.time() < deadline and victim.poll() is None:
        metas = list((tmp_path / "kill").glob(ckpt_glob))
        if metas and json.loads(metas[0].read_text())["step"] >= 500:
            break
        time.sleep(0.01)
    assert victim.poll() is None, "the run finished before it could be killed"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    (run_dir,) = (tmp_path / "kill" / "toy_regression").iterdir()
    killed_at = json.loads((run_dir / "checkpoints/model/latest.json").read_text())["step"]
    assert 500 <= killed_at < 3000
    show = subprocess.run(
        [sys.executable, "-m", "sdeml.run._cli", "show", str(run_dir)],
        capture_output=True,
        text=True,
    )
    assert "interrupted" in show.stdout

    resumed = _sdeml(
        tmp_path / "resume.log", "run", "--resume", str(run_dir), "--import", TOY, "--no-progress"
    )
    assert resumed.wait(timeout=300) == 0, (tmp_path / "resume.log").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed"] == 1
    assert summary["training"]["model"]["resumed_from_step"] == killed_at

    (ref_dir,) = (tmp_path / "ref" / "toy_regression").iterdir()
    final = "checkpoints/model/step_000003000.eqx"
    assert (ref_dir / final).read_bytes() == (run_dir / final).read_bytes()
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(50, 3001, 50))  # no duplicated rows after the resume
    ref_loss = [json.loads(x)["loss"] for x in (ref_dir / "metrics.jsonl").read_text().splitlines()]
    loss = [json.loads(x)["loss"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_array_equal(ref_loss, loss)


def test_readme_user_experiment_runs(tmp_path, capsys):
    import re

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Your own experiment", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "my_experiments.py").write_text(code)
    (tmp_path / "my.yaml").write_text("experiment: fit_sine\ntrain: {steps: 50}\n")
    args = [
        "run",
        str(tmp_path / "my.yaml"),
        "--import",
        str(tmp_path / "my_experiments.py"),
        "--out",
        str(tmp_path / "runs"),
        "--no-progress",
    ]
    code_, out, err = _cli(args, capsys)
    assert code_ == 0, err
    assert "loss" in out


@pytest.mark.slow  # > 10 s
@pytest.mark.e2e
def test_load_quickstart_run_reproduces_its_outputs(tmp_path, capsys):
    import equinox as eqx
    import jax.random as jr

    import sdeml
    from sdeml.run import _registry

    _registry.load_builtin()
    smoke = _registry.get("score_sde").smoke
    code, _, err = _cli(
        ["run", "quickstart", *smoke, "--out", str(tmp_path), "--no-progress"], capsys
    )
    assert code == 0, err
    (run_dir,) = (tmp_path / "score_sde").iterdir()

    cfg, model, state, step, where = sdeml.run.load(run_dir)
    assert step == cfg.train.steps == 20 and where == run_dir
    assert cfg.train.ema_decay == 0.999 and state.ema_model is not None
    assert model is state.ema_model  # the EMA model by default
    assert sdeml.run.load(run_dir, ema=False).model is not None

    # the loaded model draws exactly the samples the run saved (same sampler, key, program)
    sde = sdeml.diffusion.get_sde(
        cfg.sde.name, beta_min=cfg.sde.beta_min, beta_max=cfg.sde.beta_max
    )
    k_eval = jr.split(jr.key(cfg.seed), 3)[2]
    ev = cfg.eval
    draw = eqx.filter_jit(
        lambda m, k: sdeml.sample(
            m, sde, (ev.n_samples, 2), key=k, method="em", n_steps=ev.em_steps
        )
    )
    saved = np.load(run_dir / "samples.npz")
    np.testing.assert_array_equal(np.asarray(draw(model, jr.fold_in(k_eval, 0)).x), saved["em"])
    raw = sdeml.run.load(run_dir, ema=False).model
    assert not np.array_equal(np.asarray(draw(raw, jr.fold_in(k_eval, 0)).x), saved["em"])


def test_load_picks_model_and_checkpoint_and_refuses_bad_input(tmp_path, capsys):
    import jax
    import jax.numpy as jnp

    import sdeml
    from sdeml.run import ConfigError

    args = ["run", TOY_CFG, "--import", TOY, "--out", str(tmp_path), "--no-progress"]
    code, _, err = _cli(
        [*args, "train.steps=40", "train.ckpt_every=20", "train.ema_decay=0.9"], capsys
    )
    assert code == 0, err
    (run_dir,) = (tmp_path / "toy_regression").iterdir()
    out = sdeml.run.load(run_dir, imports=[TOY])
    assert out.step == 40 and int(out.state.step) == 40
    x = jnp.linspace(-2.0, 2.0, 7)[:, None]
    y = jax.vmap(out.model)(x)  # ready to call
    assert y.shape == (7, 1) and bool(jnp.all(jnp.isfinite(y)))
    earlier = sdeml.run.load(run_dir, step=20, imports=[TOY])
    assert int(earlier.state.step) == 20
    for kwargs, fragment in [
        ({"name": "nope"}, "no checkpoint named 'nope' (checkpoints: model)"),
        ({"step": 7}, "no checkpoint at step 7"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(fragment)):
            sdeml.run.load(run_dir, imports=[TOY], **kwargs)
    with pytest.raises(ConfigError, match="not a run directory"):
        sdeml.run.load(tmp_path)
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(ConfigError, match="jax_enable_x64"):
            sdeml.run.load(run_dir, imports=[TOY])
    finally:
        jax.config.update("jax_enable_x64", True)


def test_check_refuses_weight_decay_without_adamw(capsys):
    # found by the CLI fuzz test: `check` accepted it and the run then failed in make_optimizer
    code, _, err = _cli(["check", "cnf_2d", "train.weight_decay=1.0"], capsys)
    assert code == 2 and "train:" in err and "adamw" in err, err
    code, _, err = _cli(
        ["check", "cnf_2d", "train.weight_decay=1.0", "train.optimizer=adamw"], capsys
    )
    assert code == 0, err


@pytest.mark.parametrize(
    "bad, good, needle",
    [
        (
            ["time_series", "data.n_obs=20", "data.window=21"],
            ["time_series", "data.n_obs=20", "data.window=20"],
            "window (21) must not exceed n_obs (20)",
        ),
        (
            ["neural_ode_spiral", "data.n_points=5", "data.window=10"],
            ["neural_ode_spiral", "data.n_points=10", "data.window=10"],
            "window (10) must not exceed n_points (5)",
        ),
    ],
)
def test_check_refuses_a_window_longer_than_the_data(bad, good, needle, capsys):
    # found by the CLI fuzz test: `check` accepted data.window > data.n_obs and the run then
    # failed in sample_windows after its run directory existed
    code, _, err = _cli(["check", *bad], capsys)
    assert code == 2 and "data:" in err and needle in err, err
    code, _, err = _cli(["check", *good], capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    "bad,good",
    [
        (
            ["pfgm_2d", "eval.n_sets=10", "eval.n_seeds=11"],
            ["pfgm_2d", "eval.n_sets=10", "eval.n_seeds=10"],
        ),
        (
            ["score_sde_2d", "eval.n_seeds=11"],
            ["score_sde_2d", "eval.n_seeds=11", "eval.n_sets=22"],
        ),
    ],
)
def test_check_refuses_more_generated_sets_than_data_sets(bad, good, capsys):
    # the toys score generated set s against data set s: each needs its own
    code, _, err = _cli(["check", *bad], capsys)
    assert code == 2 and "eval:" in err and "n_seeds (11) must be at most n_sets (10)" in err, err
    code, _, err = _cli(["check", *good], capsys)
    assert code == 0, err


def test_an_infinite_d_is_the_gaussian_case_and_nan_is_refused(capsys):
    # the shipped pfgm_2d config advertises `pfgm.D=.inf` (EDM diffusion); the sections' refusal
    # of non-finite numbers (issue #17) had made it impossible. A key opts in to +inf only.
    code, out, err = _cli(["check", "pfgm_2d", "pfgm.D=.inf"], capsys)
    assert code == 0 and "D: .inf" in out, err
    for bad in ("pfgm.D=.nan", "pfgm.D=-.inf", "pfgm.sigma_max=.inf"):
        code, _, err = _cli(["check", "pfgm_2d", bad], capsys)
        assert code == 2 and "must be a finite number" in err, (bad, err)
