"""Denoising score matching losses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ..core._checks import as_float, check_model_shape
from ..core._normals import standard_normal
from ._param import ScoreModel
from ._sde import AbstractDiffusionSDE

WEIGHTINGS = ("sigma2", "likelihood")


def dsm_loss(
    model: Callable[..., Array],
    sde: AbstractDiffusionSDE,
    batch: Real[ArrayLike, "b ..."],
    *,
    weighting: Literal["sigma2", "likelihood"] = "sigma2",
    eps: float = 1e-5,
    stratified: bool = True,
    key: PRNGKeyArray,
) -> Float[Array, ""]:
    r"""Denoising score-matching loss with $\lambda(t)=\sigma(t)^2$ or likelihood weighting.

    With $t\sim U[\epsilon, T]$, $z\sim\mathcal N(0, I)$ and $x_t = \alpha(t)x_0 + \sigma(t)z$
    (so $\nabla\log p(x_t\mid x_0) = -z/\sigma$),

    $$\mathcal L = \mathbb E\Big[\frac{\lambda(t)}{\sigma(t)^2}\,
    \big\|\sigma(t)s_\theta(t, x_t) + z\big\|^2\Big],\qquad
    \lambda(t) = \sigma(t)^2\ (\texttt{"sigma2"})\ \text{or}\ g(t)^2\ (\texttt{"likelihood"}),$$

    summed over the dimensions of a sample and averaged over the batch. The likelihood weighting
    makes $\tfrac12(T-\epsilon)\mathcal L$ (the time integral, not its average) the
    score-matching part of a bound on $-\log p_\epsilon$ (Song et al. 2021b, Theorem 1); it has
    high variance near $t=\epsilon$.

    Args:
        model: a score function ``model(t, x)`` for one sample, returning ``x``'s shape (e.g. a
            `ScoreModel`; if it is, the key is also passed to the network for dropout).
        sde: the forward SDE.
        batch: data $x_0$, shape ``(b, ...)``.
        weighting: ``"sigma2"`` or ``"likelihood"``.
        eps: the small-time cut-off $\epsilon\in(0, 1)$, $\epsilon < T$.
        stratified: draw the $b$ times as one stratified sample of $[\epsilon, T]$ (lower-variance
            Monte Carlo, still unbiased).
        key: PRNG key.

    Returns:
        The scalar loss, shape ``()``.

    Examples:
        A zero score leaves $\mathbb E\|z\|^2 = d$; the exact score of the data does better:

        >>> from sdeml.diffusion import MixtureScore, VPSDE, dsm_loss
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> batch = gm.sample(4096, key=jr.key(0))                     # (4096, 2)
        >>> zero = dsm_loss(lambda t, x: jnp.zeros_like(x), sde, batch, key=jr.key(1))
        >>> bool(abs(zero - 2.0) < 0.1)
        True
        >>> bool(dsm_loss(MixtureScore(gm, sde), sde, batch, key=jr.key(1)) < 0.6 * zero)
        True

        Training minimises it over a `ScoreModel`'s parameters, e.g. with
        ``eqx.filter_value_and_grad(dsm_loss)(model, sde, batch, key=key)``.

    References:
        Vincent, A Connection Between Score Matching and Denoising Autoencoders, Neural Comp. 2011.
        Song et al., ICLR 2021, eq. (7). Song, Durkan, Murray & Ermon, Maximum Likelihood Training
        of Score-Based Diffusion Models, NeurIPS 2021.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
    sde.check_times(eps)
    batch = jnp.asarray(batch)
    if batch.ndim < 2:
        raise ValueError(f"`batch` must have shape (b, ...) with a batch axis, got {batch.shape}")
    batch = as_float(batch)  # integer data (pixel levels): jr.normal refused an int dtype
    check_model_shape(model, batch[0])
    b = batch.shape[0]
    kt, kz, km = jr.split(key, 3)
    u = jr.uniform(kt, (b,), batch.dtype)
    if stratified:
        u = (u + jnp.arange(b, dtype=batch.dtype)) / b
    t = eps + (sde.T - eps) * u
    z = standard_normal(kz, batch.shape, batch.dtype)
    mean, std = jax.vmap(sde.marginal)(batch, t)
    std_b = std.reshape((b,) + (1,) * (batch.ndim - 1))
    xt = mean + std_b * z
    if isinstance(model, ScoreModel):
        score = jax.vmap(lambda t_, x_, k_: model(t_, x_, key=k_))(t, xt, jr.split(km, b))
    else:
        score = jax.vmap(model)(t, xt)
    per = jnp.sum((std_b * score + z).reshape(b, -1) ** 2, axis=1)
    if weighting == "likelihood":
        per = per * (jax.vmap(sde.diffusion_coef)(t) / std) ** 2
    return jnp.mean(per)
