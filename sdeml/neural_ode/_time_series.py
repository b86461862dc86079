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
from ..core._ode import integrate_ode
from ._neural_ode import check_field_signature, check_times

SPIRAL_A = ((-0.1, 2.0), (-2.0, -0.1))


def spiral_field(t: ScalarLike, y: Float[Array, " 2"], args: Any = None) -> Float[Array, " 2"]:
    r"""The spiral of the classic neural-ODE demo, $\dot y = (y^3)^\top A$ (cube elementwise).

    $A = \begin{pmatrix}-0.1 & 2\\ -2 & -0.1\end{pmatrix}$, so $\dot y = A^\top y^3$.

    References:
        torchdiffeq, examples/ode_demo.py (Chen et al., NeurIPS 2018). arXiv:1806.07366
    """
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
    a step budget of 10^6 (long, oscillating ground truths); a failed solve raises
    `sdeml.ODESolveError`.

    Args:
        field: ``field(t, y, args)``, the vector-field signature of sdeml.
        y0: the state at ``ts[0]``.
        ts: strictly increasing observation times.
        rtol, atol: tolerances.
        args: passed to `field`.

    Returns:
        The states at `ts`, shape ``(n, d)``.

    Example:
        >>> ys = integrate(spiral_field, jnp.array([2.0, 0.0]), jnp.linspace(0, 25, 1000))
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
        solver="dopri8",
        rtol=rtol,
        atol=atol,
        max_steps=1_000_000,
        args=args,
        name="integrate",
    )
    return sol.ys


def irregular_times(
    t0: float, t1: float, n: int, *, dtype: Any = jnp.float64, key: PRNGKeyArray
) -> Float[Array, " n"]:
    """`n` sorted observation times: ``t0``, ``t1`` and ``n - 2`` uniform draws in between.

    Duplicates (probability zero in exact arithmetic) are broken by a tiny shift, so the times are
    strictly increasing.
    """
    if n < 2:
        raise ValueError(f"`n` must be >= 2, got {n}")
    if not t1 > t0:
        raise ValueError(f"`t1` must be greater than `t0`, got t0={t0}, t1={t1}")
    mid = jnp.sort(jr.uniform(key, (n - 2,), dtype, t0, t1))
    ts = jnp.concatenate([jnp.asarray([t0], dtype), mid, jnp.asarray([t1], dtype)])
    eps = 1e-9 * (t1 - t0)
    return ts + eps * jnp.arange(n, dtype=dtype) / n  # keeps the order strict, shifts < 1e-9


def add_noise(ys: Float[Array, "n d"], sigma: float, *, key: PRNGKeyArray) -> Float[Array, "n d"]:
    r"""Observations $y_k + \sigma\varepsilon_k$, $\varepsilon_k \sim \mathcal N(0, I)$."""
    if sigma < 0:
        raise ValueError(f"`sigma` must be >= 0, got {sigma}")
    return ys + sigma * jr.normal(key, ys.shape, ys.dtype)


def sample_windows(
    ts: Float[Array, " n"],
    ys: Float[Array, "n d"],
    batch_size: int,
    window: int,
    *,
    key: PRNGKeyArray,
) -> tuple[Float[Array, "b w"], Float[Array, "b w d"]]:
    """A batch of random windows of `window` consecutive observations (the spiral demo's batches).

    Returns:
        ``(tw, yw)``: times and states, shapes ``(batch_size, window)`` and
        ``(batch_size, window, d)``. Each window starts at its own time: solve from ``tw[i, 0]``.
    """
    n = ts.shape[0]
    if not 2 <= window <= n:
        raise ValueError(f"`window` must be in [2, {n}] for {n} observations, got {window}")
    starts = jr.randint(key, (batch_size,), 0, n - window + 1)
    idx = starts[:, None] + jnp.arange(window)[None]
    return ts[idx], ys[idx]


def window_loss(
    model: Callable[..., Any], tw: Float[Array, "b w"], yw: Float[Array, "b w d"]
) -> Float[Array, ""]:
    r"""Mean absolute error of ``model(ts, y0)`` started from each window's first observation.

    $L = \operatorname{mean}_{i,k,j} |\hat y^{(i)}(t_k) - y^{(i)}_k|$ (the spiral demo's loss).
    """
    pred = jax.vmap(lambda t, y: model(t, y[0]))(tw, yw)
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

    Example:
        >>> base = StepModel(2, 64, 2, key=jr.key(0)); base(ts, y0)
    """

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)

    def __init__(self, dim: int, width: int = 64, depth: int = 2, *, dtype=None, key: PRNGKeyArray):
        self.dim = dim
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
    r"""$\lVert \hat y - y\rVert_F / \lVert y\rVert_F$ over a trajectory."""
    return jnp.linalg.norm(pred - true) / jnp.linalg.norm(true)
