"""Argument checks shared by the Langevin kernels (trace-time, clear `ValueError`s)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def check_positive(name: str, value: Any) -> None:
    """Raise `ValueError` if a concrete `value` is not > 0 (traced values are left alone)."""
    if isinstance(value, jax.core.Tracer):
        return  # swept under vmap/jit: the caller owns the value; nothing concrete to check
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"`{name}` must be finite and > 0, got {value!r}.")


def check_scalar_function(name: str, fn: Callable, x: jax.Array, *extra: Any) -> None:
    """Raise `ValueError` unless ``fn(x, *extra)`` returns a scalar (checked with eval_shape)."""
    out = jax.eval_shape(fn, x, *extra)
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(
            f"`{name}` must return a scalar for an input of shape {tuple(x.shape)}, got "
            f"{'a ' + type(out).__name__ if shape is None else 'shape ' + str(shape)}."
        )


def check_position(position: jax.Array) -> jax.Array:
    """Positions are ``(..., d)`` floating arrays; a 0-d input is an error."""
    position = jnp.asarray(position)
    if position.ndim == 0:
        raise ValueError(
            "`position` must have shape (d,) or (n_chains, d); got a scalar. Use shape (1,) "
            "for a 1-D target."
        )
    if not jnp.issubdtype(position.dtype, jnp.floating):
        raise ValueError(f"`position` must be a floating array, got dtype {position.dtype}.")
    return position
