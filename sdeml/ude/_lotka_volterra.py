"""The benchmark scenario of Rackauckas et al. (2020): Lotka–Volterra with unknown interactions."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..core import solve_ode
from ..core._checks import as_float, check_int
from ..core._normals import standard_normal
from ..dynamics import LotkaVolterra
from ._library import Library
from ._sindy import LibraryField

__all__ = [
    "LV_PARAMS",
    "LV_Y0",
    "InteractionReport",
    "interaction_report",
    "lotka_volterra_data",
    "lotka_volterra_known",
    "lotka_volterra_truth",
]

# dx/dt = alpha x - beta x y,  dy/dt = gamma x y - delta y  (the paper's names; in
# `sdeml.dynamics.LotkaVolterra` gamma and delta are swapped: there dy/dt = delta x y - gamma y).
LV_PARAMS = {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8}
LV_Y0 = (0.44249296, 4.6280594)


def _system(params: dict[str, float]) -> LotkaVolterra:
    p = params
    return LotkaVolterra(alpha=p["alpha"], beta=p["beta"], gamma=p["delta"], delta=p["gamma"])


def lotka_volterra_truth(
    ts: Float[Array, " n"], y0: tuple[float, float] = LV_Y0, params: dict[str, float] | None = None
) -> Float[Array, "n 2"]:
    r"""The exact (rtol 1e-10) Lotka–Volterra trajectory at `ts` from `y0` at ``ts[0]``.

    $\dot x = \alpha x - \beta xy,\ \dot y = \gamma xy - \delta y$ with `LV_PARAMS` by default;
    it conserves $V = \gamma x - \delta\ln x + \beta y - \alpha\ln y$.

    Args:
        ts: output times, increasing, shape ``(n,)``.
        y0: the state $(x, y)$ at ``ts[0]`` (default `LV_Y0`, the paper's).
        params: ``{"alpha", "beta", "gamma", "delta"}`` in the paper's naming (default
            `LV_PARAMS`).

    Returns:
        The states at `ts`, shape ``(n, 2)``.

    Examples:
        >>> from sdeml.ude import LV_PARAMS, LV_Y0, lotka_volterra_truth
        >>> ts = jnp.linspace(0.0, 3.0, 31)
        >>> ys = lotka_volterra_truth(ts)
        >>> ys.shape, bool(jnp.allclose(ys[0], jnp.array(LV_Y0)))
        ((31, 2), True)
        >>> a, b, c, d = (LV_PARAMS[k] for k in ("alpha", "beta", "gamma", "delta"))
        >>> V = c * ys[:, 0] - d * jnp.log(ys[:, 0]) + b * ys[:, 1] - a * jnp.log(ys[:, 1])
        >>> bool(jnp.max(jnp.abs(V - V[0])) < 1e-8)  # the conserved quantity
        True

    References:
        Rackauckas et al., Universal Differential Equations for Scientific Machine Learning,
        2020, §2.1. arXiv:2001.04385
    """
    ts = as_float(ts)  # integer times made `y0` integer too: (0.44, 4.63) read as (0, 4)
    sol = solve_ode(
        _system(LV_PARAMS if params is None else params),
        jnp.asarray(y0, ts.dtype),
        ts[0],
        ts[-1],
        ts=ts,
        solver="dopri8",
        rtol=1e-10,
        atol=1e-12,
        max_steps=100_000,
    )
    return sol.ys


def lotka_volterra_data(
    key: PRNGKeyArray,
    *,
    noise: float = 0.05,
    n_obs: int = 31,
    t1: float = 3.0,
    dtype: jnp.dtype | None = None,
) -> tuple[Float[Array, " n"], Float[Array, "n 2"], Float[Array, "n 2"]]:
    r"""The observations of the UDE paper: `n_obs` equispaced times on [0, t1], Gaussian noise.

    The noise of each state has standard deviation ``noise`` times the mean of that state over
    the clean observations (5 % in the paper): $y_{ij} = x_j(t_i) + \sigma_j\varepsilon_{ij}$,
    $\sigma_j = \text{noise}\cdot\overline{x_j}$.

    Args:
        key: PRNG key of the noise.
        noise: relative noise level, >= 0.
        n_obs: number of observations (>= 3).
        t1: the end of the observation window.
        dtype: the floating dtype (default: JAX's default float).

    Returns:
        ``(ts, clean, noisy)`` with shapes ``(n_obs,)``, ``(n_obs, 2)``, ``(n_obs, 2)``.

    Examples:
        >>> from sdeml.ude import lotka_volterra_data
        >>> ts, clean, noisy = lotka_volterra_data(jr.key(0))
        >>> ts.shape, clean.shape, noisy.shape, float(ts[-1])
        ((31,), (31, 2), (31, 2), 3.0)
        >>> ts, clean, noisy = lotka_volterra_data(jr.key(0), noise=0.0)
        >>> bool(jnp.all(noisy == clean))
        True

    References:
        Rackauckas et al., Universal Differential Equations for Scientific Machine Learning,
        2020, §2.1 (α, β, γ, δ = 1.3, 0.9, 0.8, 1.8; u0 = (0.44249296, 4.6280594)).
        arXiv:2001.04385
    """
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"`noise` must be >= 0, got {noise}")
    n_obs = check_int("n_obs", n_obs, 3)
    if not (np.isfinite(t1) and t1 > 0):
        raise ValueError(f"`t1` must be > 0, got {t1}")
    dtype = jnp.result_type(float) if dtype is None else dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"`dtype` must be a floating dtype, got {dtype}")
    ts = jnp.linspace(0.0, t1, n_obs, dtype=dtype)
    clean = lotka_volterra_truth(ts)
    sigma = noise * jnp.mean(clean, axis=0)
    noisy = clean + sigma * standard_normal(key, clean.shape, dtype)
    return ts, clean, noisy


def lotka_volterra_known(
    library: Library, alpha: float = LV_PARAMS["alpha"], delta: float = LV_PARAMS["delta"]
) -> LibraryField:
    r"""The known terms $\alpha x$ and $-\delta y$ as a `LibraryField` over `library`.

    The library must contain the monomials ``x`` and ``y`` of its two states (named anything).

    Args:
        library: a `Library` over two states, with their linear monomials among its terms.
        alpha, delta: the known rates (default: `LV_PARAMS`'s).

    Returns:
        A `LibraryField` with coefficients of shape ``(p, 2)``: the known part of a `UDE`.

    Examples:
        >>> from sdeml.ude import lotka_volterra_known, polynomial_library
        >>> known = lotka_volterra_known(polynomial_library(("x", "y"), 2))
        >>> known.equations()
        ['dx/dt = 1.300 x', 'dy/dt = -1.800 y']
        >>> known(0.0, jnp.array([1.0, 2.0])).tolist()
        [1.3, -3.6]
    """
    if library.n_states != 2:
        raise ValueError(f"`library` must have 2 states, got {library.n_states}")
    names = library.term_names
    x, y = library.names
    if x not in names or y not in names:
        raise ValueError(f"`library` must contain the terms {x!r} and {y!r}, has {names}")
    xi = np.zeros((library.n_terms, 2))
    xi[names.index(x), 0] = alpha
    xi[names.index(y), 1] = -delta
    return LibraryField(library, jnp.asarray(xi, jnp.result_type(float)))


@dataclasses.dataclass(frozen=True)
class InteractionReport:
    r"""How well a recovered model of the missing terms matches $-\beta xy$ and $\gamma xy$.

    Made by `interaction_report`.

    Attributes:
        terms: the selected term names of the two missing-term equations.
        exact: both equations selected exactly the term ``x y``.
        beta, gamma: the estimates $-\xi_{xy,1}$ and $\xi_{xy,2}$ (0 when not selected).
        beta_error, gamma_error: relative errors against `LV_PARAMS`.
        coefficient_error: the largest absolute error over all coefficients against the true
            missing terms (spurious terms count with their whole size).

    Examples:
        >>> from sdeml.ude import interaction_report, polynomial_library
        >>> lib = polynomial_library(("x", "y"), 2)  # 1, x, y, x^2, x y, y^2
        >>> xi = jnp.zeros((6, 2)).at[4].set(jnp.array([-0.9, 0.8]))  # -0.9 x y, 0.8 x y
        >>> rep = interaction_report(lib, xi)
        >>> rep.terms, rep.exact, rep.beta, rep.gamma, rep.coefficient_error
        ((('x y',), ('x y',)), True, 0.9, 0.8, 0.0)
    """

    terms: tuple[tuple[str, ...], tuple[str, ...]]
    exact: bool
    beta: float
    gamma: float
    beta_error: float
    gamma_error: float
    coefficient_error: float


def interaction_report(
    library: Library, coefficients: Float[Array, "p 2"], params: dict[str, float] | None = None
) -> InteractionReport:
    r"""Compare recovered missing terms (coefficients over `library`) with the true ones.

    The truth is $-\beta xy$ in the first equation and $\gamma xy$ in the second.

    Args:
        library: the `Library` of the coefficients; it must contain the term ``x y`` (its two
            state names joined).
        coefficients: the recovered model of the missing terms, shape ``(p, 2)``.
        params: the true parameters (default `LV_PARAMS`).

    Returns:
        An `InteractionReport`.

    Examples:
        A 10 % error in $\beta$ and a spurious $x^2$ term in the second equation:

        >>> from sdeml.ude import interaction_report, polynomial_library
        >>> lib = polynomial_library(("x", "y"), 2)  # 1, x, y, x^2, x y, y^2
        >>> xi = jnp.array([[0, 0], [0, 0], [0, 0], [0, 0.05], [-0.99, 0.8], [0, 0]])
        >>> rep = interaction_report(lib, xi)
        >>> rep.terms, rep.exact
        ((('x y',), ('x^2', 'x y')), False)
        >>> round(rep.beta_error, 6), rep.gamma_error, round(rep.coefficient_error, 6)
        (0.1, 0.0, 0.09)
    """
    p = LV_PARAMS if params is None else params
    xi = np.asarray(jax.device_get(coefficients), dtype=np.float64)
    names = library.term_names
    # rows are matched to the library's terms by position: a (6, 2) model read over a
    # 10-term library reported the exact terms, a third column was ignored
    if xi.shape != (library.n_terms, 2):
        raise ValueError(
            f"`coefficients` must have shape ({library.n_terms}, 2) (library terms x the two "
            f"equations), got {xi.shape}"
        )
    xy = f"{library.names[0]} {library.names[1]}"
    if xy not in names:
        raise ValueError(f"`library` must contain the term {xy!r}")
    k = names.index(xy)
    truth = np.zeros_like(xi)
    truth[k, 0], truth[k, 1] = -p["beta"], p["gamma"]
    terms = tuple(tuple(names[i] for i in np.flatnonzero(xi[:, j])) for j in range(2))
    beta, gamma = -float(xi[k, 0]), float(xi[k, 1])
    return InteractionReport(
        terms=(terms[0], terms[1]),
        exact=terms[0] == (xy,) and terms[1] == (xy,),
        beta=beta,
        gamma=gamma,
        beta_error=abs(beta - p["beta"]) / p["beta"],
        gamma_error=abs(gamma - p["gamma"]) / p["gamma"],
        coefficient_error=float(np.max(np.abs(xi - truth))),
    )
