"""`train_model` / `train_sweep`: a model, a loss and a batch function in, the trained model out.

The one wiring block every trained experiment needs (optimiser from the config, state with or
without EMA, pure step, compiled loop with logging and checkpoints, EMA or raw model out), written
once. Both run in a notebook as they are, or inside a CLI run when given its `Run` (anything with
the same ``train`` method: this module does not import `sdeml.run`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import equinox as eqx
import jax
import jax.random as jr
import optax
from jaxtyping import Array, PRNGKeyArray, PyTree

from ._config import TrainConfig
from ._loop import FitStats, fit
from ._optim import make_optimizer
from ._step import LossFn, TrainState, init_state, make_step
from ._sweep import gather_to_host, init_states, set_learning_rate, shard_batch


class RunLike(Protocol):
    """What the helpers need from a run (`sdeml.run.Run` is one): a ``train`` method.

    `train_model` and `train_sweep` call ``run.train`` instead of `fit` when given ``run=``.

    Attributes:
        train: ``train(state, step_fn, train_cfg, *, name, n_steps) -> (state, FitStats)``:
            run the loop (usually `fit`, with the run's logging and checkpoints) from the
            initial `TrainState` (batched for a sweep) with the step function (`make_step`)
            and the `TrainConfig`, under the model's ``name``, for ``n_steps`` steps (None:
            ``train_cfg.steps``).

    Examples:
        >>> from sdeml.train import TrainConfig, fit, train_model
        >>> class Announce:  # a RunLike that says what it trains, then calls `fit`
        ...     def train(self, state, step_fn, train_cfg, *, name, n_steps):
        ...         steps = train_cfg.steps if n_steps is None else n_steps
        ...         print(f"training {name!r} for {steps} steps")
        ...         return fit(state, step_fn, steps, progress=False)
        >>> loss_fn = lambda w, batch, key: jnp.sum((w - 1.0) ** 2)
        >>> cfg = TrainConfig(steps=5, optimizer="sgd", lr=0.25)
        >>> out = train_model(jnp.zeros(2), loss_fn, lambda k, s: None, cfg, key=jr.key(0),
        ...                   run=Announce(), name="net")
        training 'net' for 5 steps
        >>> out.model.tolist()  # w_k = 1 - 2^-k
        [0.96875, 0.96875]
    """

    def train(
        self, state: Any, step_fn: Any, train_cfg: Any, *, name: str, n_steps: int | None
    ) -> tuple[Any, FitStats]: ...


class Trained(NamedTuple):
    """What `train_model` and `train_sweep` return.

    Attributes:
        model: the model to evaluate: the EMA model when ``cfg.ema_decay`` is set and
            ``ema=True``, otherwise the raw one (batched over members for `train_sweep`).
        state: the final `TrainState` (both models, optimiser state, step).
        stats: the `FitStats` of the loop.

    Examples:
        >>> from sdeml.train import TrainConfig, train_model
        >>> cfg = TrainConfig(steps=4, optimizer="sgd", lr=0.25, ema_decay=0.5, log_every=2)
        >>> loss_fn = lambda w, batch, key: jnp.sum((w - 1.0) ** 2)
        >>> trained = train_model(jnp.zeros(1), loss_fn, lambda k, s: None, cfg, key=jr.key(0),
        ...                       progress=False)
        >>> trained.model is trained.state.ema_model, int(trained.state.step), trained.stats.steps
        (True, 4, 4)
        >>> trained.state.model.tolist()  # the raw model, 1 - 2^-4
        [0.9375]
    """

    model: PyTree
    state: TrainState
    stats: FitStats


BatchFn = Callable[[PRNGKeyArray, Array], Any]


def build_state(
    model: PyTree,
    cfg: TrainConfig,
    key: PRNGKeyArray,
    optimizer: optax.GradientTransformation | None = None,
) -> TrainState:
    """The initial `TrainState` the helpers train: ``make_optimizer(cfg)``, EMA from the config.

    `sdeml.run.load` rebuilds a run's checkpoint structure with this function, so a checkpoint
    written by `train_model` is always readable from the config alone.

    Args:
        model: an equinox module (its floating arrays are trained).
        cfg: a `TrainConfig` (optimiser, schedule, ``ema_decay``).
        key: the base key of the run's data and loss noise.
        optimizer: the optimiser to use; None builds ``make_optimizer(cfg)``.

    Returns:
        A `TrainState` at step 0, keeping an EMA model when ``cfg.ema_decay`` is set.

    Examples:
        >>> from sdeml.train import TrainConfig, build_state
        >>> cfg = TrainConfig(lr=3e-3, ema_decay=0.99)
        >>> state = build_state(eqx.nn.Linear(2, 1, key=jr.key(0)), cfg, jr.key(1))
        >>> int(state.step), state.ema_decay, float(state.opt_state.hyperparams["learning_rate"])
        (0, 0.99, 0.003)
    """
    optimizer = make_optimizer(cfg) if optimizer is None else optimizer
    return init_state(model, optimizer, key, ema_decay=cfg.ema_decay)


def train_model(
    model: PyTree,
    loss_fn: LossFn,
    batch_fn: BatchFn,
    cfg: TrainConfig,
    *,
    key: PRNGKeyArray,
    run: RunLike | None = None,
    name: str = "model",
    n_steps: int | None = None,
    ema: bool = True,
    ckpt_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_log: Callable[[int, dict[str, Any]], None] | None = None,
) -> Trained:
    """Train `model` with the optimiser, schedule and EMA that `cfg` describes.

    Args:
        model: an equinox module (its floating arrays are trained).
        loss_fn: ``loss_fn(model, batch, key) -> loss`` or ``(loss, aux)`` (see `train_step`).
        batch_fn: ``batch_fn(key, step) -> batch``, pure: a step's data depends on the step
            only, which is what makes a resumed run reach bit-identical parameters.
        cfg: a `TrainConfig` (optimiser, schedule, steps, EMA, logging and checkpoint periods).
        key: the base key of the run's data and loss noise.
        run: a CLI `Run`: then metrics go to its ``metrics.jsonl``, checkpoints to
            ``checkpoints/<name>/``, it resumes from them, and `ckpt_dir`, `resume`,
            `progress` and `on_log` come from the run. None: train in-process (a notebook).
        name: the model's name in the run (checkpoint folder, metric tag, progress label).
        n_steps: train this many steps instead of ``cfg.steps`` (the schedule still spans
            ``cfg.steps``).
        ema: return the EMA model (when ``cfg.ema_decay`` is set) rather than the raw one.
        ckpt_dir, resume, progress, on_log: see `fit` (without a `run`).

    Returns:
        ``Trained(model, state, stats)``.

    Examples:
        Fit $y = 2x + 1$ with a linear layer, on fresh inputs at every step:

        >>> from sdeml.train import TrainConfig, train_model
        >>> def loss_fn(model, batch, key):
        ...     x, y = batch
        ...     return jnp.mean((jax.vmap(model)(x) - y) ** 2)
        >>> def batch_fn(key, step):  # pure: the batch depends on (key, step) only
        ...     x = jr.uniform(key, (32, 1), minval=-1.0, maxval=1.0)
        ...     return x, 2.0 * x + 1.0
        >>> cfg = TrainConfig(steps=300, lr=0.05, ema_decay=0.9, log_every=100)
        >>> net, state, stats = train_model(
        ...     eqx.nn.Linear(1, 1, key=jr.key(0)), loss_fn, batch_fn, cfg, key=jr.key(1),
        ...     progress=False,
        ... )
        >>> round(float(net.weight[0, 0]), 2), round(float(net.bias[0]), 2)  # the EMA model
        (2.0, 1.0)
        >>> int(state.step), stats.last_metrics["loss"] < 1e-6
        (300, True)
    """
    optimizer = make_optimizer(cfg)
    state = build_state(model, cfg, key, optimizer)
    step_fn = make_step(loss_fn, optimizer, batch_fn)
    state, stats = _fit(state, step_fn, cfg, run, name, n_steps, ckpt_dir, resume, progress, on_log)
    state = gather_to_host(state)  # the whole grid in every process (one process: unchanged)
    return Trained(state.final_model(ema), state, stats)


def train_sweep(
    build_model: Callable[[PRNGKeyArray], PyTree],
    loss_fn: LossFn,
    batch_fn: BatchFn,
    cfg: TrainConfig,
    *,
    seeds: Sequence[int],
    lrs: Sequence[float] | None = None,
    run: RunLike | None = None,
    name: str = "model",
    n_steps: int | None = None,
    ema: bool = True,
    ckpt_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_log: Callable[[int, dict[str, Any]], None] | None = None,
) -> Trained:
    r"""Train one member per seed (and learning rate) at once: one vmapped, sharded program.

    Member ``i`` is ``build_model(k_model)`` trained with key ``k_train``, where ``k_model,
    k_train = jr.split(jr.key(seeds[i]))``, at learning rate ``lrs[i]`` (``cfg.lr`` when None):
    exactly what `train_model` gives for that seed and rate, up to the rounding of batched
    matrix products. Members are spread over the devices (`shard_batch`).

    Args:
        build_model: ``key -> model``.
        seeds: one seed per member.
        lrs: one learning rate per member, or None.
        the rest: as in `train_model`.

    Returns:
        ``Trained(model, state, stats)`` whose model and state carry a leading member axis.

    Examples:
        Three seeds and three learning rates of SGD on $L(w) = \|w - 1\|^2$; member $i$ moves
        from $w_0 = 0$ by $w_{k+1} = w_k + 2\eta_i (1 - w_k)$:

        >>> from sdeml.train import TrainConfig, train_sweep
        >>> cfg = TrainConfig(steps=3, optimizer="sgd", log_every=3)
        >>> loss_fn = lambda w, batch, key: jnp.sum((w - 1.0) ** 2)
        >>> out = train_sweep(lambda key: jnp.zeros(2), loss_fn, lambda k, s: None, cfg,
        ...                   seeds=[0, 1, 2], lrs=[0.5, 0.25, 0.125], progress=False)
        >>> out.model.shape, out.state.step.tolist()
        ((3, 2), [3, 3, 3])
        >>> out.model[:, 0].tolist()  # 1 - (1 - 2 lr)^3
        [1.0, 0.875, 0.578125]
    """
    optimizer = make_optimizer(cfg)
    if lrs is not None and len(lrs) != len(seeds):
        raise ValueError(f"`lrs` has {len(lrs)} entries, `seeds` {len(seeds)}: give one per member")

    def init(key: PRNGKeyArray) -> TrainState:
        k_model, k_train = jr.split(key)
        return build_state(build_model(k_model), cfg, k_train, optimizer)

    state = init_states(init, seeds)
    if lrs is not None:
        state = set_learning_rate(state, lrs)
    state = shard_batch(state)
    step_fn = eqx.filter_vmap(make_step(loss_fn, optimizer, batch_fn))
    state, stats = _fit(state, step_fn, cfg, run, name, n_steps, ckpt_dir, resume, progress, on_log)
    state = gather_to_host(state)  # the whole grid in every process (one process: unchanged)
    return Trained(state.final_model(ema), state, stats)


def sweep_like(build_model: Callable[[PRNGKeyArray], PyTree], cfg: TrainConfig, n: int) -> Any:
    """A batched state of `n` members with the structure `train_sweep` trains (for loading).

    Args:
        build_model: ``key -> model``, as given to `train_sweep`.
        cfg: the `TrainConfig` of the sweep (optimiser and EMA fix the state's structure).
        n: the number of members.

    Returns:
        A `TrainState` whose arrays have a leading axis of size `n`; its values are
        placeholders, to be replaced by a checkpoint's (`load_checkpoint`).

    Examples:
        >>> from sdeml.train import CheckpointDir, TrainConfig, sweep_like, train_sweep
        >>> cfg = TrainConfig(steps=2, optimizer="sgd", lr=0.25, log_every=2)
        >>> build = lambda key: jr.normal(key, (3,))
        >>> loss_fn = lambda w, batch, key: jnp.sum(w**2)
        >>> out = train_sweep(build, loss_fn, lambda k, s: None, cfg, seeds=[0, 1],
        ...                   ckpt_dir="sweep_ckpt", progress=False)
        >>> like = sweep_like(build, cfg, 2)
        >>> like.model.shape, like.step.shape
        ((2, 3), (2,))
        >>> step, state, note = CheckpointDir("sweep_ckpt").restore(like)
        >>> step, bool(jnp.array_equal(state.model, out.state.model))
        (2, True)
    """
    keys = jr.split(jr.key(0), n)
    return eqx.filter_vmap(lambda k: build_state(build_model(k), cfg, k))(keys)


def _fit(
    state: TrainState,
    step_fn: Callable[[TrainState], tuple[TrainState, dict[str, jax.Array]]],
    cfg: TrainConfig,
    run: RunLike | None,
    name: str,
    n_steps: int | None,
    ckpt_dir: str | Path | None,
    resume: bool,
    progress: bool,
    on_log: Callable[[int, dict[str, Any]], None] | None,
) -> tuple[TrainState, FitStats]:
    if run is not None:
        return run.train(state, step_fn, cfg, name=name, n_steps=n_steps)
    return fit(
        state,
        step_fn,
        cfg.steps if n_steps is None else n_steps,
        log_every=cfg.log_every,
        ckpt_every=cfg.ckpt_every if ckpt_dir is not None else 0,
        ckpt_dir=ckpt_dir,
        resume=resume,
        progress=progress,
        desc=name,
        on_log=on_log,
    )
