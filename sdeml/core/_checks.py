"""Argument checks shared by the themes: trace-time, one clear `ValueError` naming the argument."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree


def check_positive(name: str, value: Any) -> None:
    """Raise `ValueError` if a concrete `value` is not finite and > 0 (traced values pass).

    Examples:
        >>> check_positive("step_size", 0.1)
    """
    if isinstance(value, jax.core.Tracer):
        return  # swept under vmap/jit: the caller owns the value; nothing concrete to check
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"`{name}` must be finite and > 0, got {value!r}.")


def check_scalar_function(name: str, fn: Callable, x: jax.Array, *extra: Any) -> None:
    """Raise `ValueError` unless ``fn(x, *extra)`` returns a scalar (checked with eval_shape).

    Examples:
        >>> check_scalar_function("potential", lambda x: x @ x, jnp.zeros(2))
    """
    out = jax.eval_shape(fn, x, *extra)
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(
            f"`{name}` must return a scalar for an input of shape {tuple(x.shape)}, got "
            f"{'a ' + type(out).__name__ if shape is None else 'shape ' + str(shape)}."
        )


def check_position(position: Any) -> jax.Array:
    """Positions are ``(..., d)`` floating arrays; a 0-d input is an error. Returns the array.

    Examples:
        >>> x = check_position(jnp.zeros((100, 2)))
    """
    position = jnp.asarray(position)
    if position.ndim == 0:
        raise ValueError(
            "`position` must have shape (d,) or (n_chains, d); got a scalar. Use shape (1,) "
            "for a 1-D target."
        )
    if not jnp.issubdtype(position.dtype, jnp.floating):
        raise ValueError(f"`position` must be a floating array, got dtype {position.dtype}.")
    return position


def check_data(data: PyTree) -> int:
    """The number of examples `N` of a dataset pytree whose leaves share a leading axis.

    Raises:
        ValueError: if `data` has no arrays, or its leaves' leading axes differ.

    Examples:
        >>> check_data((jnp.zeros((50, 3)), jnp.zeros(50)))
        50
    """
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("`data` must hold at least one array.")
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
    n = next(iter(sizes))
    if len(sizes) != 1 or n is None:
        raise ValueError(f"every array in `data` must share its leading axis, got sizes {sizes}.")
    return int(n)


def check_batch_size(batch_size: Any, n: int) -> None:
    """Raise `ValueError` unless `batch_size` is an int in ``[1, n]`` (the dataset size)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(
            f"`batch_size` must be an integer in [1, {n}] (the dataset size), got {batch_size!r}."
        )
