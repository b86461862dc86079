r"""The PFGM++ perturbation kernel, its heavy-tailed prior, the denoiser objective and samplers.

PFGM++ (Xu et al. 2023) places the $N$-dimensional data in $\mathbb R^{N+D}$ and moves them along
the electric field of the data as charges; the $D$ extra dimensions enter only through their
norm $r$. The perturbation kernel of the data point $y$ at radius $r = \sigma\sqrt D$ is

$$p_r(x\mid y) \propto \big(\|x - y\|^2 + r^2\big)^{-\frac{N+D}2},$$

a multivariate Student-$t$ with $D$ degrees of freedom and scale $\sigma$:
$x - y = \sigma g/\sqrt{c/D}$ with $g\sim\mathcal N(0, I_N)$ and $c\sim\chi^2_D$ independent, so
$R^2 = \|x-y\|^2$ has $R^2/r^2\sim\mathrm{BetaPrime}(N/2, D/2)$ and a uniform direction.
As $D\to\infty$ with $\sigma$ fixed, $c/D\to1$ and the kernel is the Gaussian
$\mathcal N(y,\sigma^2 I)$ of diffusion models: ``D = inf`` is exactly that case. The training
objective and the sampling ODE $dx/d\sigma = (x - D(x,\sigma))/\sigma$ are EDM's; only the noise
distribution and the prior change.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.scipy.special import betainc, gammainc
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ..core._checks import (
    as_float,
    check_int,
    check_positive,
    check_positive_int,
    common_float_dtype,
    concrete_scalar,
)
from ..core._normals import standard_normal
from ..diffusion import (
    SampleResult,
    edm_loss,
    edm_sampler,
    unipc_edm_sampler,
)


def check_D(D: Any) -> float:
    """`D` as a float, or one `ValueError` naming it unless ``D > 0`` (``math.inf`` allowed).

    Args:
        D: the number of augmented dimensions of PFGM++ (a Python or NumPy real; not a bool).

    Returns:
        ``float(D)``.

    Examples:
        >>> import math
        >>> from sdeml.pfgm import check_D
        >>> check_D(128), check_D(math.inf)
        (128.0, inf)
        >>> check_D(0)
        Traceback (most recent call last):
        ...
        ValueError: `D` (the number of augmented dimensions) must be a positive number or ...
    """
    # concrete 0-d arrays too (`jnp.array(4.0)` was refused); bools (NumPy's too) are refused
    d = concrete_scalar(D)
    if d is None or np.asarray(D).dtype == bool or not d > 0:
        raise ValueError(
            f"`D` (the number of augmented dimensions) must be a positive number or math.inf, "
            f"got {D!r}"
        )
    return d


def _common_float(*arrays: Any) -> list[Array]:
    """The arrays in one floating dtype (`common_float_dtype`): integer inputs (``x = [1, 0]``)
    had cast sigma to an integer (0.5 -> 0: a NaN log density or denoiser), and a
    float32/float64 mix failed under strict promotion."""
    dt = common_float_dtype(*arrays)
    return [jnp.asarray(a).astype(dt) for a in arrays]


def _gamma_work_dtype(dtype: Any) -> Any:
    """Gamma draws in at least float32: float16 overflows at D/2 > 65504, and low-precision
    draws of D/(2g) lose the large-D limit."""
    dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    return dtype if jnp.finfo(dtype).bits >= 32 else jnp.dtype(jnp.float32)


class PFGMPPKernel(eqx.Module):
    r"""The PFGM++ perturbation kernel $p_r(x\mid y)\propto(\|x-y\|^2 + r^2)^{-(N+D)/2}$,
    $r = \sigma\sqrt D$ (see the module docstring; ``D = math.inf`` is the Gaussian kernel).

    Args:
        D: the number of augmented dimensions, ``D > 0`` or ``math.inf``.

    Examples:
        Draws of $R^2/\sigma^2$ against the exact CDF, here $I_{z/(D+z)}(N/2, D/2)$ at
        $N = 2$, $D = 4$, $z = 2$, which is $5/9$:

        >>> import math
        >>> from sdeml.pfgm import PFGMPPKernel
        >>> k = PFGMPPKernel(4.0)
        >>> r2 = k.sample_radius_sq(20_000, 2, 1.0, key=jr.key(0))
        >>> round(float(jnp.mean(r2 <= 2.0)), 3), round(float(k.radius_sq_cdf(2.0, 2)), 3)
        (0.553, 0.556)
        >>> n = k.noise(jr.key(1), jnp.full((20_000,), 0.5), (20_000, 2))  # x - y, sigma = 0.5
        >>> x_T = k.prior((20_000, 2), 80.0, max_radius=1e4, key=jr.key(2))
        >>> n.shape, x_T.shape, bool(jnp.all(jnp.linalg.norm(x_T, axis=1) <= 1e4))
        ((20000, 2), (20000, 2), True)

        The kernel tends to the Gaussian one as $D \to \infty$:

        >>> x, y = jnp.array([0.3, -0.4]), jnp.zeros(2)
        >>> lp_big_D = PFGMPPKernel(1e8).log_prob(x, y, 0.5)
        >>> bool(jnp.isclose(lp_big_D, PFGMPPKernel(math.inf).log_prob(x, y, 0.5), atol=1e-7))
        True

    References:
        Xu, Liu, Tian, Tong, Tegmark & Jaakkola, PFGM++: Unlocking the Potential of
        Physics-Inspired Generative Models, ICML 2023, sec. 3-4 and appendix. arXiv:2302.04265
    """

    D: float = eqx.field(static=True)

    def __init__(self, D: Any):  # checked by check_D, with its own message
        self.D = check_D(D)

    @property
    def gaussian(self) -> bool:
        return math.isinf(self.D)

    def _scale(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype) -> Array:
        r"""$1/\sqrt{c/D}$, $c\sim\chi^2_D = 2\,\mathrm{Gamma}(D/2)$ (1 for ``D = inf``)."""
        if self.gaussian:
            return jnp.ones(shape, dtype)
        work = _gamma_work_dtype(dtype)
        if self.D < 2.0:
            # in log space: a Gamma(D/2) draw underflows to 0 in float32 for small D (1.3 % of
            # the draws at D = 0.1, each an inf/NaN noise). `loggamma` and `gamma` share their
            # stream; for D >= 2 the plain draw keeps more digits of its ~1 ratio at large D.
            lg = jr.loggamma(key, self.D / 2.0, shape, work)
            scale = jnp.exp(0.5 * (math.log(self.D / 2.0) - lg))
        else:
            scale = jnp.sqrt(self.D / (2.0 * jr.gamma(key, self.D / 2.0, shape, work)))
        return scale.astype(dtype)

    def noise(
        self, key: PRNGKeyArray, sigma: Real[ArrayLike, " b"], shape: tuple[int, ...]
    ) -> Array:
        r"""Draws of $x - y$ for a batch of shape ``(b, ...)``, one $\sigma$ per sample: the
        ``noise_fn`` of `sdeml.diffusion.edm_loss`. The same key gives the same Gaussian part
        $g$ at every $D$, so draws converge pathwise to the Gaussian ones as $D\to\infty$."""
        sigma = as_float(jnp.asarray(sigma))  # integer sigmas: float noise
        kg, kc = jr.split(key)
        g = standard_normal(kg, shape, sigma.dtype)
        lead = (shape[0],) + (1,) * (len(shape) - 1)
        return (sigma * self._scale(kc, (shape[0],), sigma.dtype)).reshape(lead) * g

    def sample_radius_sq(
        self, n: int, N: int, sigma: Real[ArrayLike, ""], *, dtype=None, key: PRNGKeyArray
    ) -> Float[Array, " n"]:
        r"""$n$ draws of $R^2 = \|x - y\|^2$ in $N$ dimensions (exactly
        $\sigma^2\chi^2_N\cdot D/\chi^2_D$, i.e. $R^2/r^2\sim\mathrm{BetaPrime}(N/2, D/2)$)."""
        n = check_positive_int("n", n)  # -1 failed inside JAX, True drew one sample
        N = check_positive_int("N", N)  # the data dimension; NumPy integers too
        check_positive("sigma", sigma)  # a negative sigma was squared away silently
        out = jnp.result_type(float) if dtype is None else dtype
        work = _gamma_work_dtype(out)
        kg, kc = jr.split(key)
        chi2_n = 2.0 * jr.gamma(kg, N / 2.0, (n,), work)
        s = jnp.asarray(sigma, work)
        return (s**2 * chi2_n * self._scale(kc, (n,), work) ** 2).astype(out)

    def radius_sq_cdf(self, z: Real[ArrayLike, "..."], N: int) -> Float[Array, "..."]:
        r"""The CDF of $R^2/\sigma^2$, $I_{z/(D+z)}(N/2, D/2)$ (regularised incomplete beta),
        and that of $\chi^2_N$, $P(N/2, z/2)$, for ``D = inf``.

        For large $D$ the incomplete beta loses its accuracy in floating point (float32: an
        error of 5e-2 at $D = 10^6$, every value wrong at $10^8$; float64: 1e-7 at $10^8$), so
        above a crossover the expansion about $\chi^2_N$ is used instead. With
        $R^2/\sigma^2 = X / W$, $X\sim\chi^2_N$, $W = \chi^2_D/D$ (central moments $2/D$,
        $8/D^2$, $12/D^2 + O(D^{-3})$) and $G$, $g$ the CDF and density of $\chi^2_N$:
        $P(X \le zW) = G + z^2 g^{(1)}/D + (\tfrac43 z^3 g^{(2)} + \tfrac12 z^4 g^{(3)})/D^2
        + O(D^{-3})$. The upper tail of a small $D$ comes from the complement's incomplete
        beta. Against SciPy's F distribution for $N$ = 1 to 3072 and $D$ = 0.5 to $10^{20}$
        (quantiles 0.001 to 0.999), the largest error in float32 is 3e-6 for $N \le 7$, 7e-5
        for $N \le 100$ and 2e-3 for $N = 3072$ (the float32 accuracy of JAX's incomplete
        beta and gamma there); in float64, 4e-10.
        """
        z = jnp.asarray(z)
        z = as_float(z)
        N = check_positive_int("N", N)
        # R^2 >= 0: the CDF is 0 for z <= 0 (a negative z gave NaN from the incomplete beta
        # and gamma), 1 at +inf and NaN for NaN (which had read as 0); every branch below sees
        # a finite z >= 0
        zf = jnp.where(jnp.isfinite(z) & (z > 0), z, 0.0)
        a = N / 2.0
        if self.gaussian:
            cdf = gammainc(a, zf / 2.0)
        elif self.D < _cdf_crossover(N, z.dtype):
            # the upper tail as the complement's incomplete beta: z / (D + z) rounds to 1 in
            # the heavy tail of a small D (float32 read 1 for 0.99 at D = 0.5)
            b = self.D / 2.0
            xc = self.D / (self.D + zf)
            lower = betainc(a, b, zf / (self.D + zf))
            upper = 1.0 - betainc(b, a, xc)
            cdf = jnp.where(xc > b / (a + b), lower, upper)
        else:
            cdf = _radius_sq_cdf_large_D(zf, N, self.D)
        cdf = jnp.where(jnp.isposinf(z), jnp.ones_like(cdf), cdf)
        return jnp.where(jnp.isnan(z), jnp.full_like(cdf, jnp.nan), cdf)

    def log_prob(
        self, x: Real[ArrayLike, "..."], y: Real[ArrayLike, "..."], sigma: Real[ArrayLike, ""]
    ) -> Float[Array, ""]:
        r"""$\log p_r(x\mid y) = \log\frac{\Gamma(\frac{N+D}2)}{\pi^{N/2}\Gamma(\frac D2)}
        + D\log r - \frac{N+D}2\log(\|x-y\|^2 + r^2)$, $r = \sigma\sqrt D$ (Gaussian for
        ``D = inf``)."""
        if jnp.shape(x) != jnp.shape(y):  # broadcasting summed several points' densities
            raise ValueError(f"`x` and `y` must have one shape, got {jnp.shape(x)}, {jnp.shape(y)}")
        check_positive("sigma", sigma)  # sigma = 0 gave NaN
        x, y = _common_float(x, y)  # integer points had truncated sigma = 0.5 to 0: NaN
        N = x.size
        d2 = jnp.sum((x - y) ** 2)
        s = jnp.asarray(sigma, d2.dtype)
        if self.gaussian:
            return -0.5 * d2 / s**2 - N * (jnp.log(s) + 0.5 * math.log(2 * math.pi))
        D = self.D
        # log Gamma((N+D)/2) - log Gamma(D/2) - N/2 log(pi D), in float64 on the host: in the
        # array's dtype the two log-gammas cancel (float32: -18.7 for -0.95 at D = 1e8)
        const = _log_gamma_ratio(D / 2.0, N / 2.0) - 0.5 * N * math.log(2.0 * math.pi)
        # - (N+D)/2 log(1 + u/D), u = d^2 / sigma^2, as (N+D)/(2D) u log1p(v)/v, v = u/D:
        # finite for any D and tending to the Gaussian's u/2
        u = d2 / s**2
        v = u * jnp.asarray(1.0 / D, u.dtype)
        safe = jnp.where(v > 0, v, 1.0)
        log1p_ratio = jnp.where(v > 0, jnp.log1p(safe) / safe, 1.0)
        return const - N * jnp.log(s) - 0.5 * ((N + D) / D) * u * log1p_ratio

    def prior(
        self,
        shape: tuple[int, ...],
        sigma_max: Real[ArrayLike, ""],
        *,
        max_radius: float | ArrayLike | None = None,
        dtype=None,
        key: PRNGKeyArray,
    ) -> Array:
        r"""Draws from the prior $p_{r_\max}(x\mid 0)$, $r_\max = \sigma_\max\sqrt D$: the
        kernel around the origin (at $r_\max\gg$ the data's extent the data look like one
        charge there). Heavy-tailed for small $D$: $\mathbb E\|x\|^k < \infty$ only for $k < D$,
        so for $D\le2$ the second moment is infinite; `max_radius` clips the norm of each draw.

        Args:
            shape: ``(n, *sample_shape)``.
            sigma_max: $\sigma_\max$.
            max_radius: clip $\|x\|$ at this value (``None``: no clipping).
            dtype: float dtype.
            key: PRNG key.
        """
        if not isinstance(shape, tuple | list) or len(shape) < 1:
            raise ValueError(f"`shape` must be a tuple (n, *sample_shape), got {shape!r}")
        shape = tuple(check_int("shape", s, 0) for s in shape)  # -3 or 2.5 failed inside JAX
        check_positive("sigma_max", sigma_max)  # -1 and 0 drew silently (0: every draw at 0)
        z = jnp.zeros(shape, dtype if dtype is not None else jnp.result_type(float))
        sig = jnp.full((shape[0],), sigma_max, z.dtype)
        x = z + self.noise(key, sig, tuple(shape))
        if max_radius is not None:
            x = clip_norm(x, max_radius)
        return x


def _log_gamma_ratio(a: float, b: float) -> float:
    """``log Gamma(a + b) - log Gamma(a) - b log a`` in float64, accurate for any ``a > 0``.

    Past a = 10 from Stirling's series for both log-gammas, the leading terms combined as
    ``(a + b - 1/2) log1p(b/a) - b``: the plain difference of two log-gammas of size
    ``a log a`` keeps only ``eps a log a`` absolutely (0.04 at a = 5e13 in float64).
    """
    if a < 10.0:
        return math.lgamma(a + b) - math.lgamma(a) - b * math.log(a)

    def tail(z: float) -> float:  # Stirling's correction terms, error < 1e-12 for z >= 10
        return 1 / (12 * z) - 1 / (360 * z**3) + 1 / (1260 * z**5) - 1 / (1680 * z**7)

    return (a + b - 0.5) * math.log1p(b / a) - b + tail(a + b) - tail(a)


def _cdf_crossover(N: int, dtype: Any) -> float:
    """The D above which `radius_sq_cdf` uses its large-D expansion: where the expansion's
    error (about (N + 2)^3 / (10 D^3)) meets the incomplete beta's rounding error, measured
    against SciPy for N = 1 to 3072 in float32 and float64 (2026-12-07)."""
    if jnp.finfo(dtype).bits >= 64:
        return 1e4 * (N + 2) ** 0.7
    return 30.0 * (N + 2) ** 0.8


def _radius_sq_cdf_large_D(z: Array, N: int, D: float) -> Array:
    """`radius_sq_cdf` past the crossover: chi^2_N's CDF and the 1/D, 1/D^2 terms."""
    a = N / 2.0
    zs = jnp.where(z > 0, z, 1.0)
    g = jnp.exp((a - 1) * jnp.log(zs) - zs / 2 - a * math.log(2.0) - math.lgamma(a))
    u, v, w = (a - 1) / zs - 0.5, (a - 1) / zs**2, 2 * (a - 1) / zs**3
    d1, d2, d3 = g * u, g * (u * u - v), g * (u**3 - 3 * u * v + w)  # g's first three derivatives
    corr = zs**2 * d1 / D + zs**3 * (4 / 3 * d2 + 0.5 * zs * d3) / D**2
    cdf = jnp.clip(gammainc(a, zs / 2) + corr, 0.0, 1.0)
    return jnp.where(z > 0, cdf, jnp.zeros_like(cdf))


def clip_norm(x: Real[ArrayLike, "n ..."], max_radius: float | ArrayLike) -> Float[Array, "n ..."]:
    r"""Scale each sample whose norm exceeds `max_radius` back onto that sphere.

    Args:
        x: samples, shape ``(n, ...)`` (the norm is over all axes but the first).
        max_radius: the largest norm kept, positive.

    Returns:
        The clipped samples, shape ``(n, ...)``.

    Examples:
        >>> from sdeml.pfgm import clip_norm
        >>> x = jnp.array([[3.0, 4.0], [0.3, 0.4]])
        >>> jnp.linalg.norm(clip_norm(x, 1.0), axis=1).round(6).tolist()  # 5 -> 1; 0.5 kept
        [1.0, 0.5]
    """
    # concrete arrays too: a negative one flipped every sample through the origin (inf: no clip);
    # a bool (True read as a radius of 1) is refused
    if not isinstance(max_radius, jax.core.Tracer) and (
        np.asarray(max_radius).dtype == bool or not np.all(np.asarray(max_radius) > 0)
    ):
        raise ValueError(f"`max_radius` must be positive, got {max_radius!r}")
    x = as_float(jnp.asarray(x))  # integer samples: the clipped ones are not integers
    n = jnp.sqrt(jnp.sum(x.reshape(x.shape[0], -1) ** 2, axis=1))
    # in x's dtype: a NumPy float32 radius failed against float64 samples under strict promotion
    r = jnp.asarray(max_radius, n.dtype)
    f = jnp.minimum(1.0, r / jnp.maximum(n, 1e-30))
    return x * f.reshape((x.shape[0],) + (1,) * (x.ndim - 1))


def pfgmpp_loss(
    denoiser: Callable[..., Array],
    batch: Float[Array, "b ..."],
    D: float,
    *,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_data: float = 0.5,
    key: PRNGKeyArray,
) -> Float[Array, ""]:
    r"""The PFGM++ denoiser objective: EDM's weighted loss $\mathbb E\,\lambda(\sigma)
    \|D_\theta(y + n, \sigma) - y\|^2$ with $n\sim p_{\sigma\sqrt D}(\cdot\mid 0)$ instead of
    $\mathcal N(0,\sigma^2 I)$ (the $r = \sigma\sqrt D$ alignment of Xu et al., sec. 4: the
    hyper-parameters of EDM carry over). ``D = inf`` is `sdeml.diffusion.edm_loss` with the
    Gaussian kernel.

    Args:
        denoiser: ``denoiser(sigma, x)`` for one sample (e.g. `sdeml.diffusion.EDMDenoiser`).
        batch: data ``(b, ...)``.
        D: the augmented dimension.
        p_mean, p_std, sigma_data: as `sdeml.diffusion.edm_loss`.
        key: PRNG key.

    Returns:
        The scalar loss.

    Examples:
        With $\sigma \approx 1$ ($P_\text{std}$ tiny) the identity map as denoiser has loss
        $\lambda(1)\,\mathbb E\lVert n\rVert^2 = 5 N D/(D - 2)$: the Student-$t$ noise is
        wider than the Gaussian ($5N = 10$ at ``D = inf``).

        >>> import math
        >>> from sdeml.pfgm import IdealDenoiser, pfgmpp_loss
        >>> batch, identity = jr.normal(jr.key(0), (8192, 2)), lambda sigma, x: x
        >>> loss = pfgmpp_loss(identity, batch, 8.0, p_mean=0.0, p_std=1e-3, key=jr.key(1))
        >>> round(float(loss), 1), round(5 * 2 * 8 / 6, 1)
        (13.4, 13.3)
        >>> loss = pfgmpp_loss(identity, batch, math.inf, p_mean=0.0, p_std=1e-3, key=jr.key(1))
        >>> round(float(loss), 1)
        10.0

        Data at one point: its ideal denoiser is exact, so the loss is zero. A network is
        ``sdeml.diffusion.EDMDenoiser(sdeml.nn.TimeMLP(2, key=...))``.

        >>> c = jnp.array([[1.0, -2.0]])
        >>> float(pfgmpp_loss(IdealDenoiser(c, 8.0), jnp.broadcast_to(c, batch.shape), 8.0,
        ...                   key=jr.key(1)))
        0.0

    References:
        Xu et al., ICML 2023, Algorithm 1 and sec. 4.
    """
    kernel = PFGMPPKernel(D)
    return edm_loss(
        denoiser,
        batch,
        p_mean=p_mean,
        p_std=p_std,
        sigma_data=sigma_data,
        noise_fn=kernel.noise,
        key=key,
    )


def pfgmpp_sampler(
    denoiser: Callable[[Any, Array], Array],
    D: float,
    shape: tuple[int, ...],
    *,
    method: Literal["heun", "euler", "unipc"] = "heun",
    n_steps: int = 18,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    order: int = 3,
    max_radius: float | None = None,
    denoise: bool = True,
    x_T: Array | None = None,
    dtype=None,
    key: PRNGKeyArray,
    **kwargs: Any,
) -> SampleResult:
    r"""Sample PFGM++: the EDM samplers with the prior $p_{r_\max}(\cdot\mid 0)$ of `PFGMPPKernel`.

    In $\sigma = r/\sqrt D$ the backward ODE of PFGM++ is EDM's
    $dx/d\sigma = (x - D(x,\sigma))/\sigma$ (Xu et al., sec. 4), so EDM's Heun/Euler sampler
    (`sdeml.diffusion.edm_sampler`) or UniPC (`sdeml.diffusion.unipc_edm_sampler`) runs
    unchanged; only the initial draws differ.

    Args:
        denoiser: ``denoiser(sigma, x)`` for one sample.
        D: the augmented dimension (``math.inf``: EDM).
        shape: ``(n_samples, *sample_shape)``.
        method: ``"heun"``, ``"euler"`` or ``"unipc"``.
        n_steps, sigma_min, sigma_max, rho: the grid (`sdeml.diffusion.edm_time_grid`).
        order: UniPC's order.
        max_radius: clip the prior draws' norms (see `PFGMPPKernel.prior`).
        denoise: end with $D(x, \sigma_\min)$.
        x_T: start from these draws instead.
        dtype: float dtype.
        key: PRNG key.
        **kwargs: forwarded to the sampler (e.g. churn settings of `edm_sampler`).

    Returns:
        A `sdeml.diffusion.SampleResult`.

    Examples:
        The ideal denoiser of three points carries the heavy-tailed prior back onto them:

        >>> from sdeml.pfgm import IdealDenoiser, pfgmpp_sampler
        >>> data = jnp.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
        >>> res = pfgmpp_sampler(IdealDenoiser(data, 8.0), 8.0, (64, 2), n_steps=10,
        ...                      sigma_max=10.0, key=jr.key(0))
        >>> dist = jnp.min(jnp.linalg.norm(res.x[:, None] - data[None], axis=-1), axis=1)
        >>> res.x.shape, int(res.nfe), bool(jnp.all(dist < 1e-6))  # 2 per Heun step + denoise
        ((64, 2), 21, True)

    References:
        Xu et al., PFGM++, ICML 2023, sec. 4; Karras et al., NeurIPS 2022, Algorithm 2.
    """
    kernel = PFGMPPKernel(D)

    def prior(shape, sigma_max, *, dtype=None, key):
        return kernel.prior(shape, sigma_max, max_radius=max_radius, dtype=dtype, key=key)

    common: dict[str, Any] = dict(
        n_steps=n_steps,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        rho=rho,
        denoise=denoise,
        prior=prior,
        x_T=x_T,
        dtype=dtype,
        key=key,
    )
    if method == "unipc":
        return unipc_edm_sampler(denoiser, shape, order=order, **common, **kwargs)
    if method in ("heun", "euler"):
        return edm_sampler(denoiser, shape, method=method, **common, **kwargs)
    raise ValueError(f"`method` must be 'heun', 'euler' or 'unipc', got {method!r}")


class IdealDenoiser(eqx.Module):
    r"""The exact ideal PFGM++ denoiser of a finite data set, at any $D$ (ground truth).

    For data $y_1,\dots,y_m\in\mathbb R^N$ (the empirical law) and the kernel $p_r$,

    $$D(x, \sigma) = \mathbb E[y\mid x] = \sum_i w_i y_i,\qquad
    w_i\propto\big(\|x-y_i\|^2 + \sigma^2 D\big)^{-\frac{N+D}2}
    \propto\exp\Big(-\tfrac{N+D}2\,\mathrm{log1p}\big(\tfrac{\|x-y_i\|^2}{\sigma^2D}\big)\Big),$$

    normalised by log-sum-exp (the common factor $(\sigma^2D)^{-(N+D)/2}$ drops out, and
    ``log1p`` keeps the logits exact at large $D$). ``D = inf``: the Gaussian posterior weights
    $w_i\propto e^{-\|x-y_i\|^2/(2\sigma^2)}$; the difference is $O(1/D)$.

    Args:
        data: ``(m, *sample_shape)``.
        D: the augmented dimension (``math.inf``: diffusion).

    Examples:
        At small $\sigma$ it returns the nearest data point, at large $\sigma$ the data mean:

        >>> import math
        >>> from sdeml.pfgm import IdealDenoiser
        >>> data = jnp.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
        >>> den = IdealDenoiser(data, 128.0)
        >>> [round(float(v), 6) for v in den(1e-3, jnp.array([1.9, 0.1]))]
        [2.0, 0.0]
        >>> [round(float(v), 6) for v in den(1e4, jnp.zeros(2))]
        [0.666667, 1.333333]
        >>> x, gauss = jnp.ones(2), IdealDenoiser(data, math.inf)  # the Gaussian posterior mean
        >>> [f"{float(jnp.max(jnp.abs(IdealDenoiser(data, D)(1.0, x) - gauss(1.0, x)))):.0e}"
        ...  for D in (1e4, 1e6)]  # O(1/D)
        ['6e-05', '6e-07']

    References:
        Xu et al., ICML 2023, sec. 3 and appendix; Karras et al., NeurIPS 2022, appendix B.3
        (the ideal denoiser of a finite set).
    """

    data: Float[Array, "m ..."]
    D: float = eqx.field(static=True)

    def __init__(self, data: Real[ArrayLike, "m ..."], D: Any):  # D checked by check_D
        data = jnp.asarray(data)
        if data.ndim < 2 or data.shape[0] < 1:
            raise ValueError(f"`data` must have shape (m, *sample_shape), got {data.shape}")
        # integer data: a float array (an integer one truncated sigma, 0.5 -> 0: NaN weights)
        self.data, self.D = as_float(data), check_D(D)

    def logits(self, sigma: Real[ArrayLike, ""], x: Real[ArrayLike, "..."]) -> Float[Array, " m"]:
        """Unnormalised log-weights of the data points (in the common float dtype of the data
        and `x`)."""
        x = jnp.asarray(x)
        if x.shape != self.data.shape[1:]:
            raise ValueError(f"expected x of shape {self.data.shape[1:]}, got {x.shape}")
        check_positive("sigma", sigma)  # sigma = 0: every weight exp(-inf), a NaN denoiser
        m = self.data.shape[0]
        data, x = _common_float(self.data, x)
        d2 = jnp.sum((data - x[None]).reshape(m, -1) ** 2, axis=1)
        s = jnp.asarray(sigma, d2.dtype)
        if math.isinf(self.D):
            return -0.5 * d2 / s**2
        N = x.size
        return -0.5 * (N + self.D) * jnp.log1p(d2 / (s**2 * self.D))

    def __call__(
        self, sigma: Real[ArrayLike, ""], x: Real[ArrayLike, "..."]
    ) -> Float[Array, "..."]:
        r"""$D(x, \sigma)$, in the dtype of `x` (the data's for an integer `x`)."""
        w = jax.nn.softmax(self.logits(sigma, x))
        out = jnp.tensordot(w, self.data.astype(w.dtype), axes=1)
        x_dt = jnp.asarray(x).dtype  # a sampler's float32 state stays float32
        return out.astype(x_dt) if jnp.issubdtype(x_dt, jnp.floating) else out
