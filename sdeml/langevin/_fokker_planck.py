"""The 1-D Fokker–Planck equation by conservative finite volumes and Crank–Nicolson, and the
matching path simulation (Euler–Maruyama) and histogram comparison."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

Coefficient = Callable[[Float[Array, ""], Float[Array, " n"]], Float[Array, " n"]]


def _check_grid(lo, hi, n_cells, t0, t1, n_steps, save_every):
    if not hi > lo:
        raise ValueError(f"`hi` must be greater than `lo`, got lo={lo}, hi={hi}.")
    if not isinstance(n_cells, int) or n_cells < 3:
        raise ValueError(f"`n_cells` must be an integer >= 3, got {n_cells!r}.")
    if not t1 > t0:
        raise ValueError(f"`t1` must be greater than `t0`, got t0={t0}, t1={t1}.")
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"`n_steps` must be a positive integer, got {n_steps!r}.")
    if not isinstance(save_every, int) or save_every < 1 or n_steps % save_every:
        raise ValueError(f"`save_every` must divide n_steps={n_steps}, got {save_every!r}.")


def fokker_planck_1d(
    drift: Coefficient,
    diffusion: Coefficient,
    p0: Float[Array, " n"],
    lo: float,
    hi: float,
    t0: float,
    t1: float,
    n_steps: int,
    save_every: int = 1,
) -> tuple[Float[Array, " s"], Float[Array, " n"], Float[Array, "s n"]]:
    r"""Solve the 1-D Fokker–Planck equation of :math:`dX = f(t,X)dt + g(t,X)dW` on a grid.

    .. math::
        \partial_t p = -\partial_x J,\qquad J = f p - \partial_x (D p),\quad D = g^2/2,

    with zero flux at ``lo`` and ``hi``. Finite volumes on ``n`` equal cells (centres
    :math:`x_i`), face flux :math:`J_{i+1/2} = f_{i+1/2}\,(p_i+p_{i+1})/2 - (D_{i+1}p_{i+1} -
    D_ip_i)/\Delta x`, and Crank–Nicolson in time with the coefficients at the mid-step: second
    order in :math:`\Delta x` and :math:`\Delta t`, exact conservation of mass (the columns of the
    tridiagonal operator sum to zero), one tridiagonal solve per step.

    Args:
        drift: :math:`f(t, x)`, elementwise on an array of points.
        diffusion: :math:`g(t, x)`, elementwise.
        p0: the initial density at the cell centres ``lo + (i + 1/2)(hi - lo)/n``.
        lo, hi: the domain (choose it so the density is negligible at the walls).
        t0, t1, n_steps: the time grid.
        save_every: keep every `save_every`-th step (and t0).

    Returns:
        ``(ts, x, p)``: save times ``(s,)``, cell centres ``(n,)``, densities ``(s, n)``.

    Example:
        >>> x = jnp.linspace(-4, 4, 401)[:-1] + 0.01
        >>> ts, x, p = fokker_planck_1d(lambda t, x: -x, lambda t, x: jnp.ones_like(x) * 2**0.5,
        ...     jax.scipy.stats.norm.pdf(x, 2.0, 0.2), -4, 4, 0, 1, 400, 100)

    References:
        Risken, The Fokker–Planck Equation, Springer 1989; Chang & Cooper, J. Comput. Phys. 6,
        1970 (conservative differencing); Crank & Nicolson, Proc. Camb. Phil. Soc. 43, 1947.
    """
    p0 = jnp.asarray(p0)
    if p0.ndim != 1:
        raise ValueError(f"`p0` must have shape (n_cells,), got {p0.shape}.")
    n = p0.shape[0]
    _check_grid(lo, hi, n, t0, t1, n_steps, save_every)
    dtype = p0.dtype
    dx = (hi - lo) / n
    x = lo + (jnp.arange(n, dtype=dtype) + 0.5) * dx
    faces = x[:-1] + 0.5 * dx
    dt = (t1 - t0) / n_steps

    def operator(t):
        f = drift(t, faces)
        dd = 0.5 * diffusion(t, x) ** 2
        a = 0.5 * f + dd[:-1] / dx  # J_{i+1/2} = a_i p_i + b_i p_{i+1}
        b = 0.5 * f - dd[1:] / dx
        zero = jnp.zeros(1, dtype)
        lower = jnp.concatenate([zero, a]) / dx  # dl[i] = A[i, i-1]
        diag = (jnp.concatenate([zero, b]) - jnp.concatenate([a, zero])) / dx
        upper = jnp.concatenate([-b, zero]) / dx  # du[i] = A[i, i+1]
        return lower, diag, upper

    def apply(lower, diag, upper, p):
        return diag * p + lower * jnp.roll(p, 1) + upper * jnp.roll(p, -1)

    def cn_step(p, k):
        t = t0 + (k + 0.5) * dt
        lower, diag, upper = operator(t)
        rhs = p + 0.5 * dt * apply(lower, diag, upper, p)
        return jax.lax.linalg.tridiagonal_solve(
            -0.5 * dt * lower, 1.0 - 0.5 * dt * diag, -0.5 * dt * upper, rhs[:, None]
        )[:, 0]

    def block(p, k0):
        p = jax.lax.fori_loop(0, save_every, lambda j, q: cn_step(q, k0 + j), p)
        return p, p

    starts = jnp.arange(0, n_steps, save_every)
    _, ps = jax.lax.scan(block, p0, starts)
    ts = t0 + jnp.arange(n_steps // save_every + 1, dtype=dtype) * (save_every * dt)
    return ts, x, jnp.concatenate([p0[None], ps])


def simulate_scalar_sde(
    drift: Coefficient,
    diffusion: Coefficient,
    x0: Float[Array, " n_paths"],
    t0: float,
    t1: float,
    n_steps: int,
    save_every: int = 1,
    *,
    key: PRNGKeyArray,
) -> tuple[Float[Array, " s"], Float[Array, "s n_paths"]]:
    r"""Euler–Maruyama for a batch of scalar SDE paths in one `lax.scan` (no stored increments).

    .. math:: X_{k+1} = X_k + f(t_k, X_k)\Delta t + g(t_k, X_k)\sqrt{\Delta t}\,\xi_k.

    A compact engine for the Fokker–Planck comparison; `sdeml.simulate` covers the general case.

    Args:
        drift, diffusion: :math:`f(t, x)` and :math:`g(t, x)`, elementwise on the batch.
        x0: initial points, one per path.
        t0, t1, n_steps, save_every: the time grid; states are kept every `save_every` steps.
        key: PRNG key.

    Returns:
        ``(ts, xs)`` with ``xs`` of shape ``(n_steps // save_every + 1, n_paths)``.

    Example:
        >>> ts, xs = simulate_scalar_sde(lambda t, x: -x, lambda t, x: 1.0 + 0 * x,
        ...                              jnp.zeros(10_000), 0.0, 1.0, 1000, 100, key=jr.key(0))

    References:
        Kloeden & Platen, Numerical Solution of Stochastic Differential Equations, 1992, ch. 9.
    """
    x0 = jnp.asarray(x0)
    if x0.ndim != 1:
        raise ValueError(f"`x0` must have shape (n_paths,), got {x0.shape}.")
    _check_grid(0.0, 1.0, 3, t0, t1, n_steps, save_every)
    dt = (t1 - t0) / n_steps
    keys = jr.split(key, n_steps).reshape(n_steps // save_every, save_every)

    def em(carry, k):
        x, t = carry
        xi = jr.normal(k, x.shape, x.dtype)
        x = x + drift(t, x) * dt + diffusion(t, x) * jnp.sqrt(dt) * xi
        return (x, t + dt), None

    def block(carry, ks):
        carry, _ = jax.lax.scan(em, carry, ks)
        return carry, carry[0]

    t_start = jnp.asarray(t0, x0.dtype)
    _, xs = jax.lax.scan(block, (x0, t_start), keys)
    ts = t0 + jnp.arange(n_steps // save_every + 1, dtype=x0.dtype) * (save_every * dt)
    return ts, jnp.concatenate([x0[None], xs])


def histogram_chi2(
    counts: Float[Array, " n"], probs: Float[Array, " n"]
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, " n"]]:
    r"""How far a histogram is from bin probabilities, in units of its own sampling error.

    .. math::
        z_j = \frac{c_j - Np_j}{\sqrt{Np_j(1-p_j)}},\qquad
        \chi^2 = \sum_{j:\,Np_j\ge 5}\frac{(c_j-Np_j)^2}{Np_j},

    over the bins with expected count at least 5 (Pearson's rule), :math:`N = \sum_j c_j` plus
    nothing outside. Under agreement :math:`\chi^2/\mathrm{dof}\approx 1` and the :math:`z_j` are
    approximately standard normal.

    Args:
        counts: the histogram.
        probs: the predicted probabilities of the same bins (they may sum to < 1).

    Returns:
        ``(chi2_per_dof, max_abs_z, z)`` over the bins with expected count >= 5.

    Example:
        >>> chi2, zmax, z = histogram_chi2(counts, probs)

    References:
        Pearson, Phil. Mag. 50, 1900.
    """
    counts, probs = jnp.asarray(counts, float), jnp.asarray(probs, float)
    n = jnp.sum(counts)
    expected = n * probs
    used = expected >= 5.0
    z = jnp.where(
        used, (counts - expected) / jnp.sqrt(jnp.maximum(expected * (1 - probs), 1e-300)), 0.0
    )
    chi2 = jnp.sum(jnp.where(used, (counts - expected) ** 2 / jnp.maximum(expected, 1e-300), 0.0))
    dof = jnp.maximum(jnp.sum(used) - 1, 1)
    return chi2 / dof, jnp.max(jnp.abs(z)), z
