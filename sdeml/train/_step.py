"""The pure, jit- and vmap-able training step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Int, PRNGKeyArray, PyTree


class TrainState(eqx.Module):
    """Everything a training run carries from step to step; a PyTree, so it vmaps and saves.

    Attributes:
        model: the equinox model being trained.
        opt_state: the optax state (it holds the learning rate, see `make_optimizer`).
        ema_model: an exponential moving average of the model's floating arrays, or None.
        key: the run's base key; step ``s`` uses ``jr.fold_in(key, s)``, so the data and noise of
            a step are a function of the step alone (this is what makes resuming exact).
        step: the number of steps taken.
        ema_decay: the EMA's decay, set once by `init_state` and read by the step (None: no
            EMA). Static: it is part of the tree's structure, not a leaf of a checkpoint.
    """

    model: PyTree
    opt_state: PyTree
    ema_model: PyTree | None
    key: PRNGKeyArray
    step: Int[Array, ""]
    ema_decay: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if (self.ema_model is None) != (self.ema_decay is None):
            raise ValueError("a TrainState keeps an EMA model exactly when it has an `ema_decay`")

    def final_model(self, ema: bool = True) -> PyTree:
        """The model to evaluate: the EMA model when one is kept and `ema`, else the raw one."""
        return self.ema_model if ema and self.ema_model is not None else self.model


def init_state(
    model: PyTree,
    optimizer: optax.GradientTransformation,
    key: PRNGKeyArray,
    *,
    ema_decay: float | None = None,
) -> TrainState:
    """A fresh `TrainState` at step 0.

    The EMA is configured here, and only here: the state carries its decay and `make_step`
    reads it from the state.

    Args:
        model: an equinox module (its floating arrays are trained).
        optimizer: an optax optimiser, e.g. from `make_optimizer`.
        key: the base key of the run's data and noise.
        ema_decay: keep an EMA copy of the model when not None; ``0 < ema_decay < 1``. The
            average is warmed up (see `ema_weight`), so it is meaningful after any number of
            steps.
    """
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"`ema_decay` must be in (0, 1), got {ema_decay}")
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    ema = model if ema_decay is not None else None
    decay = None if ema_decay is None else float(ema_decay)
    return TrainState(model, opt_state, ema, key, jnp.zeros((), jnp.int32), decay)


LossFn = Callable[[PyTree, Any, PRNGKeyArray], Any]


def train_step(
    loss_fn: LossFn, optimizer: optax.GradientTransformation
) -> Callable[[PyTree, PyTree, Any, PRNGKeyArray], tuple[PyTree, PyTree, dict[str, Array]]]:
    """The step ``(model, opt_state, batch, key) -> (model, opt_state, metrics)``.

    Args:
        loss_fn: ``loss_fn(model, batch, key)`` returning a scalar loss or ``(loss, aux)`` with
            ``aux`` a dict of scalars, which are added to the metrics.
        optimizer: an optax optimiser.

    Returns:
        A pure function; the metrics hold ``loss``, ``grad_norm`` and ``aux``'s entries.
    """

    def objective(model, batch, key):
        out = loss_fn(model, batch, key)
        if isinstance(out, tuple):
            loss, aux = out
        else:
            loss, aux = out, {}
        if jnp.ndim(loss) != 0:
            raise ValueError(f"the loss must be a scalar, got shape {jnp.shape(loss)}")
        return loss, aux

    def step(model, opt_state, batch, key):
        (loss, aux), grads = eqx.filter_value_and_grad(objective, has_aux=True)(model, batch, key)
        params = eqx.filter(model, eqx.is_inexact_array)
        # any optax optimiser, also one not made by `make_optimizer` (see `standard_promotion`)
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, opt_state, params)
        model = eqx.apply_updates(model, updates)
        metrics = {"loss": loss, "grad_norm": optax.global_norm(grads), **aux}
        return model, opt_state, metrics

    return step


def make_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    batch_fn: Callable[[PRNGKeyArray, Array], Any],
) -> Callable[[TrainState], tuple[TrainState, dict[str, Array]]]:
    """The step ``state -> (state, metrics)`` used by `fit`.

    Step ``s`` draws its batch as ``batch_fn(k1, s)`` and its loss noise from ``k2``, where
    ``k1, k2 = jr.split(jr.fold_in(state.key, s))``: data order and noise depend on the step only.
    When the state keeps an EMA model (``init_state(..., ema_decay=...)``), the step updates it
    with the state's own decay.

    Args:
        loss_fn: see `train_step`.
        optimizer: an optax optimiser (the one the state was initialised with).
        batch_fn: ``batch_fn(key, step) -> batch``, pure (e.g. `sdeml.data.minibatch`).
    """
    inner = train_step(loss_fn, optimizer)

    def step(state: TrainState) -> tuple[TrainState, dict[str, Array]]:
        batch_key, loss_key = jr.split(jr.fold_in(state.key, state.step))
        batch = batch_fn(batch_key, state.step)
        model, opt_state, metrics = inner(state.model, state.opt_state, batch, loss_key)
        ema = state.ema_model
        if state.ema_decay is not None:
            weight = ema_weight(state.ema_decay, state.step)
            ema = _ema_update(ema, model, weight)
        new = TrainState(model, opt_state, ema, state.key, state.step + 1, state.ema_decay)
        return new, metrics

    return step


def ema_weight(decay: float, step: Int[Array, ""] | int) -> Array:
    r"""The weight of the new parameters in the EMA update after step ``step`` (0-based).

    $$\bar\theta_{t+1} = d_t\,\bar\theta_t + (1 - d_t)\,\theta_{t+1},\qquad
    d_t = \min\Big(d, \frac{1 + t}{10 + t}\Big),$$

    a warmed-up decay: the initial (random) weights keep a share of
    $\prod_{s<t} d_s \approx 9!/t^9$ of the average (below 1e-6 after 20 steps), and the average
    spans about the last $t/9$ steps until it reaches the $1/(1-d)$ steps of the plain EMA. A
    plain EMA started at the initial weights keeps $d^t$ of them (82 % after 200 steps at
    $d = 0.999$, issue 17); debiasing it ($/(1 - d^t)$) removes the initial weights but still
    averages a short run uniformly over its whole trajectory, early iterates included.

    Returns:
        $1 - d_t$, a float32 scalar (cast to each leaf's dtype by the update).

    References:
        The `num_updates` warm-up of TensorFlow's `tf.train.ExponentialMovingAverage`.
    """
    t = jnp.asarray(step, jnp.float32)
    return 1.0 - jnp.minimum(jnp.float32(decay), (1.0 + t) / (10.0 + t))


def _ema_update(ema: PyTree, model: PyTree, weight: Array) -> PyTree:
    ema_p, static = eqx.partition(ema, eqx.is_inexact_array)
    new_p = eqx.filter(model, eqx.is_inexact_array)

    def mix(e, p):
        w = weight.astype(e.dtype)
        return e + w * (p - e)

    return eqx.combine(jax.tree.map(mix, ema_p, new_p), static)
