"""PDE/ODE problems for physics-informed networks, each with its exact solution.

A problem knows its domain, its residual operator (built from derivatives of the network by
autodiff), its initial and boundary data, and a closed-form solution to measure against.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

# u(t, x) -> scalar: the network (or the exact solution) as a function of time and space.
Field = Callable[[Float[Array, ""], Float[Array, ""]], Float[Array, ""]]


def _d(u: Field, argnum: int) -> Field:
    return jax.grad(u, argnums=argnum)


class Heat1D(eqx.Module):
    r"""The heat equation $u_t = \alpha u_{xx}$ on $x \in [0, 1]$, $t \in [0, T]$.

    Initial condition $u(0, x) = \sin(\pi x)$, boundary $u(t, 0) = u(t, 1) = 0$; the solution is
    $u(t, x) = e^{-\alpha \pi^2 t} \sin(\pi x)$.

    Args:
        alpha: the diffusivity, > 0.
        t1: the final time $T$.
    """

    alpha: float = 0.1
    t1: float = 1.0

    def __check_init__(self):
        if not self.alpha > 0 or not self.t1 > 0:
            raise ValueError(f"`alpha` and `t1` must be > 0, got {self.alpha}, {self.t1}")

    def exact(self, t, x):
        """The closed-form solution $u(t, x)$."""
        return jnp.exp(-self.alpha * jnp.pi**2 * t) * jnp.sin(jnp.pi * x)

    def residual(self, u: Field, t, x):
        r"""$u_t - \alpha u_{xx}$ at one point, by autodiff of `u`."""
        return _d(u, 0)(t, x) - self.alpha * _d(_d(u, 1), 1)(t, x)

    def initial(self, x):
        return jnp.sin(jnp.pi * x)

    def boundary(self, t, x):
        return jnp.zeros_like(t)

    @property
    def x_range(self) -> tuple[float, float]:
        return 0.0, 1.0


class Burgers1D(eqx.Module):
    r"""Viscous Burgers $u_t + u u_x = \nu u_{xx}$ with its travelling-front solution.

    $u(t, x) = \tfrac12 - \tfrac12 \tanh\big((x - t/2) / (4\nu)\big)$ joins $u = 1$ (left) to
    $u = 0$ (right) and moves at speed 1/2; the initial and boundary data are taken from it on
    $x \in [-1, 1]$, $t \in [0, T]$. Smaller $\nu$ makes a steeper front.

    Args:
        nu: the viscosity, > 0.
        t1: the final time $T$.

    References:
        Whitham, Linear and Nonlinear Waves (1974), §4.2 (Burgers' travelling wave).
    """

    nu: float = 0.05
    t1: float = 1.0

    def __check_init__(self):
        if not self.nu > 0 or not self.t1 > 0:
            raise ValueError(f"`nu` and `t1` must be > 0, got {self.nu}, {self.t1}")

    def exact(self, t, x):
        """The closed-form travelling front $u(t, x)$."""
        return 0.5 - 0.5 * jnp.tanh((x - 0.5 * t) / (4 * self.nu))

    def residual(self, u: Field, t, x):
        r"""$u_t + u u_x - \nu u_{xx}$ at one point, by autodiff of `u`."""
        return _d(u, 0)(t, x) + u(t, x) * _d(u, 1)(t, x) - self.nu * _d(_d(u, 1), 1)(t, x)

    def initial(self, x):
        return self.exact(jnp.zeros_like(x), x)

    def boundary(self, t, x):
        return self.exact(t, x)

    @property
    def x_range(self) -> tuple[float, float]:
        return -1.0, 1.0


Problem = Heat1D | Burgers1D


class Collocation(eqx.Module):
    """Points where a PINN loss is evaluated: interior, initial line and boundary."""

    t_in: Float[Array, " n"]
    x_in: Float[Array, " n"]
    x_init: Float[Array, " m"]
    t_bc: Float[Array, " k"]
    x_bc: Float[Array, " k"]


def sample_collocation(
    problem: Problem, n_interior: int, n_initial: int, n_boundary: int, *, key: PRNGKeyArray
) -> Collocation:
    """Uniform random collocation points on the problem's space-time domain.

    Args:
        problem: a `Heat1D` or `Burgers1D`.
        n_interior, n_initial, n_boundary: numbers of points inside, on t = 0, and on the two
            spatial boundaries (split evenly between them).
        key: PRNG key.
    """
    for name, n in [
        ("n_interior", n_interior),
        ("n_initial", n_initial),
        ("n_boundary", n_boundary),
    ]:
        if n <= 0:
            raise ValueError(f"`{name}` must be > 0, got {n}")
    lo, hi = problem.x_range
    k1, k2, k3, k4, k5 = jr.split(key, 5)
    t_in = jr.uniform(k1, (n_interior,), maxval=problem.t1)
    x_in = jr.uniform(k2, (n_interior,), minval=lo, maxval=hi)
    x_init = jr.uniform(k3, (n_initial,), minval=lo, maxval=hi)
    t_bc = jr.uniform(k4, (n_boundary,), maxval=problem.t1)
    x_bc = jnp.where(jr.bernoulli(k5, 0.5, (n_boundary,)), hi, lo)
    return Collocation(t_in, x_in, x_init, t_bc, x_bc)
