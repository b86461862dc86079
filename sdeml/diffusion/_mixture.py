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
        mixture: the data law $p_0$.
        sde: a forward SDE (VP, sub-VP, VE).
        t: a scalar time in $[0, T]$.

    Returns:
        The `GaussianMixture` $p_t$.

    Example:
        >>> p_half = mixture_marginal(sdeml.data.gaussian_mixture_2d(), VPSDE(), 0.5)

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
        mixture: the data law.
        sde: the forward SDE.

    Example:
        >>> score = MixtureScore(sdeml.data.eight_gaussians_mixture(), VPSDE())
        >>> score(0.5, jnp.zeros(2))
    """

    mixture: GaussianMixture
    sde: AbstractDiffusionSDE

    def __call__(self, t: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        return mixture_marginal(self.mixture, self.sde, t).score(x)

    def log_prob(self, t: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, ""]:
        r"""$\log p_t(x)$, the exact marginal log-density."""
        return mixture_marginal(self.mixture, self.sde, t).log_prob(x)
