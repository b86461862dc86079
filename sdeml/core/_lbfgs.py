"""Full-batch quasi-Newton minimisation with guards: the one quasi-Newton phase of sdeml.

L-BFGS (optax), or BFGS and self-scaled BFGS with a dense inverse Hessian (written here), all
behind optax's zoom (strong-Wolfe) line search.

Every theme that follows Adam with a quasi-Newton phase (a PINN, a universal differential
equation, a sparse model refitted through its ODE) calls `lbfgs_minimize` here.

Iterations run in compiled chunks (a `lax.while_loop`); the host looks at the state between
chunks to log, keep time and stop. The chunk is compiled once per loss function, non-array
structure of the parameters and settings: pass a module-level loss and the data in ``*args`` and
later calls with new data or parameters of the same shapes reuse it. Inside a chunk every
iteration is guarded: an iteration whose loss, gradient or parameters are not finite is
rejected (the previous parameters are kept) and ends the run; so does a line search that makes
no progress for ``patience`` iterations in a row. Every stop carries a status and a one-line
message; a NaN is never returned silently (by default a non-finite stop raises
`QuasiNewtonError`, which carries the result with the last finite parameters).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PyTree

from ._checks import check_int, check_positive, check_positive_int

# the status of a stop, by the code the compiled loop returns
_RUNNING, _NON_FINITE, _NO_PROGRESS, _CONVERGED = 0, 1, 2, 3
STATUSES = ("max_iter", "non_finite", "no_progress", "converged", "time_limit")


@dataclass
class LBFGSResult:
    """What `lbfgs_minimize` returns.

    Attributes:
        params: the parameters with the lowest loss seen: the last accepted ones, unless a line
            search accepted a rise in the loss after it (then the message says so); never
            non-finite ones (after a non-finite stop, the last finite iterate). After a
            ``converged`` stop, always the last iterate: the one whose gradient norm met gtol.
        status: ``max_iter`` | ``converged`` (gradient norm <= gtol) | ``no_progress`` (the
            line search did not decrease the loss for ``patience`` iterations) | ``non_finite``
            (the loss or the gradient became NaN/Inf: that iteration was rejected) |
            ``time_limit``.
        message: one line saying why it stopped, at which iteration, and at what loss.
        iterations: accepted iterations.
        loss: the loss at `params`.
        initial_loss: the loss at the start.
        history: one dict per logged chunk, the start first (iteration 0): ``iteration``,
            ``loss``, ``grad_norm`` and the loss function's auxiliary values.
        wall_time_s: measured wall time (compilation included).
        compile_time_s: the first chunk's wall time: its iterations plus, when the chunk was not
            cached, tracing and compilation.

    Examples:
        >>> from sdeml.core import lbfgs_minimize
        >>> rosenbrock = lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2
        >>> res = lbfgs_minimize(rosenbrock, jnp.array([-1.2, 1.0]), gtol=1e-10)
        >>> res.status, [round(float(v), 6) for v in res.params]  # the minimum is (1, 1)
        ('converged', [1.0, 1.0])
        >>> round(res.initial_loss, 6), bool(res.loss < 1e-16), res.history[0]["iteration"]
        (24.2, True, 0)
        >>> res.message
        'L-BFGS converged at iteration ...: gradient norm <= 1e-10'
    """

    params: Any
    status: str
    message: str
    iterations: int
    loss: float
    initial_loss: float = float("nan")
    history: list[dict[str, float | int]] = field(default_factory=list)
    wall_time_s: float = 0.0
    compile_time_s: float = 0.0


class QuasiNewtonError(RuntimeError):
    """A non-finite L-BFGS stop (raised by `lbfgs_minimize` unless told to return it).

    Args:
        message: the one-line reason, as in ``result.message``.
        result: the `LBFGSResult` of the stopped run.

    Attributes:
        result: the `LBFGSResult`, holding the last finite parameters.

    Examples:
        >>> from sdeml.core import QuasiNewtonError, lbfgs_minimize
        >>> try:
        ...     lbfgs_minimize(lambda p: jnp.sum(jnp.log(p)), -jnp.ones(2))  # log(-1) = NaN
        ... except QuasiNewtonError as err:
        ...     print(err.result.status, err.result.iterations, "|", err)
        non_finite 0 | L-BFGS did not start: the initial loss is nan. ...
    """

    def __init__(self, message: str, result: LBFGSResult):
        super().__init__(message)
        self.result = result


def _split(out: Any) -> tuple[Array, dict[str, Array]]:
    """A loss function's output as ``(loss, aux)``: a scalar or a ``(scalar, dict)`` pair."""
    if isinstance(out, tuple):
        if len(out) != 2 or not isinstance(out[1], dict):
            raise ValueError(
                "`loss_fn` must return a scalar or a pair (scalar, dict of scalars), got a "
                f"tuple of {len(out)}"
            )
        clash = sorted(k for k in out[1] if k in _HISTORY_KEYS)
        if clash:  # they replaced the history's own columns, silently
            raise ValueError(
                f"`loss_fn`'s aux metrics {clash} would replace the history's own "
                f"{', '.join(_HISTORY_KEYS)}; give them other names"
            )
        return out[0], out[1]
    return out, {}


_HISTORY_KEYS = ("iteration", "loss", "grad_norm")  # a history row's own columns


METHODS = ("lbfgs", "bfgs", "ssbfgs")
METHOD_LABELS = {"lbfgs": "L-BFGS", "bfgs": "BFGS", "ssbfgs": "SSBFGS"}  # as messages name them
# a dense inverse Hessian of more parameters than this is refused (8 * n^2 bytes: 3.2 GB in f64)
MAX_DENSE_PARAMS = 20_000


class _DenseBFGSState(NamedTuple):
    inv_hessian: Array  # H_k, (n, n)
    x_prev: Array  # the parameters at the last call (flat)
    g_prev: Array  # the gradient there
    d_prev: Array  # the direction returned there (before the line search's step length)
    updates_seen: Array  # calls so far


def _dense_bfgs_init(params: PyTree) -> _DenseBFGSState:
    flat, _ = ravel_pytree(params)
    zero = jnp.zeros_like(flat)
    eye = jnp.eye(flat.size, dtype=flat.dtype)
    return _DenseBFGSState(eye, zero, zero, zero, jnp.zeros((), jnp.int32))


def _dense_bfgs_update(
    updates: PyTree, state: _DenseBFGSState, params: PyTree, self_scaled: bool
) -> tuple[PyTree, _DenseBFGSState]:
    """One call of the dense (SS)BFGS transformation: update $H$ from the last call's point and
    gradient, return the direction $H g$ (see `_scale_by_dense_bfgs`)."""
    g, unravel = ravel_pytree(updates)
    x, _ = ravel_pytree(params)
    H = state.inv_hessian
    s, y = x - state.x_prev, g - state.g_prev
    sy = jnp.dot(s, y)
    tiny = jnp.finfo(g.dtype).eps
    ok = (state.updates_seen > 0) & (sy > tiny * jnp.linalg.norm(s) * jnp.linalg.norm(y))
    sy_safe = jnp.where(ok, sy, 1.0)
    Hy = H @ y
    yHy = jnp.where(ok, jnp.dot(y, Hy), 1.0)
    first = state.updates_seen == 1
    tau = jnp.where(first, yHy / sy_safe, 1.0)
    if self_scaled:
        d = state.d_prev
        alpha = jnp.dot(s, d) / jnp.maximum(jnp.dot(d, d), jnp.finfo(g.dtype).tiny)
        b = -alpha * jnp.dot(s, state.g_prev) / sy_safe
        tau = jnp.where(first, tau, jnp.minimum(1.0, 1.0 / jnp.where(b > 0, b, 1.0)))
    v = s / sy_safe - Hy / yHy
    new_H = (H - jnp.outer(Hy, Hy / yHy) + yHy * jnp.outer(v, v)) / tau + jnp.outer(s, s / sy_safe)
    H = jnp.where(ok, new_H, H)
    direction = H @ g
    # the very first direction is the gradient scaled into the unit ball (as optax's L-BFGS)
    direction = jnp.where(
        state.updates_seen == 0,
        g * jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.linalg.norm(g), tiny)),
        direction,
    )
    new_state = _DenseBFGSState(H, x, g, -direction, state.updates_seen + 1)
    return unravel(direction), new_state


def _scale_by_dense_bfgs(self_scaled: bool) -> optax.GradientTransformation:
    r"""The direction $H_k g_k$ of dense BFGS, optionally self-scaled (to be negated and line
    searched, as `optax.scale_by_lbfgs`'s is).

    $H$ is updated with $s = x_k - x_{k-1}$, $y = g_k - g_{k-1}$ written in the Broyden family's
    form, $H_+ = \tfrac1\tau\,[H - \tfrac{Hy\,y^\top H}{y^\top Hy} + (y^\top Hy)\,v v^\top] +
    \tfrac{s s^\top}{s^\top y}$, $v = \tfrac{s}{s^\top y} - \tfrac{Hy}{y^\top Hy}$ (that is
    BFGS; $\tau = 1$). The first update divides $H_0 = I$ by $\tau = y^\top y / s^\top y$
    (Shanno & Phua's initial scaling). Self-scaled (Al-Baali's choice for the BFGS member):
    $\tau_k = \min(1, 1/b_k)$, $b_k = s^\top B s / s^\top y$ with $s^\top B s = -\alpha\,
    s^\top g_{k-1}$ ($B = H^{-1}$, $s = \alpha d$): the old curvature is shrunk when the step
    saw less curvature along $s$ than $H$ assumed. An update whose $s^\top y \le \epsilon
    \|s\|\|y\|$ is skipped (positive definiteness).
    """

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        if params is None:
            raise ValueError("dense BFGS needs the parameters")
        return _dense_bfgs_update(updates, state, params, self_scaled)

    return optax.GradientTransformation(_dense_bfgs_init, update)


def _optimizer(settings: tuple[Any, ...]) -> optax.GradientTransformationExtraArgs:
    memory_size, max_linesearch_steps = settings[:2]
    method = settings[5]
    linesearch = optax.scale_by_zoom_linesearch(
        max_linesearch_steps=max_linesearch_steps, initial_guess_strategy="one"
    )
    if method == "lbfgs":
        return optax.lbfgs(memory_size=memory_size, linesearch=linesearch)
    return optax.chain(
        _scale_by_dense_bfgs(self_scaled=method == "ssbfgs"), optax.scale(-1.0), linesearch
    )


@eqx.filter_jit
def _evaluate(loss_fn, static, dyn, args):
    return _split(loss_fn(eqx.combine(dyn, static), *args))


@eqx.filter_jit
def _init(settings, dyn):
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int counters with floats
        return _optimizer(settings).init(dyn)


@eqx.filter_jit
def _chunk(loss_fn, static, settings, dyn, state, stall, n, best, args):
    """Up to `n` guarded iterations as one ``lax.while_loop``; `best` = ``(params, loss)`` of the
    lowest loss seen so far, updated on the way."""
    _, _, ftol, gtol, patience, _ = settings
    opt = _optimizer(settings)
    value_fn = lambda p: _split(loss_fn(eqx.combine(p, static), *args))[0]
    value_and_grad = optax.value_and_grad_from_state(value_fn)

    def cond(carry: tuple[Any, ...]) -> Array:
        _, _, i, _, code, _, _ = carry
        return (i < n) & (code == _RUNNING)

    def body(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        p, state, i, stall, code, last, best = carry
        with jax.numpy_dtype_promotion("standard"):
            value, grad = value_and_grad(p, state=state)
            updates, new_state = opt.update(
                grad, state, p, value=value, grad=grad, value_fn=value_fn
            )
            new_p = optax.apply_updates(p, updates)
        new_value = optax.tree.get(new_state, "value")
        gnorm = optax.tree.norm(optax.tree.get(new_state, "grad"))
        leaves = jax.tree.leaves(new_p)
        finite = jnp.isfinite(new_value) & jnp.isfinite(gnorm)
        finite = finite & jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))
        scale = jnp.maximum(jnp.maximum(jnp.abs(value), jnp.abs(new_value)), 1e-300)
        progress = (value - new_value) / scale > ftol
        stall = jnp.where(progress, jnp.int32(0), stall + 1)
        code = jnp.where(
            ~finite,
            jnp.int32(_NON_FINITE),
            jnp.where(
                stall >= patience,
                jnp.int32(_NO_PROGRESS),
                jnp.where(gnorm <= gtol, jnp.int32(_CONVERGED), jnp.int32(_RUNNING)),
            ),
        )
        keep = lambda new, old: jnp.where(finite, new, old)
        p = jax.tree.map(keep, new_p, p)
        state = jax.tree.map(keep, new_state, state)
        last = jnp.where(finite, jnp.stack([new_value, gnorm]), last)
        better = finite & (new_value < best[1])
        best = jax.tree.map(lambda new, old: jnp.where(better, new, old), (new_p, new_value), best)
        return p, state, i + finite.astype(i.dtype), stall, code, last, best

    dtype = jax.tree.leaves(dyn)[0].dtype
    init = (
        dyn, state, jnp.int32(0), stall, jnp.int32(_RUNNING), jnp.full((2,), jnp.nan, dtype), best
    )  # fmt: skip
    return jax.lax.while_loop(cond, body, init)


def lbfgs_minimize(
    loss_fn: Callable[..., Any],
    params: PyTree,
    *args: Any,
    max_iter: int = 1000,
    memory_size: int = 10,
    max_linesearch_steps: int = 30,
    gtol: float | int = 0.0,
    ftol: float | int = 0.0,
    patience: int = 20,
    log_every: int = 100,
    time_limit_s: float | int | None = None,
    on_log: Callable[[int, dict[str, float | int]], None] | None = None,
    raise_on_non_finite: bool = True,
    method: str = "lbfgs",
) -> LBFGSResult:
    r"""Minimise ``loss_fn(params, *args)`` by L-BFGS or BFGS with a zoom (strong-Wolfe) search.

    The phase that follows Adam when training a PINN or a universal differential equation: with
    the whole data set in every evaluation, the line search reaches the minimum to many more
    digits than a first-order method (run it in float64 when accuracy matters). Full batch:
    `loss_fn` must be a deterministic function of the parameters (fixed collocation points, no
    stop-gradient weights that move with them), otherwise the curvature pairs and the line
    search see different functions. Every floating array of `params` is optimised; the rest is
    kept.

    Args:
        loss_fn: ``loss_fn(params, *args) -> loss`` or ``-> (loss, aux)`` with `aux` a dict of
            scalars (logged). The compiled loop is cached on `loss_fn`: pass a module-level
            function and the data in `args` to reuse it across calls.
        params: a PyTree (e.g. an equinox module).
        args: further arguments of `loss_fn` (arrays or PyTrees of them: the data).
        max_iter: iterations at most (>= 0).
        memory_size: curvature pairs kept ($m$).
        max_linesearch_steps: evaluations per line search at most.
        gtol: stop ("converged") once the gradient's norm is <= gtol.
        ftol: an iteration whose relative decrease $(f_k - f_{k+1}) / \max(|f_k|, |f_{k+1}|)$
            is <= ftol counts as no progress (0: only a loss that does not decrease).
        patience: consecutive no-progress iterations before stopping ("no_progress").
        log_every: iterations per compiled chunk (the host logs and checks time between).
        time_limit_s: stop ("time_limit") after the chunk that passes this wall time.
        on_log: called as ``on_log(iteration, row)`` after each chunk.
        raise_on_non_finite: raise `QuasiNewtonError` (carrying the result with the last finite
            parameters) when the loss, gradient or parameters become NaN/Inf, or the initial
            loss is not finite; with False, return the result with status ``non_finite``.
        method: ``"lbfgs"`` (`memory_size` curvature pairs), ``"bfgs"`` (a dense inverse
            Hessian: $n^2$ numbers for $n$ parameters, at most 20 000) or ``"ssbfgs"`` (dense
            and self-scaled: $H$ is shrunk by $\tau_k = \min(1, 1/b_k)$ before each update,
            Al-Baali 1998; Urbán et al. 2025 find it reaches PINN losses orders of magnitude
            below L-BFGS). All three use the same zoom line search and guards.

    Returns:
        An `LBFGSResult`.

    Raises:
        QuasiNewtonError: a non-finite stop, unless `raise_on_non_finite` is False.

    Examples:
        >>> from sdeml.core import lbfgs_minimize
        >>> res = lbfgs_minimize(lambda p: jnp.sum((p - 3.0) ** 2), jnp.zeros(2), gtol=1e-8)
        >>> res.status, [round(float(v), 6) for v in res.params]
        ('converged', [3.0, 3.0])

    References:
        Liu & Nocedal, On the limited memory BFGS method for large scale optimization, Math.
        Program. 45 (1989). Nocedal & Wright, Numerical Optimization (2006), Alg. 3.5-3.6 (zoom).
        Al-Baali, Numerical experience with a class of self-scaling quasi-Newton algorithms, J.
        Optim. Theory Appl. 96 (1998). Urbán, Stefanou & Pons, Unveiling the optimization
        process of physics informed neural networks, J. Comput. Phys. (2025).
    """
    max_iter = check_int("max_iter", max_iter, 0)  # NumPy integers too, as Python ints
    memory_size = check_positive_int("memory_size", memory_size)
    max_linesearch_steps = check_positive_int("max_linesearch_steps", max_linesearch_steps)
    patience = check_positive_int("patience", patience)
    log_every = check_positive_int("log_every", log_every)
    # finite numbers, not bools (gtol=True was read as 1.0; ftol=inf stopped every run after
    # `patience` iterations as "no progress")
    check_positive("gtol", gtol, allow_zero=True)
    check_positive("ftol", ftol, allow_zero=True)
    if time_limit_s is not None:
        check_positive("time_limit_s", time_limit_s)

    start = time.perf_counter()
    dyn, static = eqx.partition(params, eqx.is_inexact_array)
    if not jax.tree.leaves(dyn):
        raise ValueError("`params` has no floating arrays to optimise")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(METHODS)}, got {method!r}")
    n_params = sum(a.size for a in jax.tree.leaves(dyn))
    if method != "lbfgs" and n_params > MAX_DENSE_PARAMS:
        raise ValueError(
            f"`method={method!r}` keeps a dense {n_params} x {n_params} inverse Hessian "
            f"({8 * n_params**2 / 2**30:.1f} GiB in float64); above {MAX_DENSE_PARAMS} parameters "
            "use method='lbfgs'"
        )
    label = METHOD_LABELS[method]
    settings = (memory_size, max_linesearch_steps, float(ftol), float(gtol), patience, method)

    def result(status: str, message: str, it: int, loss: float) -> LBFGSResult:
        nonlocal dyn
        # a line search that accepted a rise in the loss (counted as no progress) must not hand
        # back a worse point than one it has already seen; but a converged stop hands back the
        # point that met gtol (an earlier one may be "lower" by rounding alone, with a gradient
        # far above gtol)
        if status not in ("non_finite", "converged") and best_loss < loss:
            message += (
                f"; returned the best iterate (loss {best_loss:.6g}) rather than the last "
                f"({loss:.6g})"
            )
            dyn, loss = best[0], best_loss
        return LBFGSResult(
            eqx.combine(dyn, static),
            status,
            message,
            it,
            loss,
            float(loss0),
            history,
            time.perf_counter() - start,
            compile_time,
        )

    def stop(res: LBFGSResult) -> LBFGSResult:
        if res.status == "non_finite" and raise_on_non_finite:
            raise QuasiNewtonError(res.message, res)
        return res

    loss0, aux0 = _evaluate(loss_fn, static, dyn, args)
    row0: dict[str, float | int] = {"iteration": 0, "loss": float(loss0), "grad_norm": float("nan")}
    history: list[dict[str, float | int]] = [row0 | {k: float(v) for k, v in aux0.items()}]
    compile_time = 0.0
    if not bool(jnp.isfinite(loss0)):
        message = (
            f"{label} did not start: the initial loss is {float(loss0)}. Check the data for "
            "NaN/Inf and the model's initial output."
        )
        return stop(result("non_finite", message, 0, float(loss0)))
    state = _init(settings, dyn)
    stall = jnp.int32(0)
    best = (dyn, jnp.asarray(loss0))
    best_loss = float(loss0)
    it, status, loss, message = 0, "max_iter", float(loss0), ""
    first = True
    while it < max_iter:
        n = min(log_every, max_iter - it)
        t0 = time.perf_counter()
        dyn, state, done, stall, code, last, best = _chunk(
            loss_fn, static, settings, dyn, state, stall, jnp.int32(n), best, args
        )
        done, code, best_loss = int(done), int(code), float(best[1])
        if first:  # compilation happens in the first call when the chunk is not cached
            compile_time, first = time.perf_counter() - t0, False
        it += done
        loss_now, aux = _evaluate(loss_fn, static, dyn, args)
        loss = float(loss_now)
        row: dict[str, float | int] = {
            "iteration": it,
            "loss": loss,
            "grad_norm": float(last[1]) if done else float("nan"),
            **{k: float(v) for k, v in aux.items()},
        }
        history.append(row)
        if on_log is not None:
            on_log(it, row)
        if code == _NON_FINITE:
            message = (
                f"{label} stopped at iteration {it + 1}: the loss or its gradient became "
                f"non-finite (NaN/Inf); kept the parameters of iteration {it} (loss {loss:.6g})."
                " Start from a better point (more Adam steps), rescale the problem or run in "
                "float64."
            )
            return stop(result("non_finite", message, it, loss))
        if code == _NO_PROGRESS:
            status = "no_progress"
            message = (
                f"{label} stopped at iteration {it}: the line search made no progress for "
                f"{patience} iterations in a row (loss {loss:.6g})"
            )
            break
        if code == _CONVERGED:
            status = "converged"
            message = f"{label} converged at iteration {it}: gradient norm <= {gtol:g}"
            break
        if time_limit_s is not None and time.perf_counter() - start >= time_limit_s:
            status = "time_limit"
            message = (
                f"{label} stopped at iteration {it}: time limit of {time_limit_s:g} s reached "
                f"(loss {loss:.6g})"
            )
            break
    if status == "max_iter":
        message = f"{label} ran its {max_iter} iterations (loss {float(loss0):.6g} -> {loss:.6g})"
    return result(status, message, it, loss)
