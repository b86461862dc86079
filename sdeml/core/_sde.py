"""SDE definitions: the abstract interface, the user-facing `SDE`, noise types and shape checks."""

# No `from __future__ import annotations` here: equinox reads `AbstractVar[...]` only from real
# annotations; stringified ones made `noise` and `brownian_dim` dataclass fields of AbstractSDE,
# so a subclass providing them as properties got them as required __init__ arguments.
import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

from ._checks import as_float

NOISE_TYPES = ("diagonal", "scalar", "additive", "general")


class AbstractSDE(eqx.Module):
    r"""Interface of an SDE $dX_t = f(t, X_t)\,dt + g(t, X_t)\,dW_t$.

    Subclasses implement `drift(t, y, args)` and `diffusion(t, y, args)` and set `noise` (one of
    ``"diagonal"``, ``"scalar"``, ``"additive"``, ``"general"``) and `brownian_dim`.

    Shapes, for a state `y` of shape ``S``:

    - ``"diagonal"``: $g$ has shape ``S``, $W$ has shape ``S``; the noise term is $g \odot dW$.
    - ``"scalar"``: $g$ has shape ``S``, $W$ is a scalar; the noise term is $g\,dW$.
    - ``"additive"``: $g$ does not depend on $y$. With ``brownian_dim=None`` it has shape ``S``
      (diagonal), otherwise ``(*S, m)`` with an ``m``-dimensional $W$.
    - ``"general"``: $g$ has shape ``(*S, m)``, $W$ has shape ``(m,)``; the noise term is
      $\sum_j g_{\cdot j}\,dW_j$.

    Attributes:
        noise: the noise type, one of the four above.
        brownian_dim: ``m``, the dimension of $W$ for matrix noise, else ``None``.

    Examples:
        >>> from sdeml.sde import AbstractSDE, simulate
        >>> class Langevin(AbstractSDE):  # dX = -X dt + sqrt(2) dW; stationary law N(0, 1)
        ...     noise = "additive"
        ...     brownian_dim = None
        ...     def drift(self, t, y, args):
        ...         return -y
        ...     def diffusion(self, t, y, args):
        ...         return jnp.sqrt(2.0) * jnp.ones_like(y)
        >>> sde = Langevin()
        >>> sde.brownian_shape((4,))
        (4,)
        >>> paths = simulate(sde, jnp.zeros(4), t1=5.0, n_steps=100, n_paths=1000, key=jr.key(0))
        >>> paths.xs.shape, round(float(jnp.var(paths.xs)), 1)  # Var X_5 = 1 - e^{-10}
        ((1000, 1, 4), 1.0)

    References:
        Kloeden & Platen, Numerical Solution of Stochastic Differential Equations, Springer 1992.
    """

    if TYPE_CHECKING:
        # What subclasses provide (a field, a class variable or a property). Type checkers read
        # an `AbstractVar` annotation as a dataclass field, i.e. an `__init__` argument of every
        # subclass, even of those that define a property instead.
        @property
        def noise(self) -> str: ...

        @property
        def brownian_dim(self) -> int | None: ...

    else:
        noise: eqx.AbstractVar[str]
        brownian_dim: eqx.AbstractVar[int | None]

    @abc.abstractmethod
    def drift(self, t: ArrayLike, y: Array, args: PyTree) -> Array:
        """Drift $f(t, y)$, same shape as `y` (`t` a scalar: Python float or 0-d array)."""

    @abc.abstractmethod
    def diffusion(self, t: ArrayLike, y: Array, args: PyTree) -> Array:
        """Diffusion $g(t, y)$; shape set by the noise type (see the class docstring)."""

    def brownian_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the Brownian motion $W$ for a state of shape `y_shape`."""
        if self.noise == "scalar":
            return ()
        if self.noise == "general" or (self.noise == "additive" and self.brownian_dim is not None):
            return (int(self.brownian_dim),)  # type: ignore[arg-type]
        return tuple(y_shape)

    def is_matrix_noise(self) -> bool:
        """Whether $g$ is a matrix of shape ``(*S, m)`` contracted against $dW$."""
        return self.noise == "general" or (
            self.noise == "additive" and self.brownian_dim is not None
        )

    def noise_term(self, g: Array, dw: Array) -> Array:
        r"""The product $g\,dW$ for this noise type (elementwise, scalar or matrix–vector)."""
        if self.is_matrix_noise():
            return jnp.tensordot(g, dw, axes=1)
        return g * dw


class SDE(AbstractSDE):
    r"""An SDE $dX_t = f(t, X_t, \text{args})\,dt + g(t, X_t, \text{args})\,dW_t$ from callables.

    Args:
        drift: $f(t, y, \text{args})$, a pure function or equinox module returning `y`'s shape.
        diffusion: $g(t, y, \text{args})$; its shape depends on `noise` (see `AbstractSDE`).
        noise: ``"diagonal"`` (default), ``"scalar"``, ``"additive"`` or ``"general"``.
        brownian_dim: ``m``, the dimension of $W$, a positive int; required for ``"general"``,
            optional for ``"additive"`` (matrix additive noise), not allowed otherwise.

    Returns:
        An equinox module; pass it to `simulate`, a solver's `step`, or `to_diffrax`.

    Examples:
        >>> from sdeml.sde import SDE, simulate
        >>> sde = SDE(lambda t, y, a: -y, lambda t, y, a: 0.5 * jnp.ones_like(y), noise="additive")
        >>> paths = simulate(sde, jnp.ones(2), n_steps=100, n_paths=10_000, key=jr.key(0))
        >>> paths.xs.shape
        (10000, 1, 2)
        >>> round(float(paths.xs.mean()), 2), round(float(jnp.exp(-1.0)), 2)  # E X_1 = e^{-1}
        (0.37, 0.37)
        >>> matrix = SDE(lambda t, y, a: -y, lambda t, y, a: jnp.ones((2, 3)), noise="general",
        ...              brownian_dim=3)  # g has shape (2, 3), W has 3 components
        >>> matrix.brownian_shape((2,))
        (3,)

    References:
        Øksendal, Stochastic Differential Equations, 6th ed., Springer 2003, ch. 5.
    """

    drift_fn: Callable[..., Any]
    diffusion_fn: Callable[..., Any]
    noise: str = eqx.field(static=True)
    brownian_dim: int | None = eqx.field(static=True)

    def __init__(
        self,
        drift: Callable[..., Any],
        diffusion: Callable[..., Any],
        noise: str = "diagonal",
        brownian_dim: int | None = None,
    ):
        self.drift_fn = drift
        self.diffusion_fn = diffusion
        self.noise = noise
        if isinstance(brownian_dim, np.integer):  # e.g. from NumPy shape arithmetic: a static
            brownian_dim = int(brownian_dim)  # field must not hold an array scalar
        self.brownian_dim = brownian_dim

    def __check_init__(self):
        _check_noise(self.noise, self.brownian_dim)
        if not callable(self.drift_fn):
            raise ValueError(
                f"`drift` must be callable (t, y, args) -> array, got {self.drift_fn!r}"
            )
        if not callable(self.diffusion_fn):
            raise ValueError(
                f"`diffusion` must be callable (t, y, args) -> array, got {self.diffusion_fn!r}"
            )

    def drift(self, t, y, args):
        return self.drift_fn(t, y, args)

    def diffusion(self, t, y, args):
        return self.diffusion_fn(t, y, args)


def _check_noise(noise: str, brownian_dim: int | None) -> None:
    if noise not in NOISE_TYPES:
        raise ValueError(f"`noise` must be one of {NOISE_TYPES}, got {noise!r}")
    if noise == "general" and brownian_dim is None:
        raise ValueError('`brownian_dim` (m) is required for noise="general"')
    if brownian_dim is not None:
        if (
            isinstance(brownian_dim, bool)
            or not isinstance(brownian_dim, int | np.integer)
            or brownian_dim <= 0
        ):
            raise ValueError(f"`brownian_dim` must be a positive int or None, got {brownian_dim!r}")
        if noise not in ("general", "additive"):
            raise ValueError(
                f'`brownian_dim` is only meaningful for noise="general" or "additive", '
                f"got noise={noise!r} with brownian_dim={brownian_dim}"
            )


def check_sde(sde: Any) -> None:
    """Raise `ValueError` unless `sde` is an `AbstractSDE` (a plain function is not)."""
    if not isinstance(sde, AbstractSDE):
        raise ValueError(
            f"`sde` must be an sdeml.AbstractSDE (e.g. sdeml.SDE(drift, diffusion)), got "
            f"{type(sde).__name__}"
        )


def check_shapes(sde: AbstractSDE, y: Array, args: PyTree = None, t: Any = 0.0) -> None:
    r"""Check at trace time that drift and diffusion return shapes that fit `y` and the noise.

    Checks $f(t, y) \in \mathbb{R}^{S}$ and $g(t, y) \in \mathbb{R}^{S}$ (diagonal, scalar,
    additive) or $\mathbb{R}^{S \times m}$ (general, matrix additive), by `jax.eval_shape`.

    Args:
        sde: the SDE.
        y: a state of shape ``S`` (only its shape and dtype are used).
        args: passed to drift and diffusion.
        t: unused: drift and diffusion are traced at a scalar time of `y`'s dtype.

    Returns:
        None.

    Raises:
        ValueError: naming the offending shape, if drift's shape differs from the state's or the
            diffusion's shape does not match the noise type.

    Examples:
        >>> from sdeml.sde import SDE, check_shapes
        >>> f = lambda t, y, a: -y
        >>> check_shapes(SDE(f, lambda t, y, a: jnp.ones((2, 3)), "general", 3), jnp.zeros(2))
        >>> check_shapes(SDE(f, lambda t, y, a: jnp.ones(2), "general", 3), jnp.zeros(2))
        Traceback (most recent call last):
        ...
        ValueError: diffusion returned shape (2,) but noise='general' needs ... = (2, 3)

    References:
        Kloeden & Platen (1992), §4.5 (vector SDEs and their noise terms).
    """
    check_sde(sde)
    _check_noise(sde.noise, sde.brownian_dim)
    y_struct = jax.ShapeDtypeStruct(jnp.shape(y), jnp.result_type(y))
    t_struct = jax.ShapeDtypeStruct((), jnp.result_type(y))
    f = jax.eval_shape(lambda t_, y_: sde.drift(t_, y_, args), t_struct, y_struct)
    g = jax.eval_shape(lambda t_, y_: sde.diffusion(t_, y_, args), t_struct, y_struct)
    ys = tuple(jnp.shape(y))
    if getattr(f, "shape", None) != ys:
        raise ValueError(
            f"drift returned shape {getattr(f, 'shape', type(f))} but the state has shape {ys}; "
            "the drift must return an array of the state's shape"
        )
    if sde.is_matrix_noise():
        want = (*ys, int(sde.brownian_dim))  # type: ignore[arg-type]
        what = f"(*state_shape, brownian_dim) = {want}"
    else:
        want = ys
        what = f"the state's shape {ys}"
    if getattr(g, "shape", None) != want:
        raise ValueError(
            f"diffusion returned shape {getattr(g, 'shape', type(g))} but noise={sde.noise!r} "
            f"needs {what}"
        )


def stratonovich_correction(sde: AbstractSDE, t: ArrayLike, y: Array, args: PyTree) -> Array:
    r"""The Itô–Stratonovich drift correction $c_i = \sum_{j,k} g_{kj}\,\partial_k g_{ij}$.

    An Itô SDE with drift $f$ equals the Stratonovich SDE with drift $f - \tfrac12 c$. For diagonal
    noise, $g_i$ is assumed to depend on $y_i$ only (the diagonal-noise convention), so
    $c_i = g_i\,\partial_i g_i$. Computed with Jacobian–vector products (no full Jacobian).

    Args:
        sde: the SDE.
        t: the time, a scalar.
        y: the state, shape ``S``.
        args: passed to the diffusion.

    Returns:
        $c$, shape ``S`` (zeros for additive noise).

    Examples:
        >>> from sdeml.sde import GeometricBrownianMotion, stratonovich_correction
        >>> gbm = GeometricBrownianMotion(mu=0.5, sigma=0.8)  # g = sigma y, so c = sigma^2 y
        >>> c = stratonovich_correction(gbm, 0.0, jnp.array([2.0]), None)
        >>> c.shape, round(float(c[0]), 6)
        ((1,), 1.28)

    References:
        Kloeden & Platen (1992), §4.9, eq. (4.9.10).
    """
    # an integer state (y = [1, 2]) gave integer zeros for additive noise and failed in the
    # JVP otherwise (integer primals have float0 tangents)
    y = as_float(y)
    if sde.noise == "additive":
        return jnp.zeros_like(y)
    g_fn = lambda y_: sde.diffusion(t, y_, args)
    g = g_fn(y)
    if sde.noise in ("diagonal", "scalar"):
        # scalar: exact (one Brownian motion). diagonal: J g has i-th entry sum_k d_k g_i g_k, which
        # equals g_i d_i g_i under the diagonal-noise convention.
        return jax.jvp(g_fn, (y,), (g,))[1]
    # general: sum over columns j of (d g_{.j} / dy) g_{.j}
    cols = jnp.moveaxis(g, -1, 0)
    jv = jax.vmap(lambda v: jax.jvp(g_fn, (y,), (v,))[1])(cols)  # (m, *S, m)
    return jnp.einsum("j...j->...", jv)


class _ConvertedSDE(AbstractSDE):
    base: AbstractSDE
    sign: float = eqx.field(static=True)
    noise: str = eqx.field(static=True)
    brownian_dim: int | None = eqx.field(static=True)

    def drift(self, t, y, args):
        f = self.base.drift(t, y, args)
        return f + self.sign * 0.5 * stratonovich_correction(self.base, t, y, args)

    def diffusion(self, t, y, args):
        return self.base.diffusion(t, y, args)


def ito_to_stratonovich(sde: AbstractSDE) -> AbstractSDE:
    r"""The Stratonovich form of an Itô SDE: drift $f - \tfrac12 c$ with $c$ from
    `stratonovich_correction`; same diffusion.

    Use it to integrate an Itô SDE with a Stratonovich solver such as `StochasticHeun`.

    Args:
        sde: an SDE read in the Itô sense.

    Returns:
        An SDE that, read in the Stratonovich sense, has the same solution.

    Examples:
        >>> from sdeml.sde import (GeometricBrownianMotion, StochasticHeun, ito_to_stratonovich,
        ...                        sample_increments, solve_increments)
        >>> gbm = GeometricBrownianMotion(mu=0.5, sigma=0.8)  # read in the Ito sense
        >>> ts = jnp.linspace(0.0, 1.0, 201)
        >>> dw = sample_increments(jnp.diff(ts), (1,), key=jr.key(0))
        >>> exact = gbm.exact_solution(jnp.ones(1), ts, dw)  # the Ito solution on this path
        >>> heun = lambda sde: solve_increments(StochasticHeun(), sde, jnp.ones(1), ts, dw)[-1]
        >>> bool(jnp.abs(heun(ito_to_stratonovich(gbm)) - exact)[0] < 0.02)
        True
        >>> bool(jnp.abs(heun(gbm) - exact)[0] > 0.5)  # unconverted: the Stratonovich solution
        True

    References:
        Kloeden & Platen (1992), §4.9, eq. (4.9.10).
    """
    return _ConvertedSDE(base=sde, sign=-1.0, noise=sde.noise, brownian_dim=sde.brownian_dim)


def stratonovich_to_ito(sde: AbstractSDE) -> AbstractSDE:
    r"""The Itô form of a Stratonovich SDE: drift $f + \tfrac12 c$; same diffusion.

    Args:
        sde: an SDE read in the Stratonovich sense.

    Returns:
        An SDE that, read in the Itô sense, has the same solution.

    Examples:
        >>> from sdeml.sde import (SDE, Milstein, sample_increments, solve_increments,
        ...                        stratonovich_to_ito)
        >>> strat = SDE(lambda t, y, a: 0 * y, lambda t, y, a: 0.8 * y)  # dX = 0.8 X o dW
        >>> ito = stratonovich_to_ito(strat)
        >>> round(float(ito.drift(0.0, jnp.ones(1), None)[0]), 6)  # sigma^2 / 2 * X
        0.32
        >>> ts = jnp.linspace(0.0, 1.0, 201)
        >>> dw = sample_increments(jnp.diff(ts), (1,), key=jr.key(0))
        >>> y1 = solve_increments(Milstein(), ito, jnp.ones(1), ts, dw)[-1]
        >>> bool(jnp.abs(y1 - jnp.exp(0.8 * dw.sum(0)))[0] < 0.01)  # X_1 = exp(0.8 W_1)
        True

    References:
        Kloeden & Platen (1992), §4.9, eq. (4.9.10).
    """
    return _ConvertedSDE(base=sde, sign=1.0, noise=sde.noise, brownian_dim=sde.brownian_dim)
