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
    """

    model: PyTree
    opt_state: PyTree
    ema_model: PyTree | None
    key: PRNGKeyArray
    step: Int[Array, ""]


def init_state(
    model: PyTree,
    optimizer: optax.GradientTransformation,
    key: PRNGKeyArray,
    *,
    ema_decay: float | None = None,
) -> TrainState:
    """A fresh `TrainState` at step 0.

    Args:
        model: an equinox module (its floating arrays are trained).
        optimizer: an optax optimiser, e.g. from `make_optimizer`.
        key: the base key of the run's data and noise.
        ema_decay: keep an EMA copy of the model when not None.
    """
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    ema = model if ema_decay is not None else None
    return TrainState(model, opt_state, ema, key, jnp.zeros((), jnp.int32))


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
        updates, opt_state = optimizer.update(grads, opt_state, params)
        model = eqx.apply_updates(model, updates)
        metrics = {"loss": loss, "grad_norm": optax.global_norm(grads), **aux}
        return model, opt_state, metrics

    return step


def make_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    batch_fn: Callable[[PRNGKeyArray, Array], Any],
    *,
    ema_decay: float | None = None,
) -> Callable[[TrainState], tuple[TrainState, dict[str, Array]]]:
    """The step ``state -> (state, metrics)`` used by `fit`.

    Step ``s`` draws its batch as ``batch_fn(k1, s)`` and its loss noise from ``k2``, where
    ``k1, k2 = jr.split(jr.fold_in(state.key, s))``: data order and noise depend on the step only.

    Args:
        loss_fn: see `train_step`.
        optimizer: an optax optimiser.
        batch_fn: ``batch_fn(key, step) -> batch``, pure (e.g. `sdeml.data.minibatch`).
        ema_decay: the EMA decay when the state carries an EMA model.
    """
    inner = train_step(loss_fn, optimizer)

    def step(state: TrainState) -> tuple[TrainState, dict[str, Array]]:
        batch_key, loss_key = jr.split(jr.fold_in(state.key, state.step))
        batch = batch_fn(batch_key, state.step)
        model, opt_state, metrics = inner(state.model, state.opt_state, batch, loss_key)
        ema = state.ema_model
        if ema is not None:
            if ema_decay is None:
                raise ValueError("the state has an EMA model: pass `ema_decay` to make_step")
            ema = _ema_update(ema, model, ema_decay)
        return TrainState(model, opt_state, ema, state.key, state.step + 1), metrics

    return step


def _ema_update(ema: PyTree, model: PyTree, decay: float) -> PyTree:
    ema_p, static = eqx.partition(ema, eqx.is_inexact_array)
    new_p = eqx.filter(model, eqx.is_inexact_array)
    mixed = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema_p, new_p)
    return eqx.combine(mixed, static)
