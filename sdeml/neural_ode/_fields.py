"""Small vector-field networks for neural ODEs."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._typing import ScalarLike


class MLPField(eqx.Module):
    r"""A multilayer perceptron vector field $f_\theta(t, h) = \mathrm{MLP}([h^p, t])$.

    With ``power=3`` and ``time_dependent=False`` it is the vector field of the classic spiral
    demo, $f_\theta(h) = W_2 \tanh(W_1 h^3 + b_1) + b_2$ (the cube is elementwise).

    Args:
        dim: the state dimension $d$ (input and output size).
        width: hidden width.
        depth: number of hidden layers.
        time_dependent: append $t$ to the input.
        power: elementwise input power $p$ (1: the state itself).
        activation: the hidden nonlinearity.
        dtype: parameter dtype (float64 for accuracy claims).
        key: PRNG key for the initial weights.

    Returns:
        Calling ``field(t, h)`` with ``h`` of shape ``(d,)`` returns ``dh/dt``, shape ``(d,)``.

    Example:
        >>> f = MLPField(2, 50, 1, power=3, time_dependent=False, key=jr.key(0))
        >>> f(0.0, jnp.ones(2)).shape
        (2,)

    References:
        Chen et al., Neural Ordinary Differential Equations, NeurIPS 2018 (the spiral demo of
        torchdiffeq's examples/ode_demo.py). arXiv:1806.07366
    """

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)
    time_dependent: bool = eqx.field(static=True)
    power: int = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int = 64,
        depth: int = 2,
        *,
        time_dependent: bool = True,
        power: int = 1,
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: jnp.dtype | None = None,
        key: PRNGKeyArray,
    ):
        for name, v in (("dim", dim), ("width", width), ("power", power)):
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if not (isinstance(depth, int) and depth >= 0):
            raise ValueError(f"`depth` must be an int >= 0, got {depth!r}")
        self.dim, self.time_dependent, self.power = dim, time_dependent, power
        in_size = dim + (1 if time_dependent else 0)
        self.mlp = eqx.nn.MLP(
            in_size, dim, width, depth, activation=activation, dtype=dtype, key=key
        )

    def __call__(self, t: ScalarLike, h: Float[Array, " d"]) -> Float[Array, " d"]:
        if h.shape != (self.dim,):
            raise ValueError(f"MLPField expects a state of shape ({self.dim},), got {h.shape}")
        x = h**self.power if self.power != 1 else h
        if self.time_dependent:
            x = jnp.concatenate([x, jnp.reshape(jnp.asarray(t, h.dtype), (1,))])
        return self.mlp(x)


def field_dtype(field: eqx.Module) -> jnp.dtype:
    """The dtype of a field's first floating parameter (float32 when it has none)."""
    leaves = [x for x in jax.tree.leaves(field) if eqx.is_inexact_array(x)]
    return leaves[0].dtype if leaves else jnp.dtype(jnp.float32)
