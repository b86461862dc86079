"""Exact marginals and scores of Gaussian-mixture data under any linear forward SDE."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ..data import GaussianMixture
from ._sde import AbstractDiffusionSDE


def mixture_marginal(
    mixture: GaussianMixture, sde: AbstractDiffusionSDE, t: ArrayLike
) -> GaussianMixture:
    r"""The law of $X_t$ when $X_0$ follows a Gaussian mixture: again a Gaussian mixture.

    $$p_t(x) = \sum_k w_k\,\mathcal N\big(x;\ \alpha(t)\mu_k,\ \mathrm{diag}(\alpha(t)^2 s_k^2 +
    \sigma(t)^2)\big).$$

    Args:
        mixture: the data law $p_0$, $K$ components in dimension $d$.
        sde: a forward SDE (VP, sub-VP, VE).
        t: a scalar time in $[0, T]$.

    Returns:
        The `GaussianMixture` $p_t$: weights ``(K,)``, means and stds ``(K, d)``.

    Examples:
        >>> from sdeml.diffusion import VPSDE, mixture_marginal
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> p_half = mixture_marginal(gm, sde, 0.5)
        >>> p_half.means.shape, p_half.stds.shape
        ((3, 2), (3, 2))
        >>> # its mean matches forward-noised data draws (Monte Carlo, 20000 points)
        >>> x_t, _ = sde.perturb(gm.sample(20_000, key=jr.key(0)), 0.5, key=jr.key(1))
        >>> bool(jnp.allclose(x_t.mean(0), p_half.weights @ p_half.means, atol=0.03))
        True
        >>> bool(jnp.allclose(mixture_marginal(gm, sde, 0.0).stds, gm.stds))   # p_0 = data
        True

    References:
        Song et al., ICLR 2021 (the transition kernels of eq. (29)); issue #7, item 6.
    """
    a, s = sde.alpha(t), sde.sigma(t)
    stds = jnp.sqrt(a**2 * mixture.stds**2 + s**2)
    return GaussianMixture(mixture.weights, a * mixture.means, stds)


class MixtureScore(eqx.Module):
    r"""The exact score $\nabla_x\log p_t(x)$ of Gaussian-mixture data (see `mixture_marginal`).

    A score function ``(t, x) -> (d,)`` usable by every sampler and by `log_likelihood`; with
    it, sampling must reproduce the mixture and the likelihood must equal the analytic density.

    Args:
        mixture: the data law, in dimension $d$.
        sde: the forward SDE.

    Returns:
        A module ``score(t, x) -> (d,)`` for one sample ``x`` of shape ``(d,)``;
        ``.log_prob(t, x)`` is $\log p_t(x)$.

    Examples:
        >>> from sdeml.diffusion import MixtureScore, VPSDE
        >>> score = MixtureScore(sdeml.data.eight_gaussians_mixture(), VPSDE())
        >>> x = jnp.array([0.3, -0.7])
        >>> score(0.5, x).shape
        (2,)
        >>> bool(jnp.allclose(score(0.5, x), jax.grad(lambda y: score.log_prob(0.5, y))(x)))
        True
    """

    mixture: GaussianMixture
    sde: AbstractDiffusionSDE

    def __call__(self, t: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        return mixture_marginal(self.mixture, self.sde, t).score(x)

    def log_prob(self, t: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, ""]:
        r"""$\log p_t(x)$, the exact marginal log-density."""
        return mixture_marginal(self.mixture, self.sde, t).log_prob(x)
