"""Helpers for training many seeds / hyper-parameters at once in one compiled program."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._step import TrainState


def init_states(init: Callable[[jax.Array], TrainState], seeds: Sequence[int]) -> TrainState:
    """A batched `TrainState`: ``init(jr.key(seed))`` for every seed, stacked on a leading axis.

    Args:
        init: builds one state from a key (model, optimiser state, EMA, training key).
        seeds: one integer seed per member, ``n`` in all.

    Returns:
        The members' states stacked: every array leaf gains a leading axis of size ``n``
        (``step`` has shape ``(n,)``).

    Examples:
        >>> from sdeml.train import TrainConfig, init_state, init_states, make_optimizer
        >>> opt = make_optimizer(TrainConfig(lr=1e-2))
        >>> init = lambda key: init_state(jr.normal(key, (3,)), opt, key)
        >>> states = init_states(init, seeds=[0, 1, 2, 3])
        >>> states.model.shape, states.step.shape
        ((4, 3), (4,))
        >>> bool(jnp.allclose(states.model[1], jr.normal(jr.key(1), (3,))))  # member 1: seed 1
        True
    """
    if isinstance(seeds, jax.core.Tracer):
        if seeds.ndim != 1 or not jnp.issubdtype(seeds.dtype, jnp.integer):
            raise ValueError(
                f"`seeds` must be a 1-D integer array, got {seeds.dtype} of shape {seeds.shape}"
            )
        # in the seeds' own dtype, as `jr.key(int(s))` below: a cast to uint32 dropped a traced
        # int64 seed's high word (x64), so -1 gave another key than a run with seed -1
        keys = jax.vmap(jr.key)(seeds)
    else:
        values = np.asarray(seeds)
        if values.ndim != 1 or values.size == 0 or values.dtype.kind not in "iu":
            raise ValueError(f"`seeds` must be a non-empty list of ints, got {seeds!r}")
        # `jr.key(seed)` itself, one per seed: any int gives the key a separate run with that
        # seed has (a negative seed, or one past 2**32, overflowed a uint32 array)
        keys = jnp.stack([jr.key(int(s)) for s in values])
    return eqx.filter_vmap(init)(keys)


def set_learning_rate(state: TrainState, lrs: Sequence[float] | jax.Array) -> TrainState:
    r"""Give each member of a batched state its own learning rate.

    Works on optimisers from `make_optimizer` (or any `optax.inject_hyperparams` optimiser,
    possibly inside `optax.chain`), whose state holds ``hyperparams["learning_rate"]``.

    Args:
        state: a batched `TrainState` of ``n`` members (e.g. from `init_states`).
        lrs: one learning rate per member, shape ``(n,)``.

    Returns:
        `state` with its optimiser state's learning rates replaced by `lrs`.

    Examples:
        One vmapped SGD step on $L(w) = \tfrac12\|w\|^2$ (gradient $w$) from $w = 1$ moves
        member $i$ to $1 - \eta_i$:

        >>> from sdeml.train import TrainConfig, init_state, init_states, make_optimizer
        >>> from sdeml.train import make_step, set_learning_rate
        >>> opt = make_optimizer(TrainConfig(optimizer="sgd"))
        >>> states = init_states(lambda key: init_state(jnp.ones(2), opt, key), [0, 1, 2])
        >>> states = set_learning_rate(states, [0.5, 0.25, 0.125])
        >>> step = make_step(lambda w, b, key: 0.5 * jnp.sum(w**2), opt, lambda key, s: None)
        >>> states, _ = eqx.filter_jit(eqx.filter_vmap(step))(states)
        >>> states.model[:, 0].tolist()
        [0.5, 0.75, 0.875]
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

    Arrays whose leading axis is divisible by the number of devices are split over a
    ``(process, device)`` mesh (`jax.make_mesh`; one process unless `jax.distributed` is
    initialised, then every process's devices); the others are replicated. A jitted step then
    runs each device's members on that device (jit follows the input shardings). With one device
    this returns the tree unchanged. Under several processes, every process must pass the same
    values (they do: each builds the grid from the same config and keys); read results back with
    `gather_to_host`.

    Args:
        tree: a PyTree of arrays with a leading member axis.
        devices: the devices of one process to use (default: all of them, over all processes).

    Returns:
        `tree` with the same values (and shapes), its arrays placed on the devices.

    Examples:
        >>> from sdeml.train import shard_batch
        >>> x = jnp.arange(8.0).reshape(4, 2)  # 4 members
        >>> y = shard_batch(x)
        >>> y.shape, bool(jnp.array_equal(x, y))
        ((4, 2), True)
        >>> len(y.sharding.device_set) == jax.device_count()  # spread over every device
        True
    """
    if devices is not None:
        devices = list(devices)
        if len(devices) == 1:
            return tree
        mesh = Mesh(np.asarray(devices).reshape(1, -1), ("process", "device"))
    else:
        if jax.device_count() == 1:
            return tree
        auto = jax.sharding.AxisType.Auto  # shardings follow the inputs (no explicit specs)
        mesh = jax.make_mesh(
            (jax.process_count(), jax.local_device_count()),
            ("process", "device"),
            axis_types=(auto, auto),
        )
    n = mesh.size
    split = NamedSharding(mesh, PartitionSpec(("process", "device")))
    whole = NamedSharding(mesh, PartitionSpec())

    def put(x):
        if not eqx.is_array(x):
            return x
        ok = x.ndim >= 1 and x.shape[0] % n == 0
        return place(x, split if ok else whole)

    return jax.tree.map(put, tree)


def place(x: Any, sharding: Any) -> Any:
    """`jax.device_put(x, sharding)`, also for a sharding over several processes' devices (then
    every process holds the same whole `x` and keeps its own part of it)."""
    if not isinstance(x, jax.Array | np.ndarray | np.generic):
        return x
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jr.wrap_key_data(place(jr.key_data(x), sharding), impl=jr.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def gather_to_host(tree: Any) -> Any:
    """Every array of `tree` whole and local to this process.

    Arrays sharded over several processes (`shard_batch` under `jax.distributed`) are gathered
    from all of them (`multihost_utils.process_allgather`: a collective, so every process must
    call this at the same point); replicated ones are read from this process's copy; local arrays
    pass unchanged. Afterwards the tree can be read with NumPy, saved, plotted or evaluated by
    code that knows nothing of processes.

    Args:
        tree: a PyTree (of arrays, possibly sharded over processes, and other leaves).

    Returns:
        The same tree with every array whole on this process (same shapes and values).

    Examples:
        >>> from sdeml.train import gather_to_host, shard_batch
        >>> tree = {"w": jnp.arange(6.0).reshape(2, 3), "name": "net"}
        >>> back = gather_to_host(shard_batch(tree))
        >>> back["w"].shape, float(back["w"].sum()), back["name"]
        ((2, 3), 15.0, 'net')
    """

    def get(x: Any) -> Any:
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return x
        if x.is_fully_replicated:
            return jnp.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = multihost_utils.process_allgather(jr.key_data(x), tiled=True)
            return jr.wrap_key_data(jnp.asarray(data), impl=jr.key_impl(x))
        return jnp.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(get, tree)
