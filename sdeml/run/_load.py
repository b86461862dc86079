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
    """Load a CLI run's config and trained model.

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

    Example:
        >>> cfg, model, *_ = sdeml.run.load("runs/score_sde/quickstart-20261122-101500")
        >>> x = sdeml.sample(model, sdeml.VPSDE(), (500, 2), method="ode", key=jr.key(0)).x
    """
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
        raise ConfigError(str(e)) from None
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
