r"""The original PFGM (Xu et al. 2022): PFGM++ with $D = 1$, written in its augmented variable.

The data $y_i\in\mathbb R^N$ sit on the hyperplane $z = 0$ of $\mathbb R^{N+1}$ as positive
charges; their electric field
$E(\tilde x)\propto\sum_i(\tilde x-\tilde y_i)/\|\tilde x-\tilde y_i\|^{N+1}$ carries
the data law to a distribution on a far hemisphere, and the backward ODE along it,

$$\frac{dx}{dz} = \frac{E_x(x, z)}{E_z(x, z)},\qquad\text{or in } t = \ln z:\quad
\frac{dx}{dt} = z\,\frac{E_x}{E_z},$$

brings draws of the prior at $z_\max$ back to data. A network learns the *normalised* field
$-\sqrt N E/\|E\|$ (its magnitude spans many decades), and only the direction enters the ODE.
With the field of the empirical law the ODE is exactly PFGM++'s at $D = 1$, $\sigma = r = z$:
$z E_x/E_z = x - D(x, z)$ with `IdealDenoiser(data, 1.0)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ..core import integrate_ode
from ..core._checks import as_float, check_int, check_interval, check_positive
from ..diffusion import SampleResult, edm_sigma_sample
from ._kernel import PFGMPPKernel, _common_float, clip_norm


def poisson_field(
    data: Real[ArrayLike, "m n"], x: Real[ArrayLike, " n"], z: Real[ArrayLike, ""]
) -> tuple[Float[Array, " n"], Float[Array, ""], Float[Array, ""]]:
    r"""The empirical Poisson field of the charges $(y_i, 0)$ at $(x, z)$, up to a positive factor.

    $$E(\tilde x) = \frac1m\sum_i\frac{\tilde x - \tilde y_i}{\|\tilde x - \tilde y_i\|^{N+1}}
    = c\sum_i w_i(\tilde x - \tilde y_i),\qquad
    w_i = \mathrm{softmax}_i\big(-\tfrac{N+1}2\ln\|\tilde x-\tilde y_i\|^2\big),$$

    the weights by log-sum-exp (the raw terms under- or overflow for large $N$); the factor
    $c = \frac1m\sum_i\|\tilde x-\tilde y_i\|^{-(N+1)}$ is returned as $\ln c$.

    Args:
        data: the charges ``(m, N)``.
        x: the position's data part ``(N,)``.
        z: the augmented coordinate, ``z > 0``.

    Returns:
        ``(E_x / c, E_z / c, ln c)``: shapes ``(N,)``, ``()`` and ``()``.

    Examples:
        One charge at the origin: $E/c = \tilde x$ and $c = \|\tilde x\|^{-(N+1)}$; with
        several charges, $c\,(E_x/c, E_z/c)$ is the direct sum:

        >>> import math
        >>> from sdeml.pfgm import poisson_field
        >>> ex, ez, log_c = poisson_field(jnp.zeros((1, 2)), jnp.array([3.0, 0.0]), 4.0)
        >>> ex.tolist(), float(ez), round(float(log_c), 6), round(-1.5 * math.log(25.0), 6)
        ([3.0, 0.0], 4.0, -4.828314, -4.828314)
        >>> data = jnp.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
        >>> xt = jnp.array([1.0, 1.0, 0.5])  # (x, z)
        >>> diff = xt - jnp.concatenate([data, jnp.zeros((3, 1))], axis=1)
        >>> direct = jnp.mean(diff / jnp.linalg.norm(diff, axis=1, keepdims=True) ** 3, axis=0)
        >>> ex, ez, log_c = poisson_field(data, xt[:2], xt[2])
        >>> bool(jnp.allclose(jnp.exp(log_c) * jnp.append(ex, ez), direct, rtol=1e-12))
        True

    References:
        Xu, Liu, Tegmark & Jaakkola, Poisson Flow Generative Models, NeurIPS 2022, sec. 3.
        arXiv:2209.11178
    """
    data, x = jnp.asarray(data), jnp.asarray(x)
    if data.ndim != 2 or x.shape != data.shape[1:] or jnp.ndim(z) != 0:
        raise ValueError(
            f"`data`, `x` and `z` must have shapes (m, N), (N,) and (), got {data.shape}, "
            f"{x.shape} and {jnp.shape(z)}"
        )
    # one float dtype: integer charges or points, or a float64 z with float32 points, failed
    data, x = _common_float(data, x)
    z = jnp.asarray(z).astype(x.dtype)
    N = x.shape[0]
    d2 = jnp.sum((x[None] - data) ** 2, axis=1) + z**2
    logits = -0.5 * (N + 1) * jnp.log(d2)
    w = jax.nn.softmax(logits)
    ex = jnp.sum(w[:, None] * (x[None] - data), axis=0)
    log_c = jax.nn.logsumexp(logits) - math.log(data.shape[0])
    return ex, z * jnp.sum(w), log_c


def normalised_field(
    data: Real[ArrayLike, "m n"], x: Real[ArrayLike, " n"], z: Real[ArrayLike, ""]
) -> Float[Array, " n1"]:
    r"""PFGM's regression target $-\sqrt N\,E/\|E\|$ at $(x, z)$, shape ``(N + 1,)``: the field's
    direction, pointing towards the data (PFGM normalises because $\|E\|$ falls like
    $\|\tilde x\|^{-N}$ far out and explodes near the charges).

    Args:
        data: the charges ``(m, N)``.
        x: the position's data part ``(N,)``.
        z: the augmented coordinate, ``z > 0``.

    Returns:
        The normalised field, shape ``(N + 1,)`` (the last entry is the $z$ component).

    Examples:
        >>> from sdeml.pfgm import normalised_field
        >>> v = normalised_field(jnp.zeros((1, 2)), jnp.array([3.0, 0.0]), 4.0)
        >>> [round(float(a), 6) for a in v]  # -sqrt(2) (3, 0, 4) / 5: towards the charge
        [-0.848528, -0.0, -1.131371]
        >>> round(float(jnp.linalg.norm(v) ** 2), 6)  # |v|^2 = N
        2.0

    References:
        Xu et al., Poisson Flow Generative Models, NeurIPS 2022, sec. 3.2. arXiv:2209.11178
    """
    ex, ez, _ = poisson_field(data, x, z)
    e = jnp.concatenate([ex, ez[None]])
    return -math.sqrt(ex.shape[0]) * e / jnp.maximum(jnp.linalg.norm(e), 1e-30)


def pfgm_perturb(
    batch: Real[ArrayLike, "b n"],
    *,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    key: PRNGKeyArray,
) -> tuple[Float[Array, "b n"], Float[Array, " b"]]:
    r"""Training points of PFGM: $z = r$ log-normal (EDM's proposal), $x = y + R u$ with
    $R^2/z^2\sim\mathrm{BetaPrime}(N/2, 1/2)$ (the PFGM++ kernel at $D = 1$, which is where the
    field lines of a single charge cross the hyperplane at height $z$).

    Args:
        batch: data $y$, shape ``(b, N)``.
        p_mean, p_std: $\ln z\sim\mathcal N(P_\text{mean}, P_\text{std}^2)$.
        key: PRNG key.

    Returns:
        ``(x, z)``: shapes ``(b, N)`` and ``(b,)``.

    Examples:
        The fraction with $R^2 \le z^2$ against the exact CDF $1 - 2^{-1/2}$ (at $N = 2$):

        >>> from sdeml.pfgm import PFGMPPKernel, pfgm_perturb
        >>> y = jr.normal(jr.key(0), (20_000, 2))
        >>> x, z = pfgm_perturb(y, key=jr.key(1))
        >>> x.shape, z.shape
        ((20000, 2), (20000,))
        >>> frac = jnp.mean(jnp.sum((x - y) ** 2, axis=1) <= z**2)
        >>> round(float(frac), 3), round(float(PFGMPPKernel(1.0).radius_sq_cdf(1.0, 2)), 3)
        (0.288, 0.293)

    References:
        Xu et al., NeurIPS 2022; Xu et al., PFGM++, ICML 2023 (the $D = 1$ kernel).
        arXiv:2302.04265
    """
    batch = jnp.asarray(batch)
    batch = as_float(batch)  # integer data: the noise is float
    ks, kn = jr.split(key)
    z = edm_sigma_sample(batch.shape[0], p_mean=p_mean, p_std=p_std, dtype=batch.dtype, key=ks)
    x = batch + PFGMPPKernel(1.0).noise(kn, z, batch.shape)
    return x, z


def pfgm_loss(
    field_net: Callable[..., Array],
    batch: Real[ArrayLike, "b n"],
    *,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    key: PRNGKeyArray,
) -> Float[Array, ""]:
    r"""PFGM's normalised-field regression over a batch.

    $$\mathcal L = \frac1b\sum_j\Big\|f_\theta(\tilde x_j) + \sqrt N\,
    \frac{E(\tilde x_j)}{\|E(\tilde x_j)\|}\Big\|^2,$$

    with $E$ the empirical field of the batch itself (`poisson_field`) and $\tilde x_j =
    (x_j, z_j)$ from `pfgm_perturb`.

    Args:
        field_net: ``field_net(z, x) -> (N + 1,)`` for one point (e.g. ``sdeml.nn.TimeMLP(N,
            out_dim=N + 1)`` fed $\ln z$: wrap it as ``lambda z, x: net(jnp.log(z), x)``).
        batch: data ``(b, N)``.
        p_mean, p_std: the log-normal law of $z$.
        key: PRNG key.

    Returns:
        The scalar loss.

    Examples:
        The empirical field itself has zero loss, and the zero network has loss $N$ (every
        target has norm $\sqrt N$):

        >>> from sdeml.pfgm import normalised_field, pfgm_loss
        >>> batch = jr.normal(jr.key(0), (32, 2))
        >>> float(pfgm_loss(lambda z, x: normalised_field(batch, x, z), batch, key=jr.key(1)))
        0.0
        >>> round(float(pfgm_loss(lambda z, x: jnp.zeros(3), batch, key=jr.key(1))), 6)
        2.0

    References:
        Xu, Liu, Tegmark & Jaakkola, Poisson Flow Generative Models, NeurIPS 2022, Algorithm 1
        and sec. 3.2. arXiv:2209.11178
    """
    batch = jnp.asarray(batch)
    if batch.ndim != 2:
        raise ValueError(f"`batch` must have shape (b, N), got {batch.shape}")
    batch = as_float(batch)  # integer data: the charges of the float targets
    x, z = pfgm_perturb(batch, p_mean=p_mean, p_std=p_std, key=key)
    target = jax.vmap(lambda x_, z_: normalised_field(batch, x_, z_))(x, z)
    out = jax.vmap(field_net)(z, x)
    if out.shape != target.shape:
        raise ValueError(f"`field_net` must return shape (N + 1,) = {target.shape[1:]}")
    return jnp.mean(jnp.sum((out - target) ** 2, axis=1))


def pfgm_prior(
    shape: tuple[int, int],
    z_max: Real[ArrayLike, ""],
    *,
    max_radius: float | ArrayLike | None = None,
    dtype=None,
    key: PRNGKeyArray,
) -> Float[Array, "n N"]:
    r"""Draws of PFGM's prior on the hyperplane $z = z_\max$, clipped.

    Far from the data the field is that of one charge at the origin, whose field lines cross
    $z = z_\max$ with density $\propto z_\max(\|x\|^2 + z_\max^2)^{-(N+1)/2}$: the PFGM++
    kernel at $D = 1$, $R^2/z_\max^2\sim\mathrm{BetaPrime}(N/2, 1/2)$. Its radial density falls
    only like $R^{-2}$: $\mathbb E R^k<\infty$ only for $k < D = 1$, so even the mean norm is
    infinite (for any $D\le2$ the second moment is), and a few draws land absurdly far out,
    where a learned field is untrained and the ODE spends its steps. PFGM therefore clips the
    norm; the default here is ``max_radius = 20 * z_max * sqrt(N)``. The tail is so heavy that
    this clips a few per cent: for $N = 2$, $P(R > \rho) = (1 + \rho^2/z_\max^2)^{-1/2}$, i.e.
    3.5 % of the draws (the example measures 3.3 % of 20 000). Pass ``math.inf`` for no clipping.

    Args:
        shape: ``(n, N)``.
        z_max: the starting height.
        max_radius: the clip (see above).
        dtype: float dtype.
        key: PRNG key.

    Returns:
        The draws, shape ``(n, N)``.

    Examples:
        The fraction clipped at the default radius against $(1 + 800)^{-1/2}$ ($N = 2$):

        >>> import math
        >>> from sdeml.pfgm import pfgm_prior
        >>> x = pfgm_prior((20_000, 2), 40.0, key=jr.key(0))
        >>> clipped = jnp.isclose(jnp.linalg.norm(x, axis=1), 20 * 40.0 * math.sqrt(2))
        >>> x.shape, round(float(jnp.mean(clipped)), 3), round(801**-0.5, 3)
        ((20000, 2), 0.033, 0.035)

    References:
        Xu et al., NeurIPS 2022, sec. 3.3 and appendix B.2.
    """
    if not isinstance(shape, tuple | list) or len(shape) != 2:
        raise ValueError(f"`shape` must be (n, N), got {shape}")
    shape = (check_int("shape", shape[0], 0), check_int("shape", shape[1], 1))
    check_positive("z_max", z_max)  # else the default clip below blamed `max_radius`
    radius = max_radius
    if radius is None:
        radius = 20.0 * float(np.asarray(z_max)) * math.sqrt(shape[1])
    x = PFGMPPKernel(1.0).prior(shape, z_max, dtype=dtype, key=key)
    return x if np.all(np.isinf(np.asarray(radius))) else clip_norm(x, radius)


def pfgm_sampler(
    field_fn: Callable[[Array, Array], Array],
    shape: tuple[int, int],
    *,
    z_max: float = 40.0,
    z_min: float = 1e-3,
    max_radius: float | None = None,
    solver: str = "tsit5",
    rtol: float = 1e-4,
    atol: float = 1e-4,
    n_steps: int | None = None,
    x_T: Array | None = None,
    dtype=None,
    key: PRNGKeyArray,
) -> SampleResult:
    r"""PFGM's backward ODE in the augmented variable, $\frac{dx}{dt} = z\,f_x/f_z$, $z = e^t$,
    from $z_\max$ to $z_\min$ (through `sdeml.core.integrate_ode`).

    A field line that left its charge at the angle $\theta$ to the hyperplane is still about
    $z/\tan\theta$ from it at height $z$; the far draws of the heavy-tailed prior ride grazing
    lines (small $\theta$), so they arrive last: a small $z_\min$ (or the prior's clip) matters.

    Args:
        field_fn: ``field_fn(z, x) -> (N + 1,)``, any positive or negative multiple of the
            field at one point (a trained normalised field, or ``lambda z, x:
            normalised_field(data, x, z)`` for the empirical law).
        shape: ``(n, N)``.
        z_max, z_min: ``0 < z_min < z_max``.
        max_radius: the prior's clip (see `pfgm_prior`).
        solver, rtol, atol, n_steps: as `sdeml.core.solve_ode`.
        x_T: start from these draws.
        dtype: float dtype.
        key: PRNG key of the prior draws.

    Returns:
        A `sdeml.diffusion.SampleResult` (``nfe`` of the solve).

    Examples:
        The empirical field of three points brings the prior's draws back onto them (the grazing
        ones arrive last, a little farther away):

        >>> from sdeml.pfgm import normalised_field, pfgm_sampler
        >>> data = jnp.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
        >>> res = pfgm_sampler(lambda z, x: normalised_field(data, x, z), (32, 2), key=jr.key(0))
        >>> dist = jnp.min(jnp.linalg.norm(res.x[:, None] - data[None], axis=-1), axis=1)
        >>> res.x.shape, bool(jnp.median(dist) < 0.01), bool(jnp.max(dist) < 0.05)
        ((32, 2), True, True)

    References:
        Xu et al., NeurIPS 2022, sec. 3.3 (eq. (6)-(7)).
    """
    # finite scalars, z_min > 0 (bools refused: z_min=True had run to z = 1)
    z_min, z_max = check_interval("z_min", z_min, "z_max", z_max)
    check_positive("z_min", z_min)
    if x_T is None:
        x = pfgm_prior(shape, z_max, max_radius=max_radius, dtype=dtype, key=key)
    else:  # integer draws: a float state
        x = as_float(jnp.asarray(x_T))
    if x.shape != tuple(shape):
        raise ValueError(f"`x_T` has shape {x.shape}, expected {tuple(shape)}")
    f_b = jax.vmap(field_fn, in_axes=(None, 0))

    def field(t: Any, y: Array, args: Any) -> Array:
        # z and the field in the state's dtype: a float32 state failed against the float64
        # time (or a float64 field of float64 charges) under x64
        z = jnp.exp(t).astype(y.dtype)
        f = f_b(z, y).astype(y.dtype)
        return z * f[:, :-1] / f[:, -1:]

    sol = integrate_ode(
        field,
        x,
        math.log(z_max),
        math.log(z_min),
        solver=solver,
        rtol=rtol,
        atol=atol,
        n_steps=n_steps,
        name="pfgm_sampler",
    )
    return SampleResult(sol.y_final, sol.nfe)
