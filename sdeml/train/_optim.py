"""Optimisers built from a `TrainConfig`, with the learning rate as a state leaf."""

from __future__ import annotations

from typing import Any

import jax
import optax

from ..core._checks import check_int


def make_optimizer(cfg: Any) -> optax.GradientTransformation:
    """An optax optimiser from a `TrainConfig` (or anything with the same fields).

    The peak learning rate is injected as a leaf of the optimiser state
    (`optax.inject_hyperparams`), so a learning-rate sweep is a `jax.vmap` over states rather than
    a recompilation per value.

    Args:
        cfg: ``optimizer`` (adam | adamw | sgd | rmsprop), ``lr``, ``momentum``, ``weight_decay``,
            ``schedule`` (constant | cosine | warmup_cosine), ``warmup_steps`` (< ``steps``
            with warmup_cosine), ``steps``, ``grad_clip`` (global-norm clipping, or None).

    Returns:
        An `optax.GradientTransformation` (its `init` and `update` run under standard dtype
        promotion, see `standard_promotion`).

    Raises:
        ValueError: an unknown optimizer or schedule (the message lists the valid names),
            ``weight_decay`` with an optimizer other than adamw, or a warm-up as long as the run.

    Examples:
        >>> from sdeml.train import TrainConfig, make_optimizer
        >>> opt = make_optimizer(TrainConfig(optimizer="sgd", lr=0.1))
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> state = opt.init(params)
        >>> float(state.hyperparams["learning_rate"])  # the rate is a leaf of the state
        0.1
        >>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, state, params)
        >>> updates["w"].tolist()  # plain SGD: -lr * gradient
        [-0.1, -0.1]

    References:
        Kingma & Ba, Adam: A Method for Stochastic Optimization, ICLR 2015. arXiv:1412.6980
        (``adam``); Loshchilov & Hutter, Decoupled Weight Decay Regularization, ICLR 2019.
        arXiv:1711.05101 (``adamw``).
    """
    # no momentum: no trace in the state (a zero-decay trace is the identity, and would only add
    # a copy of the parameters to every optimiser state)
    momentum = cfg.momentum or None
    factories = {
        "adam": lambda lr: optax.adam(lr),
        "adamw": lambda lr: optax.adamw(lr, weight_decay=cfg.weight_decay),
        "sgd": lambda lr: optax.sgd(lr, momentum=momentum),
        "rmsprop": lambda lr: optax.rmsprop(lr, momentum=momentum),
    }
    if cfg.optimizer not in factories:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: {', '.join(factories)}")
    if cfg.weight_decay and cfg.optimizer != "adamw":
        raise ValueError("`weight_decay` is only used by optimizer 'adamw'")
    schedules = ("constant", "cosine", "warmup_cosine")
    if cfg.schedule not in schedules:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; valid: {', '.join(schedules)}")
    if cfg.schedule == "warmup_cosine" and cfg.warmup_steps >= cfg.steps:
        # the rate would still be climbing when the run ends, and never reach `lr`
        raise ValueError(
            f"`warmup_steps` ({cfg.warmup_steps}) must be < `steps` ({cfg.steps}) with schedule "
            "'warmup_cosine'"
        )

    def build(learning_rate):
        if cfg.schedule == "constant":
            lr = learning_rate
        elif cfg.schedule == "cosine":
            lr = optax.cosine_decay_schedule(learning_rate, cfg.steps)
        else:
            lr = warmup_cosine(learning_rate, cfg.warmup_steps, cfg.steps)
        opt = factories[cfg.optimizer](lr)
        if cfg.grad_clip is not None:
            opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)
        return opt

    return standard_promotion(optax.inject_hyperparams(build)(learning_rate=cfg.lr))


def standard_promotion(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """`tx` with its `init` and `update` run under JAX's standard dtype promotion.

    optax raises float decays to the int32 step count (Adam's bias correction, the schedules),
    which ``jax.numpy_dtype_promotion("strict")`` refuses; with this wrapper an optimiser works
    whichever promotion mode the caller runs under, and the state is optax's own.

    Args:
        tx: any optax optimiser.

    Returns:
        An `optax.GradientTransformationExtraArgs` with the same state and updates as `tx`.

    Examples:
        >>> import optax
        >>> from sdeml.train import standard_promotion
        >>> tx = standard_promotion(optax.adam(1e-2))
        >>> params = jnp.zeros(3)
        >>> with jax.numpy_dtype_promotion("strict"):
        ...     state = tx.init(params)
        ...     updates, state = tx.update(jnp.ones(3), state, params)
        >>> bool(jnp.allclose(updates, -1e-2))  # Adam's first step: -lr * sign(gradient)
        True
    """

    def init(params):
        with jax.numpy_dtype_promotion("standard"):
            return tx.init(params)

    def update(updates, state, params=None, **extra):
        with jax.numpy_dtype_promotion("standard"):
            return tx.update(updates, state, params, **extra)

    return optax.GradientTransformationExtraArgs(init, update)


def warmup_cosine(peak: Any, warmup_steps: int, steps: int) -> optax.Schedule:
    r"""Linear warm-up from 0 to `peak` over `warmup_steps`, then cosine decay to 0 at `steps`.

    `peak` may be a traced array (under `optax.inject_hyperparams`, inside `jax.jit` or
    `jax.vmap`): unlike `optax.warmup_cosine_decay_schedule`, which tests ``peak_value == 0.0`` in
    Python and so raises a `TracerBoolConversionError` once compiled (issue 17, item 5), nothing
    here branches on it. The values are those of optax's schedule with ``end_value = 0``.

    With peak $\eta$, warm-up length $w$ and total length $T$, step $s$ gets

    $$\eta_s = \eta\,\frac{s}{w}\quad (s < w),\qquad
    \eta_s = \frac{\eta}{2}\Big(1 + \cos\frac{\pi\,(s - w)}{T - w}\Big)\quad (w \le s \le T),$$

    and 0 after $T$.

    Args:
        peak: the learning rate at the end of the warm-up.
        warmup_steps: the warm-up length (0 is treated as 1 step).
        steps: the total length, warm-up included (at least ``warmup_steps + 1``).

    Returns:
        An `optax.Schedule`: ``schedule(step)`` is the learning rate at `step`, a scalar.

    Examples:
        >>> from sdeml.train import warmup_cosine
        >>> schedule = warmup_cosine(1.0, warmup_steps=10, steps=110)
        >>> [round(float(schedule(s)), 3) for s in (0, 5, 10, 60, 110)]
        [0.0, 0.5, 1.0, 0.5, 0.0]

    References:
        Loshchilov & Hutter, SGDR: Stochastic Gradient Descent with Warm Restarts, ICLR 2017.
        arXiv:1608.03983 (the cosine decay).
    """
    # ints, not truncated: warmup_steps=2.5 ran as 2 (and True as 1)
    warmup = max(check_int("warmup_steps", warmup_steps, 0), 1)
    total = max(check_int("steps", steps, 1), warmup + 1)
    joined = optax.join_schedules(
        [
            optax.linear_schedule(0.0, peak, warmup),
            optax.cosine_decay_schedule(peak, total - warmup),
        ],
        [warmup],
    )

    def schedule(step):
        with jax.numpy_dtype_promotion("standard"):  # optax mixes the int step with floats
            return joined(step)

    return schedule
