"""Gaussian mixtures with diagonal covariances: exact density, score and i.i.d. sampling."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ..core._checks import check_positive, check_positive_int
from ..core._normals import standard_normal


class GaussianMixture(eqx.Module):
    r"""A Gaussian mixture with diagonal covariances.

    $$p(x) = \sum_{k=1}^K w_k\,\mathcal N\big(x;\ \mu_k,\ \mathrm{diag}(s_k^2)\big).$$

    It is the analytic ground truth of the diffusion theme: pushed through any linear forward SDE
    the marginal stays a mixture of this form (see `sdeml.diffusion.mixture_marginal`).

    Args:
        weights: $w_k$, shape ``(K,)``, non-negative and not all zero (normalised here).
        means: $\mu_k$, shape ``(K, d)`` (integers are cast to the default float).
        stds: $s_k$, shape ``(K, d)``, or ``(K,)`` for isotropic components, positive.

    Concrete `weights` and `stds` are checked (a `ValueError`); traced ones, as built inside
    `jax.jit` by `sdeml.diffusion.mixture_marginal`, are not.

    Examples:
        >>> from sdeml.data import GaussianMixture
        >>> gm = GaussianMixture(jnp.ones(2), jnp.array([[-1.0], [1.0]]), jnp.array([0.3, 0.3]))
        >>> x = gm.sample(1000, key=jr.key(0))
        >>> x.shape
        (1000, 1)
        >>> round(float(x.var()), 2)  # the mixture's variance is 1 + 0.3^2 = 1.09
        1.09
        >>> # at a mean the other component is negligible: log(0.5 / (0.3 sqrt(2 pi))) = -0.4081
        >>> round(float(gm.log_prob(jnp.array([1.0]))), 4)
        -0.4081
        >>> bool(jnp.allclose(gm.score(x[0]), jax.grad(gm.log_prob)(x[0])))
        True

    References:
        Bishop, Pattern Recognition and Machine Learning, 2006, sec. 9.2.
    """

    weights: Float[Array, " k"]
    means: Float[Array, "k d"]
    stds: Float[Array, "k d"]

    def __init__(self, weights: ArrayLike, means: ArrayLike, stds: ArrayLike):
        for name, v in (("weights", weights), ("stds", stds)):
            if jnp.asarray(v).dtype == bool:  # checked before the cast below read True as 1
                raise ValueError(f"`{name}` must be numbers, got the booleans {v!r}")
        means = jnp.asarray(means)
        if means.ndim != 2:
            raise ValueError(f"`means` must have shape (K, d), got {means.shape}")
        if not jnp.issubdtype(means.dtype, jnp.floating):
            # integer means would cast the weights and stds to integers (stds 0.3 -> 0)
            means = means.astype(jnp.result_type(float))
        weights = jnp.asarray(weights, means.dtype)
        if weights.shape != means.shape[:1]:
            raise ValueError(f"`weights` must have shape ({means.shape[0]},), got {weights.shape}")
        stds = jnp.asarray(stds, means.dtype)
        if stds.ndim == 1:
            stds = jnp.broadcast_to(stds[:, None], means.shape)
        if stds.shape != means.shape:
            raise ValueError(f"`stds` must have shape (K,) or {means.shape}, got {stds.shape}")
        _check_values(weights, stds)
        self.weights = weights / jnp.sum(weights)
        self.means = means
        self.stds = stds

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _point(self, x: ArrayLike) -> tuple[Array, Array, Array, Array]:
        """One point `x` and the weights, means and stds in one float dtype: that of a floating
        `x` (a float32 point of a float64 mixture stays float32; it had failed under strict
        promotion), else the mixture's (an integer point had failed)."""
        x = jnp.asarray(x)
        if jnp.shape(x) != (self.dim,):
            raise ValueError(
                f"expected one point of shape ({self.dim},), got {jnp.shape(x)}; use jax.vmap "
                "to evaluate a batch"
            )
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else self.means.dtype
        w, mu, s = (a.astype(dtype) for a in (self.weights, self.means, self.stds))
        return x.astype(dtype), w, mu, s

    def _component_logp(self, x: Array, mu: Array, s: Array) -> Float[Array, " k"]:
        z = (x[None, :] - mu) / s
        return (
            -0.5 * jnp.sum(z**2, axis=1)
            - jnp.sum(jnp.log(s), axis=1)
            - 0.5 * self.dim * math.log(2 * math.pi)
        )

    def log_prob(self, x: Real[ArrayLike, " d"]) -> Float[Array, ""]:
        r"""$\log p(x)$ for one point (vmap for a batch)."""
        x, w, mu, s = self._point(x)
        return jax.nn.logsumexp(self._component_logp(x, mu, s), b=w)

    def score(self, x: Real[ArrayLike, " d"]) -> Float[Array, " d"]:
        r"""$\nabla_x \log p(x) = \sum_k r_k(x)\,(\mu_k - x)/s_k^2$, $r_k$ the responsibilities."""
        x, w, mu, s = self._point(x)
        logr = jnp.log(w) + self._component_logp(x, mu, s)
        r = jax.nn.softmax(logr)
        return jnp.sum(r[:, None] * (mu - x[None, :]) / s**2, axis=0)

    def sample(self, n: int, *, key: PRNGKeyArray) -> Float[Array, "n d"]:
        """`n` i.i.d. draws: a component from the weights, then a Gaussian draw."""
        n = check_positive_int("n", n)  # True had drawn one point, 2.0 failed in jr.choice
        kc, kz = jr.split(key)
        k = jr.choice(kc, self.weights.shape[0], (n,), p=self.weights)
        z = standard_normal(kz, (n, self.dim), self.means.dtype)
        return self.means[k] + self.stds[k] * z


def _check_values(weights: Array, stds: Array) -> None:
    """Refuse weights and stds that make every density NaN (concrete values only)."""
    check_positive("weights", weights, allow_zero=True)
    check_positive("stds", stds)
    if not isinstance(weights, jax.core.Tracer) and not np.sum(np.asarray(weights)) > 0:
        raise ValueError(f"`weights` must not all be zero, got {weights}")
