"""Distances between distributions: total variation, its i.i.d. floor, Kolmogorov–Smirnov.

Shared by every theme that checks a sampled law against an exact one (Langevin and Gibbs laws,
Fokker–Planck histograms, SGD stationary laws, diffusion priors).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Real

from ..core._checks import as_float, check_positive, common_float_dtype


def total_variation(p: Real[ArrayLike, "..."], q: Real[ArrayLike, "..."]) -> Float[Array, ""]:
    r"""Total-variation distance $\tfrac12\sum_j |p_j - q_j|$ of two probability vectors.

    Args:
        p, q: probabilities on the same bins, any equal shape (e.g. ``(n_bins,)`` or
            ``(n_bins, n_bins)``; include an "outside" cell if needed).

    Returns:
        The distance, a scalar in [0, 1].

    Examples:
        >>> from sdeml.metrics import total_variation
        >>> float(total_variation(jnp.array([0.5, 0.5]), jnp.array([0.25, 0.75])))
        0.25
    """
    p, q = jnp.asarray(p), jnp.asarray(q)
    if p.shape != q.shape:
        raise ValueError(f"`p` and `q` must have the same shape, got {p.shape} and {q.shape}.")
    # one float dtype: the promotion of the float inputs (float32 stays float32; promoting with
    # the default float had returned float64 for two float32 vectors), else the default float
    dtype = common_float_dtype(p, q)
    return 0.5 * jnp.sum(jnp.abs(p.astype(dtype) - q.astype(dtype)))


def expected_tv_iid(probs: Real[ArrayLike, "..."], n_samples: int | float) -> Float[Array, ""]:
    r"""Expected TV between the histogram of `n_samples` i.i.d. draws and the true bin law.

    $$
    \mathbb{E}\,\mathrm{TV} \approx \tfrac12\sum_j \sqrt{2p_j(1-p_j)/(\pi n)},
    $$

    the mean absolute deviation of the normal approximation to each binomial count; it is the
    floor any sampler's histogram TV is measured against.

    Args:
        probs: the true bin probabilities, any shape (e.g. ``(n_bins,)``).
        n_samples: the number of (effective) samples $n$.

    Returns:
        The expected TV, a scalar.

    Examples:
        Against the mean TV of 200 histograms of 1,000 uniform draws on 10 bins:

        >>> from sdeml.metrics import expected_tv_iid, total_variation
        >>> probs = jnp.full(10, 0.1)
        >>> draws = jr.randint(jr.key(0), (200, 1000), 0, 10)  # 200 sets of 1000 draws
        >>> hists = jnp.mean(draws[..., None] == jnp.arange(10), axis=1)  # (200, 10)
        >>> tvs = jax.vmap(total_variation, in_axes=(0, None))(hists, probs)
        >>> round(float(tvs.mean()), 3), round(float(expected_tv_iid(probs, 1000)), 3)
        (0.038, 0.038)
    """
    # n <= 0 gave inf or NaN and True read as one sample
    check_positive("n_samples", n_samples)
    probs = as_float(probs)  # integer probabilities (0/1 masses) failed in their own dtype
    return 0.5 * jnp.sum(jnp.sqrt(2.0 * probs * (1.0 - probs) / (jnp.pi * n_samples)))


def ks_distance(
    samples_or_probs: Real[ArrayLike, " n"], reference: Real[ArrayLike, " n"] | Callable
) -> Float[Array, ""]:
    r"""Kolmogorov–Smirnov distance $\sup_x |F_n(x) - F(x)|$.

    Two forms: ``ks_distance(samples, cdf)`` with a CDF callable gives the exact statistic of a
    1-D sample; ``ks_distance(p_hat, p)`` with two probability vectors on the same 1-D bins
    gives the statistic evaluated at the bin edges.

    Args:
        samples_or_probs: a sample ``(n,)``, or empirical bin probabilities ``(n_bins,)``.
        reference: a vectorised CDF, or reference bin probabilities ``(n_bins,)``.

    Returns:
        The KS distance, a scalar in [0, 1].

    Examples:
        >>> from sdeml.metrics import ks_distance
        >>> x = jr.normal(jr.key(0), (1000,))
        >>> d = ks_distance(x, jax.scipy.stats.norm.cdf)
        >>> bool(d < 1.36 / 1000**0.5)  # below the 5% critical value
        True
        >>> round(float(ks_distance(jnp.array([0.2, 0.3, 0.5]), jnp.array([0.3, 0.3, 0.4]))), 6)
        0.1

    References:
        Kolmogorov (1933); Smirnov (1948).
    """
    x = as_float(samples_or_probs)  # integer samples or counts: in a float dtype
    if callable(reference):
        x = jnp.sort(x.ravel())
        n = x.shape[0]
        if n == 0:
            raise ValueError("`samples_or_probs` must hold at least one sample, got none.")
        f = reference(x)
        i = jnp.arange(1, n + 1, dtype=f.dtype)
        return jnp.maximum(jnp.max(i / n - f), jnp.max(f - (i - 1) / n))
    reference = as_float(reference)
    if x.shape != reference.shape or x.ndim != 1:
        raise ValueError(
            f"bin probabilities must be 1-D of equal shape, got {x.shape}, {reference.shape}."
        )
    dtype = common_float_dtype(x, reference)  # float32 against float64: the wider
    return jnp.max(jnp.abs(jnp.cumsum(x.astype(dtype)) - jnp.cumsum(reference.astype(dtype))))
