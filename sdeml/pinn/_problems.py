r"""PDE problems for physics-informed networks: one abstract interface, and the problems shipped.

A problem knows its space-time domain $[0, T] \times [x_{lo}, x_{hi}]$, its residual operator
(built from derivatives of the network by autodiff), its initial data, its boundary condition
(as a residual that vanishes when it holds) and a reference solution to measure against.
Implement `AbstractPDE` for your own equation; everything in `sdeml.pinn` (collocation, loss,
error, training) works with it.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..core._checks import check_int, check_positive_int, concrete_scalar
from ._reference import _check_positive_number, burgers_cole_hopf

# u(t, x) -> scalar: the network (or the exact solution) as a function of time and space.
Field = Callable[[Float[Array, ""], Float[Array, ""]], Float[Array, ""]]


def _d(u: Field, argnum: int) -> Field:
    # forward mode: one scalar input, one tangent (nested for u_xx: forward over forward)
    return jax.jacfwd(u, argnums=argnum)


def _number(v: float) -> float:
    """A concrete real number as a Python float, anything else as it is (`_positive` judges it).

    A NumPy or JAX scalar kept its dtype: ``np.float32`` made the closed forms mix float32 and
    float64 (an error under strict promotion)."""
    if isinstance(v, bool | np.bool_) or str(getattr(v, "dtype", "")) == "bool":
        return v
    x = concrete_scalar(v)
    return v if x is None else x


def _positive(**values: float) -> None:
    for name, v in values.items():
        _check_positive_number(name, v)


class AbstractPDE(eqx.Module):
    r"""A time-dependent PDE in one space dimension, $\mathcal N[u](t, x) = 0$.

    Implement, as in the problems shipped (`Heat1D`, `RaissiBurgers`, `Convection1D`):

    - ``t1``: the final time $T$ (the domain is $t \in [0, T]$);
    - ``x_range``: ``(lo, hi)`` with ``lo < hi``;
    - ``residual(u, t, x)``: $\mathcal N[u]$ at one point, derivatives of `u` by autodiff;
    - ``initial(x)``: $u(0, x)$ (array in, array out);
    - ``boundary_residual(u, t, x)``: at one boundary point ($x \in \{lo, hi\}$), a scalar that
      is zero when the boundary condition holds, e.g. ``u(t, x) - g(t, x)`` (Dirichlet) or
      ``u(t, lo) - u(t, hi)`` (periodic);
    - ``reference(t, x)``: the solution to measure against (arrays broadcast together);
    - ``periodic``: True when the solution is periodic in $x$ with period ``hi - lo`` (a network
      may then use periodic input features, see `PINN`).

    Attributes:
        t1: the final time $T > 0$.
        periodic: a class variable (``ClassVar[bool]``).

    Examples:
        The heat equation $u_t = u_{xx}$ on $[0, \pi]$, solved by $u = e^{-t}\sin x$:

        >>> import math
        >>> from typing import ClassVar
        >>> from sdeml.pinn import AbstractPDE, pinn_loss, sample_collocation
        >>> class Heat(AbstractPDE):
        ...     t1: float = 1.0
        ...     periodic: ClassVar[bool] = False
        ...     @property
        ...     def x_range(self):
        ...         return 0.0, math.pi
        ...     def residual(self, u, t, x):
        ...         return jax.grad(u, 0)(t, x) - jax.grad(jax.grad(u, 1), 1)(t, x)
        ...     def initial(self, x):
        ...         return jnp.sin(x)
        ...     def boundary_residual(self, u, t, x):
        ...         return u(t, x)  # Dirichlet: u = 0 at both ends
        ...     def reference(self, t, x):
        ...         return jnp.exp(-t) * jnp.sin(x)
        >>> pde = Heat()
        >>> pts = sample_collocation(pde, 32, 8, 8, key=jr.key(0))
        >>> loss, parts = pinn_loss(pde.reference, pde, pts)
        >>> bool(loss < 1e-20)
        True
    """

    t1: eqx.AbstractVar[float]
    periodic: eqx.AbstractClassVar[bool]

    @property
    @abc.abstractmethod
    def x_range(self) -> tuple[float, float]:
        """The spatial interval ``(lo, hi)``."""

    @abc.abstractmethod
    def residual(self, u: Field, t: Float[Array, ""], x: Float[Array, ""]) -> Float[Array, ""]:
        """The PDE residual at one point."""

    @abc.abstractmethod
    def initial(self, x: Float[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        """The initial data $u(0, x)$."""

    @abc.abstractmethod
    def boundary_residual(
        self, u: Field, t: Float[Array, ""], x: Float[Array, ""]
    ) -> Float[Array, ""]:
        """Zero when the boundary condition holds at ``(t, x)``, x on the boundary."""

    @abc.abstractmethod
    def reference(self, t: Float[ArrayLike, "*n"], x: Float[ArrayLike, "*n"]) -> Float[Array, "*n"]:
        """The reference solution $u^*(t, x)$."""


def check_domain(problem: AbstractPDE) -> tuple[float, float, float]:
    r"""``(lo, hi, t1)`` of `problem`, or one `ValueError` naming what is wrong with them.

    Args:
        problem: any `AbstractPDE`.

    Returns:
        ``(lo, hi, t1)`` as Python floats: the domain is $[0, t_1] \times [lo, hi]$.

    Raises:
        ValueError: ``x_range`` is not finite with ``lo < hi``, or ``t1`` is not finite and > 0.

    Examples:
        >>> from sdeml.pinn import Burgers1D, check_domain
        >>> check_domain(Burgers1D(t1=2.0))
        (-1.0, 1.0, 2.0)
    """
    lo, hi = (float(v) for v in problem.x_range)
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise ValueError(f"`x_range` must be (lo, hi) with finite lo < hi, got ({lo}, {hi})")
    t1 = float(problem.t1)
    if not (math.isfinite(t1) and t1 > 0):
        raise ValueError(f"`t1` must be a finite number > 0, got {t1}")
    return lo, hi, t1


class Heat1D(AbstractPDE):
    r"""The heat equation $u_t = \alpha u_{xx}$ on $x \in [0, 1]$, $t \in [0, T]$.

    Initial condition $u(0, x) = \sin(\pi x)$, boundary $u(t, 0) = u(t, 1) = 0$; the solution is
    $u(t, x) = e^{-\alpha \pi^2 t} \sin(\pi x)$.

    Args:
        alpha: the diffusivity, > 0.
        t1: the final time $T$.

    Examples:
        >>> from sdeml.pinn import Heat1D, residuals
        >>> pde = Heat1D(alpha=0.1)
        >>> round(float(pde.exact(1.0, 0.5)), 6)  # exp(-0.1 pi^2)
        0.372708
        >>> t, x = jnp.linspace(0.0, 1.0, 7), jnp.linspace(0.0, 1.0, 7)
        >>> bool(jnp.max(jnp.abs(residuals(pde.exact, pde, t, x))) < 1e-12)
        True
    """

    alpha: float
    t1: float
    periodic: ClassVar[bool] = False

    def __init__(self, alpha: float = 0.1, t1: float = 1.0):
        self.alpha, self.t1 = _number(alpha), _number(t1)

    def __check_init__(self):
        _positive(alpha=self.alpha, t1=self.t1)

    def exact(self, t, x):
        """The closed-form solution $u(t, x)$."""
        return jnp.exp(-self.alpha * jnp.pi**2 * t) * jnp.sin(jnp.pi * x)

    def reference(self, t, x):
        return self.exact(t, x)

    def residual(self, u: Field, t, x):
        r"""$u_t - \alpha u_{xx}$ at one point, by autodiff of `u`."""
        return _d(u, 0)(t, x) - self.alpha * _d(_d(u, 1), 1)(t, x)

    def initial(self, x):
        return jnp.sin(jnp.pi * jnp.asarray(x))

    def boundary_residual(self, u: Field, t, x):
        return u(t, x)

    @property
    def x_range(self) -> tuple[float, float]:
        return 0.0, 1.0


class Burgers1D(AbstractPDE):
    r"""Viscous Burgers $u_t + u u_x = \nu u_{xx}$ with its travelling-front solution.

    $u(t, x) = \tfrac12 - \tfrac12 \tanh\big((x - t/2) / (4\nu)\big)$ joins $u = 1$ (left) to
    $u = 0$ (right) and moves at speed 1/2; the initial and boundary data are taken from it on
    $x \in [-1, 1]$, $t \in [0, T]$. Smaller $\nu$ makes a steeper front. (Raissi's benchmark,
    a shock forming from a sine, is `RaissiBurgers`.)

    Args:
        nu: the viscosity, > 0.
        t1: the final time $T$.

    Examples:
        >>> from sdeml.pinn import Burgers1D, residuals
        >>> pde = Burgers1D(nu=0.05)
        >>> float(pde.exact(0.0, 0.0)), float(pde.exact(1.0, 0.5))  # the front moves at 1/2
        (0.5, 0.5)
        >>> t, x = jnp.linspace(0.0, 1.0, 7), jnp.linspace(-1.0, 1.0, 7)
        >>> bool(jnp.max(jnp.abs(residuals(pde.exact, pde, t, x))) < 1e-12)
        True

    References:
        Whitham, Linear and Nonlinear Waves (1974), §4.2 (Burgers' travelling wave).
    """

    nu: float
    t1: float
    periodic: ClassVar[bool] = False

    def __init__(self, nu: float = 0.05, t1: float = 1.0):
        self.nu, self.t1 = _number(nu), _number(t1)

    def __check_init__(self):
        _positive(nu=self.nu, t1=self.t1)

    def exact(self, t, x):
        """The closed-form travelling front $u(t, x)$."""
        return 0.5 - 0.5 * jnp.tanh((x - 0.5 * t) / (4 * self.nu))

    def reference(self, t, x):
        return self.exact(t, x)

    def residual(self, u: Field, t, x):
        r"""$u_t + u u_x - \nu u_{xx}$ at one point, by autodiff of `u`."""
        return _d(u, 0)(t, x) + u(t, x) * _d(u, 1)(t, x) - self.nu * _d(_d(u, 1), 1)(t, x)

    def initial(self, x):
        x = jnp.asarray(x)
        return self.exact(jnp.zeros_like(x), x)

    def boundary_residual(self, u: Field, t, x):
        return u(t, x) - self.exact(t, x)

    @property
    def x_range(self) -> tuple[float, float]:
        return -1.0, 1.0


class RaissiBurgers(AbstractPDE):
    r"""Raissi's Burgers benchmark: $u_t + u u_x = \nu u_{xx}$, $\nu = 0.01/\pi$, a shock forms.

    On $x \in [-1, 1]$, $t \in [0, 1]$ with $u(0, x) = -\sin(\pi x)$ and $u(t, \pm 1) = 0$. The
    two halves of the sine run into each other at $x = 0$ and form a front of width $\sim\nu$
    by $t \approx 1/\pi$. The reference is the Cole–Hopf integral (`burgers_cole_hopf`),
    converged to rounding in float64.

    Args:
        nu: the viscosity, > 0 (default $0.01/\pi$, the benchmark's).
        t1: the final time $T$.
        n_nodes: quadrature nodes of the reference.

    Examples:
        >>> from sdeml.pinn import RaissiBurgers
        >>> pde = RaissiBurgers()
        >>> x = jnp.linspace(-1.0, 1.0, 9)
        >>> bool(jnp.allclose(pde.reference(0.0, x), pde.initial(x), atol=1e-12))
        True
        >>> u = pde.reference(0.5, x)  # odd in x, zero at x = -1, 0, 1
        >>> bool(jnp.allclose(u, -u[::-1], atol=1e-12)), bool(jnp.all(jnp.abs(u[::4]) < 1e-12))
        (True, True)

    References:
        Raissi, Perdikaris & Karniadakis, Physics-informed neural networks, J. Comput. Phys. 378
        (2019), §3.1: relative $L^2$ error 6.7e-4 (9 x 20 tanh network, L-BFGS).
        doi:10.1016/j.jcp.2018.10.045
    """

    nu: float
    t1: float
    n_nodes: int = eqx.field(static=True)
    periodic: ClassVar[bool] = False

    def __init__(self, nu: float = 0.01 / math.pi, t1: float = 1.0, n_nodes: int = 801):
        # checked here, not at the first `reference` call (n_nodes=1 was accepted)
        self.nu, self.t1 = _number(nu), _number(t1)
        self.n_nodes = check_int("n_nodes", n_nodes, 3)

    def __check_init__(self):
        _positive(nu=self.nu, t1=self.t1)

    def reference(self, t, x):
        """$u^*(t, x)$ by the Cole–Hopf integral (float64 recommended)."""
        return burgers_cole_hopf(t, x, self.nu, n_nodes=self.n_nodes)

    def residual(self, u: Field, t, x):
        r"""$u_t + u u_x - \nu u_{xx}$ at one point, by autodiff of `u`."""
        return _d(u, 0)(t, x) + u(t, x) * _d(u, 1)(t, x) - self.nu * _d(_d(u, 1), 1)(t, x)

    def initial(self, x):
        return -jnp.sin(jnp.pi * jnp.asarray(x))

    def boundary_residual(self, u: Field, t, x):
        return u(t, x)

    @property
    def x_range(self) -> tuple[float, float]:
        return -1.0, 1.0


class Convection1D(AbstractPDE):
    r"""Convection $u_t + \beta u_x = 0$ on the periodic interval $[0, 2\pi]$, $t \in [0, T]$.

    $u(0, x) = \sin x$; the solution is $u(t, x) = \sin(x - \beta t)$. Easy for a numerical
    method, hard for a plain PINN once $\beta \gtrsim 30$: the loss landscape, not the network's
    expressivity, is the obstacle (Krishnapriyan et al. report the vanilla PINN's error of order
    one at $\beta = 30$). The boundary condition is periodicity, $u(t, 0) = u(t, 2\pi)$.

    Args:
        beta: the speed, > 0.
        t1: the final time $T$.

    Examples:
        >>> from sdeml.pinn import Convection1D, residuals
        >>> pde = Convection1D(beta=30.0)
        >>> t, x = jnp.linspace(0.0, 1.0, 7), jnp.linspace(0.0, 2 * jnp.pi, 7)
        >>> bool(jnp.max(jnp.abs(residuals(pde.exact, pde, t, x))) < 1e-10)
        True

        A `PINN` with periodic features meets the boundary condition by construction:

        >>> u = sdeml.PINN(16, 2, key=jr.key(0), x_range=pde.x_range, harmonics=2)
        >>> b = pde.boundary_residual(u, jnp.array(0.4), jnp.array(0.0))
        >>> bool(jnp.abs(b) < 1e-12)
        True

    References:
        Krishnapriyan, Gholami, Zhe, Kirby & Mahoney, Characterizing possible failure modes in
        physics-informed neural networks, NeurIPS 2021. arXiv:2109.01050
    """

    beta: float
    t1: float
    periodic: ClassVar[bool] = True

    def __init__(self, beta: float = 30.0, t1: float = 1.0):
        self.beta, self.t1 = _number(beta), _number(t1)

    def __check_init__(self):
        _positive(beta=self.beta, t1=self.t1)

    def exact(self, t, x):
        """The closed-form solution $\\sin(x - \\beta t)$."""
        return jnp.sin(x - self.beta * t)

    def reference(self, t, x):
        return self.exact(t, x)

    def residual(self, u: Field, t, x):
        r"""$u_t + \beta u_x$ at one point, by autodiff of `u`."""
        return _d(u, 0)(t, x) + self.beta * _d(u, 1)(t, x)

    def initial(self, x):
        return jnp.sin(jnp.asarray(x))

    def boundary_residual(self, u: Field, t, x):
        lo, hi = self.x_range
        return u(t, jnp.full_like(x, lo)) - u(t, jnp.full_like(x, hi))

    @property
    def x_range(self) -> tuple[float, float]:
        return 0.0, 2.0 * math.pi


Problem = AbstractPDE  # the name the first version of this module used for the union


class Collocation(eqx.Module):
    """Points where a PINN loss is evaluated: interior, initial line and boundary.

    Usually drawn by `sample_collocation`; any arrays of these shapes will do (a grid, RAD
    points from `rad_resample`).

    Attributes:
        t_in, x_in: the interior points, shape ``(n,)`` each.
        x_init: positions on the initial line $t = 0$, shape ``(m,)``.
        t_bc, x_bc: boundary points, shape ``(k,)`` each (``x_bc`` is ``lo`` or ``hi``).

    Examples:
        >>> from sdeml.pinn import Collocation
        >>> pts = Collocation(
        ...     t_in=jnp.full(4, 0.5), x_in=jnp.linspace(0.2, 0.8, 4), x_init=jnp.linspace(0, 1, 3),
        ...     t_bc=jnp.array([0.5, 0.5]), x_bc=jnp.array([0.0, 1.0]),
        ... )
        >>> pts.x_in.shape, pts.x_init.shape, pts.x_bc.shape
        ((4,), (3,), (2,))
    """

    t_in: Float[Array, " n"]
    x_in: Float[Array, " n"]
    x_init: Float[Array, " m"]
    t_bc: Float[Array, " k"]
    x_bc: Float[Array, " k"]


def sample_collocation(
    problem: AbstractPDE,
    n_interior: int,
    n_initial: int,
    n_boundary: int,
    *,
    key: PRNGKeyArray,
) -> Collocation:
    """Uniform random collocation points on the problem's space-time domain.

    Args:
        problem: any `AbstractPDE`.
        n_interior, n_initial, n_boundary: numbers of points inside, on t = 0, and on the two
            spatial boundaries (each point on one of them, with probability 1/2).
        key: PRNG key.

    Returns:
        A `Collocation`: ``t_in``, ``x_in`` of shape ``(n_interior,)``, ``x_init`` of shape
        ``(n_initial,)``, ``t_bc``, ``x_bc`` of shape ``(n_boundary,)``.

    Raises:
        ValueError: a count is not a positive integer (the message names it), or the domain is
            empty (``x_range`` with lo >= hi, or ``t1 <= 0``).

    Examples:
        >>> from sdeml.pinn import Burgers1D, sample_collocation
        >>> pts = sample_collocation(Burgers1D(), 100, 20, 10, key=jr.key(0))
        >>> pts.t_in.shape, pts.x_init.shape, pts.x_bc.shape
        ((100,), (20,), (10,))
        >>> bool(jnp.all(jnp.abs(pts.x_bc) == 1.0)), bool(jnp.all(jnp.abs(pts.x_in) <= 1.0))
        (True, True)
    """
    n_interior = check_positive_int("n_interior", n_interior)  # NumPy integers too
    n_initial = check_positive_int("n_initial", n_initial)
    n_boundary = check_positive_int("n_boundary", n_boundary)
    lo, hi, t1 = check_domain(problem)
    k1, k2, k3, k4, k5 = jr.split(key, 5)
    t_in = jr.uniform(k1, (n_interior,), maxval=t1)
    x_in = jr.uniform(k2, (n_interior,), minval=lo, maxval=hi)
    x_init = jr.uniform(k3, (n_initial,), minval=lo, maxval=hi)
    t_bc = jr.uniform(k4, (n_boundary,), maxval=t1)
    x_bc = jnp.where(jr.bernoulli(k5, 0.5, (n_boundary,)), hi, lo)
    return Collocation(t_in, x_in, x_init, t_bc, x_bc)


def sample_interior(
    problem: AbstractPDE, n: int, *, key: PRNGKeyArray
) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    r"""`n` uniform random points ``(t, x)`` inside the domain (a candidate pool for RAD).

    Args:
        problem: any `AbstractPDE`.
        n: how many points, an int > 0.
        key: PRNG key.

    Returns:
        ``(t, x)``, shape ``(n,)`` each, uniform on $[0, T] \times [x_{lo}, x_{hi}]$.

    Examples:
        >>> from sdeml.pinn import Convection1D, sample_interior
        >>> t, x = sample_interior(Convection1D(t1=0.5), 1000, key=jr.key(0))
        >>> t.shape, bool(t.max() <= 0.5), bool(x.max() <= 2 * jnp.pi)
        ((1000,), True, True)
        >>> round(float(x.mean()), 1)  # about pi
        3.1
    """
    n = check_positive_int("n", n)
    lo, hi, t1 = check_domain(problem)
    k1, k2 = jr.split(key)
    return jr.uniform(k1, (n,), maxval=t1), jr.uniform(k2, (n,), minval=lo, maxval=hi)
