"""Stationary-law checks: Gibbs bin probabilities, ULA's exact biased invariant law, TV and KS."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import Array, ArrayLike, Float

from ..core._checks import (
    as_float,
    check_box,
    check_int,
    check_positive_int,
    check_positive_scalar,
    check_scalar_function,
)

Potential = Callable[[Float[Array, " d"]], Float[Array, ""]]


class Potentials:
    r"""Test potentials $U$ (each ``(d,) -> ()``) with known Gibbs laws.

    * ``double_well(x) = (x_0^2 - 1)^2`` (1-D, two modes at $\pm1$, barrier 1).
    * ``gaussian(precision)(x) = x^T P x / 2`` (Gibbs law $N(0, T P^{-1})$).
    * ``mixture_2d(x)``: $-\log$ of an equal mixture of two 2-D Gaussians at
      $(\pm 1.5, 0)$ with covariance ``diag(0.5, 0.3)`` (unnormalised).

    Examples:
        >>> from sdeml.langevin import Potentials
        >>> dw = Potentials.double_well
        >>> float(dw(jnp.array([1.0]))), float(dw(jnp.array([0.0])))  # a mode, the barrier top
        (0.0, 1.0)
        >>> float(Potentials.gaussian(2.0 * jnp.eye(2))(jnp.ones(2)))  # x^T P x / 2
        2.0
        >>> U = Potentials.mixture_2d  # symmetric; at a mean, -log(1 + e^{-9})
        >>> bool(jnp.allclose(U(jnp.array([1.5, 0.0])), -jnp.log1p(jnp.exp(-9.0))))
        True
    """

    @staticmethod
    def double_well(x: Float[Array, " 1"]) -> Float[Array, ""]:
        return (x[0] ** 2 - 1.0) ** 2

    @staticmethod
    def gaussian(precision: Float[Array, "d d"]) -> Potential:
        precision = jnp.asarray(precision)
        return lambda x: 0.5 * x @ precision @ x

    @staticmethod
    def mixture_2d(x: Float[Array, " 2"]) -> Float[Array, ""]:
        var = jnp.array([0.5, 0.3], x.dtype)
        means = jnp.array([[1.5, 0.0], [-1.5, 0.0]], x.dtype)
        logs = -0.5 * jnp.sum((x - means) ** 2 / var, axis=-1)
        return -logsumexp(logs)


def _cells(lo, hi, n_bins: int, n_sub: int, pad_bins: int, dtype):
    """Midpoints of the sub-cells of ``[lo - pad, hi + pad]``, aligned with the bins: shape
    ``(n,)`` for scalar `lo`, `hi`, or ``(d, n)`` (one row per coordinate) for ``(d,)`` ones."""
    lo, hi = lo[..., None], hi[..., None]
    width = (hi - lo) / n_bins
    w = width / n_sub
    n = (n_bins + 2 * pad_bins) * n_sub
    return lo - pad_bins * width + (jnp.arange(n, dtype=dtype) + 0.5) * w, w[..., 0]


def _rebin(cell_probs: Array, n_bins: int, n_sub: int, pad_bins: int) -> tuple[Array, Array]:
    """Sum sub-cells into bins; returns (bins inside the box, mass outside the box)."""
    d = cell_probs.ndim
    shape = sum(((n_bins + 2 * pad_bins, n_sub) for _ in range(d)), ())
    binned = cell_probs.reshape(shape).sum(axis=tuple(range(1, 2 * d, 2)))
    inside = binned[(slice(pad_bins, pad_bins + n_bins),) * d]
    return inside, 1.0 - jnp.sum(inside)


def gibbs_bin_probabilities(
    potential: Potential,
    lo: float | int | Float[Array, " d"],
    hi: float | int | Float[Array, " d"],
    n_bins: int,
    d: int = 1,
    *,
    temperature: float = 1.0,
    n_sub: int = 8,
    pad_bins: int | None = None,
) -> tuple[Float[Array, "..."], Float[Array, ""]]:
    r"""Probabilities of the Gibbs law on the bins of ``[lo, hi]^d`` (d = 1 or 2).

    $$
    p_j = \int_{\text{bin}_j} e^{-U(x)/T}\,dx \Big/ \int e^{-U(x)/T}\,dx,
    $$

    integrated by the midpoint rule on ``n_sub`` sub-cells per bin and per coordinate (error
    $O(w^2)$, $w$ the sub-cell width); the normaliser is taken on the box widened by
    ``pad_bins`` bins each side (default: half the box), so mass outside ``[lo, hi]^d`` is
    reported, not dropped.

    Args:
        potential: $U$, ``(d,) -> ()``.
        lo, hi: the box: scalars or per-coordinate ``(d,)`` arrays (as `histogram_chains`
            takes), finite, with ``hi > lo``.
        n_bins: bins per coordinate (a positive int).
        d: dimension (1 or 2).
        temperature: $T > 0$.
        n_sub: sub-cells per bin per coordinate (a positive int).
        pad_bins: width of the normalising margin in bins (an int >= 0).

    Returns:
        ``(probs, outside)``: probs of shape ``(n_bins,) * d`` and the mass outside the box, a
        scalar.

    Examples:
        The standard normal, $U = x^2/2$, against its exact bin probabilities:

        >>> from sdeml.langevin import Potentials, gibbs_bin_probabilities
        >>> U = Potentials.gaussian(jnp.eye(1))
        >>> p, out = gibbs_bin_probabilities(U, -3.0, 3.0, 30)
        >>> exact = jnp.diff(jax.scipy.stats.norm.cdf(jnp.linspace(-3.0, 3.0, 31)))
        >>> p.shape, bool(jnp.max(jnp.abs(p - exact)) < 1e-5), round(float(out), 4)  # 2 Phi(-3)
        ((30,), True, 0.0027)
        >>> p2, _ = gibbs_bin_probabilities(Potentials.gaussian(jnp.eye(2)), -3.0, 3.0, 30, d=2)
        >>> p2.shape, bool(jnp.allclose(p2, jnp.outer(exact, exact), atol=1e-5))
        ((30, 30), True)

    References:
        Gibbs distribution; e.g. Pavliotis, Stochastic Processes and Applications, Springer 2014,
        ch. 4.
    """
    check_positive_scalar("temperature", temperature)
    if isinstance(d, bool) or not isinstance(d, int | np.integer) or d not in (1, 2):
        raise ValueError(f"`d` must be 1 or 2, got {d!r}.")
    d = int(d)
    n_bins = check_positive_int("n_bins", n_bins)  # NumPy integers too, as Python ints
    n_sub = check_positive_int("n_sub", n_sub)
    pad_bins = n_bins // 2 if pad_bins is None else pad_bins
    pad_bins = check_int("pad_bins", pad_bins, 0)
    dtype = jnp.result_type(float)
    lo, hi = check_box(lo, hi, d, dtype)
    # one row of sub-cell midpoints per coordinate; every cell of the grid has the same volume,
    # so the normalised cell masses below need no volume factor
    x, _ = _cells(lo, hi, n_bins, n_sub, pad_bins, dtype)
    grid = jnp.stack(jnp.meshgrid(*x, indexing="ij"), -1).reshape(-1, d)
    check_scalar_function("potential", potential, grid[0])
    logp = -jax.vmap(potential)(grid) / temperature
    cell = jnp.exp(logp - logsumexp(logp)).reshape((x.shape[1],) * d)
    return _rebin(cell, n_bins, n_sub, pad_bins)


def ula_invariant_bin_probabilities(
    potential: Potential,
    step_size: float,
    lo: float | int,
    hi: float | int,
    n_bins: int,
    *,
    temperature: float = 1.0,
    n_sub: int = 4,
    pad_bins: int | None = None,
) -> tuple[Float[Array, " n_bins"], Float[Array, ""]]:
    r"""Bin probabilities of ULA's own (biased) invariant law in 1-D, from its transition kernel.

    ULA moves by $K(x, \cdot) = N(x - hU'(x), 2hT)$. On the sub-cell midpoints
    $x_i$ of the widened box the kernel becomes the stochastic matrix
    $P_{ij} \propto \varphi\bigl((x_j - x_i + hU'(x_i))/s\bigr)$, $s=\sqrt{2hT}$
    (Nyström discretisation, rows renormalised); its stationary vector $\pi P = \pi$
    is the chain's invariant law, so the $O(h)$ bias of ULA is computed, not estimated.
    The sub-cell width must be small against $s$ (checked: at most $s/4$).

    Args:
        potential: $U$, ``(1,) -> ()``.
        step_size: $h > 0$.
        lo, hi, n_bins: the ``n_bins`` equal bins of ``[lo, hi]``.
        temperature: $T > 0$.
        n_sub: sub-cells per bin.
        pad_bins: margin (in bins) on each side of the box (default: a tenth of the box); the
            ULA step must map the widened box into itself (else `ValueError`: the chain is
            explosive there, as ULA is far out for superlinear gradients).

    Returns:
        ``(probs, outside)`` as in `gibbs_bin_probabilities`: ``(n_bins,)`` and a scalar.

    Examples:
        On $U = x^2/2$ ULA's invariant law is exactly $N(0, 1/(1 - h/2))$:

        >>> from sdeml.langevin import Potentials, ula_invariant_bin_probabilities
        >>> U, h = Potentials.gaussian(jnp.eye(1)), 0.1
        >>> q, _ = ula_invariant_bin_probabilities(U, h, -4.0, 4.0, 40)
        >>> cdf = jax.scipy.stats.norm.cdf
        >>> edges = jnp.linspace(-4.0, 4.0, 41)
        >>> ula_law = jnp.diff(cdf(edges, 0.0, (1 / (1 - h / 2)) ** 0.5))
        >>> q.shape, bool(jnp.max(jnp.abs(q - ula_law)) < 2e-5)
        ((40,), True)
        >>> round(float(jnp.max(jnp.abs(q - jnp.diff(cdf(edges))))), 3)  # the bias vs N(0, 1)
        0.002

    References:
        Roberts & Tweedie, Bernoulli 2(4), 1996 (ULA's invariant law differs from the target);
        Atkinson, The Numerical Solution of Integral Equations of the Second Kind, 1997 (Nyström).
    """
    check_positive_scalar("step_size", step_size)
    check_positive_scalar("temperature", temperature)
    n_bins = check_positive_int("n_bins", n_bins)  # NumPy integers too, as Python ints
    n_sub = check_positive_int("n_sub", n_sub)
    pad_bins = max(1, n_bins // 10) if pad_bins is None else pad_bins
    pad_bins = check_int("pad_bins", pad_bins, 0)
    dtype = jnp.result_type(float)
    lo_box, hi_box = check_box(lo, hi, 1, dtype)
    x, w = _cells(lo_box[0], hi_box[0], n_bins, n_sub, pad_bins, dtype)
    s = (2.0 * step_size * temperature) ** 0.5
    if float(w) > s / 4:
        raise ValueError(
            f"sub-cell width {float(w):.3g} is too coarse for the ULA kernel width sqrt(2hT)="
            f"{s:.3g}; raise `n_sub` or `n_bins`."
        )
    check_scalar_function("potential", potential, x[:1])
    grad = jax.vmap(jax.grad(potential))(x[:, None])[:, 0]
    mean = x - step_size * grad
    # ULA with a superlinear gradient is explosive far out (the drift step overshoots past the
    # box); there the grid chain would have a spurious closed class at the walls. Refuse it.
    if not isinstance(mean, jax.core.Tracer) and bool(
        jnp.any((mean < x[0] - 3 * s) | (mean > x[-1] + 3 * s))
    ):
        raise ValueError(
            f"the ULA step maps points of the box [{float(x[0]):.3g}, {float(x[-1]):.3g}] outside "
            "it (the chain is unstable there); lower `pad_bins` or `step_size`."
        )
    logk = -0.5 * ((x[None, :] - mean[:, None]) / s) ** 2
    p = jnp.exp(logk - logsumexp(logk, axis=1, keepdims=True))
    n = x.shape[0]
    # pi (P - I) = 0 with sum(pi) = 1: replace one equation of (P - I)^T pi = 0 by the sum.
    a = (p - jnp.eye(n, dtype=dtype)).T.at[-1].set(1.0)
    pi = jnp.linalg.solve(a, jnp.zeros(n, dtype).at[-1].set(1.0))
    return _rebin(pi, n_bins, n_sub, pad_bins)


def ula_gaussian_stationary_cov(
    precision: Float[ArrayLike, "..."],  # (d, d): checked with a clear message
    step_size: float,
    temperature: float = 1.0,
) -> Float[Array, "d d"]:
    r"""ULA's exact stationary covariance on the Gaussian target $U = x^T P x/2$.

    ULA is the linear recursion $x' = (I - hP)x + \sqrt{2hT}\xi$; in the eigenbasis of
    $P$ (eigenvalues $\lambda$) its stationary variance is

    $$
    v(\lambda) = \frac{2hT}{1-(1-h\lambda)^2} = \frac{T}{\lambda(1 - h\lambda/2)},
    $$

    against the target's $T/\lambda$: the discretisation bias is $+h\lambda/2$
    relative, to first order. Requires $h\lambda_{\max} < 2$ (stability).

    Args:
        precision: $P$, symmetric positive definite, shape ``(d, d)`` (concrete: checked,
            `ValueError`; traced: an `EquinoxRuntimeError` at run time if not positive
            definite).
        step_size: $h$.
        temperature: $T$.

    Returns:
        The stationary covariance, shape ``(d, d)``.

    Examples:
        >>> from sdeml.langevin import ula_gaussian_stationary_cov
        >>> C = ula_gaussian_stationary_cov(jnp.diag(jnp.array([1.0, 10.0])), 0.05)
        >>> jnp.diag(C).round(4).tolist()  # 1 / (1 - 0.025) and 1 / (10 (1 - 0.25))
        [1.0256, 0.1333]
        >>> P, h = jnp.array([[2.0, 0.5], [0.5, 1.0]]), 0.1  # the fixed point of the recursion
        >>> C, A = ula_gaussian_stationary_cov(P, h), jnp.eye(2) - h * P
        >>> bool(jnp.allclose(C, A @ C @ A.T + 2 * h * jnp.eye(2)))
        True

    References:
        Roberts & Tweedie, Bernoulli 2(4), 1996, sec. 3.
    """
    # scalars: a (d,) step size broadcast against the eigenvalues, a wrong matrix in silence
    check_positive_scalar("step_size", step_size)
    check_positive_scalar("temperature", temperature)
    precision = jnp.asarray(precision)
    if precision.ndim != 2 or precision.shape[0] != precision.shape[1]:
        raise ValueError(
            f"`precision` must be a square (d, d) matrix, got shape {precision.shape}."
        )
    precision = as_float(precision)
    _check_spd(precision)
    lam, v = jnp.linalg.eigh(precision)
    # traced (under jit/vmap): the same conditions at run time
    lam = eqx.error_if(lam, lam.min() <= 0, "`precision` must be positive definite")
    lam = eqx.error_if(
        lam, step_size * lam.max() >= 2.0, "ULA is unstable: step_size * max eig >= 2"
    )
    return (v * (temperature / (lam * (1.0 - 0.5 * step_size * lam)))) @ v.T


def _check_spd(precision: Array) -> None:
    """`ValueError` unless a concrete `precision` is symmetric (to sqrt(eps) of its largest entry)
    and positive definite (every eigenvalue above d eps times the largest: a matrix singular to
    rounding gave a variance of 1e16); traced values pass."""
    if isinstance(precision, jax.core.Tracer):
        return
    p = np.asarray(precision, np.float64)
    d, eps = p.shape[0], float(jnp.finfo(precision.dtype).eps)
    scale = float(np.max(np.abs(p), initial=0.0))
    if not np.all(np.isfinite(p)):
        raise ValueError("`precision` must be finite (no NaN or inf).")
    asym = float(np.max(np.abs(p - p.T), initial=0.0))
    if asym > np.sqrt(eps) * scale:
        raise ValueError(
            f"`precision` must be symmetric, got |P - P^T| up to {asym:.3g} (largest entry "
            f"{scale:.3g})."
        )
    lam = np.linalg.eigvalsh(0.5 * (p + p.T))
    if not lam[0] > d * eps * max(abs(lam[-1]), abs(lam[0])):
        raise ValueError(
            "`precision` must be positive definite (the Gibbs law N(0, T P^-1) needs it), got "
            f"eigenvalues from {lam[0]:.4g} to {lam[-1]:.4g}."
        )
