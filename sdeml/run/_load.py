"""`load`: a finished (or interrupted) CLI run back in a notebook, in one call."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import _registry as registry
from ._config import load_yaml, sweep_grid, validate
from ._errors import ConfigError


class LoadedRun(NamedTuple):
    """What `load` returns.

    Attributes:
        cfg: the run's resolved config (the experiment's schema, validated).
        model: the trained model, ready to call: the EMA model when the run kept one and
            ``ema=True``, else the raw one. For a sweep, every leaf has a leading axis of grid
            points (in the order of ``summary.json``'s ``sweep.labels``).
        state: the whole checkpointed `sdeml.train.TrainState` (both models, optimiser, step).
        step: the training step of the checkpoint.
        dir: the run directory.

    Examples:
        A named tuple (see `load` for a run loaded end to end):

        >>> from sdeml.run import LoadedRun
        >>> LoadedRun._fields
        ('cfg', 'model', 'state', 'step', 'dir')
    """

    cfg: Any
    model: Any
    state: Any
    step: int
    dir: Path


def load(
    run_dir: str | Path,
    *,
    name: str = "model",
    ema: bool = True,
    step: int | None = None,
    imports: Sequence[str] = (),
) -> LoadedRun:
    r"""Load a CLI run's config and trained model.

    The experiment rebuilds the model's structure from the saved ``config.yaml`` (the
    ``build_model`` it registered), `sdeml.train.build_state` adds the optimiser and EMA the
    config describes, and the checkpoint fills in every array. Nothing in the run directory is
    executed (YAML is read with ``safe_load``; checkpoints hold arrays only).

    Args:
        run_dir: ``runs/<experiment>/<name>-<timestamp>``.
        name: which trained model (a folder of ``checkpoints/``): ``"model"``, or e.g.
            ``"reflow"`` (flow matching) or ``"baseline"`` (time series).
        ema: the EMA model when the run kept one (``train.ema_decay``), else the raw one.
        step: a checkpoint step; default the newest.
        imports: modules or ``.py`` files that register the run's experiment when it is not
            shipped with sdeml (as ``sdeml run --import``).

    Returns:
        A `LoadedRun` ``(cfg, model, state, step, dir)``.

    Raises:
        ConfigError: not a run directory, an experiment that trains no model, no checkpoint
            of that name or step, or a float precision different from the run's.

    Examples:
        A tiny experiment that fits $y = 2x + 1$, run with the command line (`main`), then
        loaded (with ``sdeml.run.load("runs/score_sde/quickstart-...")`` the same for a shipped
        experiment):

        >>> from pathlib import Path
        >>> from sdeml.run import ExperimentConfig, load, main, register
        >>> from sdeml.train import TrainConfig, train_model
        >>> class LineConfig(ExperimentConfig):
        ...     experiment: str = "doc_line"
        ...     train: TrainConfig = TrainConfig(steps=200, lr=0.05, log_every=50, ckpt_every=100)
        >>> def build_model(cfg, key):  # what `load` rebuilds the checkpoint's structure with
        ...     return eqx.nn.Linear(1, 1, key=key)
        >>> @register("doc_line", LineConfig, "documentation: y = 2x + 1", build_model=build_model)
        ... def fit_line(cfg, run):
        ...     def loss_fn(model, batch, key):
        ...         x, y = batch
        ...         return jnp.mean((jax.vmap(model)(x) - y) ** 2)
        ...     def batch_fn(key, step):
        ...         x = jr.uniform(key, (32, 1), minval=-1.0, maxval=1.0)
        ...         return x, 2.0 * x + 1.0
        ...     model = build_model(cfg, jr.key(cfg.seed))
        ...     trained = train_model(model, loss_fn, batch_fn, cfg.train, key=jr.key(1), run=run)
        ...     return {"loss": trained.stats.last_metrics["loss"]}
        >>> LineConfig().train.steps  # the schema's default
        200
        >>> _ = Path("line.yaml").write_text("experiment: doc_line\n")
        >>> main(["run", "line.yaml", "--out", "runs_line", "--no-progress"])
        <BLANKLINE>
        doc_line: completed in ... s -> ...
        0
        >>> [run_dir] = Path("runs_line/doc_line").iterdir()
        >>> cfg, model, state, step, _ = load(run_dir)
        >>> step, round(float(model.weight[0, 0]), 2), round(float(model.bias[0]), 2)
        (200, 2.0, 1.0)
        >>> load(run_dir, step=100).step  # an earlier checkpoint
        100
    """
    import jax
    import jax.random as jr

    from ..train import CheckpointDir, build_state, sweep_like

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    registry.load_builtin()
    for spec in imports:
        registry.import_user(spec)
    raw = load_yaml(cfg_path)
    exp = registry.get(raw.get("experiment"), source=str(cfg_path))
    cfg = validate(exp.config, raw, str(cfg_path))
    if exp.build_model is None:
        raise ConfigError(
            f"{run_dir}: experiment {exp.name!r} trains no model to load "
            "(it registers no `build_model`); its results are in the run directory"
        )
    _check_precision(run_dir, cfg)

    ckpt_root = run_dir / "checkpoints"
    ckpts = CheckpointDir(ckpt_root / name)
    have = sorted(p.parent.name for p in ckpt_root.glob("*/latest.json"))
    if ckpts.latest() is None and not ckpts.steps():
        listed = ", ".join(have) if have else "none"
        raise ConfigError(f"{run_dir}: no checkpoint named {name!r} (checkpoints: {listed})")
    if step is None:  # the newest whose checksum verifies
        try:
            step, _ = ckpts.newest_verified()
        except ValueError as e:  # CheckpointError: none verifies
            raise ConfigError(str(e)) from None
    elif step not in ckpts.steps():
        raise ConfigError(
            f"{run_dir}: no checkpoint at step {step} for {name!r} (steps: {ckpts.steps()})"
        )
    assert step is not None

    build_model = exp.build_model  # not None: checked above

    def build(key: Any) -> Any:
        built = build_model(cfg, key)
        if isinstance(built, dict):
            if name not in built:
                raise ConfigError(
                    f"{run_dir}: experiment {exp.name!r} builds models {sorted(built)}, "
                    f"not {name!r}"
                )
            return built[name]
        return built

    grid = sweep_grid(cfg, exp.sweep_keys, str(cfg_path))
    if grid:
        like = sweep_like(build, cfg.train, len(grid))
    else:
        key = jr.key(0)
        like = build_state(build(key), cfg.train, key)
    try:
        state = ckpts.load(step, like)
    except ValueError as e:
        if grid:
            raise ConfigError(str(e)) from None
        # An experiment that always trains a batched state (`train_sweep`, as quickstart_ode
        # does) saves one member without a sweep: load that and hand back the member itself.
        try:
            state = ckpts.load(step, sweep_like(build, cfg.train, 1))
        except ValueError:
            raise ConfigError(str(e)) from None
        state = jax.tree.map(lambda a: a[0] if isinstance(a, jax.Array) else a, state)
    return LoadedRun(cfg, state.final_model(ema), state, int(step), run_dir)


def _check_precision(run_dir: Path, cfg: Any) -> None:
    """The model is rebuilt in this process's precision: it must be the run's."""
    import jax

    summary_path = run_dir / "summary.json"
    ran_x64 = bool(getattr(cfg, "x64", False))
    if summary_path.is_file():
        env = json.loads(summary_path.read_text()).get("environment") or {}
        ran_x64 = bool(env.get("x64", ran_x64))
    here = bool(jax.config.read("jax_enable_x64"))
    if ran_x64 != here:
        want = "True" if ran_x64 else "False"
        raise ConfigError(
            f"{run_dir}: the run trained with jax_enable_x64={ran_x64}, this process has {here}; "
            f"call jax.config.update('jax_enable_x64', {want}) before sdeml.run.load"
        )
