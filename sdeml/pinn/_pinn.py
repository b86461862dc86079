"""Physics-informed networks: the network, its loss and its error against the exact solution."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._problems import Collocation, Problem


class PINN(eqx.Module):
    r"""A network $u_\theta(t, x)$: an MLP with tanh activations on the input $(t, x)$.

    tanh is smooth, so the second derivatives the residuals need are well defined.

    Args:
        width, depth: the MLP's hidden width and number of hidden layers.
        key: PRNG key for the initial weights.

    Example:
        >>> u = sdeml.PINN(32, 3, key=jr.key(0))
        >>> u(jnp.array(0.1), jnp.array(0.5)).shape
        ()
    """

    mlp: eqx.nn.MLP

    def __init__(self, width: int = 32, depth: int = 3, *, key: PRNGKeyArray):
        if width <= 0 or depth <= 0:
            raise ValueError(f"`width` and `depth` must be > 0, got {width}, {depth}")
        self.mlp = eqx.nn.MLP(2, "scalar", width, depth, activation=jnp.tanh, key=key)

    def __call__(self, t: Float[Array, ""], x: Float[Array, ""]) -> Float[Array, ""]:
        return self.mlp(jnp.stack([t, x]))


def pinn_loss(
    u: PINN,
    problem: Problem,
    points: Collocation,
    *,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> tuple[Float[Array, ""], dict[str, Float[Array, ""]]]:
    r"""The physics-informed loss $w_r\,\overline{r^2} + w_0\,\overline{(u - u_0)^2} +
    w_b\,\overline{(u - u_b)^2}$.

    $r$ is the PDE residual at the interior points (derivatives by autodiff), $u_0$ the initial
    data on $t = 0$ and $u_b$ the boundary data.

    Returns:
        The loss and its three parts (``residual``, ``initial``, ``boundary``).

    References:
        Raissi, Perdikaris & Karniadakis, Physics-informed neural networks, J. Comput. Phys. 378
        (2019). doi:10.1016/j.jcp.2018.10.045
    """
    res = jax.vmap(lambda t, x: problem.residual(u, t, x))(points.t_in, points.x_in)
    zeros = jnp.zeros_like(points.x_init)
    u0 = jax.vmap(u)(zeros, points.x_init)
    ub = jax.vmap(u)(points.t_bc, points.x_bc)
    parts = {
        "residual": jnp.mean(res**2),
        "initial": jnp.mean((u0 - problem.initial(points.x_init)) ** 2),
        "boundary": jnp.mean((ub - problem.boundary(points.t_bc, points.x_bc)) ** 2),
    }
    w_r, w_0, w_b = weights
    return w_r * parts["residual"] + w_0 * parts["initial"] + w_b * parts["boundary"], parts


def pinn_error(u: PINN, problem: Problem, n: int = 64) -> dict[str, Array]:
    r"""Relative $L^2$ and max errors of `u` against the exact solution on an $n \times n$ grid.

    Returns:
        ``rel_l2`` = $\|u - u^*\|_2 / \|u^*\|_2$ and ``max_abs`` = $\max |u - u^*|$, plus the grid
        (``t``, ``x``) and both fields (``u``, ``exact``) of shape ``(n, n)`` for plotting.
    """
    lo, hi = problem.x_range
    t = jnp.linspace(0.0, problem.t1, n)
    x = jnp.linspace(lo, hi, n)
    tt, xx = jnp.meshgrid(t, x, indexing="ij")
    pred = jax.vmap(jax.vmap(u))(tt, xx)
    exact = problem.exact(tt, xx)
    return {
        "rel_l2": jnp.linalg.norm(pred - exact) / jnp.linalg.norm(exact),
        "max_abs": jnp.max(jnp.abs(pred - exact)),
        "t": t,
        "x": x,
        "u": pred,
        "exact": exact,
    }
