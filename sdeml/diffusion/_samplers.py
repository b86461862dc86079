"""Samplers for score-based models: reverse-SDE Euler-Maruyama, predictor-corrector,
probability-flow ODE (diffrax, adaptive) and DPM-Solver (few-step ODE)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from ..core import (
    DEFAULT_MAX_STEPS,
    EulerMaruyama,
    SolverState,
    integrate_ode,
    simulate,
    simulate_path,
)
from ..core._checks import check_int, check_model_shape, check_positive, check_positive_int
from ..core._normals import standard_normal
from ._param import score_to_x0
from ._sde import AbstractDiffusionSDE, as_state_dtype

ScoreFn = Callable[[Array, Array], Array]


class SampleResult(eqx.Module):
    """What a sampler returns.

    Attributes:
        x: the samples, shape ``(n, ...)``.
        nfe: the number of score evaluations per sample, shape ``()``.
        path: intermediate states ``(n_saves, n, ...)`` when requested, else None.
        ts: the times of `path`, shape ``(n_saves,)``, else None.

    Examples:
        >>> from sdeml.diffusion import MixtureScore, VPSDE, euler_maruyama_sampler
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> score = MixtureScore(gm, sde)                  # the exact score of the data
        >>> r = euler_maruyama_sampler(score, sde, (1000, 2), n_steps=100, n_saves=5,
        ...                            key=jr.key(0))
        >>> r.x.shape, int(r.nfe), r.path.shape              # nfe: 100 steps + denoising
        ((1000, 2), 101, (5, 1000, 2))
        >>> h = (1.0 - 1e-3) / 100                # the step from T = 1 to eps; saves every 25
        >>> bool(jnp.allclose(r.ts, 1.0 - 25 * h * jnp.arange(5)))      # from T down to eps
        True
    """

    x: Array
    nfe: Int[Array, ""]
    path: Array | None = None
    ts: Array | None = None


def _batched(score_fn: ScoreFn) -> Callable[[Array, Array], Array]:
    """Apply a one-sample score to a batch at a common time."""
    return jax.vmap(score_fn, in_axes=(None, 0))


def check_shape(shape: Any) -> tuple[int, ...]:
    """`shape` as a tuple of Python ints: ``(n_samples, *sample_shape)``, at least two positive
    ints (NumPy's too). A negative size failed in MLIR, a 0 with an IndexError, 4.0 with a
    TypeError, none of them naming `shape`; a bool was read as 1."""
    error = ValueError(
        f"`shape` must be (n_samples, *sample_shape), a tuple of at least two positive ints, "
        f"got {shape!r}"
    )
    try:
        given = tuple(shape)
    except TypeError:
        raise error from None
    if len(given) < 2:
        raise error
    try:
        return tuple(check_positive_int("shape", n) for n in given)
    except ValueError:
        raise error from None


def check_order(order: Any) -> int:
    """`order` as an int in 1, 2, 3 (a bool or 2.0 is refused: True was read as order 1)."""
    if isinstance(order, bool) or not isinstance(order, int | np.integer) or order not in (1, 2, 3):
        raise ValueError(f"`order` must be 1, 2 or 3, got {order!r}")
    return int(order)


def _check(sde: AbstractDiffusionSDE, shape: tuple[int, ...], eps: float, n_steps: int) -> int:
    # the common arguments; returns `n_steps` as a Python int (NumPy integers too)
    if not isinstance(sde, AbstractDiffusionSDE):
        raise ValueError(f"`sde` must be a VPSDE, SubVPSDE or VESDE, got {type(sde).__name__}")
    check_shape(shape)
    n_steps = check_positive_int("n_steps", n_steps)
    sde.check_times(eps)
    return n_steps


def _denoise(score_b, sde, t, x):
    """Tweedie's step at the cut-off: E[x0 | x_eps] = (x + sigma^2 s) / alpha."""
    return score_to_x0(score_b(t, x), x, sde.alpha(t), sde.sigma(t))


def _save_every(n_steps: int, n_saves: int) -> int:
    return max(1, n_steps // max(1, n_saves - 1))


def euler_maruyama_sampler(
    score_fn: ScoreFn,
    sde: AbstractDiffusionSDE,
    shape: tuple[int, ...],
    *,
    n_steps: int = 1000,
    eps: float = 1e-3,
    denoise: bool = True,
    n_saves: int = 0,
    dtype=None,
    chunk_size: int | None = None,
    mesh: Any = None,
    key: PRNGKeyArray,
) -> SampleResult:
    r"""Sample by Euler–Maruyama on the reverse-time SDE from $t=T$ to $t=\epsilon$.

    On the grid $t_i = T - i h$, $h = (T-\epsilon)/N$:

    $$x_{i+1} = x_i - \big[f(t_i)x_i - g(t_i)^2 s(t_i, x_i)\big]h + g(t_i)\sqrt h\,z_i,$$

    started from the prior; optionally finished by Tweedie's denoising step
    $x_0 = (x + \sigma(\epsilon)^2 s(\epsilon, x))/\alpha(\epsilon)$. This is the engine's
    Euler–Maruyama on ``sde.reverse(score_fn)`` (a `ReverseSDE` in the time $u = T - t$), run
    by `sdeml.simulate`.

    Args:
        score_fn: ``score_fn(t, x)`` for one sample ``x`` of shape `sample_shape`.
        sde: the forward SDE.
        shape: ``(n_samples, *sample_shape)``.
        n_steps: $N$.
        eps: the end time $\epsilon\in(0, 1)$.
        denoise: apply the final denoising step (one more score evaluation).
        n_saves: keep about this many intermediate states in ``path`` (0: none).
        dtype: float dtype of the state and of all it returns (default: JAX's default float);
            the score's output is cast to it, so the model may compute in another dtype.
        chunk_size: samples per chunk of the engine (`sdeml.simulate`'s; default: sized to
            the platform's memory).
        mesh: a `jax.sharding.Mesh` (or `NamedSharding`) to split the samples over its
            devices, also those of other processes under `jax.distributed` (`sdeml.simulate`'s
            ``mesh``); every sample equals the one-device run's with the same key and
            `chunk_size`. None: the default device.
        key: PRNG key.

    Returns:
        A `SampleResult`: ``x`` of shape `shape`, ``nfe = N + denoise``.

    Examples:
        >>> from sdeml.diffusion import MixtureScore, VPSDE, euler_maruyama_sampler
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> score = MixtureScore(gm, sde)                  # the exact score of the data
        >>> x = euler_maruyama_sampler(score, sde, (1000, 2), n_steps=100, key=jr.key(0)).x
        >>> x.shape
        (1000, 2)
        >>> bool(jnp.allclose(x.mean(0), gm.weights @ gm.means, atol=0.15))  # the data's mean
        True

    References:
        Song et al., ICLR 2021, sec. 4.2. Kloeden & Platen, Numerical Solution of SDEs, 1992.
    """
    n_steps = _check(sde, shape, eps, n_steps)
    return _em_pc(
        score_fn, sde, shape, n_steps, eps, denoise, n_saves, dtype, key, 0, 0.0,
        chunk_size=chunk_size, mesh=mesh,
    )  # fmt: skip


def euler_maruyama_sample(
    score_fn: ScoreFn,
    sde: AbstractDiffusionSDE,
    sample_shape: tuple[int, ...],
    *,
    n_steps: int = 1000,
    eps: float = 1e-3,
    denoise: bool = True,
    dtype=None,
    key: PRNGKeyArray,
) -> Array:
    r"""One sample by Euler–Maruyama on the reverse-time SDE; `jax.vmap` it over keys.

    The single-sample form of `euler_maruyama_sampler`: a prior draw $x_T\sim p_T$, the
    reverse-diffusion steps $x_{i+1} = x_i - [f(t_i)x_i - g(t_i)^2 s(t_i, x_i)]h
    + g(t_i)\sqrt h\,z_i$ from $T$ to $\epsilon$, and optionally Tweedie's denoising step.
    The steps run through `sdeml.core.simulate_path`, so ``jax.vmap`` of this function over
    keys runs as one call of the SDE engine (chunked samples, blocked steps, two normals per
    hash), and sample i of the batch is the sample drawn alone with key i.

    Args:
        score_fn: ``score_fn(t, x)`` for one sample ``x`` of shape `sample_shape`.
        sde: the forward SDE.
        sample_shape: the shape of one sample (e.g. ``(2,)``).
        n_steps: $N$.
        eps: the end time $\epsilon\in(0, 1)$.
        denoise: apply the final denoising step.
        dtype: float dtype of the state and the sample (default: JAX's default float); the
            score's output is cast to it, so the model may compute in another dtype.
        key: PRNG key of this sample.

    Returns:
        One sample, shape `sample_shape`.

    Examples:
        >>> from sdeml.diffusion import MixtureScore, VPSDE, euler_maruyama_sample
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> score = MixtureScore(gm, sde)                  # the exact score of the data
        >>> one = lambda k: euler_maruyama_sample(score, sde, (2,), n_steps=100, key=k)
        >>> x = jax.jit(jax.vmap(one))(jr.split(jr.key(0), 1000))
        >>> x.shape
        (1000, 2)
        >>> bool(jnp.allclose(x.mean(0), gm.weights @ gm.means, atol=0.15))  # the data's mean
        True

    References:
        Song et al., ICLR 2021, sec. 4.2.
    """
    given = tuple(sample_shape)
    try:  # NumPy integers too, as Python ints; a bool is refused
        sample_shape = tuple(check_positive_int("sample_shape", n) for n in given)
    except ValueError:
        sample_shape = ()
    if not sample_shape:
        raise ValueError(
            f"`sample_shape` must be a non-empty tuple of positive ints, got {given!r}"
        )
    n_steps = _check(sde, (1, *sample_shape), eps, n_steps)
    k0, kloop = jr.split(key)
    x = sde.prior_sample(sample_shape, key=k0, dtype=dtype)
    score_fn = as_state_dtype(score_fn)
    check_model_shape(score_fn, x)
    rev = sde.reverse(score_fn)
    x = simulate_path(rev, x, t0=0.0, t1=sde.T - eps, n_steps=n_steps, key=kloop)[-1]
    if denoise:
        x = _denoise(score_fn, sde, jnp.asarray(eps, x.dtype), x)
    return x


def pc_sampler(
    score_fn: ScoreFn,
    sde: AbstractDiffusionSDE,
    shape: tuple[int, ...],
    *,
    n_steps: int = 1000,
    snr: float = 0.16,
    n_corrector: int = 1,
    eps: float = 1e-3,
    denoise: bool = True,
    n_saves: int = 0,
    dtype=None,
    key: PRNGKeyArray,
) -> SampleResult:
    r"""Predictor–corrector sampling: Langevin corrector steps, then a reverse-diffusion step.

    At each $t_i$ the corrector runs `n_corrector` Langevin steps
    $x \leftarrow x + \delta s(t_i, x) + \sqrt{2\delta}\,z$ with
    $\delta = 2a_i(r\overline{\|z\|}/\overline{\|s\|})^2$ ($r$ the signal-to-noise ratio `snr`,
    norms averaged over the batch as in score_sde; $a_i = e^{-\beta(t_i)h}$ for VP, score_sde's
    $1-\beta_i$ to first order, and 1 otherwise); then the predictor takes the reverse-SDE
    Euler–Maruyama step of `euler_maruyama_sampler`.

    Args:
        score_fn, sde, shape, n_steps, eps, denoise, n_saves, dtype: as `euler_maruyama_sampler`.
        snr: the corrector's signal-to-noise ratio $r > 0$.
        n_corrector: Langevin steps per time step.
        key: PRNG key.

    Returns:
        A `SampleResult`: ``x`` of shape `shape`, ``nfe = N (1 + n_corrector) + denoise``.

    Examples:
        >>> from sdeml.diffusion import MixtureScore, VPSDE, pc_sampler
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> score = MixtureScore(gm, sde)                  # the exact score of the data
        >>> r = pc_sampler(score, sde, (1000, 2), n_steps=100, key=jr.key(0))
        >>> r.x.shape, int(r.nfe)                           # 100 (1 + 1) + 1
        ((1000, 2), 201)
        >>> bool(jnp.allclose(r.x.mean(0), gm.weights @ gm.means, atol=0.15))  # the data's mean
        True

    References:
        Song et al., ICLR 2021, sec. 4.2 and Algorithms 2-5.
    """
    n_steps = _check(sde, shape, eps, n_steps)
    check_positive("snr", snr)  # finite, > 0 and not a bool (True was read as 1)
    n_corrector = check_int("n_corrector", n_corrector, 0)
    return _em_pc(
        score_fn, sde, shape, n_steps, eps, denoise, n_saves, dtype, key, n_corrector, snr
    )


def _em_pc(
    score_fn,
    sde,
    shape,
    n_steps,
    eps,
    denoise,
    n_saves,
    dtype,
    key,
    n_corr,
    snr,
    *,
    chunk_size=None,
    mesh=None,
):
    n_saves = check_int("n_saves", n_saves, 0)
    k0, kloop = jr.split(key)
    x = sde.prior_sample(shape, key=k0, dtype=dtype)
    score_fn = as_state_dtype(score_fn)
    check_model_shape(score_fn, x[0])
    dt_ = x.dtype
    # the reverse-time SDE in the forward-running time u = T - t, u in [0, T - eps]
    rev = sde.reverse(score_fn)
    span = sde.T - eps
    every = _save_every(n_steps, n_saves) if n_saves else None
    if n_corr == 0:
        # reverse-diffusion Euler-Maruyama is the engine's EM on `rev`: paired normal draws,
        # blocked steps and chunked paths (issue #16, item 3)
        paths = simulate(
            rev,
            x,
            t0=0.0,
            t1=span,
            n_steps=n_steps,
            n_paths=shape[0],
            x0_per_path=True,
            save_every=every,
            include_t0=bool(n_saves),
            dtype=dt_,
            chunk_size=chunk_size,
            mesh=mesh,
            key=kloop,
        )
        x = paths.xs[:, -1]
        if n_saves:
            # the saves after every `every` steps (and t = T); a last partial block is not shown
            keep = n_steps // every + 1
            path = jnp.moveaxis(paths.xs[:, :keep], 1, 0)
            ts = sde.T - paths.ts[:keep]
        else:
            path = ts = None
    else:
        x, path, ts = _pc_loop(rev, sde, x, span, n_steps, every, kloop, n_corr, snr)
    nfe = n_steps * (1 + n_corr)
    if denoise:
        x = _denoise(_batched(score_fn), sde, jnp.asarray(eps, dt_), x)
        nfe += 1
    return SampleResult(x, jnp.asarray(nfe), path, ts)


def _pc_loop(rev, sde, x, span, n_steps, every, key, n_corr, snr):
    """Predictor-corrector on the batch: `n_corr` Langevin corrector steps (batch-mean norms),
    then the predictor, the engine's Euler-Maruyama step on the reverse SDE (the same step that
    `euler_maruyama_sampler` runs through `simulate`)."""
    score_b = _batched(rev.score_fn)
    dt_ = x.dtype
    h = jnp.asarray(span / n_steps, dt_)
    flat = (x.shape[0], -1)
    em = EulerMaruyama()
    predictor = jax.vmap(
        lambda y, dw, u: em.step(rev, SolverState(u, y), h, dw).y, in_axes=(0, 0, None)
    )

    def corrector(t, x, k):
        def one(x, kk):
            s = score_b(t, x)
            z = standard_normal(kk, x.shape, dt_)
            # batch-mean norms (as score_sde): per-sample norms blow the step up wherever a
            # low-dimensional sample sits where its score nearly vanishes (a mode's centre)
            gn = jnp.mean(jnp.linalg.norm(s.reshape(flat), axis=1))
            zn = jnp.mean(jnp.linalg.norm(z.reshape(flat), axis=1))
            step = 2.0 * sde.corrector_alpha(t, h) * (snr * zn / jnp.maximum(gn, 1e-30)) ** 2
            return x + step * s + jnp.sqrt(2.0 * step) * z, None

        return jax.lax.scan(one, x, jr.split(k, n_corr))[0]

    def body(x, i):
        u = i.astype(dt_) * h
        kc, kp = jr.split(jr.fold_in(key, i))
        x = corrector(sde.T - u, x, kc)
        x = predictor(x, jnp.sqrt(h) * standard_normal(kp, x.shape, dt_), u)
        return x, None

    if not every:
        return jax.lax.scan(body, x, jnp.arange(n_steps))[0], None, None
    x_T = x

    def outer(x, j):
        x, _ = jax.lax.scan(body, x, j * every + jnp.arange(every))
        return x, x

    n_out = n_steps // every
    x, path = jax.lax.scan(outer, x, jnp.arange(n_out))
    x, _ = jax.lax.scan(body, x, n_out * every + jnp.arange(n_steps - n_out * every))
    ts = sde.T - jnp.arange(n_out + 1, dtype=dt_) * every * h
    return x, jnp.concatenate([x_T[None], path]), ts


def probability_flow_sampler(
    score_fn: ScoreFn,
    sde: AbstractDiffusionSDE,
    shape: tuple[int, ...],
    *,
    solver: str | diffrax.AbstractSolver = "tsit5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    n_steps: int | None = None,
    eps: float = 1e-3,
    denoise: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    n_saves: int = 0,
    x_T: Array | None = None,
    dtype=None,
    key: PRNGKeyArray,
) -> SampleResult:
    r"""Sample by solving the probability-flow ODE from $T$ to $\epsilon$ (the core ODE front).

    $$\frac{dx}{dt} = f(t)x - \tfrac12 g(t)^2 s(t, x),\qquad x(T)\sim p_T,$$

    integrated backwards through `sdeml.core.integrate_ode` on the whole batch as one state: by
    an adaptive solver (default Tsit5, PID controller; the error norm is the RMS over all
    entries, as in score_sde's scipy RK45 sampler, so the step count is shared by the batch), or
    with `n_steps` equal steps (any solver; required for one without an error estimate, such as
    ``"euler"`` or ``"rk4"``).

    Args:
        score_fn, sde, shape, eps, denoise, n_saves, dtype: as `euler_maruyama_sampler`.
        solver: any registered ODE solver name (``sdeml.core.solver_names("ode")``) or a diffrax
            solver; whether it adapts its step is read from the registry.
        rtol, atol: tolerances of the step-size controller (adaptive solvers).
        n_steps: equal steps instead of adaptive ones.
        max_steps: the step budget (hitting it raises `ODESolveError` naming it).
        x_T: start from these prior draws instead of drawing them from `key`, shape `shape`;
            the state keeps their dtype unless `dtype` is given.
        key: PRNG key of the prior draws.

    Returns:
        A `SampleResult`: ``x`` of shape `shape`; ``nfe`` counts every score evaluation of the
        solve (accepted and rejected steps, from the solver's tableau) plus the denoising step;
        with `n_saves`, ``path`` ``(n_saves, *shape)`` at the times ``ts``.

    Examples:
        >>> from sdeml.diffusion import MixtureScore, VPSDE, probability_flow_sampler
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> score = MixtureScore(gm, sde)                  # the exact score of the data
        >>> r = probability_flow_sampler(score, sde, (1000, 2), key=jr.key(0))
        >>> r.x.shape
        (1000, 2)
        >>> bool(jnp.allclose(r.x.mean(0), gm.weights @ gm.means, atol=0.15))  # the data's mean
        True

    References:
        Song et al., ICLR 2021, sec. 4.3. Tsitouras, Runge-Kutta pairs of order 5(4), 2011.
        Kidger, On Neural Differential Equations, 2021 (diffrax).
    """
    _check(sde, shape, eps, 1)
    x0 = sde.prior_sample(shape, key=key, dtype=dtype) if x_T is None else jnp.asarray(x_T, dtype)
    if x0.shape != tuple(shape):
        raise ValueError(f"`x_T` has shape {x0.shape}, expected {tuple(shape)}")
    score_fn = as_state_dtype(score_fn)
    check_model_shape(score_fn, x0[0])
    n_saves = check_int("n_saves", n_saves, 0)
    score_b = _batched(score_fn)
    pf = sde.probability_flow(score_b)
    ts = jnp.linspace(sde.T, eps, n_saves, dtype=x0.dtype) if n_saves else None
    steps = {"n_steps": n_steps, "max_steps": max_steps}
    field = lambda t, y, args: pf(t, y)
    tol = {"rtol": rtol, "atol": atol, "name": "probability_flow_sampler"}
    sol = integrate_ode(field, x0, sde.T, eps, solver=solver, ts=ts, **steps, **tol)
    x = sol.y_final
    nfe = sol.nfe
    if denoise:
        x = _denoise(score_b, sde, jnp.asarray(eps, x.dtype), x)
        nfe = nfe + 1
    return SampleResult(x, nfe, sol.ys if n_saves else None, sol.ts if n_saves else None)


GRIDS = ("logsnr", "edm", "quadratic", "uniform")


def dpm_time_grid(
    sde: AbstractDiffusionSDE, n_steps: int, eps: float, grid: str = "logsnr", dtype=None
) -> tuple[Array, Array]:
    r"""Times $T = t_0 > \dots > t_M = \epsilon$ of a few-step ODE sampler and their log-SNRs.

    * ``"logsnr"``: uniform in $\lambda = \log(\alpha/\sigma)$ (DPM-Solver's default);
    * ``"edm"``: uniform in $\tilde\sigma^{1/\rho}$, $\tilde\sigma = e^{-\lambda} = \sigma/\alpha$,
      $\rho = 7$ (Karras et al. 2022): denser still near $\epsilon$;
    * ``"quadratic"``: uniform in $\sqrt t$; ``"uniform"``: uniform in $t$.

    Args:
        sde: the forward SDE.
        n_steps: $M$.
        eps: the end time.
        grid: the spacing, one of `GRIDS`.
        dtype: float dtype.

    Returns:
        ``(ts, lambdas)``, each of shape ``(M + 1,)``.

    Examples:
        >>> from sdeml.diffusion import VPSDE, dpm_time_grid
        >>> ts, lams = dpm_time_grid(VPSDE(), 10, 1e-3, "edm")
        >>> ts.shape, float(ts[0]), float(ts[-1])
        ((11,), 1.0, 0.001)

    References:
        Lu et al., NeurIPS 2022, sec. 3.3; Karras et al., Elucidating the Design Space of
        Diffusion-Based Generative Models, NeurIPS 2022, eq. (5).
    """
    if grid not in GRIDS:
        raise ValueError(f"unknown time grid {grid!r}; valid: {', '.join(GRIDS)}")
    n_steps = check_positive_int("n_steps", n_steps)  # 0 gave a one-point grid silently
    sde.check_times(eps)
    dt_ = jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)
    t_hi, t_lo = jnp.asarray(sde.T, dt_), jnp.asarray(eps, dt_)
    u = jnp.linspace(0.0, 1.0, n_steps + 1, dtype=dt_)
    if grid in ("logsnr", "edm"):
        l_hi, l_lo = sde.log_snr(t_hi), sde.log_snr(t_lo)
        if grid == "logsnr":
            lam = l_hi + u * (l_lo - l_hi)
        else:
            rho = 7.0
            s_hi, s_lo = jnp.exp(-l_hi / rho), jnp.exp(-l_lo / rho)
            lam = -rho * jnp.log(s_hi + u * (s_lo - s_hi))
        ts = sde.t_from_log_snr(lam)
    else:
        p = 2.0 if grid == "quadratic" else 1.0
        ts = (t_hi ** (1 / p) + u * (t_lo ** (1 / p) - t_hi ** (1 / p))) ** p
    ts = ts.at[0].set(t_hi).at[-1].set(t_lo)
    return ts, sde.log_snr(ts)


def resolve_time_grid(
    sde: AbstractDiffusionSDE, n_steps: int, eps: float, grid: str | Array, dtype=None
) -> tuple[Array, Array]:
    r"""The times and log-SNRs of a few-step sampler's grid: a named one (`dpm_time_grid`) or
    the times themselves.

    An array grid holds the $M + 1$ times $T = t_0 > \dots > t_M = \epsilon$ (for instance
    from `optimize_time_grid`). Its shape is checked always, its values (finite, strictly
    decreasing, from ``sde.T`` to `eps`) whenever they are concrete; traced times (a grid
    being optimised under `jax.grad`) are taken as they are.

    Args:
        sde: the forward SDE.
        n_steps: $M$.
        eps: the end time.
        grid: one of `GRIDS`, or the times, shape ``(M + 1,)``.
        dtype: float dtype.

    Returns:
        ``(ts, lambdas)``, each of shape ``(M + 1,)``.

    Examples:
        >>> from sdeml.diffusion import VPSDE, resolve_time_grid
        >>> ts, lams = resolve_time_grid(VPSDE(), 2, 1e-3, jnp.array([1.0, 0.1, 1e-3]))
        >>> bool(jnp.all(jnp.diff(lams) > 0))               # the log-SNR rises towards eps
        True
        >>> resolve_time_grid(VPSDE(), 2, 1e-3, jnp.array([1.0, 0.5, 0.6]))
        Traceback (most recent call last):
        ValueError: `grid` must be strictly decreasing, got [1.  0.5 0.6]
    """
    if isinstance(grid, str):
        return dpm_time_grid(sde, n_steps, eps, grid, dtype)
    n_steps = check_positive_int("n_steps", n_steps)  # True read as 1 before
    dt_ = jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)
    ts = jnp.asarray(grid, dt_)
    if ts.shape != (n_steps + 1,):
        raise ValueError(
            f"`grid` has shape {ts.shape}: an array grid holds the n_steps + 1 = {n_steps + 1} "
            "times from sde.T down to eps"
        )
    if not isinstance(ts, jax.core.Tracer):
        v = np.asarray(ts, np.float64)
        if not np.all(np.isfinite(v)):
            raise ValueError(f"`grid` has non-finite times: {v}")
        if not np.all(np.diff(v) < 0):
            raise ValueError(f"`grid` must be strictly decreasing, got {v}")
        ends = np.array([sde.T, eps], np.float64)
        if not np.allclose(v[[0, -1]], ends, rtol=1e-5, atol=0.0):
            raise ValueError(
                f"`grid` must run from sde.T = {sde.T} to eps = {eps}, got {v[0]} to {v[-1]}"
            )
    return ts, sde.log_snr(ts)


def dpm_solver_sampler(
    score_fn: ScoreFn,
    sde: AbstractDiffusionSDE,
    shape: tuple[int, ...],
    *,
    n_steps: int = 19,
    order: int = 3,
    multistep: bool = True,
    prediction: str = "noise",
    grid: str | Array = "logsnr",
    eps: float = 1e-4,
    denoise: bool = True,
    x_T: Array | None = None,
    dtype=None,
    key: PRNGKeyArray,
) -> SampleResult:
    r"""DPM-Solver(++): few-step exponential-integrator solver of the probability-flow ODE.

    With $\lambda = \log(\alpha/\sigma)$, the noise prediction $\hat\varepsilon = -\sigma s$
    and the data prediction $\hat x_0 = (x + \sigma^2 s)/\alpha$, the ODE's exact solution is

    $$x_t = \frac{\alpha_t}{\alpha_s}x_s - \alpha_t\int_{\lambda_s}^{\lambda_t}e^{-\lambda}
    \hat\varepsilon\,d\lambda = \frac{\sigma_t}{\sigma_s}x_s + \sigma_t
    \int_{\lambda_s}^{\lambda_t}e^{\lambda}\hat x_0\,d\lambda,$$

    and DPM-Solver expands the predictor to order $k$ in $\lambda$.

    * ``multistep=True`` (default; DPM-Solver++($k$M) with ``prediction="data"``): one score
      evaluation per step, the higher-order terms from divided differences of the previous
      predictions. With $h = \lambda_i - \lambda_{i-1}$, $r = h_{i-1}/h$, order 2 reads
      $x_i = \frac{\sigma_i}{\sigma_{i-1}}x_{i-1} - \alpha_i(e^{-h}-1)\big[(1+\tfrac1{2r})
      \hat x_0^{(i-1)} - \tfrac1{2r}\hat x_0^{(i-2)}\big]$; the first steps use lower orders,
      and with fewer than 10 steps so do the last (Lu et al. 2022b).
    * ``multistep=False``: singlestep DPM-Solver-$k$ ($k$ evaluations per step, intermediate
      points $r_1 = 1/3$, $r_2 = 2/3$ for order 3; order 1 is DDIM).

    The data prediction is the better conditioned near $t = \epsilon$, where the 2-D toys'
    scores are steep; the run ends with Tweedie's denoising step $\hat x_0(\epsilon, x)$.

    Args:
        score_fn, sde, shape, eps, denoise, x_T, dtype: as `probability_flow_sampler`.
        n_steps: number of steps $M$: ``NFE = M + denoise`` (multistep) or
            ``order * M + denoise`` (singlestep).
        order: 1, 2 or 3.
        multistep: multistep (one evaluation per step) or singlestep.
        prediction: ``"data"`` (DPM-Solver++) or ``"noise"`` (DPM-Solver).
        grid: the time grid, one of `GRIDS` (see `dpm_time_grid`), or its $M + 1$ times from
            ``sde.T`` to `eps` (`resolve_time_grid`; e.g. from `optimize_time_grid`).
        key: PRNG key of the prior draws.

    Returns:
        A `SampleResult`: ``x`` of shape `shape`, ``nfe`` as above.

    Examples:
        >>> from sdeml.diffusion import MixtureScore, VPSDE, dpm_solver_sampler
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> score = MixtureScore(gm, sde)                  # the exact score of the data
        >>> r = dpm_solver_sampler(score, sde, (1000, 2), n_steps=18, key=jr.key(0))
        >>> int(r.nfe)  # 18 steps + the denoising step
        19
        >>> bool(jnp.allclose(r.x.mean(0), gm.weights @ gm.means, atol=0.15))  # the data's mean
        True

    References:
        Lu et al., DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model Sampling in
        Around 10 Steps, NeurIPS 2022, Algorithms 1-2. Lu et al., DPM-Solver++: Fast Solver
        for Guided Sampling of Diffusion Probabilistic Models, 2022, Algorithm 2 and appendix B.
        arXiv:2211.01095
    """
    n_steps = _check(sde, shape, eps, n_steps)
    order = check_order(order)
    if prediction not in ("data", "noise"):
        raise ValueError(f"`prediction` must be 'data' or 'noise', got {prediction!r}")
    x = sde.prior_sample(shape, key=key, dtype=dtype) if x_T is None else jnp.asarray(x_T, dtype)
    if x.shape != tuple(shape):
        raise ValueError(f"`x_T` has shape {x.shape}, expected {tuple(shape)}")
    score_fn = as_state_dtype(score_fn)
    check_model_shape(score_fn, x[0])
    dt_ = x.dtype
    score_b = _batched(score_fn)
    ts, lam = resolve_time_grid(sde, n_steps, eps, grid, dt_)
    if multistep:
        x = _dpm_multistep(score_b, sde, x, ts, lam, order, prediction)
        nfe = n_steps
    else:
        x = _dpm_singlestep(score_b, sde, x, ts, lam, order, prediction)
        nfe = order * n_steps
    if denoise:
        x = _denoise(score_b, sde, jnp.asarray(eps, dt_), x)
        nfe += 1
    return SampleResult(x, jnp.asarray(nfe))


def _predict(score_b, sde, prediction, t, x):
    s = score_b(t, x)
    if prediction == "noise":
        return -sde.sigma(t) * s
    return score_to_x0(s, x, sde.alpha(t), sde.sigma(t))


def _dpm_multistep(score_b, sde, x, ts, lam, order, prediction):
    """DPM-Solver(++)-kM: one prediction per step, warm-started and finished at lower order."""
    n = ts.shape[0] - 1
    orders = [min(order, i + 1) for i in range(n)]
    if n < 10:  # lower_order_final of the reference implementation: stabler with few steps
        orders = [min(k, n - i) for i, k in enumerate(orders)]
    a, sg = sde.alpha(ts), sde.sigma(ts)
    data = prediction == "data"

    def body(carry, inp):
        x, m1, m2 = carry  # the two previous predictions
        i, k = inp
        m0 = _predict(score_b, sde, prediction, ts[i], x)
        h = lam[i + 1] - lam[i]
        h0 = lam[i] - lam[jnp.maximum(i - 1, 0)]
        h1 = lam[jnp.maximum(i - 1, 0)] - lam[jnp.maximum(i - 2, 0)]
        r0 = h0 / h
        r1 = h1 / h
        # divided differences (zeroed where the history does not exist yet, k says which apply)
        d1_0 = (m0 - m1) / jnp.where(k >= 2, r0, 1.0)
        d1_1 = (m1 - m2) / jnp.where(k >= 3, r1, 1.0)
        # every denominator stays nonzero where its branch is not selected: a 0/0 there would
        # be masked in the value but not in the gradient with respect to the grid
        d1 = d1_0 + jnp.where(k >= 3, r0 / jnp.where(k >= 3, r0 + r1, 1.0), 0.0) * (d1_0 - d1_1)
        # d2 ~ h^2 m''. The reference code (and diffusers) use half of this, which leaves an
        # O(h^3) local error and makes "3M" second order; with it a quadratic m is exact.
        d2 = 2.0 * (d1_0 - d1_1) / jnp.where(k >= 3, r0 + r1, 1.0)
        if data:
            phi1 = jnp.expm1(-h)
            phi2 = phi1 / h + 1.0
            phi3 = phi2 / h - 0.5
            base = sg[i + 1] / sg[i] * x - a[i + 1] * phi1 * m0
            x2 = base - 0.5 * a[i + 1] * phi1 * d1_0
            x3 = base + a[i + 1] * phi2 * d1 - a[i + 1] * phi3 * d2
        else:
            phi1 = jnp.expm1(h)
            phi2 = phi1 / h - 1.0
            phi3 = phi2 / h - 0.5
            base = a[i + 1] / a[i] * x - sg[i + 1] * phi1 * m0
            x2 = base - 0.5 * sg[i + 1] * phi1 * d1_0
            x3 = base - sg[i + 1] * phi2 * d1 - sg[i + 1] * phi3 * d2
        x_new = jnp.where(k == 1, base, jnp.where(k == 2, x2, x3))
        return (x_new, m0, m1), None

    zeros = jnp.zeros_like(x)
    inputs = (jnp.arange(n), jnp.asarray(orders))
    (x, _, _), _ = jax.lax.scan(body, (x, zeros, zeros), inputs)
    return x


def _dpm_singlestep(score_b, sde, x, ts, lam, order, prediction):
    """Singlestep DPM-Solver-k (Lu et al. 2022, Algorithms 1-2; ++ variant for data)."""
    data = prediction == "data"

    def move(t_r, x, i, r, h, m0):  # first-order move from t_i to log-SNR lam_i + r h
        if data:
            return sde.sigma(t_r) / sde.sigma(ts[i]) * x - sde.alpha(t_r) * jnp.expm1(-r * h) * m0
        return sde.alpha(t_r) / sde.alpha(ts[i]) * x - sde.sigma(t_r) * jnp.expm1(r * h) * m0

    def step(x, i):
        t_next = ts[i + 1]
        h = lam[i + 1] - lam[i]
        m0 = _predict(score_b, sde, prediction, ts[i], x)

        def at(r):
            return sde.t_from_log_snr(lam[i] + r * h)

        if order == 1:
            return move(t_next, x, i, 1.0, h, m0), None
        if order == 2:
            s = at(0.5)
            m1 = _predict(score_b, sde, prediction, s, move(s, x, i, 0.5, h, m0))
            return move(t_next, x, i, 1.0, h, m1), None
        r1, r2 = 1.0 / 3.0, 2.0 / 3.0
        s1, s2 = at(r1), at(r2)
        d1 = _predict(score_b, sde, prediction, s1, move(s1, x, i, r1, h, m0)) - m0
        if data:
            u2 = (
                move(s2, x, i, r2, h, m0)
                + sde.alpha(s2) * (r2 / r1) * (jnp.expm1(-r2 * h) / (r2 * h) + 1.0) * d1
            )
            d2 = _predict(score_b, sde, prediction, s2, u2) - m0
            x_new = (
                move(t_next, x, i, 1.0, h, m0)
                + sde.alpha(t_next) / r2 * (jnp.expm1(-h) / h + 1.0) * d2
            )
        else:
            u2 = (
                move(s2, x, i, r2, h, m0)
                - sde.sigma(s2) * (r2 / r1) * (jnp.expm1(r2 * h) / (r2 * h) - 1.0) * d1
            )
            d2 = _predict(score_b, sde, prediction, s2, u2) - m0
            x_new = (
                move(t_next, x, i, 1.0, h, m0)
                - sde.sigma(t_next) / r2 * (jnp.expm1(h) / h - 1.0) * d2
            )
        return x_new, None

    return jax.lax.scan(step, x, jnp.arange(ts.shape[0] - 1))[0]


SAMPLERS: dict[str, Callable[..., SampleResult]] = {
    "em": euler_maruyama_sampler,
    "pc": pc_sampler,
    "ode": probability_flow_sampler,
    "dpm": dpm_solver_sampler,
}


def sample(
    score_fn: ScoreFn,
    sde: AbstractDiffusionSDE,
    shape: tuple[int, ...],
    *,
    method: str = "em",
    key: PRNGKeyArray,
    **kwargs: Any,
) -> SampleResult:
    """Sample with the method named `method`: ``em``, ``pc``, ``ode`` or ``dpm``.

    Args:
        score_fn: ``score_fn(t, x)`` for one sample ``x`` of shape `sample_shape` (e.g. a
            trained `ScoreModel`).
        sde: the forward SDE.
        shape: ``(n_samples, *sample_shape)``.
        method: the sampler's name, a key of `SAMPLERS`.
        key: PRNG key.
        **kwargs: forwarded to the sampler (e.g. ``n_steps``, ``snr``, ``rtol``, ``order``).

    Returns:
        A `SampleResult`, ``x`` of shape `shape`.

    Examples:
        >>> from sdeml.diffusion import MixtureScore, VPSDE, sample
        >>> gm, sde = sdeml.data.gaussian_mixture_2d(), VPSDE()
        >>> score = MixtureScore(gm, sde)                  # the exact score of the data
        >>> r = sample(score, sde, (1000, 2), method="dpm", n_steps=10, key=jr.key(0))
        >>> r.x.shape, int(r.nfe)                              # dpm_solver_sampler's
        ((1000, 2), 11)
        >>> bool(jnp.allclose(r.x.mean(0), gm.weights @ gm.means, atol=0.15))  # the data's mean
        True

    References:
        Song et al., ICLR 2021; Lu et al., NeurIPS 2022.
    """
    if method not in SAMPLERS:
        raise ValueError(f"unknown sampler {method!r}; valid: {', '.join(SAMPLERS)}")
    return SAMPLERS[method](score_fn, sde, tuple(shape), key=key, **kwargs)
