"""Score, noise (epsilon) and data (x0) parameterisations, and conversions between them."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._sde import AbstractDiffusionSDE

PARAMETERISATIONS = ("score", "eps", "x0")


def eps_to_score(eps: Array, sigma: float | Array) -> Array:
    r"""The score from a noise prediction: $s = -\hat\varepsilon/\sigma$.

    From $x_t = \alpha x_0 + \sigma\varepsilon$: $\nabla\log p(x_t\mid x_0) = -\varepsilon/\sigma$,
    and $s = \mathbb E[-\varepsilon\mid x_t]/\sigma$.

    Args:
        eps: the noise prediction $\hat\varepsilon$, any shape ``(...)``.
        sigma: $\sigma(t)$, a scalar (or an array broadcasting against `eps`).

    Returns:
        The score, `eps`'s shape.

    Examples:
        >>> from sdeml.diffusion import eps_to_score, score_to_eps
        >>> eps = jnp.array([0.3, -1.2])
        >>> [round(float(v), 6) for v in eps_to_score(eps, 0.5)]
        [-0.6, 2.4]
        >>> bool(jnp.allclose(score_to_eps(eps_to_score(eps, 0.5), 0.5), eps))  # inverses
        True
    """
    return -eps / sigma


def score_to_eps(score: Array, sigma: float | Array) -> Array:
    r"""The noise prediction from a score: $\hat\varepsilon = -\sigma s$.

    The inverse of `eps_to_score`.

    Args:
        score: the score $s$, any shape ``(...)``.
        sigma: $\sigma(t)$, a scalar (or an array broadcasting against `score`).

    Returns:
        $\hat\varepsilon$, `score`'s shape.

    Examples:
        For $\mathcal N(0, I)$ data under VP, $p_t = \mathcal N(0, I)$ and $s(x) = -x$, so
        $\hat\varepsilon = \mathbb E[\varepsilon\mid x_t = x] = \sigma x$:

        >>> from sdeml.diffusion import VPSDE, score_to_eps
        >>> sigma, x = VPSDE().sigma(0.3), jnp.array([1.0, -2.0])
        >>> bool(jnp.allclose(score_to_eps(-x, sigma), sigma * x))
        True
    """
    return -sigma * score


def x0_to_score(x0: Array, x: Array, alpha: float | Array, sigma: float | Array) -> Array:
    r"""The score from a data prediction: $s = (\alpha\hat x_0 - x)/\sigma^2$ (Tweedie backwards).

    Args:
        x0: the data prediction $\hat x_0$, any shape ``(...)``.
        x: the noisy state $x_t$, `x0`'s shape.
        alpha, sigma: $\alpha(t)$ and $\sigma(t)$, scalars (or arrays broadcasting against `x`).

    Returns:
        The score, `x`'s shape.

    Examples:
        >>> from sdeml.diffusion import VPSDE, score_to_x0, x0_to_score
        >>> sde, x = VPSDE(), jnp.array([1.0, -2.0])
        >>> a, s = sde.alpha(0.3), sde.sigma(0.3)
        >>> # N(0, I) data: x0_hat = alpha x  (E[x_0 | x_t = x]) gives the score -x
        >>> bool(jnp.allclose(x0_to_score(a * x, x, a, s), -x))
        True
        >>> bool(jnp.allclose(score_to_x0(x0_to_score(a * x, x, a, s), x, a, s), a * x))
        True
    """
    return (alpha * x0 - x) / sigma**2


def score_to_x0(score: Array, x: Array, alpha: float | Array, sigma: float | Array) -> Array:
    r"""The data prediction from a score: $\hat x_0 = (x + \sigma^2 s)/\alpha$.

    Tweedie's formula: $\hat x_0 = \mathbb E[X_0\mid X_t = x]$ for the exact score.

    Args:
        score: the score $s(t, x)$, any shape ``(...)``.
        x: the noisy state $x_t$, `score`'s shape.
        alpha, sigma: $\alpha(t)$ and $\sigma(t)$, scalars (or arrays broadcasting against `x`).

    Returns:
        $\hat x_0$, `x`'s shape.

    Examples:
        For $\mathcal N(0, I)$ data under VP the score is $-x$ and the posterior mean is
        $\alpha x/(\alpha^2 + \sigma^2) = \alpha x$:

        >>> from sdeml.diffusion import VPSDE, score_to_x0
        >>> sde, x = VPSDE(), jnp.array([1.0, -2.0])
        >>> a, s = sde.alpha(0.3), sde.sigma(0.3)
        >>> bool(jnp.allclose(score_to_x0(-x, x, a, s), a * x))
        True

    References:
        Efron, Tweedie's Formula and Selection Bias, JASA 2011.
    """
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
            (one sample, e.g. ``(d,)``; `sdeml.nn.TimeMLP`, `sdeml.nn.UNet8`).
        sde: the forward SDE (gives $\alpha$, $\sigma$).
        parameterisation: ``"score"``, ``"eps"`` or ``"x0"``.

    Returns:
        A module ``model(t, x, *, key=None) -> score`` of ``x``'s shape, for one sample;
        ``model.eps`` and ``model.x0`` give the other two readings.

    Examples:
        >>> from sdeml.diffusion import ScoreModel, VPSDE
        >>> sde, x = VPSDE(), jnp.array([0.5, -1.0])
        >>> model = ScoreModel(sdeml.nn.TimeMLP(2, width=16, depth=1, key=jr.key(0)), sde, "eps")
        >>> model(0.5, x).shape
        (2,)
        >>> bool(jnp.allclose(model(0.5, x), -model.eps(0.5, x) / sde.sigma(0.5)))  # s = -eps/sigma
        True
        >>> # Tweedie: x0 = (x + sigma^2 s) / alpha
        >>> x0 = (x + sde.sigma(0.5) ** 2 * model(0.5, x)) / sde.alpha(0.5)
        >>> bool(jnp.allclose(model.x0(0.5, x), x0))
        True

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
        a, s = self._alpha_sigma(t, x)
        if self.parameterisation == "eps":
            return eps_to_score(out, s)
        return x0_to_score(out, x, a, s)

    def _alpha_sigma(self, t, x) -> tuple[Array, Array]:
        """alpha(t), sigma(t) in x's dtype: a float64 `t` (or the SDE's float64 constants) with
        a float32 `x` gives a float32 score, as the network's own output is in x's dtype."""
        dtype = jnp.result_type(x)
        return jnp.asarray(self.sde.alpha(t), dtype), jnp.asarray(self.sde.sigma(t), dtype)

    def eps(self, t, x, *, key: PRNGKeyArray | None = None) -> Array:
        r"""The noise prediction $\hat\varepsilon(t, x)$."""
        if self.parameterisation == "eps":
            return self.raw(t, x, key=key)
        return score_to_eps(self(t, x, key=key), self._alpha_sigma(t, x)[1])

    def x0(self, t, x, *, key: PRNGKeyArray | None = None) -> Array:
        r"""The denoised prediction $\hat x_0(t, x) = \mathbb E[X_0\mid X_t = x]$."""
        if self.parameterisation == "x0":
            return self.raw(t, x, key=key)
        return score_to_x0(self(t, x, key=key), x, *self._alpha_sigma(t, x))
