r"""The EDM parameterisation (Karras et al. 2022): noise level sigma as time, the preconditioned
denoiser, its loss, the rho-grid and the Heun sampler with optional stochastic churn.

In EDM form the data are perturbed as $x = y + \sigma n$, $n\sim\mathcal N(0, I)$
($\alpha = 1$): a VP/sub-VP/VE model with $x_t = \alpha(t)x_0 + \sigma(t)\varepsilon$ is the
same model in the variables $\tilde x = x_t/\alpha(t)$,
$\tilde\sigma = \sigma(t)/\alpha(t) = e^{-\lambda(t)}$ (`ScoreDenoiser`). A denoiser is called
``denoiser(sigma, x)`` for one sample, like a score ``score(t, x)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ..core import integrate_ode
from ..core._checks import (
    as_float,
    check_int,
    check_model_shape,
    check_positive,
    check_positive_int,
    concrete_scalar,
)
from ..core._normals import standard_normal
from ..data import GaussianMixture
from ._samplers import SampleResult, check_shape
from ._sde import AbstractDiffusionSDE, as_state_dtype

# (sigma, x) -> E[y | y + sigma n = x] for one sample
DenoiserFn = Callable[[Any, Array], Array]
# (key, shape, sigma_max, dtype) -> draws from the prior at sigma_max
PriorFn = Callable[..., Array]


# -------------------------------------------------------------------------- converters (exact)
def denoiser_to_score(denoised: Array, x: Array, sigma: float | Array) -> Array:
    r"""The score from a denoiser output: $\nabla_x\log p_\sigma(x) = (D(x, \sigma) - x)/\sigma^2$.

    Tweedie's formula in EDM form ($x = y + \sigma n$, $D = \mathbb E[y\mid x]$).

    Args:
        denoised: $D(x, \sigma)$, any shape ``(...)``.
        x: the noisy point, `denoised`'s shape.
        sigma: the noise level $\sigma > 0$, a scalar (or broadcasting against `x`).

    Returns:
        The score, `x`'s shape.

    Examples:
        For data $\mathcal N(0, s^2 I)$, $D = \frac{s^2}{s^2 + \sigma^2}x$ and the score is
        $-x/(s^2+\sigma^2)$:

        >>> from sdeml.diffusion import denoiser_to_score, score_to_denoiser
        >>> s2, sigma, x = 0.25, 0.5, jnp.array([1.0, -2.0])
        >>> score = denoiser_to_score(s2 / (s2 + sigma**2) * x, x, sigma)
        >>> [round(float(v), 6) for v in score]
        [-2.0, 4.0]
        >>> bool(jnp.allclose(score_to_denoiser(score, x, sigma), 0.5 * x))   # the inverse
        True

    References:
        Karras et al., NeurIPS 2022, eq. (3). Efron, Tweedie's Formula and Selection Bias,
        JASA 2011.
    """
    return (denoised - x) / sigma**2


def score_to_denoiser(score: Array, x: Array, sigma: float | Array) -> Array:
    r"""The denoiser from a score: $D(x, \sigma) = x + \sigma^2\nabla_x\log p_\sigma(x)$.

    Args:
        score: $\nabla_x\log p_\sigma(x)$, any shape ``(...)``.
        x: the noisy point, `score`'s shape.
        sigma: the noise level $\sigma > 0$, a scalar (or broadcasting against `x`).

    Returns:
        $D(x, \sigma)$, `x`'s shape.

    Examples:
        Data $\mathcal N(0, s^2 I)$: $p_\sigma = \mathcal N(0, (s^2+\sigma^2)I)$ and
        $D = \frac{s^2}{s^2+\sigma^2}x$:

        >>> from sdeml.diffusion import score_to_denoiser
        >>> s2, sigma, x = 0.25, 0.5, jnp.array([1.0, -2.0])
        >>> [round(float(v), 6) for v in score_to_denoiser(-x / (s2 + sigma**2), x, sigma)]
        [0.5, -1.0]

    References:
        Karras et al., NeurIPS 2022, eq. (3).
    """
    return x + sigma**2 * score


def denoiser_to_eps(denoised: Array, x: Array, sigma: float | Array) -> Array:
    r"""The noise prediction from a denoiser output: $\hat\varepsilon = (x - D)/\sigma$.

    So that $x = D + \sigma\hat\varepsilon$ ($\hat\varepsilon = \mathbb E[n\mid x]$).

    Args:
        denoised: $D(x, \sigma)$, any shape ``(...)``.
        x: the noisy point, `denoised`'s shape.
        sigma: the noise level $\sigma > 0$, a scalar (or broadcasting against `x`).

    Returns:
        $\hat\varepsilon$, `x`'s shape.

    Examples:
        >>> from sdeml.diffusion import denoiser_to_eps, eps_to_denoiser
        >>> x, d = jnp.array([1.0, -2.0]), jnp.array([0.5, -1.0])
        >>> [round(float(v), 6) for v in denoiser_to_eps(d, x, 0.5)]
        [1.0, -2.0]
        >>> bool(jnp.allclose(eps_to_denoiser(denoiser_to_eps(d, x, 0.5), x, 0.5), d))
        True
    """
    return (x - denoised) / sigma


def eps_to_denoiser(eps: Array, x: Array, sigma: float | Array) -> Array:
    r"""The denoiser from a noise prediction: $D = x - \sigma\hat\varepsilon$.

    Args:
        eps: the noise prediction $\hat\varepsilon$, any shape ``(...)``.
        x: the noisy point, `eps`'s shape.
        sigma: the noise level $\sigma > 0$, a scalar (or broadcasting against `x`).

    Returns:
        $D(x, \sigma)$, `x`'s shape.

    Examples:
        >>> from sdeml.diffusion import eps_to_denoiser
        >>> x = jnp.array([1.0, -2.0])
        >>> [round(float(v), 6) for v in eps_to_denoiser(x, x, 0.5)]   # eps = x
        [0.5, -1.0]
    """
    return x - sigma * eps


# -------------------------------------------------------------------------- preconditioning
def _check_sigma_data(sigma_data: float) -> None:
    # finite, > 0, not a bool (traced values pass)
    check_positive("sigma_data", sigma_data)


def edm_scalings(
    sigma: Float[ArrayLike, "..."], sigma_data: float = 0.5
) -> tuple[Array, Array, Array, Array]:
    r"""The preconditioning coefficients of Karras et al. (2022), Table 1.

    $$c_\text{skip} = \frac{\sigma_d^2}{\sigma^2+\sigma_d^2},\quad
    c_\text{out} = \frac{\sigma\sigma_d}{\sqrt{\sigma^2+\sigma_d^2}},\quad
    c_\text{in} = \frac{1}{\sqrt{\sigma^2+\sigma_d^2}},\quad
    c_\text{noise} = \tfrac14\ln\sigma,$$

    chosen so that the network's input and its training target have unit variance at every
    $\sigma$ when the data have standard deviation $\sigma_d$.

    Args:
        sigma: the noise level $\sigma > 0$, a scalar (an array of any shape works elementwise).
        sigma_data: $\sigma_d$, the data's standard deviation.

    Returns:
        ``(c_skip, c_out, c_in, c_noise)``, each of `sigma`'s shape.

    Examples:
        >>> from sdeml.diffusion import edm_scalings
        >>> c_skip, c_out, c_in, c_noise = edm_scalings(0.5, sigma_data=0.5)
        >>> round(float(c_skip), 4), round(float(c_out), 4), round(float(c_in), 4)
        (0.5, 0.3536, 1.4142)
        >>> # unit-variance input: c_in^2 (sigma^2 + sigma_d^2) = 1 at every sigma
        >>> c_in = edm_scalings(jnp.array([0.01, 1.0, 80.0]))[2]
        >>> bool(jnp.allclose(c_in**2 * (jnp.array([0.01, 1.0, 80.0]) ** 2 + 0.25), 1.0))
        True

    References:
        Karras, Aittala, Aila & Laine, Elucidating the Design Space of Diffusion-Based
        Generative Models, NeurIPS 2022, Table 1 and appendix B.6. arXiv:2206.00364
    """
    _check_sigma_data(sigma_data)
    # sigma <= 0 gave c_noise = log(sigma) = NaN or -inf (and a negative c_out); traced passes
    check_positive("sigma", sigma)
    sigma = jnp.asarray(sigma)
    s2 = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / s2
    c_out = sigma * sigma_data / jnp.sqrt(s2)
    c_in = 1.0 / jnp.sqrt(s2)
    c_noise = 0.25 * jnp.log(sigma)
    return c_skip, c_out, c_in, c_noise


def edm_loss_weight(sigma: Float[ArrayLike, "..."], sigma_data: float = 0.5) -> Array:
    r"""EDM's loss weight $\lambda(\sigma) = 1/c_\text{out}(\sigma)^2$.

    $$\lambda(\sigma) = \frac{\sigma^2 + \sigma_d^2}{(\sigma\sigma_d)^2};$$

    with it the loss of $D$ is the unit-weighted loss of the raw network $F$ against its
    effective target.

    Args:
        sigma: noise levels $\sigma > 0$, any shape ``(...)``.
        sigma_data: $\sigma_d$, the data's standard deviation.

    Returns:
        $\lambda(\sigma)$, `sigma`'s shape.

    Examples:
        >>> from sdeml.diffusion import edm_loss_weight, edm_scalings
        >>> [round(float(v), 6) for v in edm_loss_weight(jnp.array([0.1, 1.0, 10.0]))]
        [104.0, 5.0, 4.01]
        >>> c_out = edm_scalings(2.0)[1]
        >>> round(float(edm_loss_weight(2.0) * c_out**2), 6)
        1.0

    References:
        Karras et al., NeurIPS 2022, eq. (8) and Table 1. arXiv:2206.00364
    """
    _check_sigma_data(sigma_data)
    check_positive("sigma", sigma)  # sigma = 0: an infinite weight
    sigma = jnp.asarray(sigma)
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


class EDMDenoiser(eqx.Module):
    r"""The preconditioned denoiser $D_\theta(x, \sigma) = c_\text{skip}x + c_\text{out}
    F_\theta(c_\text{noise}, c_\text{in}x)$ (Karras et al. 2022, eq. (7) and Table 1).

    Args:
        net: an equinox module ``net(c_noise, x_in, *, key=None)`` returning ``x``'s shape (e.g.
            `sdeml.nn.TimeMLP`, whose time input receives $c_\text{noise} = \tfrac14\ln\sigma$).
        sigma_data: $\sigma_d$, the data's standard deviation (0.5 in EDM; the 2-D toys: ~0.5-1).

    Returns:
        A module ``denoiser(sigma, x, *, key=None) -> D(x, sigma)`` for one sample; ``.score``
        and ``.eps`` give the other readings (exact conversions).

    Examples:
        >>> net = sdeml.nn.TimeMLP(2, width=16, depth=1, embed_scale=1.0, key=jr.key(0))
        >>> den = EDMDenoiser(net)
        >>> den(1.0, jnp.zeros(2)).shape
        (2,)

    References:
        Karras et al., NeurIPS 2022, sec. 5 and Table 1. arXiv:2206.00364
    """

    net: Callable[..., Array]
    sigma_data: float = eqx.field(static=True)

    def __init__(self, net: Callable[..., Array], sigma_data: float = 0.5):
        _check_sigma_data(sigma_data)
        self.net, self.sigma_data = net, float(sigma_data)

    def __call__(
        self,
        sigma: Float[ArrayLike, ""],
        x: Float[Array, "..."],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "..."]:
        sigma = jnp.asarray(sigma, x.dtype)
        c_skip, c_out, c_in, c_noise = edm_scalings(sigma, self.sigma_data)
        xin = c_in * x
        out = self.net(c_noise, xin, key=key) if key is not None else self.net(c_noise, xin)
        if jnp.shape(out) != jnp.shape(x):
            raise ValueError(f"the network returned shape {jnp.shape(out)} for x of {jnp.shape(x)}")
        return c_skip * x + c_out * out

    def score(self, sigma: Float[ArrayLike, ""], x: Float[Array, "..."]) -> Float[Array, "..."]:
        r"""$\nabla_x\log p_\sigma(x) = (D - x)/\sigma^2$."""
        return denoiser_to_score(self(sigma, x), x, jnp.asarray(sigma, x.dtype))

    def eps(self, sigma: Float[ArrayLike, ""], x: Float[Array, "..."]) -> Float[Array, "..."]:
        r"""$\hat\varepsilon = (x - D)/\sigma$."""
        return denoiser_to_eps(self(sigma, x), x, jnp.asarray(sigma, x.dtype))


class MixtureDenoiser(eqx.Module):
    r"""The exact ideal denoiser $D(x, \sigma) = \mathbb E[y\mid y + \sigma n = x]$ of Gaussian-
    mixture data: ground truth for samplers in EDM form.

    $p_\sigma$ is the mixture with component standard deviations $\sqrt{s_k^2+\sigma^2}$, and
    $D = x + \sigma^2\nabla\log p_\sigma(x)$.

    Args:
        mixture: the data law, a `sdeml.data.GaussianMixture` in dimension $d$.

    Returns:
        A module ``denoiser(sigma, x) -> D(x, sigma)`` for one sample ``x`` of shape ``(d,)``;
        ``.marginal(sigma)`` is the `GaussianMixture` $p_\sigma$.

    Examples:
        One Gaussian $\mathcal N(0, s^2 I)$: $D(x, \sigma) = \frac{s^2}{s^2+\sigma^2}x$.

        >>> from sdeml.data import GaussianMixture
        >>> from sdeml.diffusion import MixtureDenoiser
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.array([0.5]))
        >>> den = MixtureDenoiser(data)
        >>> [round(float(v), 6) for v in den(0.5, jnp.array([1.0, -2.0]))]  # s = sigma: D = x/2
        [0.5, -1.0]
        >>> round(float(den.marginal(1.2).stds[0, 0]), 6)           # sqrt(0.5^2 + 1.2^2)
        1.3

    References:
        Karras et al., NeurIPS 2022, eq. (2)-(3) (the ideal denoiser).
    """

    mixture: GaussianMixture

    def marginal(self, sigma: Float[ArrayLike, ""]) -> GaussianMixture:
        """The law $p_\\sigma$ of $y + \\sigma n$."""
        m = self.mixture
        return GaussianMixture(m.weights, m.means, jnp.sqrt(m.stds**2 + jnp.asarray(sigma) ** 2))

    def __call__(self, sigma: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        sigma = jnp.asarray(sigma, x.dtype)
        return score_to_denoiser(self.marginal(sigma).score(x), x, sigma)


class ScoreDenoiser(eqx.Module):
    r"""A VP/sub-VP/VE score model read as an EDM denoiser (exact change of variables).

    With $x_t = \alpha(t)x_0 + \sigma(t)\varepsilon$, the scaled state $\tilde x = x_t/\alpha$
    is $x_0 + \tilde\sigma\varepsilon$ with $\tilde\sigma = \sigma/\alpha = e^{-\lambda(t)}$, so

    $$D(\tilde x, \tilde\sigma) = \hat x_0 = \frac{x_t + \sigma(t)^2 s(t, x_t)}{\alpha(t)},\qquad
    t = \lambda^{-1}(-\ln\tilde\sigma),\ x_t = \alpha(t)\tilde x.$$

    Any EDM sampler (`edm_sampler`, `unipc_edm_sampler`) then samples the VP/VE model; its
    $\tilde\sigma$ range is ``sde.sigma(t)/sde.alpha(t)`` at $t=\epsilon$ and $t=T$.

    Args:
        score_fn: ``score_fn(t, x)`` for one sample ``x`` of shape ``(d,)`` (a `ScoreModel`, a
            `MixtureScore`, ...).
        sde: the forward SDE it was trained for.

    Returns:
        A module ``denoiser(sigma, x) -> D(x, sigma)`` for one sample; ``.sigma_of(t)`` is
        $\tilde\sigma(t)$.

    Examples:
        The exact VP score of a mixture, read as a denoiser, is the mixture's ideal denoiser:

        >>> from sdeml.diffusion import MixtureDenoiser, MixtureScore, ScoreDenoiser, VPSDE
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> den = ScoreDenoiser(MixtureScore(gm, sde), sde)
        >>> x = jnp.array([1.0, -2.0])
        >>> bool(jnp.allclose(den(0.7, x), MixtureDenoiser(gm)(0.7, x)))
        True
        >>> round(float(den.sigma_of(1e-3)), 4), round(float(den.sigma_of(1.0)), 1)  # its range
        (0.0105, 152.2)

    References:
        Karras et al., NeurIPS 2022, sec. 2 and Table 1 (VP and VE in the common framework).
    """

    score_fn: Callable[[Any, Array], Array]
    sde: AbstractDiffusionSDE

    def sigma_of(self, t: Float[ArrayLike, ""]) -> Array:
        r"""$\tilde\sigma(t) = \sigma(t)/\alpha(t)$."""
        return jnp.exp(-self.sde.log_snr(t))

    def __call__(self, sigma: Float[ArrayLike, ""], x: Float[Array, "..."]) -> Float[Array, "..."]:
        sigma = jnp.asarray(sigma, x.dtype)
        t = self.sde.t_from_log_snr(-jnp.log(sigma))
        a, s = self.sde.alpha(t), self.sde.sigma(t)
        xt = a * x
        return (xt + s**2 * self.score_fn(t, xt)) / a


# -------------------------------------------------------------------------- training
def _check_pos(name: str, value: Any) -> None:
    check_positive(name, value)  # finite, > 0, not a bool (True was read as 1)


def edm_sigma_sample(
    n: int, *, p_mean: float = -1.2, p_std: float = 1.2, dtype=None, key: PRNGKeyArray
) -> Float[Array, " n"]:
    r"""Training noise levels $\ln\sigma\sim\mathcal N(P_\text{mean}, P_\text{std}^2)$ (EDM's
    log-normal proposal, which spends the training budget where the loss can still be reduced).

    Args:
        n: how many.
        p_mean, p_std: $P_\text{mean}$ and $P_\text{std} > 0$ (EDM: -1.2 and 1.2).
        dtype: float dtype.
        key: PRNG key.

    Returns:
        ``(n,)`` noise levels.

    Examples:
        >>> from sdeml.diffusion import edm_sigma_sample
        >>> sigma = edm_sigma_sample(10_000, key=jr.key(0))
        >>> sigma.shape, bool(jnp.all(sigma > 0))
        ((10000,), True)
        >>> round(float(jnp.mean(jnp.log(sigma))), 1), round(float(jnp.std(jnp.log(sigma))), 1)
        (-1.2, 1.2)

    References:
        Karras et al., NeurIPS 2022, sec. 5 and Table 1.
    """
    n = check_positive_int("n", n)
    _check_pos("p_std", p_std)
    return jnp.exp(p_mean + p_std * standard_normal(key, (n,), dtype))


# (key, sigma (b,), batch shape (b, ...)) -> noise of that shape
NoiseFn = Callable[[PRNGKeyArray, Array, tuple[int, ...]], Array]


def gaussian_noise(key: PRNGKeyArray, sigma: Array, shape: tuple[int, ...]) -> Array:
    r"""EDM's perturbation $\sigma n$, $n\sim\mathcal N(0, I)$, one $\sigma$ per sample.

    The default `noise_fn` of `edm_loss` and of the consistency functions.

    Args:
        key: PRNG key.
        sigma: the noise levels, shape ``(b,)``.
        shape: the batch's shape ``(b, ...)``.

    Returns:
        Noise of shape `shape` (dtype `sigma`'s), sample ``i`` scaled by ``sigma[i]``.

    Examples:
        >>> from sdeml.diffusion import gaussian_noise
        >>> n = gaussian_noise(jr.key(0), jnp.array([1.0, 10.0]), (2, 10_000))
        >>> n.shape, [round(float(s), 1) for s in jnp.std(n, axis=1)]
        ((2, 10000), [1.0, 9.9])
    """
    s = sigma.reshape((shape[0],) + (1,) * (len(shape) - 1))
    return s * standard_normal(key, shape, sigma.dtype)


def edm_loss(
    denoiser: Callable[..., Array],
    batch: Real[ArrayLike, "b ..."],
    *,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_data: float = 0.5,
    noise_fn: NoiseFn = gaussian_noise,
    key: PRNGKeyArray,
) -> Float[Array, ""]:
    r"""The EDM denoising loss $\mathbb E_{\sigma, y, n}\big[\lambda(\sigma)
    \|D_\theta(y + n, \sigma) - y\|^2\big]$ with
    $\ln\sigma\sim\mathcal N(P_\text{mean}, P_\text{std}^2)$.

    Summed over a sample's entries, averaged over the batch; $\lambda = $ `edm_loss_weight`.
    The perturbation $n$ is Gaussian, $\sigma\mathcal N(0, I)$, unless `noise_fn` draws it from
    another kernel at the same $\sigma$ (PFGM++: `sdeml.pfgm.PFGMPPKernel.noise`).

    Args:
        denoiser: ``denoiser(sigma, x)`` for one sample (an `EDMDenoiser`: the key also reaches
            its network, for dropout).
        batch: data $y$, shape ``(b, ...)``.
        p_mean, p_std: the log-normal proposal of $\sigma$.
        sigma_data: $\sigma_d$ of the weighting.
        noise_fn: ``noise_fn(key, sigma (b,), shape) -> n``.
        key: PRNG key.

    Returns:
        The scalar loss.

    Examples:
        For data $\mathcal N(0, \sigma_d^2 I)$ the ideal denoiser's weighted error is exactly 1
        per dimension at every $\sigma$, so its loss is $d$ up to Monte Carlo error:

        >>> from sdeml.data import GaussianMixture
        >>> from sdeml.diffusion import EDMDenoiser, MixtureDenoiser, edm_loss
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.array([0.5]))
        >>> y = data.sample(4096, key=jr.key(0))                  # (4096, 2), sigma_d = 0.5
        >>> loss = edm_loss(MixtureDenoiser(data), y, key=jr.key(1))
        >>> loss.shape, bool(abs(float(loss) - 2.0) < 0.1)
        ((), True)
        >>> net = sdeml.nn.TimeMLP(2, width=16, depth=1, embed_scale=1.0, key=jr.key(2))
        >>> den = EDMDenoiser(net)
        >>> bool(edm_loss(den, y, key=jr.key(1)) > loss)          # an untrained network
        True

    References:
        Karras et al., NeurIPS 2022, eq. (2), (8) and Table 1.
    """
    batch = jnp.asarray(batch)
    if batch.ndim < 2:
        raise ValueError(f"`batch` must have shape (b, ...) with a batch axis, got {batch.shape}")
    batch = as_float(batch)  # integer data: the noise is float
    if not isinstance(denoiser, EDMDenoiser):  # (an EDMDenoiser's net is checked by its own)
        check_model_shape(denoiser, batch[0], "denoiser")  # a deep mixture traceback before
    b = batch.shape[0]
    ks, kn, km = jr.split(key, 3)
    sigma = edm_sigma_sample(b, p_mean=p_mean, p_std=p_std, dtype=batch.dtype, key=ks)
    x = batch + noise_fn(kn, sigma, batch.shape)
    if isinstance(denoiser, EDMDenoiser):
        out = jax.vmap(lambda s, x_, k: denoiser(s, x_, key=k))(sigma, x, jr.split(km, b))
    else:
        out = jax.vmap(denoiser)(sigma, x)
    per = jnp.sum((out - batch).reshape(b, -1) ** 2, axis=1)
    return jnp.mean(edm_loss_weight(sigma, sigma_data) * per)


# -------------------------------------------------------------------------- sampling
def check_sigma_range(sigma_min: Any, sigma_max: Any, rho: Any = 7.0) -> None:
    """Raise one `ValueError` naming the argument unless ``0 < sigma_min < sigma_max``, rho > 0."""
    for name, v in (("sigma_min", sigma_min), ("sigma_max", sigma_max), ("rho", rho)):
        # a bool was read as 1 (rho=True: a uniform grid) and an infinite sigma_max gave a
        # grid of NaN
        if isinstance(v, bool | np.bool_):
            raise ValueError(f"`{name}` must be a number, got the boolean {v!r}")
        if (c := concrete_scalar(v)) is not None and not math.isfinite(c):
            raise ValueError(f"`{name}` must be finite, got {v!r}")
    lo, hi, r = (concrete_scalar(v) for v in (sigma_min, sigma_max, rho))
    if lo is not None and not lo > 0:
        raise ValueError(f"`sigma_min` must be positive, got {sigma_min}")
    if lo is not None and hi is not None:
        if not lo < hi:
            raise ValueError(
                f"`sigma_min` must be below `sigma_max`, got sigma_min={sigma_min}, "
                f"sigma_max={sigma_max}"
            )
    if r is not None and not r > 0:
        raise ValueError(f"`rho` must be positive, got {rho}")


def _check_steps(n_steps: Any, least: int = 1, what: str = "") -> int:
    try:
        return check_int("n_steps", n_steps, least)
    except ValueError:
        if not what:
            raise
        raise ValueError(f"`n_steps` must be an int >= {least}{what}, got {n_steps!r}") from None


def edm_time_grid(
    n_steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    *,
    append_zero: bool = False,
    dtype=None,
) -> Float[Array, " m"]:
    r"""The noise levels $\sigma_0 = \sigma_\max > \dots > \sigma_M = \sigma_\min$ of EDM.

    $$\sigma_i = \Big(\sigma_\max^{1/\rho} + \tfrac iM\big(\sigma_\min^{1/\rho} -
    \sigma_\max^{1/\rho}\big)\Big)^\rho,\qquad i = 0, \dots, M,$$

    uniform in $\sigma^{1/\rho}$; $\rho = 7$ shortens the steps near $\sigma_\min$, where the
    trajectories curve most ($\rho = 1$: uniform in $\sigma$; $\rho\to\infty$: uniform in
    $\ln\sigma$).

    Args:
        n_steps: $M\ge 1$, the number of intervals.
        sigma_min, sigma_max: ``0 < sigma_min < sigma_max``.
        rho: $\rho > 0$.
        append_zero: also append $\sigma_{M+1} = 0$ (EDM's final denoising step).
        dtype: float dtype.

    Returns:
        ``(M + 1,)`` noise levels (``M + 2`` with `append_zero`), decreasing.

    Examples:
        >>> from sdeml.diffusion import edm_time_grid
        >>> sig = edm_time_grid(18, 0.002, 80.0)   # EDM's CIFAR-10 grid
        >>> sig.shape, float(sig[0]), float(sig[-1])
        ((19,), 80.0, 0.002)
        >>> bool(jnp.all(jnp.diff(sig) < 0)), edm_time_grid(18, append_zero=True).shape
        (True, (20,))
        >>> # uniform in sigma^(1/rho)
        >>> bool(jnp.allclose(jnp.diff(sig ** (1 / 7)), (0.002 ** (1 / 7) - 80 ** (1 / 7)) / 18))
        True

    References:
        Karras et al., NeurIPS 2022, eq. (5) and Table 1.
    """
    n_steps = _check_steps(n_steps)
    check_sigma_range(sigma_min, sigma_max, rho)
    dt_ = jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)
    u = jnp.linspace(0.0, 1.0, n_steps + 1, dtype=dt_)
    hi = jnp.asarray(sigma_max, dt_) ** (1.0 / rho)
    lo = jnp.asarray(sigma_min, dt_) ** (1.0 / rho)
    sig = (hi + u * (lo - hi)) ** rho
    sig = sig.at[0].set(jnp.asarray(sigma_max, dt_)).at[-1].set(jnp.asarray(sigma_min, dt_))
    if append_zero:
        sig = jnp.concatenate([sig, jnp.zeros(1, dt_)])
    return sig


def gaussian_prior(
    shape: tuple[int, ...], sigma_max: Float[ArrayLike, ""], *, dtype=None, key: PRNGKeyArray
) -> Array:
    r"""Draws of EDM's prior $\mathcal N(0, \sigma_\max^2 I)$ (PFGM++ swaps in its own).

    The default `prior` of `edm_sampler`, `unipc_edm_sampler` and `consistency_sampler`.

    Args:
        shape: ``(n_samples, *sample_shape)``.
        sigma_max: $\sigma_\max$, a scalar.
        dtype: float dtype.
        key: PRNG key.

    Returns:
        Draws of shape `shape`.

    Examples:
        >>> from sdeml.diffusion import gaussian_prior
        >>> x_T = gaussian_prior((10_000, 2), 80.0, key=jr.key(0))
        >>> x_T.shape, round(float(jnp.std(x_T)) / 80.0, 2)
        ((10000, 2), 1.0)

    References:
        Karras et al., NeurIPS 2022, Algorithm 1.
    """
    z = standard_normal(key, shape, dtype)
    return jnp.asarray(sigma_max, z.dtype) * z


def _start(prior, shape, sigma_max, x_T, dtype, key):
    shape = check_shape(shape)
    if x_T is None:
        x = prior(tuple(shape), sigma_max, dtype=dtype, key=key)
    else:
        x = jnp.asarray(x_T, dtype)
    if x.shape != tuple(shape):
        raise ValueError(f"`x_T` has shape {x.shape}, expected {tuple(shape)}")
    return x


def edm_sampler(
    denoiser: DenoiserFn,
    shape: tuple[int, ...],
    *,
    n_steps: int = 18,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    method: Literal["heun", "euler"] = "heun",
    s_churn: float = 0.0,
    s_noise: float = 1.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    denoise: bool = True,
    prior: PriorFn = gaussian_prior,
    x_T: Array | None = None,
    dtype=None,
    key: PRNGKeyArray,
) -> SampleResult:
    r"""EDM's sampler: Heun's method on the probability-flow ODE in $\sigma$, with optional churn.

    The ODE $\dfrac{dx}{d\sigma} = \dfrac{x - D(x, \sigma)}{\sigma}$ runs from $\sigma_\max$ down
    the $\rho$-grid (`edm_time_grid`, $M$ = `n_steps` intervals). Step $i$ (Algorithm 2):

    $$\gamma_i = \min\big(\tfrac{S_\text{churn}}M, \sqrt2 - 1\big)\,
    \mathbb 1[S_{t\min}\le\sigma_i\le S_{t\max}],\quad \hat\sigma = (1+\gamma_i)\sigma_i,\quad
    \hat x = x_i + \sqrt{\hat\sigma^2 - \sigma_i^2}\,S_\text{noise}\,z,$$
    $$d = \frac{\hat x - D(\hat x, \hat\sigma)}{\hat\sigma},\quad
    x' = \hat x + (\sigma_{i+1} - \hat\sigma)d,\quad
    x_{i+1} = \hat x + \tfrac12(\sigma_{i+1} - \hat\sigma)\Big(d +
    \frac{x' - D(x', \sigma_{i+1})}{\sigma_{i+1}}\Big).$$

    ``method="euler"`` stops at $x'$ (first order; in these variables this is DDIM). With
    ``denoise=True`` a last Euler step to $\sigma = 0$, i.e. $x = D(x_M, \sigma_\min)$, ends the
    run (EDM's $t_N = 0$). With $S_\text{churn} = 0$ (default) the sampler is deterministic
    given the prior draws. The churn noise is Gaussian whatever the prior.

    Args:
        denoiser: ``denoiser(sigma, x)`` for one sample ``x`` of shape `sample_shape`
            (`EDMDenoiser`, `MixtureDenoiser`, `ScoreDenoiser`, a PFGM++ denoiser).
        shape: ``(n_samples, *sample_shape)``.
        n_steps: $M\ge 1$.
        sigma_min, sigma_max, rho: the grid.
        method: ``"heun"`` (order 2, ``NFE = 2M + denoise``) or ``"euler"`` (order 1,
            ``NFE = M + denoise``).
        s_churn: $S_\text{churn}\ge 0$ (0: deterministic).
        s_noise: $S_\text{noise}$, the scale of the churn noise.
        s_tmin, s_tmax: churn only for $\sigma_i\in[S_{t\min}, S_{t\max}]$.
        denoise: end with $D(x_M, \sigma_\min)$.
        prior: ``prior(shape, sigma_max, *, dtype, key)``, default $\mathcal N(0,\sigma_\max^2 I)$.
        x_T: start from these prior draws instead, shape `shape`.
        dtype: float dtype of the state and the samples (default: `x_T`'s, else JAX's default
            float); the denoiser's output is cast to it, so the model may compute in another
            dtype.
        key: PRNG key (prior draws, then churn).

    Returns:
        A `SampleResult`: ``x`` of shape `shape`, ``nfe`` the denoiser evaluations.

    Examples:
        >>> from sdeml.diffusion import MixtureDenoiser, edm_sampler
        >>> gm = sdeml.data.gaussian_mixture_2d()
        >>> r = edm_sampler(MixtureDenoiser(gm), (1000, 2), n_steps=10, sigma_max=20.0,
        ...                 key=jr.key(0))
        >>> r.x.shape, int(r.nfe)                          # 2 M + 1 evaluations
        ((1000, 2), 21)
        >>> bool(jnp.allclose(r.x.mean(0), gm.weights @ gm.means, atol=0.15))  # the data's mean
        True

    References:
        Karras et al., NeurIPS 2022, Algorithms 1-2 and sec. 3-4. arXiv:2206.00364
    """
    n_steps = _check_steps(n_steps)
    check_sigma_range(sigma_min, sigma_max, rho)
    if method not in ("heun", "euler"):
        raise ValueError(f"`method` must be 'heun' or 'euler', got {method!r}")
    for name, v in (("s_churn", s_churn), ("s_noise", s_noise)):
        if isinstance(v, bool | np.bool_):  # True was read as 1
            raise ValueError(f"`{name}` must be a number, got the boolean {v!r}")
        if (c := concrete_scalar(v)) is not None and not c >= 0:
            raise ValueError(f"`{name}` must be >= 0, got {v}")
    tmin, tmax = concrete_scalar(s_tmin), concrete_scalar(s_tmax)
    if tmin is not None and tmax is not None and tmin > tmax:
        raise ValueError(f"`s_tmin` must not exceed `s_tmax`, got {s_tmin}, {s_tmax}")
    k0, kc = jr.split(key)
    x = _start(prior, shape, sigma_max, x_T, dtype, k0)
    denoiser = as_state_dtype(denoiser)
    check_model_shape(denoiser, x[0], "denoiser")
    dt_ = x.dtype
    sig = edm_time_grid(n_steps, sigma_min, sigma_max, rho, dtype=dt_)
    den_b = jax.vmap(denoiser, in_axes=(None, 0))
    gamma_max = min(s_churn / n_steps, math.sqrt(2.0) - 1.0) if s_churn else 0.0
    heun = method == "heun"

    def step(x, inp):
        i, k = inp
        s_cur, s_next = sig[i], sig[i + 1]
        if gamma_max:
            on = (s_cur >= s_tmin) & (s_cur <= s_tmax)
            gam = jnp.where(on, gamma_max, 0.0)
            s_hat = s_cur * (1.0 + gam)
            z = standard_normal(k, x.shape, dt_)
            # sqrt(s_hat^2 - s_cur^2) written so that it cannot round below zero (XLA may fuse
            # the difference of squares into an FMA: -1e-17 where gam = 0, and a NaN sample)
            x = x + s_cur * jnp.sqrt(gam * (2.0 + gam)) * s_noise * z
        else:
            s_hat = s_cur
        d = (x - den_b(s_hat, x)) / s_hat
        x_eul = x + (s_next - s_hat) * d
        if not heun:
            return x_eul, None
        d2 = (x_eul - den_b(s_next, x_eul)) / s_next
        return x + 0.5 * (s_next - s_hat) * (d + d2), None

    x, _ = jax.lax.scan(step, x, (jnp.arange(n_steps), jr.split(kc, n_steps)))
    nfe = n_steps * (2 if heun else 1)
    if denoise:
        x = den_b(sig[-1], x)
        nfe += 1
    return SampleResult(x, jnp.asarray(nfe))


def edm_probability_flow(
    denoiser: DenoiserFn,
    x_T: Float[Array, "n ..."],
    sigma_max: float,
    sigma_min: float,
    *,
    solver: str = "tsit5",
    rtol: float = 1e-6,
    atol: float = 1e-6,
    n_steps: int | None = None,
) -> SampleResult:
    r"""The probability-flow ODE in $\sigma$ solved through `sdeml.core.integrate_ode`.

    In $u = \ln\sigma$ the ODE $dx/d\sigma = (x - D)/\sigma$ reads
    $\dfrac{dx}{du} = x - D(x, e^u)$, smooth at every scale; it is integrated from
    $\ln\sigma_\max$ down to $\ln\sigma_\min$ (adaptive by default). A tight solve is the
    reference of the samplers' convergence tests.

    Args:
        denoiser: ``denoiser(sigma, x)`` for one sample ``x`` of shape ``(...)``.
        x_T: the batch of starting points at $\sigma_\max$, shape ``(n, ...)``; the state keeps
            its dtype (the denoiser's output is cast to it).
        sigma_max, sigma_min: ``0 < sigma_min < sigma_max``.
        solver, rtol, atol, n_steps: as `sdeml.core.solve_ode`.

    Returns:
        A `SampleResult` with the state at $\sigma_\min$, shape ``(n, ...)`` (no denoising
        step), and the solve's NFE.

    Examples:
        For data $\mathcal N(0, s^2 I)$ the flow is $x(\sigma) \propto \sqrt{s^2 + \sigma^2}$:

        >>> from sdeml.data import GaussianMixture
        >>> from sdeml.diffusion import MixtureDenoiser, edm_probability_flow
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.array([0.5]))
        >>> x_T = 20.0 * jr.normal(jr.key(0), (5, 2))
        >>> r = edm_probability_flow(MixtureDenoiser(data), x_T, 20.0, 0.01)
        >>> exact = x_T * jnp.sqrt((0.5**2 + 0.01**2) / (0.5**2 + 20.0**2))
        >>> bool(jnp.allclose(r.x, exact, atol=1e-5))
        True

    References:
        Karras et al., NeurIPS 2022, eq. (1) and (3). arXiv:2206.00364
    """
    check_sigma_range(sigma_min, sigma_max)
    den_b = jax.vmap(as_state_dtype(denoiser), in_axes=(None, 0))
    field = lambda u, y, args: y - den_b(jnp.exp(u), y)
    x_T = jnp.asarray(x_T)
    u0 = math.log(sigma_max) if isinstance(sigma_max, int | float) else jnp.log(sigma_max)
    u1 = math.log(sigma_min) if isinstance(sigma_min, int | float) else jnp.log(sigma_min)
    sol = integrate_ode(
        field,
        x_T,
        u0,
        u1,
        solver=solver,
        rtol=rtol,
        atol=atol,
        n_steps=n_steps,
        name="edm_probability_flow",
    )
    return SampleResult(sol.y_final, sol.nfe)
