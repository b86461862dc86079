"""Measured strong and weak convergence orders, coupling resolutions through one Brownian path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..core._brownian import coarsen_increments, sample_increments
from ..core._checks import check_int, check_interval, check_positive_int, concrete_scalar
from ..core._sde import AbstractSDE, check_sde, check_shapes
from ..core._sde_solvers import AbstractSolver
from ..core._simulate import _resolve_dtype, solve_increments
from ..core._solvers import get_solver


class OrderResult(eqx.Module):
    """A measured convergence order.

    Attributes:
        kind: ``"strong"`` or ``"weak"``.
        dts: step sizes ``(L,)``.
        errors: mean error per step size ``(L,)``.
        stderr: Monte Carlo standard error of each error ``(L,)`` (bootstrap spread).
        order: least-squares slope of ``log(errors)`` against ``log(dts)``.
        ci: ``(low, high)`` bootstrap confidence interval of the order (resampling paths).
        intercept: the fitted ``log C`` in ``error ~ C dt^order``.
        expected: the solver's declared order, for reference.

    Examples:
        >>> from sdeml.sde import GeometricBrownianMotion, strong_order
        >>> gbm = GeometricBrownianMotion(mu=0.5, sigma=0.8)
        >>> res = strong_order("euler_maruyama", gbm, jnp.ones(1), exact=gbm.exact_solution,
        ...                    n_steps=(4, 8, 16), n_paths=200, n_bootstrap=100, key=jr.key(0))
        >>> res.kind, res.dts.tolist(), res.errors.shape, res.expected
        ('strong', [0.25, 0.125, 0.0625], (3,), 0.5)
        >>> fit = res.intercept + res.order * jnp.log(res.dts)  # log C + p log h
        >>> bool(jnp.allclose(jnp.log(res.errors), fit, atol=0.05)), res.ci[0] < res.ci[1]
        (True, True)
    """

    kind: str = eqx.field(static=True)
    dts: Float[Array, " L"]
    errors: Float[Array, " L"]
    stderr: Float[Array, " L"]
    order: float = eqx.field(static=True)
    ci: tuple[float, float] = eqx.field(static=True)
    intercept: float = eqx.field(static=True)
    expected: float | None = eqx.field(static=True)


def _slopes(log_dts: Array, log_err: Array) -> tuple[Array, Array]:
    """Least-squares slope and intercept along the last axis."""
    x = log_dts - log_dts.mean()
    ym = log_err.mean(-1, keepdims=True)
    slope = ((log_err - ym) * x).sum(-1) / (x * x).sum()
    return slope, ym[..., 0] - slope * log_dts.mean()


def _levels(
    n_steps: Sequence[int], n_fine: int | None, default_factor: int, fine_reference: bool
) -> tuple[list, int]:
    # int() read 2.5 as 2 (the error at 2 steps reported as that of h = (t1 - t0) / 2.5) and
    # took True; a zero or negative n_fine is a multiple of every level
    given = [np.asarray(n) for n in n_steps]  # ints, NumPy or JAX integer scalars
    ok = len(given) >= 2 and all(
        n.ndim == 0 and np.issubdtype(n.dtype, np.integer) and n > 0 for n in given
    )
    if not ok:
        raise ValueError(f"`n_steps` must hold at least two positive ints, got {n_steps}")
    levels = [int(n) for n in given]
    if len(set(levels)) < 2:
        # one step size: the least-squares slope is 0/0 (order NaN)
        raise ValueError(f"`n_steps` must hold at least two different resolutions, got {n_steps}")
    n_fine = (
        max(levels) * default_factor if n_fine is None else check_positive_int("n_fine", n_fine)
    )
    if fine_reference and n_fine <= max(levels):
        # the reference is the solver on the fine grid: at n = n_fine it is the same numbers, the
        # error exactly 0 and its log -inf, so the order came back NaN
        raise ValueError(
            f"`n_fine`={n_fine} must exceed every n in `n_steps` (max {max(levels)}) when the "
            "reference is the fine-grid solution (no `exact`)"
        )
    bad = [n for n in levels if n_fine % n]
    if bad:
        raise ValueError(
            f"`n_fine`={n_fine} must be a multiple of every n in `n_steps`; not of {bad}"
        )
    return levels, n_fine


@eqx.filter_jit
def _coupled(solver, sde, x0, args, exact, keys, ts_fine, *, levels, chunk):
    """Terminal values at every level and the reference, for each path key, in path chunks."""
    n_fine = ts_fine.shape[0] - 1
    dts_fine = jnp.diff(ts_fine)
    wshape = sde.brownian_shape(x0.shape)

    def one_path(k):
        incs = sample_increments(dts_fine, wshape, time_integral=True, key=k)
        if exact is None:
            ref = solve_increments(solver, sde, x0, ts_fine, incs, args)[-1]
        else:
            ref = exact(x0, ts_fine, incs[0], incs[1])
        ys = []
        for n in levels:
            f = n_fine // n
            coarse = coarsen_increments(incs, f, dts_fine) if f > 1 else incs
            ys.append(solve_increments(solver, sde, x0, ts_fine[::f], coarse, args)[-1])
        return jnp.stack(ys), ref

    n = keys.shape[0]
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n  # the last chunk is filled with repeated paths, then dropped
    if pad:
        keys = jnp.concatenate([keys, keys[:pad]])
    keys = keys.reshape(n_chunks, chunk, *keys.shape[1:])
    ys, ref = jax.lax.map(jax.vmap(one_path), keys)
    return ys.reshape(-1, *ys.shape[2:])[:n], ref.reshape(-1, *ref.shape[2:])[:n]


def _setup(
    solver, sde, x0, t0, t1, n_paths, dtype, args, n_bootstrap, confidence, chunk_size, key, exact
) -> tuple[AbstractSolver, Array, Any, Array]:
    solver = get_solver(solver, kind="sde")
    check_sde(sde)
    solver.check(sde)
    dtype = _resolve_dtype(dtype)
    x0 = jnp.asarray(x0, dtype)
    check_shapes(sde, x0, args)
    check_interval("t0", t0, "t1", t1)
    n_paths = check_int("n_paths", n_paths, 2)
    check_positive_int("n_bootstrap", n_bootstrap)
    check_positive_int("chunk_size", chunk_size)
    c = concrete_scalar(confidence)  # an array failed with "truth value ... is ambiguous"
    if c is None or isinstance(confidence, bool) or not 0 < c < 1:
        raise ValueError(f"`confidence` must be a number in (0, 1), got {confidence!r}")
    if exact is not None and not callable(exact):
        raise ValueError(
            f"`exact` must be a function exact(x0, ts, dw, dz) -> X_T or None, got {exact!r}"
        )
    if not isinstance(x0, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(x0))):
        # every error and the fitted order came back NaN
        raise ValueError("`x0` contains NaN or inf")
    keys = jr.split(key, n_paths)
    return solver, x0, dtype, keys


def _run(solver, sde, x0, dtype, keys, t0, t1, levels, n_fine, exact, args, chunk_size):
    ts_fine = jnp.asarray(t0 + (t1 - t0) * np.arange(n_fine + 1) / n_fine, dtype)
    n_paths = keys.shape[0]
    # as few chunks as chunk_size allows, as even as possible (a NumPy int reached jit as a
    # traced array); a chunk_size that does not divide n_paths pads the last chunk, where
    # shrinking the chunk to a divisor ran a prime n_paths one path at a time
    n_chunks = -(-n_paths // int(chunk_size))
    chunk = -(-n_paths // n_chunks)
    return _coupled(solver, sde, x0, args, exact, keys, ts_fine, levels=tuple(levels), chunk=chunk)


def _summarise(kind, per_path, dts, expected, n_bootstrap, confidence, key, reduce):
    """per_path: (n_paths, L, ...) per-path quantities; reduce(mean over paths) -> error (L,)."""
    n_paths = per_path.shape[0]
    errors = reduce(per_path.mean(0))
    # standard error by the delta method is awkward for |mean|; use the bootstrap spread instead
    idx = jr.randint(key, (n_bootstrap, n_paths), 0, n_paths)
    boot = jax.vmap(lambda i: reduce(per_path[i].mean(0)))(idx)  # (B, L)
    log_dts = jnp.log(dts)
    order, intercept = _slopes(log_dts, jnp.log(errors))
    boot_orders = _slopes(log_dts, jnp.log(boot))[0]
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(np.asarray(boot_orders), [alpha, 1 - alpha])
    return OrderResult(
        kind=kind,
        dts=dts,
        errors=errors,
        stderr=boot.std(0),
        order=float(order),
        ci=(float(lo), float(hi)),
        intercept=float(intercept),
        expected=expected,
    )


def strong_order(
    solver: str | AbstractSolver,
    sde: AbstractSDE,
    x0: Any,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    n_steps: Sequence[int] = (8, 16, 32, 64, 128),
    n_fine: int | None = None,
    n_paths: int = 1000,
    exact: Callable[..., Array] | None = None,
    args: PyTree = None,
    dtype: Any = None,
    n_bootstrap: int = 400,
    confidence: float = 0.95,
    chunk_size: int = 500,
    key: PRNGKeyArray,
) -> OrderResult:
    r"""Measure the strong order $p$ in $E\,|Y^h_T - X_T| \approx C h^p$.

    Every path's fine Brownian increments (and their time integrals) are summed into the coarse
    steps, so all resolutions and the reference see the same Brownian path. The reference $X_T$ is
    ``exact(x0, ts_fine, dw_fine, dz_fine)`` (e.g. a zoo class's ``exact_solution``) or, without
    `exact`, the same solver on the fine grid. The order is the least-squares slope of
    $\log$ error against $\log h$; its confidence interval comes from a bootstrap over paths.

    Args:
        solver: solver name or `AbstractSolver` instance.
        sde: the SDE.
        x0: initial state, shape ``S``.
        t0: start of the interval.
        t1: end of the interval, where the error is measured.
        n_steps: the coarse resolutions ``(L,)`` (each must divide `n_fine`).
        n_fine: fine resolution (default ``8 * max(n_steps)``), a multiple of every level;
            larger than all of them when the reference is the fine-grid solution.
        n_paths: Monte Carlo paths (>= 2).
        exact: the exact terminal value on a given path,
            ``exact(x0, ts_fine, dw_fine, dz_fine) -> (S)``, or None.
        args: passed to drift and diffusion.
        dtype: default float32; use float64 for accuracy claims.
        n_bootstrap: bootstrap resamples for the confidence interval.
        confidence: the confidence interval's level.
        chunk_size: at most this many paths per chunk (memory).
        key: PRNG key.

    Returns:
        An `OrderResult` with ``kind="strong"`` and ``L`` levels.

    Examples:
        >>> from sdeml.sde import GeometricBrownianMotion, strong_order
        >>> gbm = GeometricBrownianMotion(mu=0.5, sigma=0.5)
        >>> res = strong_order("milstein", gbm, jnp.ones(1), exact=gbm.exact_solution,
        ...                    n_steps=(4, 8, 16, 32), n_paths=200, n_bootstrap=100,
        ...                    dtype=jnp.float64, key=jr.key(0))
        >>> res.errors.shape, res.expected
        ((4,), 1.0)
        >>> bool(abs(res.order - 1.0) < 0.1)  # Milstein: strong order 1
        True

    References:
        Kloeden & Platen (1992), §9.6–9.7; Higham, SIAM Review 43(3), 2001, §5.
    """
    solver, x0, dtype, keys = _setup(
        solver,
        sde,
        x0,
        t0,
        t1,
        n_paths,
        dtype,
        args,
        n_bootstrap,
        confidence,
        chunk_size,
        key,
        exact,
    )
    levels, n_fine = _levels(n_steps, n_fine, 8, exact is None)
    ys, ref = _run(solver, sde, x0, dtype, keys, t0, t1, levels, n_fine, exact, args, chunk_size)
    diff = ys - ref[:, None]
    per_path = jnp.sqrt(jnp.sum(diff.reshape(*diff.shape[:2], -1) ** 2, -1))  # (n_paths, L)
    dts = jnp.asarray([(t1 - t0) / n for n in levels], dtype)
    return _summarise(
        "strong",
        per_path,
        dts,
        solver.strong_order,
        n_bootstrap,
        confidence,
        jr.fold_in(key, 1),
        lambda m: m,
    )


def weak_order(
    solver: str | AbstractSolver,
    sde: AbstractSDE,
    x0: Any,
    *,
    phi: Callable[[Array], Array] | None = None,
    exact_mean: Any = None,
    exact: Callable[..., Array] | None = None,
    t0: float = 0.0,
    t1: float = 1.0,
    n_steps: Sequence[int] = (2, 4, 8, 16, 32),
    n_fine: int | None = None,
    n_paths: int = 10_000,
    args: PyTree = None,
    dtype: Any = None,
    n_bootstrap: int = 400,
    confidence: float = 0.95,
    chunk_size: int = 1000,
    key: PRNGKeyArray,
) -> OrderResult:
    r"""Measure the weak order $q$ in $|E\,\varphi(Y^h_T) - E\,\varphi(X_T)| \approx C h^q$.

    The error at each level is $|\frac1N\sum_i [\varphi(Y^{h}_{T,i}) - R_i]|$ with
    $R_i = \varphi(X_{T,i})$ on the *same* Brownian path when `exact` is given (a control variate:
    the Monte Carlo noise then scales like the strong error, not like $\mathrm{Std}\,\varphi$),
    $R_i = $ `exact_mean` when only that is given, or the fine-grid solution otherwise.

    Args:
        solver: solver name or `AbstractSolver` instance.
        sde: the SDE.
        x0: initial state, shape ``S``.
        phi: test function of the terminal state, ``(S) -> array`` (default: identity).
        exact_mean: $E\,\varphi(X_T)$, if known.
        exact: exact terminal value on a given path (see `strong_order`).
        t0, t1, n_steps, n_fine, n_paths, args, dtype, n_bootstrap, confidence, chunk_size, key:
            as in `strong_order` (the interval, the coarse resolutions ``(L,)`` dividing
            `n_fine`, the Monte Carlo paths, float32 by default, the bootstrap interval).

    Returns:
        An `OrderResult` with ``kind="weak"`` and ``L`` levels.

    Examples:
        >>> from sdeml.sde import GeometricBrownianMotion, weak_order
        >>> gbm = GeometricBrownianMotion(mu=0.5, sigma=0.8)
        >>> res = weak_order("euler_maruyama", gbm, jnp.ones(1), exact=gbm.exact_solution,
        ...                  n_steps=(2, 4, 8, 16), n_paths=10_000, n_bootstrap=100,
        ...                  dtype=jnp.float64, key=jr.key(0))
        >>> res.kind, res.expected, bool(abs(res.order - 1.0) < 0.3)  # Euler-Maruyama: weak order 1
        ('weak', 1.0, True)

    References:
        Kloeden & Platen (1992), §14.1 and §17.
    """
    solver, x0, dtype, keys = _setup(
        solver,
        sde,
        x0,
        t0,
        t1,
        n_paths,
        dtype,
        args,
        n_bootstrap,
        confidence,
        chunk_size,
        key,
        exact,
    )
    use_fine = exact is None and exact_mean is None
    levels, n_fine = _levels(n_steps, n_fine, 8, use_fine)
    if phi is not None and not callable(phi):
        raise ValueError(f"`phi` must be a function of the terminal state, got {phi!r}")
    phi = (lambda y: y) if phi is None else phi
    target = None
    if not (exact is not None or use_fine):
        # checked before the run: a wrong shape failed after it in a broadcasting error, and a
        # NaN gave NaN errors and order
        target = jnp.asarray(exact_mean, dtype)
        out = jax.eval_shape(phi, x0).shape
        try:
            fits = jnp.broadcast_shapes(target.shape, out) == out
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"`exact_mean` must have the shape of phi's output {out}, got {target.shape}"
            )
        if not isinstance(target, jax.core.Tracer) and not np.all(np.isfinite(target)):
            raise ValueError(f"`exact_mean` must be finite, got {exact_mean!r}")
    ys, ref = _run(solver, sde, x0, dtype, keys, t0, t1, levels, n_fine, exact, args, chunk_size)
    phi_y = jax.vmap(jax.vmap(phi))(ys)  # (n_paths, L, ...)
    if target is None:
        target = jax.vmap(phi)(ref)[:, None]
    diff = phi_y - target
    diff = diff.reshape(*diff.shape[:2], -1)
    dts = jnp.asarray([(t1 - t0) / n for n in levels], dtype)
    return _summarise(
        "weak",
        diff,
        dts,
        solver.weak_order,
        n_bootstrap,
        confidence,
        jr.fold_in(key, 1),
        lambda m: jnp.sqrt(jnp.sum(m**2, -1)),
    )


def plot_orders(
    results: OrderResult | dict[str, OrderResult], *, title: str | None = None, ax: Any = None
):
    """Log-log plot of error against step size with the fitted and the declared slopes.

    Args:
        results: one `OrderResult` or a dict ``{label: OrderResult}``.
        title: axes title.
        ax: a matplotlib axes to draw into (default: a new figure).

    Returns:
        The matplotlib figure.

    Examples:
        >>> from sdeml.sde import GeometricBrownianMotion, plot_orders, strong_order
        >>> gbm = GeometricBrownianMotion(mu=0.5, sigma=0.8)
        >>> res = strong_order("euler_maruyama", gbm, jnp.ones(1), exact=gbm.exact_solution,
        ...                    n_steps=(4, 8, 16), n_paths=200, n_bootstrap=100, key=jr.key(0))
        >>> fig = plot_orders({"Euler-Maruyama": res}, title="strong order, GBM")
        >>> ax = fig.axes[0]
        >>> ax.get_xscale(), ax.get_yscale(), ax.get_title()
        ('log', 'log', 'strong order, GBM')
        >>> ax.get_legend().get_texts()[0].get_text()  # label, fitted order, its CI
        'Euler-Maruyama p=0.52 [...]'
        >>> fig.savefig("orders.png")

    References:
        Higham, SIAM Review 43(3), 2001, Figs. 5–6 (the standard log-log order plot).
    """

    import matplotlib.pyplot as plt

    if isinstance(results, OrderResult):
        results = {"": results}
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4))
    else:
        fig = ax.figure
    for i, (label, r) in enumerate(results.items()):
        dts, err, se = np.asarray(r.dts), np.asarray(r.errors), np.asarray(r.stderr)
        color = f"C{i}"
        lab = f"{label} p={r.order:.2f} [{r.ci[0]:.2f}, {r.ci[1]:.2f}]".strip()
        ax.errorbar(dts, err, yerr=1.96 * se, fmt="o", color=color, label=lab, capsize=2)
        ax.plot(dts, np.exp(r.intercept) * dts**r.order, "-", color=color, lw=1)
        if r.expected is not None:
            ref = err[-1] * (dts / dts[-1]) ** r.expected
            ax.plot(dts, ref, ":", color=color, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step size h")
    kind = next(iter(results.values())).kind
    ax.set_ylabel(f"{kind} error")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return fig
