"""Helpers for training many seeds / hyper-parameters at once in one compiled program."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._step import TrainState


def init_states(init: Callable[[jax.Array], TrainState], seeds: Sequence[int]) -> TrainState:
    """A batched `TrainState`: ``init(jr.key(seed))`` for every seed, stacked on a leading axis.

    Args:
        init: builds one state from a key (model, optimiser state, EMA, training key).
        seeds: one integer seed per member.
    """
    keys = jax.vmap(jr.key)(jnp.asarray(seeds, dtype=jnp.uint32))
    return eqx.filter_vmap(init)(keys)


def set_learning_rate(state: TrainState, lrs: Sequence[float] | jax.Array) -> TrainState:
    """Give each member of a batched state its own learning rate.

    Works on optimisers from `make_optimizer` (or any `optax.inject_hyperparams` optimiser,
    possibly inside `optax.chain`), whose state holds ``hyperparams["learning_rate"]``.
    """
    hp = _find_hyperparams(state.opt_state)
    if hp is None:
        raise ValueError(
            "the optimiser state has no injected learning rate; "
            "build the optimiser with sdeml.train.make_optimizer"
        )
    old = hp["learning_rate"]
    lrs = jnp.asarray(lrs, dtype=old.dtype)
    if lrs.shape != old.shape:
        raise ValueError(f"`lrs` has shape {lrs.shape}, the batched state needs {old.shape}")
    return eqx.tree_at(lambda s: _hyperparams(s.opt_state)["learning_rate"], state, lrs)


def _hyperparams(opt_state: Any) -> dict[str, Any]:
    found = _find_hyperparams(opt_state)
    if found is None:  # checked by the caller before
        raise ValueError("the optimiser state has no injected learning rate")
    return found


def _find_hyperparams(opt_state: Any) -> dict[str, Any] | None:
    if hasattr(opt_state, "hyperparams") and "learning_rate" in opt_state.hyperparams:
        return opt_state.hyperparams
    if isinstance(opt_state, tuple):
        for s in opt_state:
            found = _find_hyperparams(s)
            if found is not None:
                return found
    return None


def shard_batch(tree: Any, devices: Sequence[Any] | None = None) -> Any:
    """Spread the leading (member) axis of every array over the devices.

    Arrays whose leading axis is divisible by the number of devices are split across a 1-D
    ``Mesh(devices, ("batch",))``; the others are replicated. A jitted step then runs each
    device's members on that device (jit follows the input shardings). With one device this
    returns the tree unchanged.
    """
    devices = list(devices) if devices is not None else jax.devices()
    if len(devices) == 1:
        return tree
    mesh = Mesh(np.asarray(devices), ("batch",))
    split = NamedSharding(mesh, PartitionSpec("batch"))
    whole = NamedSharding(mesh, PartitionSpec())

    def put(x):
        if not eqx.is_array(x):
            return x
        ok = x.ndim >= 1 and x.shape[0] % len(devices) == 0
        return jax.device_put(x, split if ok else whole)

    return jax.tree.map(put, tree)
