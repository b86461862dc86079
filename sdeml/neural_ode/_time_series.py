"""Time-series helpers: the spiral, irregular noisy observations, windows, a discrete baseline.

Lotka–Volterra and the damped oscillator come from `sdeml.dynamics` (any ``f(t, y, args)``
works).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._typing import ScalarLike
from ..core._checks import (
    as_float,
    check_int,
    check_interval,
    check_positive,
    check_positive_int,
)
from ..core._normals import standard_normal
from ..core._ode import integrate_ode
from ._neural_ode import check_field_signature, check_times

SPIRAL_A = ((-0.1, 2.0), (-2.0, -0.1))


def spiral_field(t: ScalarLike, y: Float[Array, " 2"], args: Any = None) -> Float[Array, " 2"]:
    r"""The spiral of the classic neural-ODE demo, $\dot y = (y^3)^\top A$ (cube elementwise).

    $A = \begin{pmatrix}-0.1 & 2\\ -2 & -0.1\end{pmatrix}$ (`SPIRAL_A`), so
    $\dot y = A^\top y^3$.

    Args:
        t: the time (unused: the field is autonomous).
        y: the state, shape ``(2,)``.
        args: unused (the vector-field signature of sdeml).

    Returns:
        $\dot y$, shape ``(2,)``.

    Examples:
        >>> from sdeml.neural_ode import spiral_field
        >>> spiral_field(0.0, jnp.array([1.0, 0.0])).tolist()  # y^3 = e_1: the first row of A
        [-0.1, 2.0]
        >>> spiral_field(0.0, jnp.array([2.0, 0.0])).tolist()  # cubic: 8 times as fast
        [-0.8, 16.0]

    References:
        torchdiffeq, examples/ode_demo.py (Chen et al., NeurIPS 2018). arXiv:1806.07366
    """
    y = as_float(y)  # in an integer dtype, A was truncated to [[0, 2], [-2, 0]]
    return (y**3) @ jnp.asarray(SPIRAL_A, y.dtype)


def integrate(
    field: Callable[..., Any],
    y0: Float[Array, " d"],
    ts: Float[Array, " n"],
    *,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    args: Any = None,
) -> Float[Array, "n d"]:
    r"""Accurate ground-truth trajectory $y(t_k)$ of $\dot y = f(t, y, \text{args})$.

    Dopri8 at tight tolerances through the core's ODE front (`sdeml.core.integrate_ode`), with
    a step budget of 10^6 (long, oscillating ground truths), its steps ending at every time in
    `ts` (``step_to_ts``: diffrax's Dopri8 interpolant is of lower order than its steps, and
    read between steps it was 6.6e-9 off at tolerance 1e-10, against 1.2e-11 at a step's end); a
    failed solve raises `sdeml.ODESolveError`.

    Args:
        field: ``field(t, y, args)``, the vector-field signature of sdeml.
        y0: the state at ``ts[0]``, shape ``(d,)``.
        ts: strictly increasing observation times, shape ``(n,)``.
        rtol, atol: tolerances.
        args: passed to `field`.

    Returns:
        The states at `ts`, shape ``(n, d)`` (the first is `y0`).

    Examples:
        The harmonic oscillator $\dot y = (y_2, -y_1)$ reaches $-y_0$ at $t = \pi$ (the spiral
        data: ``integrate(spiral_field, jnp.array([2.0, 0.0]), jnp.linspace(0.0, 25.0, 1000))``):

        >>> from sdeml.neural_ode import integrate
        >>> rot = lambda t, y, args: jnp.array([y[1], -y[0]])
        >>> ys = integrate(rot, jnp.array([1.0, 0.0]), jnp.linspace(0.0, jnp.pi, 5))
        >>> ys.shape, bool(jnp.allclose(ys[-1], jnp.array([-1.0, 0.0]), atol=1e-9))
        ((5, 2), True)
    """
    check_field_signature(field, "integrate")
    y0 = jnp.asarray(y0)
    ts = check_times(ts).astype(y0.dtype)
    if ts.shape[0] == 1:
        return y0[None]
    sol = integrate_ode(
        field,
        y0,
        ts[0],
        ts[-1],
        ts=ts,
        step_to_ts=True,
        solver="dopri8",
        rtol=rtol,
        atol=atol,
        max_steps=1_000_000,
        args=args,
        name="integrate",
    )
    return sol.ys


def irregular_times(
    t0: float, t1: float, n: int, *, dtype: Any = None, key: PRNGKeyArray
) -> Float[Array, " n"]:
    """`n` sorted observation times: ``t0``, ``t1`` and ``n - 2`` uniform draws in between.

    The times are strictly increasing in every dtype: a draw that ties with the one before it
    (probability zero in exact arithmetic, but float32 holds only $2^{23}$ values per binade,
    so among thousands of draws some tie) moves up to the next representable time after it.

    Args:
        t0, t1: the first and last times, ``t0 < t1``.
        n: the number of times, ``n >= 2``.
        dtype: float dtype; default JAX's default float (float64 under x64).
        key: PRNG key of the uniform draws.

    Returns:
        The times, shape ``(n,)``.

    Examples:
        >>> from sdeml.neural_ode import irregular_times
        >>> ts = irregular_times(0.0, 10.0, 6, key=jr.key(0))
        >>> ts.shape, float(ts[0]), float(ts[-1]), bool(jnp.all(jnp.diff(ts) > 0))
        ((6,), 0.0, 10.0, True)
        >>> t32 = irregular_times(0.0, 1000.0, 20_000, dtype=jnp.float32, key=jr.key(0))
        >>> bool(jnp.all(jnp.diff(t32) > 0))  # 19 ties among the float32 draws, all broken
        True
    """
    n = check_int("n", n, 2)
    # the default float: float64 asked for without x64 came back float32 with only a warning
    dtype = jnp.result_type(float) if dtype is None else dtype
    check_interval("t0", t0, "t1", t1)
    mid = jnp.sort(jr.uniform(key, (n - 2,), dtype, t0, t1))
    ts = jnp.concatenate([jnp.asarray([t0], dtype), mid, jnp.asarray([t1], dtype)])

    def untie(prev, t):  # at least the next float after its predecessor
        t = jnp.maximum(t, jnp.nextafter(prev, jnp.asarray(jnp.inf, ts.dtype)))
        return t, t

    return jnp.concatenate([ts[:1], jax.lax.scan(untie, ts[0], ts[1:])[1]])


def add_noise(ys: Float[Array, "n d"], sigma: float, *, key: PRNGKeyArray) -> Float[Array, "n d"]:
    r"""Observations $y_k + \sigma\varepsilon_k$, $\varepsilon_k \sim \mathcal N(0, I)$.

    Args:
        ys: the clean states, shape ``(n, d)``.
        sigma: the noise level $\sigma \ge 0$.
        key: PRNG key.

    Returns:
        The noisy observations, shape ``(n, d)``.

    Examples:
        >>> from sdeml.neural_ode import add_noise
        >>> ys = jnp.zeros((2000, 2))
        >>> obs = add_noise(ys, 0.1, key=jr.key(0))
        >>> obs.shape, round(float(jnp.std(obs - ys)), 2)
        ((2000, 2), 0.1)
    """
    check_positive("sigma", sigma, allow_zero=True)  # NaN passed `sigma < 0`
    if jnp.ndim(sigma) != 0:
        raise ValueError(f"`sigma` must be a scalar, got shape {jnp.shape(sigma)}")
    ys = as_float(ys)  # integer observations: `jr.normal` refuses an integer dtype
    return ys + sigma * standard_normal(key, ys.shape, ys.dtype)


def sample_windows(
    ts: Float[Array, " n"],
    ys: Float[Array, "n d"],
    batch_size: int,
    window: int,
    *,
    key: PRNGKeyArray,
) -> tuple[Float[Array, "b w"], Float[Array, "b w d"]]:
    """A batch of random windows of `window` consecutive observations (the spiral demo's batches).

    Args:
        ts: observation times, shape ``(n,)``.
        ys: observations, shape ``(n, d)``.
        batch_size: the number of windows $b$.
        window: observations per window $w$, ``2 <= window <= n``.
        key: PRNG key of the window starts (uniform, with replacement).

    Returns:
        ``(tw, yw)``: times and states, shapes ``(batch_size, window)`` and
        ``(batch_size, window, d)``. Each window starts at its own time: solve from ``tw[i, 0]``.

    Examples:
        >>> from sdeml.neural_ode import sample_windows
        >>> ts = jnp.linspace(0.0, 1.0, 11)
        >>> ys = jnp.stack([ts, ts**2], axis=1)
        >>> tw, yw = sample_windows(ts, ys, 4, 3, key=jr.key(0))
        >>> tw.shape, yw.shape
        ((4, 3), (4, 3, 2))
        >>> bool(jnp.allclose(jnp.diff(tw, axis=1), 0.1)), bool(jnp.array_equal(yw[..., 0], tw))
        (True, True)
    """
    if ts.ndim != 1 or ys.ndim < 1 or ys.shape[0] != ts.shape[0]:
        # a shorter `ys` would not fail: JAX clamps out-of-range rows onto its last one
        raise ValueError(
            f"`ts` and `ys` must have shapes (n,) and (n, d), got {ts.shape} and {ys.shape}"
        )
    batch_size = check_positive_int("batch_size", batch_size)
    n = ts.shape[0]
    window = check_int("window", window, 2)
    if not window <= n:
        raise ValueError(f"`window` must be in [2, {n}] for {n} observations, got {window}")
    starts = jr.randint(key, (batch_size,), 0, n - window + 1)
    idx = starts[:, None] + jnp.arange(window)[None]
    return ts[idx], ys[idx]


def window_loss(
    model: Callable[..., Any], tw: Float[Array, "b w"], yw: Float[Array, "b w d"]
) -> Float[Array, ""]:
    r"""Mean absolute error of ``model(ts, y0)`` started from each window's first observation.

    $L = \operatorname{mean}_{i,k,j} |\hat y^{(i)}(t_k) - y^{(i)}_k|$ (the spiral demo's loss).

    Args:
        model: ``model(ts, y0) -> (w, d)`` (a `NeuralODE`, a `StepModel`, ...).
        tw: the windows' times, shape ``(b, w)``.
        yw: the windows' observations, shape ``(b, w, d)``.

    Returns:
        The scalar loss.

    Examples:
        Windows of $y(t) = e^{-t} y(0)$; the exact flow, started from each window's first
        observation at its own time, fits them (a `NeuralODE` is called the same way):

        >>> from sdeml.neural_ode import sample_windows, window_loss
        >>> ts = jnp.linspace(0.0, 2.0, 21)
        >>> ys = jnp.exp(-ts)[:, None] * jnp.array([1.0, 2.0])
        >>> tw, yw = sample_windows(ts, ys, 8, 5, key=jr.key(0))
        >>> flow = lambda t, y0: jnp.exp(-(t - t[0]))[:, None] * y0
        >>> bool(window_loss(flow, tw, yw) < 1e-12)
        True
        >>> zero = lambda t, y0: jnp.zeros((5, 2))
        >>> bool(jnp.isclose(window_loss(zero, tw, yw), jnp.mean(jnp.abs(yw))))
        True
    """
    pred = jax.vmap(lambda t, y: model(t, y[0]))(tw, yw)
    if pred.shape != yw.shape:  # a (w, 1) prediction broadcast against (w, d) silently
        raise ValueError(
            f"`model` predicts windows of shape {pred.shape[1:]}, the observations `yw` have "
            f"{yw.shape[1:]}"
        )
    return jnp.mean(jnp.abs(pred - yw))


class StepModel(eqx.Module):
    r"""Discrete baseline: a residual step model $y_{k+1} = y_k + g_\phi(y_k, \Delta t_k)$.

    A ResNet-step (discrete-time) model fed the gap $\Delta t_k = t_{k+1} - t_k$ so it accepts
    irregular sampling; rolled out it predicts a trajectory, like a neural ODE, but its dynamics
    are learnt only at the step sizes seen in training.

    Args:
        dim: state dimension.
        width, depth: the MLP $g_\phi$.
        dtype: parameter dtype.
        key: PRNG key.

    Returns:
        ``model(ts, y0)``: the rollout at `ts`, shape ``(n, d)`` (same call as `NeuralODE`,
        whose third argument `args` it accepts and ignores).

    Examples:
        >>> from sdeml.neural_ode import StepModel
        >>> base = StepModel(2, 16, 1, key=jr.key(0))
        >>> ys = base(jnp.array([0.0, 0.1, 0.3, 0.35]), jnp.ones(2))  # irregular gaps
        >>> ys.shape, ys[0].tolist()  # the rollout starts at y0
        ((4, 2), [1.0, 1.0])
    """

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)

    def __init__(self, dim: int, width: int = 64, depth: int = 2, *, dtype=None, key: PRNGKeyArray):
        self.dim = dim = check_positive_int("dim", dim)
        self.mlp = eqx.nn.MLP(dim + 1, dim, width, depth, activation=jnp.tanh, dtype=dtype, key=key)

    def __call__(
        self, ts: Float[Array, " n"], y0: Float[Array, " d"], args: Any = None
    ) -> Float[Array, "n d"]:
        if y0.shape != (self.dim,):
            raise ValueError(f"StepModel expects `y0` of shape ({self.dim},), got {y0.shape}")
        dts = jnp.diff(ts).astype(y0.dtype)

        def step(y, dt):
            y = y + self.mlp(jnp.concatenate([y, dt[None]]))
            return y, y

        _, ys = jax.lax.scan(step, y0, dts)
        return jnp.concatenate([y0[None], ys])


def relative_error(pred: Float[Array, "n d"], true: Float[Array, "n d"]) -> Float[Array, ""]:
    r"""$\lVert \hat y - y\rVert_F / \lVert y\rVert_F$ over a trajectory.

    Args:
        pred: the prediction $\hat y$, shape ``(n, d)``.
        true: the reference $y$, shape ``(n, d)``.

    Returns:
        The scalar relative error.

    Examples:
        >>> from sdeml.neural_ode import relative_error
        >>> true = jnp.ones((5, 2))
        >>> round(float(relative_error(1.1 * true, true)), 6)
        0.1
    """
    if jnp.shape(pred) != jnp.shape(true):  # (n, d) against (n, 1) broadcast silently
        raise ValueError(
            f"`pred` and `true` must have the same shape, got {jnp.shape(pred)} and "
            f"{jnp.shape(true)}"
        )
    return jnp.linalg.norm(pred - true) / jnp.linalg.norm(true)
