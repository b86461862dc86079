"""Brownian increments on a time grid, and coupling of resolutions by summing fine increments."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ._checks import as_float, check_positive_int
from ._normals import standard_normal


def _bcast(dt: Array, ndim: int) -> Array:
    return dt.reshape(dt.shape + (1,) * ndim)


def _check_shape(shape: Any) -> tuple[int, ...]:
    """`shape` as a tuple of non-negative ints (an int is one axis), or one clear error: an int
    failed with "object of type 'int' has no len()", a negative size deep inside XLA."""
    one_axis = isinstance(shape, int | np.integer) and not isinstance(shape, bool)
    given: Any = (shape,) if one_axis else shape
    try:
        dims = tuple(given)
    except TypeError:
        dims = None
    if dims is None or not all(
        isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 0 for n in dims
    ):
        raise ValueError(
            f"`shape` must be a tuple of non-negative ints (the shape of W), got {shape!r}"
        )
    return tuple(int(n) for n in dims)


def sample_increments(
    dts: Real[ArrayLike, " n"],
    shape: tuple[int, ...] = (),
    *,
    time_integral: bool = False,
    dtype: Any = None,
    key: PRNGKeyArray,
) -> Array | tuple[Array, Array]:
    r"""Brownian increments $\Delta W_k \sim N(0, h_k I)$ over steps of sizes `dts`.

    With ``time_integral=True`` also returns $\Delta Z_k = \int_{t_k}^{t_{k+1}} (W_s - W_{t_k})ds$,
    jointly Gaussian with $\Delta W_k$: $\mathrm{Var}\,\Delta Z = h^3/3$,
    $\mathrm{Cov}(\Delta W, \Delta Z) = h^2/2$, drawn as
    $\Delta W = \sqrt h\,\xi_1$, $\Delta Z = \tfrac12 h^{3/2}(\xi_1 + \xi_2/\sqrt3)$.

    Args:
        dts: step sizes, shape ``(n,)``, finite and >= 0 (checked: eagerly when concrete, at
            run time under `jax.jit`).
        shape: the shape of $W$ (e.g. ``sde.brownian_shape(y0.shape)``).
        time_integral: also draw $\Delta Z$ (needed by `SRA1`).
        dtype: floating dtype (default: that of `dts`; JAX's default float for integer `dts`).
        key: PRNG key.

    Returns:
        ``dw`` of shape ``(n, *shape)``, or ``(dw, dz)`` when ``time_integral``.

    Examples:
        >>> from sdeml.sde import sample_increments
        >>> h = 0.01
        >>> dw = sample_increments(jnp.full(10_000, h), (2,), key=jr.key(0))
        >>> dw.shape
        (10000, 2)
        >>> round(float(jnp.var(dw) / h), 2)  # Var dW = h
        1.0
        >>> dw, dz = sample_increments(jnp.full(10_000, h), time_integral=True, key=jr.key(0))
        >>> round(float(jnp.var(dz) / (h**3 / 3)), 1)  # Var dZ = h^3 / 3
        1.0
        >>> round(float(jnp.mean(dw * dz) / (h**2 / 2)), 1)  # Cov(dW, dZ) = h^2 / 2
        1.0

    References:
        Kloeden & Platen (1992), §10.4, eq. (10.4.3).
    """
    shape = _check_shape(shape)
    if dtype is not None and not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise ValueError(f"`dtype` must be a floating dtype, got {jnp.dtype(dtype)}")
    # integer step sizes failed deep inside `jr.normal`
    steps = as_float(dts) if dtype is None else jnp.asarray(dts, dtype=dtype)
    if steps.ndim != 1:
        raise ValueError(f"`dts` must have shape (n,), got {steps.shape}")
    msg = "`dts` must be finite and >= 0 (step sizes: an increment has variance h >= 0)"
    if isinstance(steps, jax.core.Tracer):
        steps = eqx.error_if(steps, ~jnp.all(jnp.isfinite(steps) & (steps >= 0)), msg)
    else:
        host = np.asarray(steps)
        if not np.all(np.isfinite(host) & (host >= 0)):
            raise ValueError(f"{msg}, got {host}")
    dtype = steps.dtype
    n = steps.shape[0]
    k1, k2 = jr.split(key)
    h = _bcast(steps, len(shape))
    xi1 = standard_normal(k1, (n, *shape), dtype)
    dw = jnp.sqrt(h) * xi1
    if not time_integral:
        return dw
    xi2 = standard_normal(k2, (n, *shape), dtype)
    dz = 0.5 * h * jnp.sqrt(h) * (xi1 + xi2 / jnp.sqrt(jnp.asarray(3.0, dtype)))
    return dw, dz


def coarsen_increments(
    increments: Array | tuple[Array, Array],
    factor: int,
    dts: Float[Array, " n"] | None = None,
) -> Array | tuple[Array, Array]:
    r"""Combine groups of `factor` consecutive fine increments into coarse ones (same path).

    $\Delta W = \sum_k \Delta W_k$ and, for the time integrals,
    $\Delta Z = \sum_k [\Delta Z_k + h_k (W_{t_k} - W_{t_0})]$, which is exact.

    Args:
        increments: ``dw`` of shape ``(n, *shape)`` or ``(dw, dz)``; ``n`` divisible by `factor`.
        factor: how many fine steps make one coarse step.
        dts: fine step sizes ``(n,)`` (needed only for ``dz``).

    Returns:
        The coarse increments, shape ``(n // factor, *shape)``, same structure as the input.

    Examples:
        >>> from sdeml.sde import brownian_path, coarsen_increments, sample_increments
        >>> dts = jnp.full(64, 1 / 64)
        >>> dw, dz = sample_increments(dts, (3,), time_integral=True, key=jr.key(0))
        >>> dw_c, dz_c = coarsen_increments((dw, dz), 8, dts)  # the same path, 8x larger steps
        >>> dw_c.shape, dz_c.shape
        ((8, 3), (8, 3))
        >>> bool(jnp.allclose(dw_c.sum(0), brownian_path(dw)[-1]))  # same W_1
        True
        >>> w = brownian_path(dw)  # Delta Z over [0, 1] = sum_k (Delta Z_k + h_k W_{t_k})
        >>> bool(jnp.allclose(coarsen_increments((dw, dz), 64, dts)[1][0],
        ...                   dz.sum(0) + (dts[:, None] * w[:-1]).sum(0)))
        True

    References:
        Kloeden & Platen (1992), §5.8 (multiple Itô integrals).
    """
    if isinstance(increments, list):  # [dw, dz] would be stacked into one array of increments
        raise ValueError(
            "`increments` must be an array dw or a tuple (dw, dz), got a list; pass "
            "tuple(increments) or jnp.asarray(increments)"
        )
    dw, dz = increments if isinstance(increments, tuple) else (increments, None)
    dw = jnp.asarray(dw)
    if dw.ndim == 0:
        raise ValueError("the increments must have shape (n, *shape), got a 0-d array")
    n = dw.shape[0]
    factor = check_positive_int("factor", factor)  # 2.0 failed inside reshape; True read as 1
    if n % factor:
        raise ValueError(f"`factor` must divide the number of steps {n}, got factor={factor}")
    tail = dw.shape[1:]
    dwg = dw.reshape(n // factor, factor, *tail)
    dw_c = dwg.sum(1)
    if dz is None:
        return dw_c
    if dts is None:
        raise ValueError("`dts` (the fine step sizes) is needed to coarsen (dw, dz) increments")
    if jnp.shape(dts) != (n,):
        raise ValueError(
            f"`dts` must have shape (n,) = ({n},) like the increments, got {jnp.shape(dts)}"
        )
    if not isinstance(dts, jax.core.Tracer):
        host = np.asarray(dts)
        if not np.all(np.isfinite(host) & (host >= 0)):
            raise ValueError(f"`dts` must be finite and >= 0 (the fine step sizes), got {host}")
    dz = jnp.asarray(dz, dw.dtype)
    if dz.shape != dw.shape:
        raise ValueError(f"`dz` must have the shape of `dw` {dw.shape}, got {dz.shape}")
    h = _bcast(jnp.asarray(dts, dw.dtype).reshape(n // factor, factor), len(tail))
    w_before = jnp.cumsum(dwg, axis=1) - dwg  # W_{t_k} - W_{t_0} within each group
    dz_c = (dz.reshape(n // factor, factor, *tail) + h * w_before).sum(1)
    return dw_c, dz_c


def brownian_path(dw: Array) -> Array:
    r"""The Brownian path $W_{t_k} - W_{t_0} = \sum_{j<k}\Delta W_j$ at every grid point.

    Args:
        dw: increments ``(n, *shape)``.

    Returns:
        ``(n + 1, *shape)``, starting at zero.

    Examples:
        >>> from sdeml.sde import brownian_path, sample_increments
        >>> dw = sample_increments(jnp.full(10, 0.1), (2,), key=jr.key(0))
        >>> w = brownian_path(dw)
        >>> w.shape, bool(jnp.all(w[0] == 0)), bool(jnp.allclose(jnp.diff(w, axis=0), dw))
        ((11, 2), True, True)

    References:
        Øksendal (2003), §2.2.
    """
    dw = jnp.asarray(dw)
    if dw.ndim == 0:
        raise ValueError("`dw` must have shape (n, *shape), one row per step, got a 0-d array")
    zero = jnp.zeros_like(dw[:1])
    return jnp.concatenate([zero, jnp.cumsum(dw, axis=0)], axis=0)
