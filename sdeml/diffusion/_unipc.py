"""UniPC (Zhao et al. 2023): a unified predictor-corrector framework of few-step solvers of the
probability-flow ODE, orders 1-3, data or noise prediction; for VP/sub-VP/VE score models
(`unipc_sampler`) and for EDM-form denoisers (`unipc_edm_sampler`, PFGM++ included). Also EDM's
Heun sampler for VP/VE score models (`edm_heun_sampler`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray

from ..core._checks import check_model_shape
from ._edm import (
    DenoiserFn,
    PriorFn,
    ScoreDenoiser,
    _check_steps,
    _start,
    check_sigma_range,
    edm_sampler,
    edm_time_grid,
    gaussian_prior,
)
from ._samplers import (
    GRIDS,
    SampleResult,
    check_order,
    check_shape,
    dpm_time_grid,
    resolve_time_grid,
)
from ._sde import AbstractDiffusionSDE, as_state_dtype

UNIPC_GRIDS = GRIDS  # the few-step samplers share one set of time grids (`dpm_time_grid`)


def _lin_solve2(a11, a12, a21, a22, b1, b2):
    det = a11 * a22 - a12 * a21
    return (b1 * a22 - a12 * b2) / det, (a11 * b2 - a21 * b1) / det


def _lin_solve3(R, b):
    """Cramer's rule for a 3x3 system given as nested tuples of 0-d arrays (no batching issues)."""

    def det3(m):
        return (
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        )

    d = det3(R)
    out = []
    for j in range(3):
        m = [[b[r] if c == j else R[r][c] for c in range(3)] for r in range(3)]
        out.append(det3(m) / d)
    return out


def _unipc_core(
    model: Callable[[Array, Array], Array],
    x: Array,
    ts: Array,
    alphas: Array,
    sigmas: Array,
    lams: Array,
    order: int,
    data: bool,
    variant: str,
    corrector: bool,
    lower_order_final: bool,
) -> Array:
    """UniPC on the grid ``ts`` (n + 1 points) with precomputed alpha, sigma, lambda.

    `model(t, x)` is the batch's data (x0) or noise prediction. One model evaluation per step:
    the evaluation at the predicted point feeds both the corrector of this step and the
    predictor of the next; the last step is not corrected (it would cost one more evaluation).
    """
    n = ts.shape[0] - 1
    orders = [min(order, i + 1) for i in range(n)]
    if lower_order_final and n < 10:  # as DPM-Solver: fewer steps are stabler at lower order
        orders = [min(k, n - i) for i, k in enumerate(orders)]

    def update(i, k, x, m0, m1, m2, m_next):
        """Predict (m_next None) or correct the move from ts[i] to ts[i + 1]."""
        h = lams[i + 1] - lams[i]
        hh = -h if data else h
        h_phi_1 = jnp.expm1(hh)
        b_h = hh if variant == "bh1" else h_phi_1
        # b_j = j! phi_{j+1}(hh) / B(h), with h phi_1, phi_2, ... by the recursion of the paper
        hphik = h_phi_1 / hh - 1.0
        bs, fact = [], 1.0
        for j in range(1, 4):
            bs.append(hphik * fact / b_h)
            fact *= j + 1
            hphik = hphik / hh - 1.0 / fact
        # r_k = (lambda_{i-k} - lambda_i) / h, k = 1, 2 (negative); placeholders where the
        # history does not exist (those branches are not selected, but must stay finite)
        has1, has2 = k >= 2, k >= 3
        r1 = jnp.where(has1, (lams[jnp.maximum(i - 1, 0)] - lams[i]) / h, -1.0)
        r2 = jnp.where(has2, (lams[jnp.maximum(i - 2, 0)] - lams[i]) / h, -2.0)
        d1 = (m1 - m0) / r1
        d2 = (m2 - m0) / r2
        if data:
            base = sigmas[i + 1] / sigmas[i] * x - alphas[i + 1] * h_phi_1 * m0
            scale = alphas[i + 1] * b_h
        else:
            base = alphas[i + 1] / alphas[i] * x - sigmas[i + 1] * h_phi_1 * m0
            scale = sigmas[i + 1] * b_h
        if m_next is None:  # UniP-k: k - 1 differences
            res2 = 0.5 * d1  # order 2: rho = 1/2 (the reference code's choice; = DPM-Solver++2M)
            rp1, rp2 = _lin_solve2(1.0, 1.0, r1, r2, bs[0], bs[1])
            res3 = rp1 * d1 + rp2 * d2
            res = jnp.where(k == 1, 0.0, jnp.where(k == 2, res2, res3))
            return base - scale * res
        dt = m_next - m0  # UniC-k: the new evaluation enters with r = 1
        rc1 = 0.5
        c21, c22 = _lin_solve2(1.0, 1.0, r1, 1.0, bs[0], bs[1])
        one = jnp.ones_like(r1)
        c31, c32, c33 = _lin_solve3(
            ((one, one, one), (r1, r2, one), (r1**2, r2**2, one)), (bs[0], bs[1], bs[2])
        )
        res = jnp.where(
            k == 1,
            rc1 * dt,
            jnp.where(k == 2, c21 * d1 + c22 * dt, c31 * d1 + c32 * d2 + c33 * dt),
        )
        return base - scale * res

    m0 = model(ts[0], x)
    zeros = jnp.zeros_like(x)

    def body(carry, inp):
        x, m0, m1, m2 = carry
        i, k = inp
        x_pred = update(i, k, x, m0, m1, m2, None)
        m_new = model(ts[i + 1], x_pred)
        x_new = update(i, k, x, m0, m1, m2, m_new) if corrector else x_pred
        return (x_new, m_new, m0, m1), None

    ks = jnp.asarray(orders)
    (x, m0, m1, m2), _ = jax.lax.scan(body, (x, m0, zeros, zeros), (jnp.arange(n - 1), ks[:-1]))
    return update(n - 1, ks[-1], x, m0, m1, m2, None)


def _check_unipc(n_steps, order, prediction, variant) -> int:
    order = check_order(order)
    n_steps = _check_steps(n_steps, order, f" (the order {order} of UniPC)")
    if prediction not in ("data", "noise"):
        raise ValueError(f"`prediction` must be 'data' or 'noise', got {prediction!r}")
    if variant not in ("bh1", "bh2"):
        raise ValueError(f"`variant` must be 'bh1' or 'bh2', got {variant!r}")
    return n_steps


def unipc_time_grid(
    sde: AbstractDiffusionSDE, n_steps: int, eps: float, grid: str = "logsnr", dtype=None
) -> Array:
    r"""The times $T = t_0 > \dots > t_M = \epsilon$ of `unipc_sampler`.

    The grids of `dpm_time_grid` (one definition for every few-step sampler): uniform in the
    log-SNR $\lambda(t) = \log\alpha(t) - \log\sigma(t)$ (``"logsnr"``), in
    $\tilde\sigma^{1/7}$ with $\tilde\sigma = e^{-\lambda}$ (``"edm"``, EDM's $\rho$-grid with
    $\rho = 7$), in $\sqrt t$ (``"quadratic"``) or in $t$ (``"uniform"``).

    Args:
        sde: the forward SDE.
        n_steps: $M \ge 1$, the number of intervals.
        eps: the end time $\epsilon$.
        grid: one of `UNIPC_GRIDS` (the same as `GRIDS`).
        dtype: float dtype.

    Returns:
        The times, shape ``(M + 1,)``, decreasing from ``sde.T`` to `eps`.

    Examples:
        >>> from sdeml.diffusion import VPSDE, unipc_time_grid
        >>> sde = VPSDE()
        >>> ts = unipc_time_grid(sde, 10, 1e-3)
        >>> ts.shape, float(ts[0]), float(ts[-1])
        ((11,), 1.0, 0.001)
        >>> lam = sde.log_snr(ts)                       # equal steps in the log-SNR
        >>> bool(jnp.allclose(jnp.diff(lam), (lam[-1] - lam[0]) / 10))
        True

    References:
        Lu et al., DPM-Solver, NeurIPS 2022, sec. 3.3. Karras et al., NeurIPS 2022, eq. (5).
    """
    return dpm_time_grid(sde, n_steps, eps, grid, dtype)[0]


def unipc_sampler(
    score_fn: Callable[[Any, Array], Array],
    sde: AbstractDiffusionSDE,
    shape: tuple[int, ...],
    *,
    n_steps: int = 10,
    order: int = 3,
    prediction: Literal["data", "noise"] = "data",
    variant: Literal["bh1", "bh2"] = "bh2",
    corrector: bool = True,
    grid: str | Array = "logsnr",
    lower_order_final: bool = True,
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Array | None = None,
    dtype=None,
    key: PRNGKeyArray,
) -> SampleResult:
    r"""UniPC: multistep predictor (UniP-$k$) and corrector (UniC-$k$) for the PF-ODE.

    In the log-SNR $\lambda = \ln(\alpha/\sigma)$, with the data prediction $m = \hat x_0$ and
    $h = \lambda_{i+1} - \lambda_i$, the exact solution is
    $x_{i+1} = \frac{\sigma_{i+1}}{\sigma_i}x_i + \sigma_{i+1}\int e^{\lambda}\hat x_0\,d\lambda$;
    UniPC writes the integral with $B(h)$ and the divided differences
    $D_k = (m_{i-k} - m_i)/r_k$, $r_k = (\lambda_{i-k} - \lambda_i)/h$:

    $$x_{i+1} = \frac{\sigma_{i+1}}{\sigma_i}x_i - \alpha_{i+1}(e^{-h}-1)m_i
    - \alpha_{i+1}B(h)\sum_{k}\rho_k D_k,$$

    with $\rho$ from the order conditions $R\rho = b$ ($R_{jk} = r_k^{j-1}$,
    $b_j = j!\,\varphi_{j+1}(h)/B(h)$). The predictor uses $k-1$ earlier evaluations; the
    corrector adds the evaluation at the predicted point ($r = 1$), which the next step reuses,
    so UniC raises the order by one at no extra cost (one evaluation per step). ``variant``:
    $B(h) = h$ (``"bh1"``) or $e^h - 1$ (``"bh2"``, better with few steps). Noise prediction
    ($\hat\varepsilon$) is the mirror image with $\alpha\leftrightarrow\sigma$, $h\to-h$.
    UniP-2 without the corrector is DPM-Solver++(2M).

    Args:
        score_fn: ``score_fn(t, x)`` for one sample ``x`` of shape `sample_shape`.
        sde: the forward SDE (VP, sub-VP, VE).
        shape: ``(n_samples, *sample_shape)``.
        n_steps: $M\ge$ `order`: ``NFE = M + denoise``.
        order: 1, 2 or 3 (the predictor's; the first steps use lower orders).
        prediction: ``"data"`` (UniPC with $\hat x_0$) or ``"noise"``.
        variant: ``"bh1"`` or ``"bh2"``.
        corrector: apply UniC (on every step but the last).
        grid: one of `GRIDS` (see `unipc_time_grid`), or the $M + 1$ times from ``sde.T`` to
            `eps` (`resolve_time_grid`; e.g. from `optimize_time_grid`).
        lower_order_final: with fewer than 10 steps, lower the order of the last steps.
        eps: the end time.
        denoise: end with Tweedie's step $\hat x_0(\epsilon, x)$.
        x_T: start from these prior draws, shape `shape`.
        dtype: float dtype of the state and the samples (default: `x_T`'s, else JAX's default
            float); the score's output is cast to it, so the model may compute in another dtype.
        key: PRNG key of the prior draws.

    Returns:
        A `SampleResult`: ``x`` of shape `shape`, ``nfe = M + denoise``.

    Examples:
        >>> from sdeml.diffusion import MixtureScore, VPSDE, unipc_sampler
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> score = MixtureScore(gm, sde)                  # the exact score of the data
        >>> r = unipc_sampler(score, sde, (1000, 2), n_steps=9, key=jr.key(0))
        >>> r.x.shape, int(r.nfe)                          # 9 steps + the denoising step
        ((1000, 2), 10)
        >>> bool(jnp.allclose(r.x.mean(0), gm.weights @ gm.means, atol=0.15))  # the data's mean
        True

    References:
        Zhao, Bai, Rao, Zhou & Lu, UniPC: A Unified Predictor-Corrector Framework for Fast
        Sampling of Diffusion Models, NeurIPS 2023, Algorithms 1-3 and appendix. arXiv:2302.04867
    """
    if not isinstance(sde, AbstractDiffusionSDE):
        raise ValueError(f"`sde` must be a VPSDE, SubVPSDE or VESDE, got {type(sde).__name__}")
    n_steps = _check_unipc(n_steps, order, prediction, variant)
    sde.check_times(eps)
    shape = check_shape(shape)
    x = (
        sde.prior_sample(tuple(shape), key=key, dtype=dtype)
        if x_T is None
        else jnp.asarray(x_T, dtype)
    )
    if x.shape != tuple(shape):
        raise ValueError(f"`x_T` has shape {x.shape}, expected {tuple(shape)}")
    score_fn = as_state_dtype(score_fn)
    check_model_shape(score_fn, x[0])
    ts, lams = resolve_time_grid(sde, n_steps, eps, grid, x.dtype)
    alphas, sigmas = sde.alpha(ts), sde.sigma(ts)
    score_b = jax.vmap(score_fn, in_axes=(None, 0))
    data = prediction == "data"

    def model(t, x):
        s = score_b(t, x)
        if data:
            return (x + sde.sigma(t) ** 2 * s) / sde.alpha(t)
        return -sde.sigma(t) * s

    x = _unipc_core(model, x, ts, alphas, sigmas, lams, order, data, variant, corrector,
                    lower_order_final)  # fmt: skip
    nfe = n_steps
    if denoise:
        t = jnp.asarray(eps, x.dtype)
        x = (x + sde.sigma(t) ** 2 * score_b(t, x)) / sde.alpha(t)
        nfe += 1
    return SampleResult(x, jnp.asarray(nfe))


def unipc_edm_sampler(
    denoiser: DenoiserFn,
    shape: tuple[int, ...],
    *,
    n_steps: int = 10,
    order: int = 3,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    prediction: Literal["data", "noise"] = "data",
    variant: Literal["bh1", "bh2"] = "bh2",
    corrector: bool = True,
    lower_order_final: bool = True,
    denoise: bool = True,
    prior: PriorFn = gaussian_prior,
    x_T: Array | None = None,
    dtype=None,
    key: PRNGKeyArray,
) -> SampleResult:
    r"""UniPC for an EDM-form denoiser $D(x, \sigma)$ ($\alpha = 1$, $\lambda = -\ln\sigma$) on
    the $\rho$-grid; as `unipc_sampler` otherwise. With a PFGM++ prior it samples PFGM++
    (only the prior differs).

    Args:
        denoiser: ``denoiser(sigma, x)`` for one sample ``x`` of shape `sample_shape`.
        shape, n_steps, order, prediction, variant, corrector, lower_order_final: as
            `unipc_sampler` (`shape` is ``(n_samples, *sample_shape)``).
        sigma_min, sigma_max, rho: the grid (`edm_time_grid`).
        denoise: end with $D(x, \sigma_\min)$.
        prior, x_T, dtype, key: as `edm_sampler`.

    Returns:
        A `SampleResult`: ``x`` of shape `shape`, ``nfe = M + denoise``.

    Examples:
        >>> from sdeml.diffusion import MixtureDenoiser, unipc_edm_sampler
        >>> gm = sdeml.data.gaussian_mixture_2d()
        >>> r = unipc_edm_sampler(MixtureDenoiser(gm), (1000, 2), n_steps=9, sigma_max=20.0,
        ...                       key=jr.key(0))
        >>> r.x.shape, int(r.nfe)
        ((1000, 2), 10)
        >>> bool(jnp.allclose(r.x.mean(0), gm.weights @ gm.means, atol=0.15))  # the data's mean
        True

    References:
        Zhao et al., NeurIPS 2023; Karras et al., NeurIPS 2022.
    """
    n_steps = _check_unipc(n_steps, order, prediction, variant)
    check_sigma_range(sigma_min, sigma_max, rho)
    x = _start(prior, shape, sigma_max, x_T, dtype, key)
    denoiser = as_state_dtype(denoiser)
    check_model_shape(denoiser, x[0], "denoiser")
    sig = edm_time_grid(n_steps, sigma_min, sigma_max, rho, dtype=x.dtype)
    den_b = jax.vmap(denoiser, in_axes=(None, 0))
    data = prediction == "data"

    def model(s, x):
        d = den_b(s, x)
        return d if data else (x - d) / s

    x = _unipc_core(model, x, sig, jnp.ones_like(sig), sig, -jnp.log(sig), order, data, variant,
                    corrector, lower_order_final)  # fmt: skip
    nfe = n_steps
    if denoise:
        x = den_b(sig[-1], x)
        nfe += 1
    return SampleResult(x, jnp.asarray(nfe))


def edm_heun_sampler(
    score_fn: Callable[[Any, Array], Array],
    sde: AbstractDiffusionSDE,
    shape: tuple[int, ...],
    *,
    n_steps: int = 18,
    rho: float = 7.0,
    method: Literal["heun", "euler"] = "heun",
    s_churn: float = 0.0,
    s_noise: float = 1.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Array | None = None,
    dtype=None,
    key: PRNGKeyArray,
) -> SampleResult:
    r"""EDM's Heun sampler (`edm_sampler`) for a VP/sub-VP/VE score model.

    The model is read as a denoiser in $\tilde x = x/\alpha$, $\tilde\sigma = \sigma/\alpha$
    (`ScoreDenoiser`); the $\rho$-grid runs from $\tilde\sigma(T)$ to $\tilde\sigma(\epsilon)$,
    the prior draw $x_T$ (in the SDE's own variable) starts at $\tilde x = x_T/\alpha(T)$, and the
    result is mapped back, $x_\epsilon = \alpha(\epsilon)\tilde x$ (or, with ``denoise``, the
    final $\hat x_0$). The same endpoint as `probability_flow_sampler` from the same $x_T$.

    Args:
        score_fn, sde, shape, eps, denoise, x_T, dtype: as `unipc_sampler`.
        n_steps, rho, method, s_churn, s_noise, s_tmin, s_tmax: as `edm_sampler` (churn
            thresholds in $\tilde\sigma$).
        key: PRNG key (prior draws, then churn).

    Returns:
        A `SampleResult`: ``x`` of shape `shape`, ``nfe = 2M + denoise`` for Heun.

    Examples:
        >>> from sdeml.diffusion import MixtureScore, VPSDE, edm_heun_sampler
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> r = edm_heun_sampler(MixtureScore(gm, sde), sde, (1000, 2), n_steps=10,
        ...                      key=jr.key(0))
        >>> r.x.shape, int(r.nfe)                          # 2 M + 1
        ((1000, 2), 21)
        >>> bool(jnp.allclose(r.x.mean(0), gm.weights @ gm.means, atol=0.15))  # the data's mean
        True

    References:
        Karras et al., NeurIPS 2022, Algorithm 2 and Table 1.
    """
    if not isinstance(sde, AbstractDiffusionSDE):
        raise ValueError(f"`sde` must be a VPSDE, SubVPSDE or VESDE, got {type(sde).__name__}")
    sde.check_times(eps)
    shape = check_shape(shape)
    k0, k1 = jr.split(key)
    x = (
        sde.prior_sample(tuple(shape), key=k0, dtype=dtype)
        if x_T is None
        else jnp.asarray(x_T, dtype)
    )
    if x.shape != tuple(shape):
        raise ValueError(f"`x_T` has shape {x.shape}, expected {tuple(shape)}")
    den = ScoreDenoiser(as_state_dtype(score_fn), sde)
    t_hi, t_lo = jnp.asarray(sde.T, x.dtype), jnp.asarray(eps, x.dtype)
    with jax.ensure_compile_time_eval():  # the grid's ends are constants, also under jit
        s_hi, s_lo = float(den.sigma_of(sde.T)), float(den.sigma_of(eps))
    r = edm_sampler(
        den,
        tuple(shape),
        n_steps=n_steps,
        sigma_min=s_lo,
        sigma_max=s_hi,
        rho=rho,
        method=method,
        s_churn=s_churn,
        s_noise=s_noise,
        s_tmin=s_tmin,
        s_tmax=s_tmax,
        denoise=denoise,
        x_T=x / sde.alpha(t_hi),
        key=k1,
    )
    x = r.x if denoise else sde.alpha(t_lo) * r.x
    return SampleResult(x, r.nfe)
