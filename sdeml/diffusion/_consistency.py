r"""Consistency models distilled from a probability-flow ODE teacher (Song et al. 2023).

A consistency function maps any point of a PF-ODE trajectory to the trajectory's end:
$f(x_\sigma, \sigma) = x_{\sigma_\min}$ for every $\sigma\in[\sigma_\min, \sigma_\max]$. It is
parameterised so that $f(x, \sigma_\min) = x$ holds exactly,

$$f_\theta(x, \sigma) = c_\text{skip}(\sigma)\,x + c_\text{out}(\sigma)\,F_\theta(c_\text{noise},
c_\text{in}x),\quad c_\text{skip} = \frac{\sigma_d^2}{(\sigma-\sigma_\min)^2 + \sigma_d^2},\quad
c_\text{out} = \frac{\sigma_d(\sigma-\sigma_\min)}{\sqrt{\sigma_d^2+\sigma^2}},$$

and distilled by making it agree on adjacent noise levels of one teacher ODE step: with
$\sigma_{n} > \sigma_{n+1}$ on EDM's $\rho$-grid, $x_n = y + \sigma_n z$ (or the PFGM++
kernel's noise) and $\hat x_{n+1}$ one Heun step of the teacher's ODE
$dx/d\sigma = (x - D(x,\sigma))/\sigma$ from $\sigma_n$ to $\sigma_{n+1}$,

$$\mathcal L = \mathbb E\,\frac{1}{\sigma_n - \sigma_{n+1}}\,
\big\|f_\theta(x_n, \sigma_n)
- \operatorname{sg}\,f_{\theta^-}(\hat x_{n+1}, \sigma_{n+1})\big\|^2$$

with the $1/\Delta\sigma$ weighting. The target $f_{\theta^-}$ is either the student itself
under a stop-gradient ($\theta^- = \theta$, the choice of Song & Dhariwal's improved training)
or, as in the original consistency distillation, an exponential moving average of the student,
$\theta^- \leftarrow \mu\theta^- + (1-\mu)\theta$ with $\mu = 0.95$
(`sdeml.train.with_ema_target` hands the training state's EMA model to the loss). Measured on a
trained two-moons PFGM++ teacher (D = 128, 2000 steps, MMD to the i.i.d. floor): the one-step
model scored 4.1x the floor with the self-target and 2.1x with the EMA target. In $\sigma$ the
PF-ODE of PFGM++ is EDM's at any $D$, so the same loss distils a PFGM++ teacher when its
kernel's noise is passed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ..core._checks import as_float, check_positive_int, concrete_scalar
from ._edm import (
    _check_sigma_data,
    check_sigma_range,
    edm_time_grid,
    gaussian_noise,
    gaussian_prior,
)
from ._samplers import SampleResult, check_shape
from ._sde import as_state_dtype

NoiseFn = Callable[[PRNGKeyArray, Array, tuple[int, ...]], Array]


def consistency_scalings(
    sigma: Float[Array, ""] | float, sigma_data: float, sigma_min: float
) -> tuple[Array, Array, Array, Array]:
    r"""The preconditioning coefficients of a consistency model, identity at $\sigma_\min$.

    $$c_\text{skip} = \frac{\sigma_d^2}{(\sigma-\sigma_\min)^2 + \sigma_d^2},\quad
    c_\text{out} = \frac{\sigma_d(\sigma-\sigma_\min)}{\sqrt{\sigma_d^2+\sigma^2}},\quad
    c_\text{in} = \frac{1}{\sqrt{\sigma^2+\sigma_d^2}},\quad c_\text{noise} = \tfrac14\ln\sigma,$$

    so $c_\text{skip}(\sigma_\min) = 1$ and $c_\text{out}(\sigma_\min) = 0$: the model
    $c_\text{skip}x + c_\text{out}F(c_\text{noise}, c_\text{in}x)$ is the identity at
    $\sigma_\min$ whatever its network $F$.

    Args:
        sigma: the noise level $\sigma \ge \sigma_\min$, a scalar (an array works elementwise).
        sigma_data: $\sigma_d > 0$, the data's standard deviation.
        sigma_min: $\sigma_\min > 0$.

    Returns:
        ``(c_skip, c_out, c_in, c_noise)``, each of `sigma`'s shape.

    Examples:
        >>> from sdeml.diffusion import consistency_scalings, edm_scalings
        >>> c_skip, c_out, _, _ = consistency_scalings(0.002, 0.5, 0.002)
        >>> float(c_skip), float(c_out)
        (1.0, 0.0)
        >>> # far above sigma_min they approach EDM's preconditioning
        >>> cm, edm = consistency_scalings(80.0, 0.5, 0.002), edm_scalings(80.0, 0.5)
        >>> bool(jnp.allclose(jnp.stack(cm), jnp.stack(edm), rtol=1e-4))
        True

    References:
        Song, Dhariwal, Chen & Sutskever, Consistency Models, ICML 2023, appendix C.
        arXiv:2303.01469
    """
    sigma = jnp.asarray(sigma)
    sd2 = sigma_data**2
    c_skip = sd2 / ((sigma - sigma_min) ** 2 + sd2)
    c_out = sigma_data * (sigma - sigma_min) / jnp.sqrt(sd2 + sigma**2)
    c_in = 1.0 / jnp.sqrt(sigma**2 + sd2)
    c_noise = 0.25 * jnp.log(sigma)
    return c_skip, c_out, c_in, c_noise


class ConsistencyModel(eqx.Module):
    r"""$f_\theta(x, \sigma) = c_\text{skip}x + c_\text{out}F_\theta(c_\text{noise}, c_\text{in}x)$,
    the identity at $\sigma_\min$ (see the module docstring).

    Args:
        net: ``net(c_noise, x_in)`` returning ``x``'s shape (one sample, e.g. ``(d,)``; as for
            `EDMDenoiser`; a distilled model usually starts from its teacher's network).
        sigma_data: $\sigma_d$.
        sigma_min: $\sigma_\min > 0$, where $f$ is the identity.

    Examples:
        >>> from sdeml.diffusion import ConsistencyModel
        >>> net = sdeml.nn.TimeMLP(2, width=16, depth=1, embed_scale=1.0, key=jr.key(0))
        >>> cm = ConsistencyModel(net)
        >>> cm(1.0, jnp.ones(2)).shape
        (2,)
        >>> bool(jnp.all(cm(0.002, jnp.ones(2)) == 1.0))   # f(x, sigma_min) = x exactly
        True

    References:
        Song, Dhariwal, Chen & Sutskever, Consistency Models, ICML 2023, sec. 3-4 and
        appendix C. arXiv:2303.01469
    """

    net: Callable[..., Array]
    sigma_data: float = eqx.field(static=True)
    sigma_min: float = eqx.field(static=True)

    def __init__(
        self, net: Callable[..., Array], sigma_data: float = 0.5, sigma_min: float = 0.002
    ):
        _check_sigma_data(sigma_data)
        s_min = concrete_scalar(sigma_min)  # NumPy and JAX scalars too
        if s_min is None or not 0.0 < s_min < math.inf:
            raise ValueError(f"`sigma_min` must be a positive float, got {sigma_min!r}")
        self.net, self.sigma_data, self.sigma_min = net, float(sigma_data), float(sigma_min)

    def __call__(self, sigma: Float[Array, ""] | float, x: Float[Array, "..."]) -> Array:
        sigma = jnp.asarray(sigma, x.dtype)
        c_skip, c_out, c_in, c_noise = consistency_scalings(sigma, self.sigma_data, self.sigma_min)
        out = self.net(c_noise, c_in * x)
        if jnp.shape(out) != jnp.shape(x):
            raise ValueError(f"the network returned shape {jnp.shape(out)} for x of {jnp.shape(x)}")
        return c_skip * x + c_out * out


def teacher_heun_step(
    teacher: Callable[[Any, Array], Array], x: Array, sigma_hi: Array, sigma_lo: Array
) -> Array:
    r"""One Heun step of $dx/d\sigma = (x - D(x,\sigma))/\sigma$ from `sigma_hi` down to
    `sigma_lo` (both ``> 0``), per sample: ``x`` ``(b, ...)``, the sigmas ``(b,)``."""
    den = jax.vmap(teacher)
    lead = (x.shape[0],) + (1,) * (x.ndim - 1)
    hi, lo = sigma_hi.reshape(lead), sigma_lo.reshape(lead)
    d = (x - den(sigma_hi, x)) / hi
    x_e = x + (lo - hi) * d
    d2 = (x_e - den(sigma_lo, x_e)) / lo
    return x + 0.5 * (lo - hi) * (d + d2)


def consistency_distillation_loss(
    model: Callable[..., Array],
    teacher: Callable[[Any, Array], Array],
    batch: Real[ArrayLike, "b ..."],
    *,
    n_levels: int = 18,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    noise_fn: NoiseFn | None = None,
    target: Callable[..., Array] | None = None,
    key: PRNGKeyArray,
) -> Float[Array, ""]:
    r"""The consistency-distillation loss of a batch (module docstring).

    Args:
        model: the student, a `ConsistencyModel` (any ``model(sigma, x)`` with a `sigma_min`
            attribute, where it is the identity: the grid's lower end).
        teacher: the teacher's denoiser ``teacher(sigma, x)`` for one sample (`EDMDenoiser`,
            `MixtureDenoiser`, a PFGM++ denoiser); held fixed: its step is under a stop-gradient.
        batch: data, shape ``(b, ...)``.
        n_levels: $N\ge 1$ intervals of the $\rho$-grid from `sigma_max` to ``model.sigma_min``.
        sigma_max, rho: the grid (`edm_time_grid`).
        noise_fn: ``noise_fn(key, sigma (b,), shape)`` draws of $x - y$; default Gaussian
            (``PFGMPPKernel(D).noise`` for a PFGM++ teacher).
        target: the target network $f_{\theta^-}$ at the lower level, ``target(sigma, x)``
            (e.g. an EMA of the student, passed by `sdeml.train.with_ema_target`); default the
            student itself. Held fixed (stop-gradient) either way.
        key: PRNG key.

    Returns:
        The scalar loss (mean over the batch and the sample's entries), shape ``()``.

    Examples:
        For data $\mathcal N(0, s^2 I)$ the exact consistency function is
        $f(x, \sigma) = x\sqrt{(s^2 + \sigma_\min^2)/(s^2 + \sigma^2)}$; its loss is only the
        teacher's Heun error, far below an untrained student's:

        >>> from sdeml.data import GaussianMixture
        >>> from sdeml.diffusion import ConsistencyModel, MixtureDenoiser
        >>> from sdeml.diffusion import consistency_distillation_loss as cd_loss
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.array([0.5]))
        >>> teacher, y = MixtureDenoiser(data), data.sample(512, key=jr.key(0))
        >>> class Exact(eqx.Module):
        ...     sigma_min: float = 0.002
        ...     def __call__(self, sigma, x):
        ...         return x * jnp.sqrt((0.25 + self.sigma_min**2) / (0.25 + sigma**2))
        >>> exact = cd_loss(Exact(), teacher, y, key=jr.key(1))
        >>> net = sdeml.nn.TimeMLP(2, width=16, depth=1, embed_scale=1.0, key=jr.key(2))
        >>> student = ConsistencyModel(net)
        >>> loss = cd_loss(student, teacher, y, key=jr.key(1))
        >>> loss.shape, bool(exact < 1e-4), bool(loss > 100 * exact)
        ((), True, True)

    References:
        Song et al., Consistency Models, ICML 2023, Algorithm 2. Song & Dhariwal,
        Improved Techniques for Training Consistency Models, ICLR 2024. arXiv:2310.14189
    """
    n_levels = check_positive_int("n_levels", n_levels)
    sigma_min = getattr(model, "sigma_min", None)
    if sigma_min is None:
        raise TypeError("`model` needs a `sigma_min` attribute (a ConsistencyModel)")
    check_sigma_range(sigma_min, sigma_max, rho)
    batch = jnp.asarray(batch)
    if batch.ndim < 2:
        raise ValueError(f"`batch` must have shape (b, ...) with a batch axis, got {batch.shape}")
    # integer data: the grid was built in the batch's integer dtype (sigmas truncated to 0,
    # a loss of NaN)
    batch = as_float(batch)
    noise = gaussian_noise if noise_fn is None else noise_fn
    grid = edm_time_grid(n_levels, sigma_min, sigma_max, rho, dtype=batch.dtype)
    k_n, k_z = jr.split(key)
    b = batch.shape[0]
    n = jr.randint(k_n, (b,), 0, n_levels)
    hi, lo = grid[n], grid[n + 1]
    x_hi = batch + noise(k_z, hi, batch.shape)
    x_lo = jax.lax.stop_gradient(teacher_heun_step(teacher, x_hi, hi, lo))
    f = jax.vmap(model)
    pred = f(hi, x_hi)
    f_target = f if target is None else jax.vmap(target)
    target_out = jax.lax.stop_gradient(f_target(lo, x_lo))
    per = jnp.mean((pred - target_out).reshape(b, -1) ** 2, axis=1)
    return jnp.mean(per / (hi - lo))


def consistency_sampler(
    model: ConsistencyModel,
    shape: tuple[int, ...],
    *,
    sigma_max: float = 80.0,
    sigmas: tuple[float, ...] = (),
    prior: Callable[..., Array] = gaussian_prior,
    noise_fn: NoiseFn | None = None,
    dtype=None,
    key: PRNGKeyArray,
) -> SampleResult:
    r"""Sample a consistency model in ``1 + len(sigmas)`` evaluations.

    One step: $x = f(x_T, \sigma_\max)$, $x_T$ from the prior. Each further level $\sigma$ of
    `sigmas` (decreasing, in $(\sigma_\min, \sigma_\max)$) re-noises and maps back:
    $x \leftarrow f(x + \sqrt{\sigma^2 - \sigma_\min^2}\,z, \sigma)$ (Song et al., Algorithm 1;
    with `noise_fn` the kernel's draws at that level, for PFGM++).

    Args:
        model: a `ConsistencyModel`.
        shape: ``(n_samples, *sample_shape)``.
        sigma_max: where the prior is drawn, above ``model.sigma_min``.
        sigmas: the intermediate levels (``()``: one step).
        prior: ``prior(shape, sigma_max, *, dtype, key)`` (``PFGMPPKernel(D).prior`` for
            PFGM++).
        noise_fn: the re-noising draws; default Gaussian.
        dtype: float dtype of the samples (default: JAX's default float); the model's output is
            cast to it, so the model may compute in another dtype.
        key: PRNG key.

    Returns:
        A `SampleResult`: ``x`` of shape `shape`, ``nfe = 1 + len(sigmas)``.

    Examples:
        >>> from sdeml.diffusion import ConsistencyModel, consistency_sampler
        >>> net = sdeml.nn.TimeMLP(2, width=16, depth=1, embed_scale=1.0, key=jr.key(0))
        >>> cm = ConsistencyModel(net)
        >>> r = consistency_sampler(cm, (1000, 2), sigmas=(1.0,), key=jr.key(1))
        >>> r.x.shape, int(r.nfe)                            # two evaluations
        ((1000, 2), 2)

    References:
        Song et al., Consistency Models, ICML 2023, Algorithm 1. arXiv:2303.01469
    """
    check_sigma_range(model.sigma_min, sigma_max)  # sigma_max <= 0 made every sample NaN
    levels = [float(s) for s in sigmas]
    if any(not model.sigma_min < s < sigma_max for s in levels) or any(
        a <= b for a, b in zip(levels, levels[1:], strict=False)
    ):
        raise ValueError(
            f"`sigmas` must decrease inside (sigma_min, sigma_max) = ({model.sigma_min}, "
            f"{sigma_max}), got {tuple(sigmas)}"
        )
    shape = check_shape(shape)
    noise = gaussian_noise if noise_fn is None else noise_fn
    k0, *ks = jr.split(key, 1 + len(levels))
    x = prior(tuple(shape), sigma_max, dtype=dtype, key=k0)
    f = jax.vmap(as_state_dtype(model), in_axes=(None, 0))
    x = f(jnp.asarray(sigma_max, x.dtype), x)
    for s, k in zip(levels, ks, strict=True):
        scale = jnp.full((shape[0],), math.sqrt(s**2 - model.sigma_min**2), x.dtype)
        x = f(jnp.asarray(s, x.dtype), x + noise(k, scale, tuple(shape)))
    return SampleResult(x, jnp.asarray(1 + len(levels)))
