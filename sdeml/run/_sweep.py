"""A config's ``sweep:`` grid as one vmapped program (issue #19, item 1).

An experiment declares its sweepable keys in its schema (``Config.sweep_keys``): ``seed`` and the
hyper-parameters that enter its computation as arrays without changing shapes or Python control
flow. The grid then runs as one program:

- `with_values` gives the config with those keys replaced by (traced) arrays: the experiment's
  own code, written for one config, computes one grid point under `jax.vmap`;
- `grid_values` stacks the points' values into arrays with a leading grid axis;
- `sweep_map` vmaps a function of the config over the grid (simulations: their numerical core);
- `train_grid` trains one member per grid point with one vmapped step (trained experiments:
  seeds become keys, ``train.lr`` the optimiser state's learning rate, every other key enters
  the model, the loss and the batch function through the config).

Each of them runs a config without a sweep exactly as before (plain Python values, no vmap), so
a grid point equals the separate run of its config up to the rounding of batched arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..train import TrainConfig

__all__ = ["Setup", "grid_values", "point_configs", "sweep_map", "train_grid", "with_values"]


def with_values(cfg: BaseModel, values: Mapping[str, Any]) -> Any:
    """A copy of `cfg` with each dotted key of `values` set to its value, unvalidated.

    The values may be JAX arrays (traced under `jax.vmap`): the config then carries them where
    the experiment reads ``cfg.sde.sigma``. Nothing is checked here: the keys are the declared
    sweepable keys and every grid point's plain value was validated by `sweep_grid`.
    """
    nested: dict[str, Any] = {}
    for key, value in values.items():
        node = nested
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return _replace(cfg, nested)


def _replace(model: Any, updates: dict[str, Any]) -> Any:
    new = {}
    for name, value in updates.items():
        new[name] = _replace(getattr(model, name), value) if isinstance(value, dict) else value
    return model.model_copy(update=new)


def point_configs(cfg: BaseModel, grid: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The validated config of every grid point (``[cfg]`` without a sweep)."""
    if not grid:
        return [cfg]
    return [type(cfg).model_validate(with_values(cfg, p).model_dump()) for p in grid]


def grid_values(cfg: BaseModel, grid: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> Any:
    """``{key: array of its value at every grid point}`` for each key in `keys`.

    A key not swept holds the config's value at every point. Seeds become ``uint32`` (what
    `jax.random.key` takes), other integers int32 and floats JAX's default float.
    """
    import jax.numpy as jnp

    from ._config import get_dotted

    points = point_configs(cfg, grid)  # validated: a float key given as 1 holds 1.0
    out = {}
    for key in keys:
        vals = [get_dotted(c, key) for c in points]
        if key == "seed":
            out[key] = jnp.asarray(vals, jnp.uint32)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            out[key] = jnp.asarray(vals, jnp.int32)
        else:
            out[key] = jnp.asarray(vals, float)
    return out


def sweep_map(
    fn: Callable[[Any], Any],
    cfg: BaseModel,
    grid: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
) -> Any:
    """``fn(cfg)`` at every grid point: one `jax.vmap` over the swept values, the grid split over
    every device (and every process under `jax.distributed`, the result gathered to each).

    Args:
        fn: ``cfg -> PyTree of arrays``; it reads the swept keys from its config argument (as
            arrays under vmap) and must not branch on them in Python.
        cfg: the run's config.
        grid: the grid points (`sweep_grid`); empty for a run without a sweep.
        keys: the experiment's sweepable keys (only the swept ones are traced).

    Returns:
        ``fn``'s output with a leading grid axis (one point without a sweep: ``fn(cfg)`` with a
        leading axis of 1, computed without vmap).
    """
    import jax
    import jax.numpy as jnp

    from ..train import gather_to_host, shard_batch

    if not grid:
        return jax.tree.map(lambda x: jnp.asarray(x)[None], fn(cfg))
    swept = [k for k in keys if any(k in p for p in grid)]
    values = shard_batch(grid_values(cfg, grid, swept))  # over every device (and process)
    return gather_to_host(jax.jit(jax.vmap(lambda v: fn(with_values(cfg, v))))(values))


class Setup(NamedTuple):
    r"""What an experiment's ``setup(cfg)`` gives `train_grid` for one grid point.

    Attributes:
        model: the initial model.
        key: the training key (step ``s`` draws from ``fold_in(key, s)``).
        data: arrays the loss and batch function read (a fixed training set), or None; built
            once per grid point, not at every step.

    Examples:
        Three grid points that differ in the target $t$ of the loss $(w - t)^2$, trained at once
        by `Run.train_grid`; SGD with step size 0.25 gives $w_k = t\,(1 - 2^{-k})$:

        >>> from pathlib import Path
        >>> from sdeml.run import ExperimentConfig, Run, Setup
        >>> from sdeml.train import TrainConfig
        >>> class Cfg(ExperimentConfig):
        ...     experiment: str = "doc_setup"
        ...     target: float = 1.0
        ...     train: TrainConfig = TrainConfig(steps=20, optimizer="sgd", lr=0.25, log_every=20)
        >>> def setup(cfg):  # one grid point: its initial model and training key
        ...     return Setup(model=jnp.zeros(()), key=jr.key(cfg.seed))
        >>> def objective(cfg, data):  # its loss and batch functions
        ...     return (lambda w, batch, key: (w - cfg.target) ** 2), (lambda key, step: None)
        >>> cfg = Cfg()
        >>> grid = [{"target": 1.0}, {"target": 2.0}, {"target": -3.0}]
        >>> Path("setup_demo").mkdir(exist_ok=True)
        >>> run = Run(Path("setup_demo"), cfg, progress=False, sweep=grid,
        ...           sweep_keys=("seed", "target"))
        >>> trained = run.train_grid(setup, objective, cfg.train)
        >>> [round(float(w), 4) for w in trained.model]  # each point reaches its own target
        [1.0, 2.0, -3.0]
    """

    model: Any
    key: Any
    data: Any = None


def train_grid(
    setup: Callable[..., Setup],
    objective: Callable[[Any, Any], tuple[Any, Any]],
    cfg: BaseModel,
    train_cfg: TrainConfig,
    *,
    grid: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    run: Any = None,
    name: str = "model",
    n_steps: int | None = None,
    ema: bool = True,
    inputs: Any = None,
) -> Any:
    """Train the model of every grid point at once: one vmapped, device-sharded program.

    Args:
        setup: ``cfg -> Setup(model, key, data)`` for one point, or ``(cfg, inputs) ->
            Setup`` when `inputs` is given; run compiled (`eqx.filter_jit`).
        objective: ``(cfg, data) -> (loss_fn, batch_fn)`` for one point (see
            `sdeml.train.train_model`).
        cfg: the run's config.
        train_cfg: its `TrainConfig` (optimiser, schedule, steps; ``lr`` may be swept as
            ``train.lr``: each member's learning rate is a leaf of its optimiser state).
        grid: the grid points; empty: one plain run, exactly `train_model`.
        keys: the experiment's sweepable keys.
        run, name, n_steps, ema: see `sdeml.train.train_model`.
        inputs: a PyTree of arrays each point's `setup` reads (e.g. a model trained by an
            earlier `train_grid` to warm-start from); with a grid, a leading grid axis.

    Returns:
        ``Trained(model, state, stats)``; with a grid, the model and state carry a leading
        grid axis.
    """
    import equinox as eqx

    from ..train import (
        Trained,
        build_state,
        gather_to_host,
        make_optimizer,
        make_step,
        set_learning_rate,
        shard_batch,
        train_model,
    )

    def start(c, inp):
        return setup(c) if inputs is None else setup(c, inp)

    if not grid:
        s = eqx.filter_jit(lambda inp: start(cfg, inp))(inputs)
        loss_fn, batch_fn = objective(cfg, s.data)
        return train_model(
            s.model, loss_fn, batch_fn, train_cfg, key=s.key, run=run, name=name,
            n_steps=n_steps, ema=ema,
        )  # fmt: skip
    swept = [k for k in keys if any(k in p for p in grid)]
    values = grid_values(cfg, grid, swept)
    optimizer = make_optimizer(train_cfg)

    def init(v, inp):
        s = start(with_values(cfg, v), inp)
        return build_state(s.model, train_cfg, s.key, optimizer), s.data

    state, data = eqx.filter_jit(eqx.filter_vmap(init))(values, inputs)
    lr_key = _train_lr_key(cfg, train_cfg)
    if lr_key in values:
        state = set_learning_rate(state, values[lr_key])
    state, data, values = shard_batch((state, data, values))

    def one(state, v, d):
        loss_fn, batch_fn = objective(with_values(cfg, v), d)
        return make_step(loss_fn, optimizer, batch_fn)(state)

    vstep = eqx.filter_vmap(one)
    step_fn = lambda state: vstep(state, values, data)
    if run is not None:
        state, stats = run.train(state, step_fn, train_cfg, name=name, n_steps=n_steps)
    else:
        from ..train import fit

        steps = train_cfg.steps if n_steps is None else n_steps
        state, stats = fit(state, step_fn, steps, log_every=train_cfg.log_every, progress=False)
    # under several processes the members live on all of them: everything after training (the
    # experiment's evaluation, plots, the saved model) reads the whole grid in every process
    state = gather_to_host(state)
    return Trained(state.final_model(ema), state, stats)


def _train_lr_key(cfg: Any, train_cfg: Any) -> str:
    """The dotted key of `train_cfg`'s learning rate in `cfg` (``train.lr`` as a rule)."""
    for name in type(cfg).model_fields:
        if getattr(cfg, name, None) is train_cfg:
            return f"{name}.lr"
    return "train.lr"
