"""The 1-D Fokker–Planck equation by conservative finite volumes and Crank–Nicolson, the
matching path simulation (Euler–Maruyama), and the comparison of path histograms with bin
probabilities in units of sampling error (`histogram_test`, calibrated for many bins)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from ..core import SDE, simulate
from ..core._checks import (
    check_int,
    check_interval,
    check_positive_int,
    check_positive_scalar,
)

Coefficient = Callable[[Float[Array, ""], Float[Array, " n"]], Float[Array, " n"]]


def _check_grid(lo, hi, n_cells, t0, t1, n_steps, save_every):
    check_interval("lo", lo, "hi", hi)
    check_int("n_cells", n_cells, 3)  # from p0's shape: a Python int
    check_interval("t0", t0, "t1", t1)
    n_steps = check_positive_int("n_steps", n_steps)  # NumPy integers too
    save_every = check_positive_int("save_every", save_every)
    if n_steps % save_every:
        raise ValueError(f"`save_every` must divide n_steps={n_steps}, got {save_every!r}.")
    return n_steps, save_every


def fokker_planck_1d(
    drift: Coefficient,
    diffusion: Coefficient,
    p0: Real[ArrayLike, " n"],
    lo: float,
    hi: float,
    t0: float,
    t1: float,
    n_steps: int,
    save_every: int = 1,
) -> tuple[Float[Array, " s"], Float[Array, " n"], Float[Array, "s n"]]:
    r"""Solve the 1-D Fokker–Planck equation of $dX = f(t,X)dt + g(t,X)dW$ on a grid.

    $$
    \partial_t p = -\partial_x J,\qquad J = f p - \partial_x (D p),\quad D = g^2/2,
    $$

    with zero flux at ``lo`` and ``hi``. Finite volumes on ``n`` equal cells (centres
    $x_i$), face flux $J_{i+1/2} = f_{i+1/2}\,(p_i+p_{i+1})/2 - (D_{i+1}p_{i+1} -
    D_ip_i)/\Delta x$, and Crank–Nicolson in time with the coefficients at the mid-step: second
    order in $\Delta x$ and $\Delta t$, exact conservation of mass (the columns of the
    tridiagonal operator sum to zero), one tridiagonal solve per step.

    Args:
        drift: $f(t, x)$, elementwise on an array of points ``(m,) -> (m,)`` (a scalar, e.g.
            a constant, is broadcast).
        diffusion: $g(t, x)$, elementwise (likewise).
        p0: the initial density at the cell centres ``lo + (i + 1/2)(hi - lo)/n``, shape
            ``(n,)``; its floating dtype is the solve's (integers become the default float).
        lo, hi: the domain (choose it so the density is negligible at the walls: the walls
            reflect, and mass that reaches them biases the moments).
        t0, t1, n_steps: the time grid.
        save_every: keep every `save_every`-th step (and t0).

    Returns:
        ``(ts, x, p)``: save times ``(s,)``, cell centres ``(n,)``, densities ``(s, n)``, with
        ``s = n_steps // save_every + 1``.

    Examples:
        The Ornstein–Uhlenbeck process $dX = -X\,dt + \sqrt2\,dW$ from $N(2, 0.2^2)$: at $t=1$
        its mean is $2e^{-1} = 0.7358$ and its variance $0.04e^{-2} + 1 - e^{-2} = 0.8701$.

        >>> from sdeml.langevin import fokker_planck_1d
        >>> x = -6.0 + (jnp.arange(300) + 0.5) * 0.04  # the cell centres of [-6, 6]
        >>> ts, x, p = fokker_planck_1d(lambda t, x: -x, lambda t, x: jnp.full_like(x, 2**0.5),
        ...                             jax.scipy.stats.norm.pdf(x, 2.0, 0.2), -6.0, 6.0,
        ...                             0.0, 1.0, 200, 50)
        >>> ts.shape, x.shape, p.shape
        ((5,), (300,), (5, 300))
        >>> mass, mean = jnp.sum(p[-1]) * 0.04, jnp.sum(x * p[-1]) * 0.04
        >>> round(float(mass), 6), round(float(mean), 4)
        (1.0, 0.7358)
        >>> round(float(jnp.sum((x - mean) ** 2 * p[-1]) * 0.04), 3)
        0.87

    References:
        Risken, The Fokker–Planck Equation, Springer 1989; Chang & Cooper, J. Comput. Phys. 6,
        1970 (conservative differencing); Crank & Nicolson, Proc. Camb. Phil. Soc. 43, 1947.
    """
    p0 = jnp.asarray(p0)
    if p0.ndim != 1:
        raise ValueError(f"`p0` must have shape (n_cells,), got {p0.shape}.")
    n = p0.shape[0]
    n_steps, save_every = _check_grid(lo, hi, n, t0, t1, n_steps, save_every)
    if not jnp.issubdtype(p0.dtype, jnp.floating):
        p0 = p0.astype(float)  # an integer p0 made an integer grid and a scan dtype error
    dtype = p0.dtype
    dx = (hi - lo) / n
    x = lo + (jnp.arange(n, dtype=dtype) + 0.5) * dx
    faces = x[:-1] + 0.5 * dx
    dt = (t1 - t0) / n_steps

    def operator(t):
        # In the grid's shape and dtype: a scalar coefficient (a constant) failed to index.
        f = jnp.broadcast_to(jnp.asarray(drift(t, faces), dtype), faces.shape)
        dd = 0.5 * jnp.broadcast_to(jnp.asarray(diffusion(t, x), dtype), x.shape) ** 2
        a = 0.5 * f + dd[:-1] / dx  # J_{i+1/2} = a_i p_i + b_i p_{i+1}
        b = 0.5 * f - dd[1:] / dx
        zero = jnp.zeros(1, dtype)
        lower = jnp.concatenate([zero, a]) / dx  # dl[i] = A[i, i-1]
        diag = (jnp.concatenate([zero, b]) - jnp.concatenate([a, zero])) / dx
        upper = jnp.concatenate([-b, zero]) / dx  # du[i] = A[i, i+1]
        return lower, diag, upper

    def apply(lower, diag, upper, p):
        return diag * p + lower * jnp.roll(p, 1) + upper * jnp.roll(p, -1)

    def cn_step(p, k):
        t = t0 + (jnp.asarray(k, dtype) + 0.5) * dt
        lower, diag, upper = operator(t)
        rhs = p + 0.5 * dt * apply(lower, diag, upper, p)
        return jax.lax.linalg.tridiagonal_solve(
            -0.5 * dt * lower, 1.0 - 0.5 * dt * diag, -0.5 * dt * upper, rhs[:, None]
        )[:, 0]

    def block(p, k0):
        p = jax.lax.fori_loop(0, save_every, lambda j, q: cn_step(q, k0 + j), p)
        return p, p

    starts = jnp.arange(0, n_steps, save_every)
    _, ps = jax.lax.scan(block, p0, starts)
    ts = t0 + jnp.arange(n_steps // save_every + 1, dtype=dtype) * (save_every * dt)
    return ts, x, jnp.concatenate([p0[None], ps])


def simulate_scalar_sde(
    drift: Coefficient,
    diffusion: Coefficient,
    x0: Float[Array, " n_paths"],
    t0: float,
    t1: float,
    n_steps: int,
    save_every: int = 1,
    *,
    chunk_size: int | None = None,
    mesh: Any = None,
    key: PRNGKeyArray,
) -> tuple[Float[Array, " s"], Float[Array, "s n_paths"]]:
    r"""Euler–Maruyama for a batch of scalar SDE paths, on the SDE engine (`sdeml.core.simulate`).

    $$
    X_{k+1} = X_k + f(t_k, X_k)\Delta t + g(t_k, X_k)\sqrt{\Delta t}\,\xi_k.
    $$

    A thin use of the engine for the Fokker–Planck comparison: the coefficients become an
    `sdeml.core.SDE` with diagonal noise on the state shape ``(1,)``, simulated in the dtype of
    `x0` with the engine's blocking, chunking and (float32) paired normal draws.

    Args:
        drift, diffusion: $f(t, x)$ and $g(t, x)$, elementwise.
        x0: initial points, one per path, shape ``(n_paths,)``.
        t0, t1, n_steps, save_every: the time grid; states are kept every `save_every` steps.
        chunk_size: paths per chunk of the engine (`sdeml.simulate`'s; default: sized to the
            platform's memory).
        mesh: a `jax.sharding.Mesh` (or `NamedSharding`) to split the paths over its devices,
            also those of other processes under `jax.distributed` (`sdeml.simulate`'s
            ``mesh``); every path equals the one-device run's with the same key and
            `chunk_size`. None: the default device.
        key: PRNG key.

    Returns:
        ``(ts, xs)`` with ``xs`` of shape ``(n_steps // save_every + 1, n_paths)``.

    Examples:
        The Ornstein–Uhlenbeck process $dX = -X\,dt + dW$ from 0 has variance
        $(1 - e^{-2t})/2 = 0.432$ at $t = 1$:

        >>> from sdeml.langevin import simulate_scalar_sde
        >>> ts, xs = simulate_scalar_sde(lambda t, x: -x, lambda t, x: jnp.ones_like(x),
        ...                              jnp.zeros(10_000), 0.0, 1.0, 200, 100, key=jr.key(0))
        >>> ts.tolist(), xs.shape
        ([0.0, 0.5, 1.0], (3, 10000))
        >>> bool(abs(xs[-1].var() - 0.432) < 0.02)
        True

    References:
        Kloeden & Platen, Numerical Solution of Stochastic Differential Equations, 1992, ch. 9.
    """
    x0 = jnp.asarray(x0)
    if x0.ndim != 1:
        raise ValueError(f"`x0` must have shape (n_paths,), got {x0.shape}.")
    n_steps, save_every = _check_grid(0.0, 1.0, 3, t0, t1, n_steps, save_every)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(float)
    sde = SDE(lambda t, y, a: drift(t, y), lambda t, y, a: diffusion(t, y), noise="diagonal")
    paths = simulate(
        sde,
        x0[:, None],
        t0=t0,
        t1=t1,
        n_steps=n_steps,
        n_paths=x0.shape[0],
        x0_per_path=True,
        save_every=save_every,
        include_t0=True,
        dtype=x0.dtype,
        chunk_size=chunk_size,
        mesh=mesh,
        key=key,
    )
    return paths.ts, paths.xs[..., 0].T


_EM_KERNEL_BYTES = 2 * 2**30  # the dense transition matrix's largest size


def em_chain_bin_probabilities(
    drift: Callable[[Float[Array, " n"]], Float[Array, " n"]],
    diffusion: float,
    p0: Callable[[Float[Array, " n"]], Float[Array, " n"]],
    lo: float,
    hi: float,
    n_bins: int,
    dt: float,
    n_saves: int,
    save_every: int,
) -> Float[Array, "s n_bins"]:
    r"""Bin probabilities of the Euler–Maruyama chain itself, computed without sampling.

    For an autonomous SDE with additive noise, $dX = f(X)dt + g\,dW$, the EM step is the
    Gaussian kernel $K(y\mid x) = N(y;\ x + f(x)\Delta t,\ g^2\Delta t)$, so the chain's
    law obeys Chapman–Kolmogorov, $p_{k+1}(y) = \int K(y\mid x)\,p_k(x)\,dx$. The
    midpoint rule on a grid of $[lo, hi]$ with spacing $h \le s/4$
    ($s = g\sqrt{\Delta t}$) integrates this smooth kernel to
    $\sim e^{-2\pi^2(s/h)^2}$; mass that leaves $[lo, hi]$ is lost (choose the box
    so that the law is negligible at its ends). The bin probabilities are then midpoint sums
    of the grid density over each bin, accurate to $O(h^2)$ (a few $10^{-6}$ in the example
    below). Comparing it with the Fokker–Planck density measures the EM time-step bias, free
    of sampling error.

    Args:
        drift: $f(x)$, elementwise ``(m,) -> (m,)`` (autonomous).
        diffusion: the constant $g > 0$.
        p0: the initial density, elementwise ``(m,) -> (m,)``.
        lo, hi, n_bins: equal bins of ``[lo, hi]``.
        dt: the EM step $\Delta t > 0$.
        n_saves: number of saved times after the start.
        save_every: EM steps between saves.

    Raises:
        ValueError: the dense grid's transition matrix would exceed 2 GiB (about 16000 grid
            points in float64: $[lo, hi]$ wider than ~4000 noise scales $s$).

    Returns:
        ``(n_saves + 1, n_bins)``: the probability of each bin after ``0, save_every, ...,
        n_saves * save_every`` steps.

    Examples:
        The EM chain of $dX = -X\,dt + \sqrt2\,dW$ started in its invariant law $N(0, 1)$ is
        Gaussian with variance $v_{k+1} = (1-\Delta t)^2 v_k + 2\Delta t$: after 100 steps
        of $\Delta t = 0.01$ its bins are computed to $10^{-5}$, against an EM bias of
        $1.7\times10^{-4}$:

        >>> from sdeml.langevin import em_chain_bin_probabilities
        >>> norm = jax.scipy.stats.norm
        >>> q = em_chain_bin_probabilities(lambda x: -x, 2**0.5, norm.pdf, -6.0, 6.0, 60,
        ...                                0.01, 5, 20)
        >>> q.shape
        (6, 60)
        >>> v = 0.99**200 + 2 * 0.01 * (1 - 0.99**200) / (1 - 0.99**2)  # v_100 from v_0 = 1
        >>> edges = jnp.linspace(-6.0, 6.0, 61)
        >>> em_law = jnp.diff(norm.cdf(edges, 0.0, v**0.5))
        >>> bool(jnp.max(jnp.abs(q[-1] - em_law)) < 1e-5)
        True
        >>> f"{float(jnp.max(jnp.abs(em_law - jnp.diff(norm.cdf(edges))))):.1e}"  # EM bias
        '1.7e-04'

    References:
        Kloeden & Platen (1992), §14.1 (the EM chain's law); Atkinson, The Numerical Solution of
        Integral Equations of the Second Kind, 1997 (the Nyström/midpoint rule).
    """
    check_positive_scalar("diffusion", diffusion)  # an array failed inside math.ceil
    check_positive_scalar("dt", dt)
    check_interval("lo", lo, "hi", hi)
    n_bins = check_positive_int("n_bins", n_bins)  # NumPy integers too, as Python ints
    n_saves = check_positive_int("n_saves", n_saves)
    save_every = check_positive_int("save_every", save_every)
    s = diffusion * math.sqrt(dt)
    per_bin = math.ceil((hi - lo) / n_bins / (s / 4))
    n = n_bins * per_bin
    h = (hi - lo) / n
    dtype = jnp.result_type(float)
    # the transition matrix is dense, n x n: a small step makes n large (cells of s / 4)
    size = n * n * jnp.dtype(dtype).itemsize
    if size > _EM_KERNEL_BYTES:
        raise ValueError(
            f"em_chain_bin_probabilities: the {n} x {n} transition matrix would take "
            f"{size / 2**30:.1f} GiB (limit {_EM_KERNEL_BYTES / 2**30:.0f} GiB): its cells are a "
            f"quarter of one step's noise, diffusion * sqrt(dt) = {s:.3g}, over [lo, hi] = "
            f"[{lo}, {hi}]. Use a larger dt, a narrower [lo, hi], or histogram simulated chains "
            "(histogram_chains)."
        )
    x = lo + (jnp.arange(n, dtype=dtype) + 0.5) * h
    kernel = h * jax.scipy.stats.norm.pdf(x[:, None], (x + drift(x) * dt)[None, :], s)

    def save(q, _):
        q = jax.lax.fori_loop(0, save_every, lambda _, r: kernel @ r, q)
        return q, q

    q0 = jnp.asarray(p0(x), dtype)
    qs = jnp.concatenate([q0[None], jax.lax.scan(save, q0, None, length=n_saves)[1]])
    return qs.reshape(n_saves + 1, n_bins, per_bin).sum(-1) * h


# Rounding of a sum of bin probabilities is ~1e-6 in float32; 1e-3 refuses a tail left out of the
# end bins (the +-3 sd tails of a normal are 2.7e-3) or a mis-normalised density.
_PROB_SUM_TOL = 1e-3


def _check_histogram(counts: Any, probs: Any, *, sums_to_one: bool) -> None:
    """Shapes always; values of concrete inputs: counts and probs finite and >= 0, probs summing
    to at most 1 (and at least 1, with `sums_to_one`) within `_PROB_SUM_TOL`."""
    shape_c, shape_p = jnp.shape(counts), jnp.shape(probs)
    if len(shape_c) != 1 or shape_c != shape_p:
        raise ValueError(
            f"`counts` and `probs` must be 1-D of the same shape, got {shape_c} and {shape_p}."
        )
    for name, v in (("counts", counts), ("probs", probs)):
        if isinstance(v, jax.core.Tracer):
            continue  # under jit/vmap: nothing concrete to check
        arr = np.asarray(v, np.float64)
        # rounding below zero passes (a solved density's empty tail bins read -3e-33): up to
        # 1e-9 of the largest entry; the functions clip it to 0
        floor = -1e-9 * max(1.0, float(np.max(np.abs(arr), initial=0.0)))
        bad = ~np.isfinite(arr) | (arr < floor)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(f"`{name}` must be finite and >= 0, got {arr[i]:.7g} at index {i}.")
    if isinstance(probs, jax.core.Tracer):
        return
    total = float(np.sum(np.asarray(probs, np.float64)))
    if total > 1 + _PROB_SUM_TOL:
        raise ValueError(f"`probs` must sum to at most 1, got a sum of {total:.6g}.")
    if sums_to_one and total < 1 - _PROB_SUM_TOL:
        raise ValueError(
            f"`probs` must sum to 1, got a sum of {total:.6g}; put the mass outside the "
            "histogram's range into the end bins (and clip the samples likewise)."
        )


def histogram_chi2(
    counts: Real[ArrayLike, " n"],
    probs: Float[ArrayLike, " _n"],  # shapes: a clear ValueError
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, " n"]]:
    r"""How far a histogram is from bin probabilities, in units of its own sampling error.

    $$
    z_j = \frac{c_j - Np_j}{\sqrt{Np_j(1-p_j)}},\qquad
    \chi^2 = \sum_{j:\,Np_j\ge 5}\frac{(c_j-Np_j)^2}{Np_j},
    $$

    over the bins with expected count at least 5 (Pearson's rule), $N = \sum_j c_j$ plus
    nothing outside. Under agreement $\chi^2/\mathrm{dof}\approx 1$ and the $z_j$ are
    approximately standard normal.

    The largest $|z_j|$ is not calibrated: over many bins it grows like
    $\sqrt{2\log m}$, and in bins with small expected counts its tail is heavier than the
    normal one. For a pass/fail criterion use `histogram_test`.

    Args:
        counts: the histogram, shape ``(n,)``, non-negative.
        probs: the predicted probabilities of the same bins, shape ``(n,)``, non-negative (they
            may sum to < 1, not to more than 1 + 1e-3; concrete inputs are checked,
            `ValueError`).

    Returns:
        ``(chi2_per_dof, max_abs_z, z)``: two scalars and ``z`` of shape ``(n,)``, zero in the
        bins with expected count < 5.

    Examples:
        >>> from sdeml.langevin import histogram_chi2
        >>> xs = jr.normal(jr.key(0), (10_000,))
        >>> counts = jnp.histogram(xs, bins=60, range=(-3.0, 3.0))[0]  # outside: dropped
        >>> probs = jnp.diff(jax.scipy.stats.norm.cdf(jnp.linspace(-3.0, 3.0, 61)))
        >>> chi2, zmax, z = histogram_chi2(counts, probs)
        >>> bool(0.5 < chi2 < 1.5), z.shape  # chi^2 / dof near 1: agreement
        (True, (60,))

    References:
        Pearson, Phil. Mag. 50, 1900.
    """
    _check_histogram(counts, probs, sums_to_one=False)
    counts, probs = jnp.asarray(counts, float), jnp.asarray(probs, float)
    counts, probs = jnp.maximum(counts, 0.0), jnp.maximum(probs, 0.0)  # rounding below 0
    n = jnp.sum(counts)
    expected = n * probs
    used = expected >= 5.0
    z = jnp.where(
        used, (counts - expected) / jnp.sqrt(jnp.maximum(expected * (1 - probs), 1e-300)), 0.0
    )
    chi2 = jnp.sum(jnp.where(used, (counts - expected) ** 2 / jnp.maximum(expected, 1e-300), 0.0))
    dof = jnp.maximum(jnp.sum(used) - 1, 1).astype(chi2.dtype)
    return chi2 / dof, jnp.max(jnp.abs(z)), z


class HistogramTest(eqx.Module):
    r"""Goodness of fit of a histogram to bin probabilities (the result of `histogram_test`).

    Fields are over the pooled bins (groups); ``z`` is given per original bin, as the
    standardised residual of the group that contains it.

    Attributes:
        chi2: Pearson's $\chi^2$ over the groups.
        dof: degrees of freedom, ``n_groups - 1`` (the probabilities are fully specified).
        chi2_pvalue: $P(\chi^2_{\rm dof} \ge \chi^2)$.
        max_abs_z: the largest $|z_g|$.
        max_z_pvalue: the familywise p-value of the most extreme group: its exact two-sided
            binomial tail probability $p_{\min}$, Šidák-corrected over the groups,
            $1-(1-p_{\min})^{m}$.
        expected_max_abs_z: the median of the largest of ``n_groups`` independent
            $|N(0,1)|$, the scale that ``max_abs_z`` should be read against.
        n_groups: the number of groups $m$.
        z: per bin, the residual $(c_g - Np_g)/\sqrt{Np_g(1-p_g)}$ of its group, shape
            ``(n,)``.

    Examples:
        >>> from sdeml.langevin import histogram_test
        >>> probs = jnp.full(10, 0.1)
        >>> counts = jnp.bincount(jr.randint(jr.key(0), (10_000,), 0, 10), length=10)
        >>> res = histogram_test(counts, probs)
        >>> int(res.n_groups), int(res.dof), res.z.shape
        (10, 9, (10,))
        >>> bool(res.chi2_pvalue > 0.01), bool(res.max_z_pvalue > 0.01)  # consistent
        (True, True)
        >>> bad = histogram_test(counts.at[0].add(300), probs)  # 300 extra in one bin
        >>> bool(bad.chi2_pvalue < 1e-6), bool(bad.max_z_pvalue < 1e-6)
        (True, True)
    """

    chi2: Float[Array, ""]
    dof: Int[Array, ""]
    chi2_pvalue: Float[Array, ""]
    max_abs_z: Float[Array, ""]
    max_z_pvalue: Float[Array, ""]
    expected_max_abs_z: Float[Array, ""]
    n_groups: Int[Array, ""]
    z: Float[Array, " n"]


def _pool_bins(expected: Float[Array, " n"], min_expected: float) -> tuple[Array, Array]:
    """Greedy left-to-right pooling: a group closes once its expected count reaches the bound;
    a trailing remainder that never reaches it joins the group before it."""

    def body(carry, e):
        gid, acc = carry
        acc = acc + e
        close = acc >= min_expected
        return (gid + close.astype(gid.dtype), jnp.where(close, 0.0, acc)), gid

    init = (jnp.zeros((), jnp.int32), jnp.zeros((), expected.dtype))
    (n_closed, _), gid = jax.lax.scan(body, init, expected)
    gid = jnp.where((gid == n_closed) & (n_closed > 0), n_closed - 1, gid)
    return gid, jnp.maximum(n_closed, 1)


def _pvalues_host(c, n, p, valid, chi2, n_groups, *, dtype):
    """`histogram_test`'s two p-values in float64 with SciPy, over any leading batch axes:
    ``c, p, valid`` are ``(*batch, n)`` (groups), ``n, chi2, n_groups`` are ``(*batch,)``."""
    from scipy.special import betainc, gammaincc  # scipy only where used (issue #18)

    c, p, chi2 = (np.asarray(a, np.float64) for a in (c, p, chi2))
    n, m = np.asarray(n, np.float64)[..., None], np.asarray(n_groups, np.float64)
    # exact binomial tails, P(C >= c) = I_p(c, N - c + 1) and P(C <= c) = I_{1-p}(N - c, c + 1)
    upper = np.where(c > 0, betainc(np.maximum(c, 1), np.maximum(n - c + 1, 1), p), 1.0)
    lower = np.where(c < n, betainc(np.maximum(n - c, 1), c + 1, 1 - p), 1.0)
    p_two = np.minimum(1.0, 2 * np.minimum(upper, lower))
    p_min = np.min(np.where(np.asarray(valid, bool), p_two, 1.0), axis=-1)
    with np.errstate(divide="ignore"):  # p_min = 1: log1p(-1) = -inf, and the p-value is 1
        max_z_pvalue = -np.expm1(m * np.log1p(-p_min))
    dof = m - 1
    chi2_pvalue = np.where(dof > 0, gammaincc(np.maximum(dof, 1) / 2, chi2 / 2), 1.0)
    return np.asarray(chi2_pvalue, dtype), np.asarray(max_z_pvalue, dtype)


def histogram_test(
    counts: Real[ArrayLike, " n"], probs: Float[ArrayLike, " _n"], *, min_expected: float = 5.0
) -> HistogramTest:
    r"""Is a histogram consistent with bin probabilities within its own sampling error?

    Adjacent bins are pooled from the left until each group's expected count $Np_g$ is at
    least `min_expected` (Cochran's rule for Pearson's test), so sparse tails are kept, not
    dropped. Then, with $N=\sum_j c_j$ and $m$ groups,

    $$
    \chi^2 = \sum_g \frac{(c_g-Np_g)^2}{Np_g} \sim \chi^2_{m-1},\qquad
    z_g = \frac{c_g-Np_g}{\sqrt{Np_g(1-p_g)}},
    $$

    and the largest $|z_g|$ is judged by the exact binomial tail of its count,
    $p_g = \min\{1,\ 2\min(P(C\le c_g), P(C\ge c_g))\}$ with
    $C\sim\mathrm{Bin}(N,p_g)$, corrected for the $m$ groups looked at
    (Šidák): $1-(1-\min_g p_g)^m$. The exact tail matters: at $Np_g = 33$ a count
    of 57 ($z = 4.1$) has $p = 2\times10^{-4}$, six times the normal tail. Both
    p-values are uniform-or-conservative under agreement, so a small one means a discrepancy
    larger than sampling error, and the largest $|z|$ of $m$ groups should be read
    against ``expected_max_abs_z`` (about 2.5 for 36 groups), not against 2 or 3.

    Both p-values are computed in float64 on the host (SciPy's ``betainc`` and ``gammaincc``
    through `jax.pure_callback`, so they work under `jax.jit` and `jax.vmap` and carry no
    gradient), whatever the dtype: in float32 the two huge log-gammas of JAX's incomplete beta
    cancelled (the max-$|z|$ p-value read $-\infty$ at $N = 10^8$).

    Args:
        counts: the histogram, shape ``(n,)``, non-negative, summing to the number of samples
            $N$.
        probs: the predicted probabilities of the same bins, shape ``(n,)``, non-negative,
            summing to 1 within $10^{-3}$ (put any mass outside the histogram's range into the
            end bins, and clip the samples likewise). Concrete inputs are checked (`ValueError`);
            traced ones are not.
        min_expected: the smallest expected count of a group.

    Returns:
        A `HistogramTest`.

    Examples:
        Normal draws against $N(0, 1)$ (consistent) and against draws 10% too wide (not):

        >>> from sdeml.langevin import histogram_test
        >>> lo, hi, xs = -3.0, 3.0, jr.normal(jr.key(0), (10_000,))
        >>> cdf = jax.scipy.stats.norm.cdf(jnp.linspace(lo, hi, 61))
        >>> probs = jnp.diff(cdf).at[0].add(cdf[0]).at[-1].add(1 - cdf[-1])  # tails in the ends
        >>> hist = lambda s: jnp.histogram(jnp.clip(s, lo, hi), bins=60, range=(lo, hi))[0]
        >>> res = histogram_test(hist(xs), probs)
        >>> bool(res.chi2_pvalue > 0.01 and res.max_z_pvalue > 0.01)
        True
        >>> bool(histogram_test(hist(1.1 * xs), probs).chi2_pvalue < 1e-6)
        True

    References:
        Pearson, Phil. Mag. 50, 1900; Cochran, Ann. Math. Stat. 23, 1952 (expected counts >= 5);
        Šidák, J. Amer. Statist. Assoc. 62, 1967 (the multiple-comparison correction).
    """
    _check_histogram(counts, probs, sums_to_one=True)
    counts, probs = jnp.asarray(counts), jnp.asarray(probs)
    dtype = probs.dtype if jnp.issubdtype(probs.dtype, jnp.floating) else jnp.result_type(float)
    counts, probs = counts.astype(dtype), probs.astype(dtype)
    counts, probs = jnp.maximum(counts, 0.0), jnp.maximum(probs, 0.0)  # rounding below 0
    if not min_expected > 0:
        raise ValueError(f"`min_expected` must be > 0, got {min_expected!r}.")
    n_bins = counts.shape[0]
    n = jnp.sum(counts)
    gid, n_groups = _pool_bins(n * probs, min_expected)
    c = jax.ops.segment_sum(counts, gid, n_bins)
    p = jax.ops.segment_sum(probs, gid, n_bins)
    valid = (jnp.arange(n_bins, dtype=n_groups.dtype) < n_groups) & (p > 0)
    safe_p = jnp.where(valid, p, 0.5)
    e = n * safe_p
    chi2 = jnp.sum(jnp.where(valid, (c - e) ** 2 / e, 0.0))
    dof = n_groups - 1
    z = jnp.where(valid, (c - e) / jnp.sqrt(e * jnp.maximum(1 - safe_p, 1e-300)), 0.0)
    # On the host in float64 (p-values have no gradient): float32 betainc and gammaincc cancel
    # two huge log-gammas at large N or dof (max_z_pvalue read -inf at N = 1e8, chi2_pvalue 1.67
    # at dof = 1e7).
    scalar = jax.ShapeDtypeStruct((), dtype)
    chi2_pvalue, max_z_pvalue = jax.pure_callback(
        functools.partial(_pvalues_host, dtype=np.dtype(dtype)),
        (scalar, scalar),
        *jax.lax.stop_gradient((c, n, safe_p, valid, chi2, n_groups)),
        vmap_method="broadcast_all",
    )
    m = n_groups.astype(dtype)
    # median of the max of m iid |N(0,1)|: 1 - 2 Phi(-z) = 2^(-1/m)
    expected_max = -ndtri(-0.5 * jnp.expm1(-jnp.log(2.0) / m))
    return HistogramTest(
        chi2=chi2,
        dof=dof,
        chi2_pvalue=chi2_pvalue,
        max_abs_z=jnp.max(jnp.abs(z)),
        max_z_pvalue=max_z_pvalue,
        expected_max_abs_z=expected_max.astype(dtype),
        n_groups=n_groups,
        z=z[gid],
    )
