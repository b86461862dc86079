"""Score, noise (epsilon) and data (x0) parameterisations, and conversions between them."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._sde import AbstractDiffusionSDE

PARAMETERISATIONS = ("score", "eps", "x0")


def eps_to_score(eps: Array, sigma: float | Array) -> Array:
    r"""$s = -\hat\varepsilon/\sigma$ (from $x_t = \alpha x_0 + \sigma\varepsilon$)."""
    return -eps / sigma


def score_to_eps(score: Array, sigma: float | Array) -> Array:
    r"""$\hat\varepsilon = -\sigma s$."""
    return -sigma * score


def x0_to_score(x0: Array, x: Array, alpha: float | Array, sigma: float | Array) -> Array:
    r"""$s = (\alpha\hat x_0 - x)/\sigma^2$ (Tweedie's formula read backwards)."""
    return (alpha * x0 - x) / sigma**2


def score_to_x0(score: Array, x: Array, alpha: float | Array, sigma: float | Array) -> Array:
    r"""$\hat x_0 = (x + \sigma^2 s)/\alpha$ (Tweedie's formula, the posterior mean of $x_0$)."""
    return (x + sigma**2 * score) / alpha


class ScoreModel(eqx.Module):
    r"""A network read as a score $s_\theta(t, x)\approx\nabla_x\log p_t(x)$.

    ``parameterisation`` says what the network $F_\theta(t, x)$ outputs:

    * ``"score"``: $s = F_\theta$;
    * ``"eps"``: the noise, $s = -F_\theta/\sigma(t)$ (the DDPM parameterisation; the
      $\sigma^2$-weighted DSM loss becomes $\|F_\theta - \varepsilon\|^2$);
    * ``"x0"``: the clean data, $s = (\alpha(t) F_\theta - x)/\sigma(t)^2$.

    Args:
        net: an equinox module ``net(t, x, *, key=None)`` returning an array of ``x``'s shape
            (e.g. `sdeml.nn.TimeMLP`, `sdeml.nn.UNet8`).
        sde: the forward SDE (gives $\alpha$, $\sigma$).
        parameterisation: ``"score"``, ``"eps"`` or ``"x0"``.

    Returns:
        A module ``model(t, x, *, key=None) -> score``; ``model.eps`` and ``model.x0`` give the
        other two readings.

    Example:
        >>> net = sdeml.nn.TimeMLP(2, key=jr.key(0))
        >>> model = ScoreModel(net, VPSDE(), "eps"); model(0.5, jnp.zeros(2))

    References:
        Ho et al., DDPM, NeurIPS 2020; Kingma et al., Variational Diffusion Models, NeurIPS 2021.
    """

    net: Callable[..., Array]  # an equinox module, called as net(t, x[, key=key])
    sde: AbstractDiffusionSDE
    parameterisation: str = eqx.field(static=True)

    def __init__(
        self,
        net: Callable[..., Array],
        sde: AbstractDiffusionSDE,
        parameterisation: str = "eps",
    ):
        if parameterisation not in PARAMETERISATIONS:
            raise ValueError(
                f"unknown parameterisation {parameterisation!r}; valid: "
                f"{', '.join(PARAMETERISATIONS)}"
            )
        self.net, self.sde, self.parameterisation = net, sde, parameterisation

    def raw(self, t, x, *, key: PRNGKeyArray | None = None) -> Array:
        t = jnp.asarray(t, jnp.result_type(x))
        out = self.net(t, x, key=key) if key is not None else self.net(t, x)
        if jnp.shape(out) != jnp.shape(x):
            raise ValueError(f"the network returned shape {jnp.shape(out)} for x of {jnp.shape(x)}")
        return out

    def __call__(
        self, t: Float[ArrayLike, ""], x: Float[Array, "..."], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "..."]:
        out = self.raw(t, x, key=key)
        if self.parameterisation == "score":
            return out
        a, s = self.sde.alpha(t), self.sde.sigma(t)
        if self.parameterisation == "eps":
            return eps_to_score(out, s)
        return x0_to_score(out, x, a, s)

    def eps(self, t, x, *, key: PRNGKeyArray | None = None) -> Array:
        r"""The noise prediction $\hat\varepsilon(t, x)$."""
        if self.parameterisation == "eps":
            return self.raw(t, x, key=key)
        return score_to_eps(self(t, x, key=key), self.sde.sigma(t))

    def x0(self, t, x, *, key: PRNGKeyArray | None = None) -> Array:
        r"""The denoised prediction $\hat x_0(t, x) = \mathbb E[X_0\mid X_t = x]$."""
        if self.parameterisation == "x0":
            return self.raw(t, x, key=key)
        return score_to_x0(self(t, x, key=key), x, self.sde.alpha(t), self.sde.sigma(t))
