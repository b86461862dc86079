"""The one ODE front over diffrax: `solve_ode` (and `integrate_ode` behind it).

Every ODE solve in sdeml goes through `integrate_ode`: one set of documented defaults, one
reading of solver facts (the registry in `_solvers`), one count of vector-field evaluations and
one failure policy. A failed solve raises `ODESolveError` eagerly, and under ``jax.jit`` /
``jax.grad`` / ``jax.vmap`` through a runtime check that is attached to *every* output of the
solve, so it cannot be dropped as dead code whichever outputs the caller keeps.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from typing import Any, cast

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jax.experimental import io_callback
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, Int, PyTree, Real

from ._checks import concrete_scalar, distinct_times, time_spacing
from ._normals import standard_normal
from ._solvers import SolverInfo, get_solver, solver_info

__all__ = [
    "ATOL_EPS_FLOOR",
    "DEFAULT_ATOL",
    "DEFAULT_MAX_STEPS",
    "DEFAULT_RTOL",
    "ODEResult",
    "ODESolution",
    "ODESolveError",
    "RTOL_EPS_FLOOR",
    "effective_tolerances",
    "integrate_ode",
    "solve_ode",
]

# A real scalar: a Python number or a 0-d JAX/NumPy array. Tolerances and steps are checked with
# `float()` when concrete, so jaxtyping's ArrayLike (which admits `complex`) would be too wide.
# Integers too (times t0 = 0, t1 = 1 were refused by the annotation checks); a bool passes the
# annotation (a Python int) and is refused by the front's own checks, naming the argument.
RealScalarLike = float | int | Real[Array, ""] | Real[np.ndarray, ""] | np.floating | np.integer

# The one set of defaults of every ODE solve (themes pass their own tolerances where their
# accuracy needs differ, and say so in their docstrings).
DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-9
DEFAULT_MAX_STEPS = 16_384
# Tolerances below the resolution of the state's dtype cannot be met: the error estimate of a step
# is itself rounded at about eps * |y|, so the controller rejects step after step until max_steps
# (issue #17: the float32 Van der Pol example). `integrate_ode` raises rtol to RTOL_EPS_FLOOR * eps
# and atol to ATOL_EPS_FLOOR * eps of the dtype: float64 1e-6/1e-9 are untouched (floors 2.2e-14,
# 2.2e-15); float32 gets rtol >= 1.2e-5 and atol >= 1.2e-6.
RTOL_EPS_FLOOR = 100.0
ATOL_EPS_FLOOR = 10.0

# A step size h with h * rho(df/dy) above this is outside (or at the edge of) the stability region
# of every explicit Runge–Kutta method on the negative real axis (Euler: 2, RK4: 2.79, Tsit5 and
# Dopri5: about 3.3-3.5). An explicit solver that runs out of steps while h * rho stays this large
# is being held back by stability, not accuracy: the textbook signature of stiffness. The
# threshold 1 is deliberately below the boundaries so the diagnosis does not depend on the method.
_STIFF_H_RHO = 1.0
# A finite-time blow-up (y' = y^2) also runs out of steps with h * rho above that: its Jacobian
# grows with the state while the mean step was set long before, at small states. Two signs,
# together, tell it from stiffness: the state grew by this factor or more over max(|y0|, 1) (a
# stiff solve's state stays at its own scale), and h * rho is far beyond every explicit
# method's stability boundary (where a stiff solve's stability-limited steps keep it).
_BLOWUP_GROWTH = 1e6
_BLOWUP_H_RHO = 1e3
# States up to this many entries get the exact spectral radius (eigenvalues of the Jacobian);
# larger ones a power-iteration estimate from Jacobian-vector products.
_EXACT_SPECTRUM = 64
_POWER_ITERATIONS = 30


class ODEResult(eqx.Enumeration):
    """Result codes of `solve_ode`; compare with ``==`` (``sol.result == ODEResult.stiff``).

    The messages are the first sentence of the error raised when ``throw=True``; the error
    adds a remedy that fits the solver and the precision (an implicit solver is suggested only to
    an explicit one; enabling float64 to a float32 implicit solve) and the solve's details.

    Examples:
        >>> import sdeml
        >>> stiff = lambda t, y, args: -1e4 * (y - jnp.cos(t))  # df/dy = -1e4
        >>> sol = sdeml.solve_ode(stiff, jnp.zeros(1), 0.0, 1.0, max_steps=200, throw=False)
        >>> bool(sol.result == sdeml.ODEResult.stiff), sol.result_name
        (True, 'stiff')
    """

    successful = ""
    max_steps_reached = "solve_ode: `max_steps` was reached before t1."
    stiff = (
        "solve_ode: the explicit solver ran out of steps because the problem is stiff: its step "
        "size is limited by stability (h * spectral radius of df/dy >= 1), not by accuracy. Use an "
        "implicit solver: solver='kvaerno5' (or 'kvaerno3', 'implicit_euler')."
    )
    blowup = (
        "solve_ode: the solution blows up: the state grew a million-fold or more (over "
        "max(|y0|, 1)) while the steps shrank with it, until the solver ran out of steps near "
        "the time reached, a finite-time singularity as of y' = y^2. It is not stiffness: an "
        "implicit solver does not help."
    )
    dt_min_reached = "solve_ode: the step size collapsed below `dtmin`."
    nonfinite = "solve_ode: the solution became NaN/inf."
    nonfinite_input = (
        "solve_ode: the initial value `y0` (or `t0`/`t1`) contains NaN or inf; nothing was solved."
    )
    solver_failed = "solve_ode: diffrax reported a failure (see `diffrax_result`)."


_RESULT_NAMES = (
    "successful",
    "max_steps_reached",
    "stiff",
    "blowup",
    "dt_min_reached",
    "nonfinite",
    "nonfinite_input",
    "solver_failed",
)


class ODESolveError(RuntimeError):
    r"""Raised by `solve_ode` with ``throw=True`` when the solve fails; names the cause.

    The message is the `ODEResult` message followed by the details of the solve: solver,
    time reached, interval, steps (rejected among them), ``max_steps``, mean step and the stiffness
    indicator $\bar h\,\rho$. Eagerly it is raised as such; under ``jax.jit`` it is raised at run
    time inside a host callback, so the caller receives a ``jax.errors.JaxRuntimeError`` whose text
    ends with ``ODESolveError: <the same message>``.

    Examples:
        >>> import sdeml
        >>> stiff = lambda t, y, args: -1e4 * (y - jnp.cos(t))  # df/dy = -1e4
        >>> try:
        ...     sdeml.solve_ode(stiff, jnp.zeros(1), 0.0, 1.0, max_steps=200)
        ... except sdeml.ODESolveError as err:
        ...     print(err)
        solve_ode: the explicit solver ran out of steps because the problem is stiff: ...
    """


class ODESolution(eqx.Module):
    r"""What `solve_ode` returns: saved times and states, statistics and a result code.

    Attributes:
        ts: saved times, shape ``(n_save,)``. Entries after a failure are ``inf`` (diffrax).
        ys: saved states, leading axis ``n_save`` on every leaf of ``y0``'s structure.
        result: an `ODEResult`.
        num_steps: attempted steps (accepted + rejected).
        num_accepted_steps, num_rejected_steps: as counted by the step-size controller.
        nfe: vector-field evaluations of the solve (the diagnostic evaluations after a failure
            are not included). Exact for explicit Runge–Kutta methods, derived from the solver's
            tableau (`sdeml.core.solver_info`): $(s - \text{FSAL})\,n + \text{FSAL}\cdot a$ with
            $a$ the attempts up to the first accepted step. For implicit methods diffrax does not
            report the Newton iterations, so it is ``-1`` unless the solve was called with
            ``count_evals=True`` (an exact host-side count, eagerly or under ``jax.jit``).
        t_final, y_final: time and state reached (``t1`` and $y(t_1)$ on success).
        stiffness: $\bar h\,\rho(\partial f/\partial y)$ at ``y_final``, with $\bar h$ the mean
            accepted step; values $\gtrsim 1$ mean the step is stability-limited. Computed when
            the solve ran out of steps (the failure it diagnoses), NaN otherwise, so that a
            successful solve evaluates the field exactly ``nfe`` times.
        diffrax_result: diffrax's own result code.
        interpolation: the dense interpolant when solved with ``dense=True`` (else ``None``);
            evaluate it with `evaluate`.

    Examples:
        >>> import sdeml
        >>> sol = sdeml.solve_ode(lambda t, y, args: -y, jnp.ones(2), 0.0, 1.0, dense=True)
        >>> sol.ts.shape, sol.ys.shape, bool(sol.ok)  # saved at t0 and t1 by default
        ((2,), (2, 2), True)
        >>> round(float(sol.evaluate(0.55)[0]), 5), round(float(jnp.exp(-0.55)), 5)
        (0.57695, 0.57695)
        >>> sol.evaluate(jnp.linspace(0.0, 1.0, 5)).shape
        (5, 2)
        >>> sorted(sol.stats)
        ['nfe', 'num_accepted_steps', 'num_rejected_steps', 'num_steps', 'stiffness']
    """

    ts: Float[Array, " n_save"]
    ys: PyTree
    result: ODEResult
    num_steps: Int[Array, ""]
    num_accepted_steps: Int[Array, ""]
    num_rejected_steps: Int[Array, ""]
    nfe: Int[Array, ""]
    t_final: Float[Array, ""]
    y_final: PyTree
    stiffness: Float[Array, ""]
    diffrax_result: diffrax.RESULTS
    interpolation: diffrax.DenseInterpolation | None = None

    @property
    def ok(self) -> jax.Array:
        """Boolean array: True when the solve succeeded."""
        return self.result == ODEResult.successful

    @property
    def result_name(self) -> str:
        """The result as a name, e.g. ``"successful"`` or ``"stiff"`` (needs concrete values)."""
        for name in _RESULT_NAMES:
            if bool(self.result == getattr(ODEResult, name)):
                return name
        raise AssertionError("unreachable: unknown ODEResult")

    @property
    def stats(self) -> dict[str, jax.Array]:
        """The statistics as a dict (steps, accepted/rejected, evaluations, stiffness)."""
        return {
            "num_steps": self.num_steps,
            "num_accepted_steps": self.num_accepted_steps,
            "num_rejected_steps": self.num_rejected_steps,
            "nfe": self.nfe,
            "stiffness": self.stiffness,
        }

    def evaluate(self, t: ArrayLike) -> PyTree:
        """The dense solution at time(s) `t` (a scalar, or an array: vectorised over it).

        Needs a solve with ``dense=True``. Times outside the solved interval give NaN (the
        interpolation is not extrapolated), as in diffrax.
        """
        if self.interpolation is None:
            raise ValueError("`evaluate` needs a solve with dense=True")
        t = jnp.asarray(t)
        if t.ndim == 0:
            return self.interpolation.evaluate(t)
        return jax.vmap(self.interpolation.evaluate)(t.reshape(-1))


# ---------------------------------------------------------------- evaluation counting (#4)
# diffrax 0.7.2 drops the root finder's statistics inside `AbstractRungeKutta.step`, so the Newton
# iterations of the implicit solvers are not reported, and no pure counter can be threaded through
# them (a `jax.new_ref` closed over by the field breaks lineax's comparison of the chord Jacobian's
# closures). `count_evals=True` therefore counts on the host, with three ordered callbacks: one
# opens a count before the loop, one per vector-field evaluation adds to it, and one after the
# loop reads and closes it. JAX runs ordered effects in program order, also across compiled
# programs (runtime tokens serialise them), so each count holds exactly its own solve's
# evaluations, eagerly and under `jax.jit`; a stack keeps nested solves apart. The per-evaluation
# callback takes no operands on purpose: jax 0.10.2 copies callback operands into device arrays,
# which costs about 200 us a call, against about 40 us for a callback without operands.
_COUNTS: dict[int, int] = {}
_OPEN: list[int] = []  # keys of the counts now open, innermost last
_COUNT_KEYS = itertools.count(1)
_COUNT_LOCK = threading.Lock()


def _open_count() -> np.ndarray:
    with _COUNT_LOCK:
        key = next(_COUNT_KEYS) % 2**31
        _COUNTS[key] = 0
        _OPEN.append(key)
    return np.asarray(key, np.int32)


def _bump() -> None:
    with _COUNT_LOCK:
        # With no count open the evaluation belongs to a finished solve: reverse-mode autodiff
        # replays the forward loop after the count was read, and the replay is not the solve's.
        if _OPEN:
            _COUNTS[_OPEN[-1]] += 1


def _close_count(key: ArrayLike, num_steps: ArrayLike) -> np.ndarray:
    with _COUNT_LOCK:
        if int(np.asarray(key)) in _OPEN:
            _OPEN.remove(int(np.asarray(key)))
        return np.asarray(_COUNTS.pop(int(np.asarray(key)), -1), np.asarray(num_steps).dtype)


@jax.custom_batching.custom_vmap
def _refuse_vmap(probe: jax.Array) -> jax.Array:
    """Identity on `probe`; raises (at trace time) when `probe` is batched by `jax.vmap`."""
    return probe


@_refuse_vmap.def_vmap
def _refuse_vmap_rule(axis_size, in_batched, probe):
    # A batched solve runs its loops until every member is done and evaluates the field for all
    # members at once, so a host count would not be the count of any one member's solve.
    raise ValueError(
        "`count_evals=True` cannot be used under jax.vmap: a batched solve evaluates the vector "
        "field for all members at once, so no member's count can be told apart. Count one member "
        "at a time (a Python loop over jitted solves), or use count_evals=False: "
        "`nfe` is exact for explicit solvers without it."
    )


def _probe(*trees: Any) -> jax.Array:
    """A boolean that depends on every array leaf of `trees` (so it is batched if any leaf is).

    Boolean, so that it carries no tangent into `_refuse_vmap` under autodiff.
    """
    leaves = [x for x in jax.tree_util.tree_leaves(trees) if eqx.is_array(x)]
    return functools.reduce(jnp.logical_and, [jnp.all(x == x) for x in leaves], jnp.asarray(True))


class _Counted(eqx.Module):
    """Wraps a vector field so that every evaluation adds one to the innermost open host count.

    A module (equal whenever `f` is) rather than a closure, so that repeated counted solves of the
    same field hit the compilation cache.
    """

    f: Callable

    def __call__(self, t, y, args):
        io_callback(_bump, None, ordered=True)
        return self.f(t, y, args)


class _CountAttempts(diffrax.AbstractAdaptiveStepSizeController):
    """An adaptive controller that also counts the attempted steps up to the first accepted one.

    An FSAL method evaluates its first stage anew on every attempt until a step is accepted
    (diffrax keeps the solver state of a rejected step), so its evaluation count needs this
    number; the controller's state is the one piece of diffrax's loop that every attempt updates.
    """

    inner: diffrax.AbstractAdaptiveStepSizeController

    # Explicit: pyright reads the base's AbstractVars (rtol, atol, norm) as dataclass fields, so
    # the generated __init__ looks like it needs them; here they are properties of `inner`.
    def __init__(self, inner: diffrax.AbstractAdaptiveStepSizeController):
        self.inner = inner

    @property
    def rtol(self):  # type: ignore[override]
        return self.inner.rtol

    @property
    def atol(self):  # type: ignore[override]
        return self.inner.atol

    @property
    def norm(self):  # type: ignore[override]
        return self.inner.norm

    def wrap(self, direction):
        inner = self.inner.wrap(direction)
        assert isinstance(inner, diffrax.AbstractAdaptiveStepSizeController)  # wrap keeps the type
        return _CountAttempts(inner)

    # The count is one int32 leaf: the attempts so far while none was accepted, then minus the
    # attempts up to and including the first accepted one (`attempts_of` reads either). With a
    # separate boolean "accepted" leaf in the loop's carry the count cost +3.2 % and +6.0 % of a
    # small neural ODE's gradient (two runs of 400-600 alternating calls, 2-core Xeon); packed,
    # +0.1 % and +1.7 %.
    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        tnext, state = self.inner.init(terms, t0, t1, y0, dt0, args, func, error_order)
        return tnext, (state, jnp.zeros((), jnp.int32))

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, state):
        inner_state, count = state
        keep, t_next, t_after, jump, inner_state, result = self.inner.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, inner_state
        )
        counting = count >= 0
        count = jnp.where(counting, count + 1, count)
        count = jnp.where(counting & keep, -count, count)
        return keep, t_next, t_after, jump, (inner_state, count), result

    @staticmethod
    def attempts_of(count: Array) -> Array:
        """The attempted steps up to and including the first accepted one (all of them when
        none was accepted), from the controller state's count."""
        return jnp.abs(count)


def _is_traced(*xs: Any) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def _real_scalar(name: str, arg: str, value: Any) -> float | None:
    """A concrete real scalar argument as a float; None when it is None or traced. A bool (True
    read as 1), a non-scalar or a non-real value is refused, naming `arg`."""
    if value is None or _is_traced(value):
        return None
    v = concrete_scalar(value)
    if v is None or np.asarray(value).dtype == bool:
        raise ValueError(f"{name}: `{arg}` must be a real number, got {value!r}.")
    return v


class _InStateDtypes(eqx.Module):
    """A vector field of a half-precision state, integrated in float32: called with the time and
    the state in the caller's own dtypes (a bfloat16 model's parameters meet bfloat16 inputs, as
    without the float32 carry; strict promotion refuses bfloat16 x float32), its output in the
    float32 that the solver sums. A module, not a closure, so that `_solve`'s compiled program is
    reused from call to call (a fresh closure would be a new static argument each time)."""

    f: Callable[[Any, Any, Any], Any]
    treedef: Any = eqx.field(static=True)
    dtypes: tuple[Any, ...] = eqx.field(static=True)
    time_dtype: Any = eqx.field(static=True)

    def __init__(self, f: Callable[[Any, Any, Any], Any], y0: Any, time_dtype: Any):
        leaves, self.treedef = jax.tree_util.tree_flatten(y0)
        self.f = f
        self.dtypes = tuple(jnp.dtype(x.dtype) for x in leaves)
        self.time_dtype = jnp.dtype(time_dtype)

    def __call__(self, t, y, args):
        leaves = jax.tree_util.tree_leaves(y)
        own = [x.astype(d) for x, d in zip(leaves, self.dtypes, strict=True)]
        y_own = self.treedef.unflatten(own)
        out = self.f(jnp.asarray(t).astype(self.time_dtype), y_own, args)
        return jax.tree_util.tree_map(lambda x: jnp.asarray(x).astype(jnp.float32), out)


def _all_finite_host(tree: Any) -> bool:
    """Whether every leaf of a concrete (untraced) tree is finite, checked with NumPy (no staging:
    also right for a concrete array closed over inside `jax.jit`)."""
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree))


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if eqx.is_array(x)]
    return functools.reduce(jnp.logical_and, leaves, jnp.asarray(True))


def _spectral_radius(f, t, y, args) -> tuple[jax.Array, jax.Array]:
    """rho(df/dy) at (t, y): exact for small states, by power iteration for large ones; and
    whether f(t, y) is finite (the primal of the same JVPs: no extra evaluation)."""
    flat, unravel = ravel_pytree(y)
    if flat.size == 0:
        return jnp.zeros((), flat.dtype), jnp.asarray(True)

    def g(z):
        return ravel_pytree(f(t, unravel(z), args))[0]

    if flat.size <= _EXACT_SPECTRUM:
        # Column by column (one JVP at a time), not `jax.jacfwd`'s batch of them: the buffers of
        # a branch sit in the compiled program's scratch memory even when it is not taken, and
        # every call pays for that memory (benchmarks/RESULTS.md, 2026-12-06: a 40-dimensional
        # state of a 50-wide network had 224 KB there, 2.6 times the solve's own).
        eye = jnp.eye(flat.size, dtype=flat.dtype)
        values, jac = jax.lax.map(lambda e: jax.jvp(g, (flat,), (e,)), eye)
        jac = jnp.where(jnp.isfinite(jac.T), jac.T, 0.0)
        rho = jnp.max(jnp.abs(jnp.linalg.eigvals(jac))).astype(flat.dtype)
        return rho, jnp.all(jnp.isfinite(values[0]))
    v = standard_normal(jax.random.key(0), flat.shape, flat.dtype)
    v = v / jnp.linalg.norm(v)

    def body(_, carry):
        v, _, _ = carry
        value, w = jax.jvp(g, (flat,), (v,))
        w = jnp.where(jnp.isfinite(w), w, 0.0)
        n = jnp.linalg.norm(w)
        return w / jnp.maximum(n, jnp.finfo(flat.dtype).tiny), n, jnp.all(jnp.isfinite(value))

    # |J^k v|^(1/k)-style growth: the last norm ratio estimates rho for a dominant real mode and
    # is within a factor of the modulus for a complex pair, enough for a threshold of 1.
    init = (v, jnp.zeros((), flat.dtype), jnp.asarray(True))
    _, rho, finite = jax.lax.fori_loop(0, _POWER_ITERATIONS, body, init)
    return rho, finite


@eqx.filter_jit
def _solve(
    f,
    y0,
    t0,
    t1,
    ts,
    args,
    solver,
    controller,
    dt0,
    max_steps,
    info: SolverInfo,
    count_evals,
    adjoint,
    dense,
    diagnose,
    with_nfe,
    ends_at_ts,
):
    if count_evals:
        # Checked up front too: JAX refuses to batch a loop with ordered effects in its own words.
        _refuse_vmap(_probe(f, y0, t0, t1, ts, args))
        key = io_callback(_open_count, jax.ShapeDtypeStruct((), jnp.int32), ordered=True)
        term = diffrax.ODETerm(_Counted(f))
    else:
        term = diffrax.ODETerm(f)
    adaptive = isinstance(controller, diffrax.AbstractAdaptiveStepSizeController)
    # Only an FSAL method's count needs the attempts up to the first accepted step (`info.nfe`),
    # and only a caller that reads `nfe` needs the count.
    counting = adaptive and with_nfe and info.fsal and info.stages is not None and not count_evals
    if counting:
        controller = _CountAttempts(controller)
    # One save of (ts, t1): the final time and state reached come after the last time saved
    # (right after ts[-1] on success, in place of the first unreached time on a failure), and
    # the step loop carries nothing beyond a save at `ts` alone. Separate sub-saves of `ts` and
    # `t1`, and the attempt count, added a dozen operations to every step of the loop, forward
    # and backward (benchmarks/RESULTS.md, 2026-12-06). BacksolveAdjoint takes this form too.
    # When t1 is ts[-1] (`ends_at_ts`), the times before it and t1 make exactly the n outputs.
    if ts is None:  # t0 and t1 only: no per-step interpolation for saving
        saveat = diffrax.SaveAt(t0=True, t1=True, dense=dense, controller_state=counting)
    elif ends_at_ts and ts.shape[0] == 1:
        saveat = diffrax.SaveAt(t1=True, dense=dense, controller_state=counting)
    else:
        before = ts[:-1] if ends_at_ts else ts
        saveat = diffrax.SaveAt(ts=before, t1=True, dense=dense, controller_state=counting)
    finite_in = _all_finite((y0, t0, t1, ts))  # (traced inputs: checked here)
    sol = diffrax.diffeqsolve(
        term,
        solver,
        t0,
        t1,
        dt0,
        y0,
        args=args,
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=max_steps,
        adjoint=adjoint,
        throw=False,
    )
    assert sol.ts is not None and sol.ys is not None  # SaveAt above always saves t1
    if ts is None or ends_at_ts:  # (`_examined` finds the state reached after a failure)
        ts_out, ys_out = sol.ts, sol.ys
        t_final, y_final = sol.ts[-1], jax.tree_util.tree_map(lambda x: x[-1], sol.ys)
    else:  # as laid out on success (`_examined` finds the state reached after a failure)
        n = ts.shape[0]
        ts_out, ys_out = sol.ts[:n], jax.tree_util.tree_map(lambda x: x[:n], sol.ys)
        t_final, y_final = sol.ts[n], jax.tree_util.tree_map(lambda x: x[n], sol.ys)
    n_steps = sol.stats["num_steps"]
    n_acc = sol.stats["num_accepted_steps"]
    n_rej = sol.stats["num_rejected_steps"]

    max_steps_hit = sol.result == diffrax.RESULTS.max_steps_reached
    finite = _all_finite(ys_out)
    if not (ts is None or ends_at_ts):  # else y_final is one of ys_out
        finite = finite & _all_finite(y_final)
    finite = finite | (sol.result != diffrax.RESULTS.successful)  # inf padding after a failure
    result = ODEResult.where(
        sol.result == diffrax.RESULTS.successful, ODEResult.successful, ODEResult.solver_failed
    )
    result = ODEResult.where(max_steps_hit, ODEResult.max_steps_reached, result)
    result = ODEResult.where(
        sol.result == diffrax.RESULTS.dt_min_reached, ODEResult.dt_min_reached, result
    )
    result = ODEResult.where(finite, result, ODEResult.nonfinite)
    result = ODEResult.where(finite_in, result, ODEResult.nonfinite_input)
    if count_evals:
        # The outputs catch a batching the inputs did not show (a tracer closed over by `f`).
        _refuse_vmap(_probe(ys_out, y_final, t_final, n_steps))
        struct = jax.ShapeDtypeStruct((), n_steps.dtype)
        nfe = io_callback(_close_count, struct, key, n_steps, ordered=True)
    elif info.stages is None or not with_nfe:
        nfe = jnp.asarray(-1, n_steps.dtype)
    elif counting:
        assert sol.controller_state is not None  # SaveAt(controller_state=counting)
        attempts = _CountAttempts.attempts_of(sol.controller_state[1])
        nfe = info.nfe(n_steps, attempts).astype(n_steps.dtype)
    else:  # constant steps, or a method without FSAL: the stages of every attempted step
        nfe = jnp.asarray(info.nfe(n_steps), n_steps.dtype)
    solution = ODESolution(
        ts=ts_out,
        ys=ys_out,
        result=result,
        num_steps=n_steps,
        num_accepted_steps=n_acc,
        num_rejected_steps=n_rej,
        nfe=nfe,
        t_final=t_final,
        y_final=y_final,
        stiffness=jnp.full((), jnp.nan, t_final.dtype),
        diffrax_result=sol.result,
        interpolation=sol.interpolation if dense else None,
    )
    # With throw=True the failure is examined where it is reported (`integrate_ode`): a
    # successful solve then pays nothing for it.
    if not diagnose:
        return solution
    return _examined(solution, f, args, t0, y0, info.implicit, ts is not None)


def _max_abs(tree: Any, dtype) -> jax.Array:
    """The largest |entry| over the array leaves of `tree` (0 for none), in `dtype`."""
    leaves = [
        jnp.max(jnp.abs(x), initial=0).astype(dtype)
        for x in jax.tree_util.tree_leaves(tree)
        if eqx.is_array(x)
    ]
    return functools.reduce(jnp.maximum, leaves, jnp.zeros((), dtype))


def _examined(sol: ODESolution, f, args, t0, y0, implicit: bool, at_ts: bool) -> ODESolution:
    """`sol` (as `_solve` lays it out on success) with what a failure needs: the time and state
    reached, the times not reached padded with inf, the code `nonfinite` for a solve that
    stalled on a non-finite state, the stiffness indicator, the code `blowup` for a solve that
    ran out of steps as its state grew without bound (`_BLOWUP_GROWTH`, `_BLOWUP_H_RHO`), and
    otherwise the code `stiff` for an explicit solve that ran out of steps with the indicator at
    or above `_STIFF_H_RHO`. A successful solve keeps its values.

    `at_ts`: the solve saved at given times, (ts, t1) in one save, where the final state
    comes after the last time reached: right after ts[-1] on success, in place of the first
    time not reached on a failure.

    The indicator h_mean * rho(J) at the state reached is computed only when the solve ran out of
    steps (the case it diagnoses): a successful solve evaluates the field exactly `nfe` times.
    The predicate is un-batched, so under vmap this stays a branch that successful solves skip.
    Diagnostics carry no gradient (and keep eigvals out of reverse-mode autodiff); the extra
    evaluations use the unwrapped `f`, so `count_evals` counts the solve's evaluations only.
    """
    ok = sol.diffrax_result == diffrax.RESULTS.successful
    if at_ts:
        n = sol.ts.shape[0]
        last = jnp.sum(jnp.isfinite(sol.ts)) - 1  # times not reached are inf (diffrax)
        t_final = jnp.where(ok, sol.t_final, sol.ts[last])
        y_final = jax.tree_util.tree_map(
            lambda x, y: jnp.where(ok, y, x[last]), sol.ys, sol.y_final
        )
        reached = ok | (jnp.arange(n) < last)

        def pad(x):  # as diffrax pads: inf at every time not reached
            return jnp.where(reached.reshape((n,) + (1,) * (x.ndim - 1)), x, jnp.inf)

        sol = eqx.tree_at(
            lambda s: (s.ts, s.ys, s.t_final, s.y_final),
            sol,
            (pad(sol.ts), jax.tree_util.tree_map(pad, sol.ys), t_final, y_final),
        )
    max_steps_hit = sol.diffrax_result == diffrax.RESULTS.max_steps_reached
    f_sg, t_sg, y_sg, args_sg = jax.tree_util.tree_map(
        lambda x: jax.lax.stop_gradient(x) if eqx.is_array(x) else x,
        (f, sol.t_final, sol.y_final, args),
    )
    dtype = sol.t_final.dtype

    def diagnose():
        rho, field_finite = _spectral_radius(f_sg, t_sg, y_sg, args_sg)
        return rho.astype(dtype), field_finite

    rho, field_finite = jax.lax.cond(
        eqxi.unvmap_any(max_steps_hit),
        diagnose,
        lambda: (jnp.full((), jnp.nan, dtype), jnp.asarray(True)),
    )
    # (under vmap the branch runs for every member once one ran out of steps)
    rho = jnp.where(max_steps_hit, rho, jnp.nan)
    # A non-finite state stalls an adaptive controller (NaN error norms are rejected), and so
    # does a field that is non-finite at a finite state (every step from it is rejected, and the
    # state never changes): say what happened instead of calling it stiff or out of steps.
    stalled = (sol.result == ODEResult.max_steps_reached) & ~(
        _all_finite(sol.y_final) & field_finite
    )
    sol = eqx.tree_at(
        lambda s: s.result, sol, ODEResult.where(stalled, ODEResult.nonfinite, sol.result)
    )
    h_mean = jnp.abs(jax.lax.stop_gradient(sol.t_final - t0)) / jnp.maximum(
        sol.num_accepted_steps, 1
    )
    stiffness = (h_mean * rho).astype(dtype)
    # only a solve still classed as out of steps (not as non-finite) is called stiff or a blow-up
    out_of_steps = sol.result == ODEResult.max_steps_reached
    y0_scale = jnp.maximum(_max_abs(jax.lax.stop_gradient(y0), dtype), 1)
    grown = _max_abs(y_sg, dtype) >= _BLOWUP_GROWTH * y0_scale
    blowup = out_of_steps & grown & (stiffness >= _BLOWUP_H_RHO)
    stiff = out_of_steps & ~blowup & (stiffness >= _STIFF_H_RHO)
    result = sol.result if implicit else ODEResult.where(stiff, ODEResult.stiff, sol.result)
    result = ODEResult.where(blowup, ODEResult.blowup, result)
    return eqx.tree_at(lambda s: (s.stiffness, s.result), sol, (stiffness, result))


def _result_index(result: ODEResult) -> Int[Array, ""]:
    """The position of `result` in `_RESULT_NAMES`, as an integer array (traceable)."""
    terms = (
        jnp.where(result == getattr(ODEResult, name), i, 0) for i, name in enumerate(_RESULT_NAMES)
    )
    return functools.reduce(jnp.add, terms)


_X64_HINT = (
    " In {dtype} an implicit solver's Newton iterations and error estimates run into rounding on "
    'stiff problems: enable float64 with jax.config.update("jax_enable_x64", True) at the start '
    "of the program (before any array is created) and pass float64 arrays, e.g. "
    "jnp.asarray(y0, jnp.float64)."
)


def _remedy(code_name: str, implicit: bool, dtype_name: str) -> str:
    """What to try after failure `code_name`: never the kind of solver already in use."""
    low_precision = np.finfo(np.dtype(dtype_name)).bits < 64
    x64 = _X64_HINT.format(dtype=dtype_name) if implicit and low_precision else ""
    if code_name == "max_steps_reached":
        if implicit:
            return (
                " The solver is already implicit: increase `max_steps` or loosen rtol/atol." + x64
            )
        return (
            " Increase `max_steps`, loosen rtol/atol, or, if the problem is stiff, use an implicit "
            "solver (solver='kvaerno5')."
        )
    if code_name == "blowup":
        return (
            " Check the vector field and its parameters for growth faster than linear in y; end "
            "the interval before the time reached, or bound the field (a learned field, e.g., "
            "with a saturating output)."
        )
    if code_name == "dt_min_reached":
        if implicit:
            return " The solution may blow up (finite-time singularity)." + x64
        return (
            " The solution may blow up (finite-time singularity) or the problem is stiff: try "
            "solver='kvaerno5'."
        )
    if code_name == "solver_failed" and implicit:
        return (
            " The implicit solver's Newton (chord) iteration did not converge within a step: use "
            "smaller steps (more `n_steps`, or let the steps adapt), or loosen rtol/atol, which "
            "with constant steps set the iteration's tolerances." + x64
        )
    if code_name == "nonfinite":
        if implicit:
            return " Use more steps or tighter rtol/atol; otherwise check the vector field." + x64
        return (
            " Check the vector field at the time and state reached (with adaptive steps, a field "
            "that is NaN/inf there has every step rejected). With fixed steps, a step too large "
            "for the stability region (a stiff problem) does this too: use more steps or an "
            "implicit solver (solver='kvaerno5')."
        )
    return ""


def _failure_message(
    solver_name,
    max_steps,
    index,
    t_final,
    t0,
    t1,
    num_steps,
    num_rejected,
    num_accepted,
    stiffness,
    y_max,
    *,
    implicit: bool = False,
    dtype_name: str = "float64",
) -> str:
    """The message of result `_RESULT_NAMES[index]` with the details of the failed solve."""
    code_name = _RESULT_NAMES[int(index)]
    code = ODEResult[getattr(ODEResult, code_name)]
    caller = solver_name.split(", ")[0]  # `integrate_ode`'s `name` starts every message
    if code.startswith("solve_ode:") and caller:
        code = caller + code[len("solve_ode") :]
    h_mean = abs(float(t_final) - float(t0)) / max(int(num_accepted), 1)
    tf_s, t0_s, t1_s = distinct_times(float(t_final), float(t0), float(t1))
    details = (
        f" [{solver_name}: reached t={tf_s} of [{t0_s}, {t1_s}] "
        f"after {int(num_steps)} steps ({int(num_rejected)} rejected, "
        f"max_steps={max_steps}); mean step {h_mean:.3g}, "
        f"h*rho(df/dy)={float(stiffness):.3g}, max|y| {float(y_max):.3g} at the end, "
        f"{dtype_name}]"
    )
    resolution = ""
    if code_name in ("max_steps_reached", "dt_min_reached"):
        resolution = _time_resolution_note(float(t0), float(t1), dtype_name)
    return code + _remedy(code_name, implicit, dtype_name) + resolution + details


_FEW_TIMES = 2**16  # representable times in [t0, t1] below which the dtype's resolution is named


def _time_resolution_note(t0: float, t1: float, dtype_name: str) -> str:
    """Why steps fail when [t0, t1] holds few representable times of the dtype (e.g. t0 = 1e6
    in float32, spaced 0.0625 apart): a step below the spacing leaves t where it was."""
    spacing = time_spacing(t0, t1, dtype_name)
    count = abs(t1 - t0) / spacing
    if count >= _FEW_TIMES:
        return ""
    return (
        f" In {dtype_name}, times near {max(abs(t0), abs(t1)):.6g} are {spacing:.3g} apart, "
        f"about {count:.0f} of them in [t0, t1]: a step smaller than that leaves t unchanged. "
        "Shift time so that it starts at 0 (solve in t - t0), or enable float64 with "
        'jax.config.update("jax_enable_x64", True).'
    )


def _details(sol: ODESolution, t0, t1) -> tuple:
    return (
        _result_index(sol.result),
        sol.t_final,
        t0,
        t1,
        sol.num_steps,
        sol.num_rejected_steps,
        sol.num_accepted_steps,
        sol.stiffness,
        _max_abs(jax.lax.stop_gradient(sol.y_final), sol.t_final.dtype),
    )


def _raise_failure(
    *details, solver_name: str, max_steps: int, implicit: bool, dtype_name: str
) -> np.ndarray:
    """Host side of `throw=True` under jit: raise the detailed error if the solve failed."""
    if int(details[0]) != _RESULT_NAMES.index("successful"):
        raise ODESolveError(
            _failure_message(
                solver_name, max_steps, *details, implicit=implicit, dtype_name=dtype_name
            )
        )
    return np.asarray(False)


@jax.custom_batching.custom_vmap
def _any_member(pred: jax.Array) -> jax.Array:
    """`pred` itself; under vmap, whether it holds for any member (an unbatched predicate)."""
    return pred


@_any_member.def_vmap
def _any_member_vmap(axis_size, in_batched, pred):
    return jnp.any(pred) if in_batched[0] else pred, False


def _throw_traced(
    sol: ODESolution,
    solver_name: str,
    t0,
    t1,
    max_steps: int,
    f: Callable,
    args: Any,
    y0: Any,
    at_ts: bool,
    implicit: bool = False,
    dtype_name: str = "float64",
) -> ODESolution:
    """`throw=True` under jit: a failed solve raises `ODESolveError` with the details at run time.

    The raise happens in a host callback, so under `jax.jit` it reaches the caller as a
    `jax.errors.JaxRuntimeError` whose text holds the `ODESolveError` message. The callback runs
    only on failure; under vmap it runs when any member failed, once per member, and raises for
    the first failed one. `eqx.error_if` with the code's static message stays behind it,
    data-dependent on the callback, for a runtime where a callback cannot raise.

    A successful solve pays for one conditional: the examination (`_examined`), the details, the
    callback and the fallback all sit in its failure branch. Three conditionals on every call
    (the diagnosis's, the callback's, the fallback's) cost 13-20 us of a neural ODE's gradient
    call, against 3 us for diffrax's own check (benchmarks/RESULTS.md, 2026-12-06). The check is
    threaded through every array of the solution (issue #17): a caller that keeps only
    `y_final`, `nfe` or a gradient still runs it; none of them can be computed without it. Like
    `eqx.error_if`, it sits outside autodiff: a custom JVP passes the tangents through.
    """
    callback = functools.partial(
        _raise_failure,
        solver_name=solver_name,
        max_steps=max_steps,
        implicit=implicit,
        dtype_name=dtype_name,
    )
    arrays, rest = eqx.partition(sol, eqx.is_array)
    # what the diagnosis needs, as explicit inputs (a custom JVP may not close over tracers)
    inputs, fixed = eqx.partition((f, args, jnp.asarray(t0), jnp.asarray(t1), y0), eqx.is_array)
    inputs = jax.lax.stop_gradient(inputs)

    @jax.custom_jvp
    def guard(arrays, inputs):
        failed = eqx.combine(arrays, rest).result != ODEResult.successful

        def on_failure(arrays, inputs):
            f_, args_, t0_, t1_, y0_ = eqx.combine(inputs, fixed)
            solution = _examined(eqx.combine(arrays, rest), f_, args_, t0_, y0_, implicit, at_ts)
            struct = jax.ShapeDtypeStruct((), jnp.bool_)
            # A pure (effect-free) callback, as in `eqx.error_if`: JAX cannot vmap a cond
            # holding an IO effect. Its output feeds `error_if`, so it is not dead code and runs
            # before the fallback.
            raised = jax.pure_callback(
                callback, struct, *_details(solution, t0_, t1_), vmap_method="sequential"
            )
            return solution.result.error_if(arrays, failed | raised)

        return jax.lax.cond(_any_member(failed), on_failure, lambda a, i: a, arrays, inputs)

    @guard.defjvp
    def _guard_jvp(primals, tangents):
        return guard(*primals), tangents[0]

    return eqx.combine(guard(arrays, inputs), rest)


class _ResolvedChord(diffrax.VeryChord):
    """diffrax's `VeryChord` for constant steps: it iterates while the updates contract, and an
    update at the working precision's resolution of the tolerance counts as converged.

    `VeryChord` is built for adaptive steps. After its second iteration it either has converged
    (the estimated error ``d rate / (1 - rate)`` below ``kappa`` of the tolerance) or reports
    divergence, so that the controller rejects the step and shrinks it. It also calls a ratio
    of two updates above 2 divergence, which happens once both updates are rounding noise: its
    own "small update" test only catches that for tolerances near 1e-3. With constant steps
    nothing retries, so either event ended the solve. Kvaerno3 with 16 steps on
    ``y' = 0.8 cos(t) y`` stopped at t = 0.125 with an update of 469 x the tolerance
    contracting 1e4-fold per iteration, and Kvaerno5 with 100 steps on Van der Pol (mu = 1)
    stopped at t = 0.95 of 5.

    Here the iteration stops successfully when the error estimate is below ``kappa`` (the
    updates contracting), or when the update, scaled by ``atol + rtol |y|`` as the iteration
    scales it, is below ``100 eps / rtol``: about 100 ulps of the iterate, converged whatever
    the ratio says. It reports divergence only for a ratio above 2 (or a non-finite update)
    above that resolution; otherwise it goes on, up to the solver's ``root_find_max_steps``.
    The tolerances may be 0-d arrays (`effective_tolerances`), so new values do not recompile.
    """

    rtol: Any
    atol: Any

    def terminate(self, fn, y, args, options, state, tags):
        del fn, y, args, options, tags
        dtype = state.diffsize.dtype
        at_least_two = state.step >= 2
        rate = state.diffsize / state.diffsize_prev
        factor = state.diffsize * rate / (1 - rate)
        rtol = jnp.minimum(jnp.asarray(self.rtol, dtype), 1)
        small = state.diffsize < 100 * jnp.finfo(dtype).eps / rtol
        converged = (rate < 1) & (factor < self.kappa)
        diverged = jnp.invert(jnp.isfinite(rate)) | (rate > 2)
        done = at_least_two & (small | converged)
        failed = at_least_two & jnp.invert(small | converged) & diverged
        linsolve_failed = state.result != optx.RESULTS.successful
        result = optx.RESULTS.where(
            linsolve_failed,
            state.result,
            optx.RESULTS.where(failed, optx.RESULTS.nonlinear_divergence, optx.RESULTS.successful),
        )
        return done | failed | linsolve_failed, result


def _check_field_output(f: Callable, y0: PyTree, t0: Any, args: Any, name: str) -> None:
    """``f(t0, y0, args)`` must have the structure and shapes of `y0` (checked by tracing, no
    evaluation). Otherwise a wrong shape surfaces as a broadcasting error inside diffrax, or, for
    a scalar output, is silently broadcast to every component of the state."""
    leaves = jax.tree_util.tree_leaves(y0)
    t = jnp.asarray(t0, jnp.result_type(*leaves))
    out = jax.eval_shape(lambda y: f(t, y, args), y0)

    def shapes(tree):
        found = [tuple(np.shape(x)) for x in jax.tree_util.tree_leaves(tree)]
        return found[0] if len(found) == 1 else found

    same_tree = jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(y0)
    if not same_tree or shapes(out) != shapes(y0):
        raise ValueError(
            f"{name}: the vector field maps a state of shape {shapes(y0)} to {shapes(out)}; "
            "f(t, y, args) must return dy/dt with the structure and shapes of y."
        )


def _check_times(t0, t1, ts, *, forward_only: bool) -> tuple[bool, float, float]:
    concrete = not _is_traced(t0, t1)
    t0_val = t1_val = float("nan")
    if concrete:
        if np.asarray(t0).dtype == bool or np.asarray(t1).dtype == bool:
            raise ValueError(f"`t0` and `t1` must be numbers, got the booleans t0={t0}, t1={t1}.")
        if np.ndim(t0) != 0 or np.ndim(t1) != 0:
            raise ValueError(
                f"`t0` and `t1` must be scalars, got shapes {np.shape(t0)}, {np.shape(t1)}."
            )
        t0_val, t1_val = float(t0), float(t1)
        if not (np.isfinite(t0_val) and np.isfinite(t1_val)):
            raise ValueError(f"`t0` and `t1` must be finite, got t0={t0}, t1={t1}.")
        if forward_only and not t1_val > t0_val:
            raise ValueError(f"`t1` must be greater than `t0`, got t0={t0}, t1={t1}.")
        if t1_val == t0_val:
            raise ValueError(f"`t1` must differ from `t0`, got t0 = t1 = {t0}.")
    if ts is not None:
        if not _is_traced(ts):
            tsn = np.asarray(ts)
            if tsn.ndim != 1 or tsn.shape[0] == 0:
                raise ValueError(
                    f"`ts` must be a non-empty 1-D array of times, got shape {tsn.shape}."
                )
            if not np.all(np.isfinite(tsn)):
                raise ValueError(f"`ts` must be finite, got {tsn}.")
            sign = 1.0 if not concrete or t1_val > t0_val else -1.0
            if np.any(sign * np.diff(tsn) < 0):
                raise ValueError("`ts` must be monotone in the direction from `t0` to `t1`.")
            lo, hi = min(t0_val, t1_val), max(t0_val, t1_val)
            if concrete and (tsn.min() < lo or tsn.max() > hi):
                raise ValueError(
                    f"`ts` must lie in [t0, t1] = [{t0_val}, {t1_val}], got [{tsn[0]}, {tsn[-1]}]."
                )
        elif jnp.ndim(ts) != 1:
            raise ValueError(f"`ts` must be a 1-D array of times, got shape {jnp.shape(ts)}.")
    return concrete, t0_val, t1_val


def effective_tolerances(
    rtol: float | Float[ArrayLike, ""], atol: float | Float[ArrayLike, ""], dtype: Any
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """The tolerances a solve in `dtype` uses: ``max(rtol, RTOL_EPS_FLOOR * eps)`` and
    ``max(atol, ATOL_EPS_FLOOR * eps)``, ``eps = jnp.finfo(dtype).eps``.

    A tolerance below what the dtype resolves cannot be met (each step's error estimate is
    rounded at about ``eps * |y|``), so asking for it only burns steps until ``max_steps``. In
    float64 the defaults are far above the floors; in float32 (eps 1.19e-7) ``rtol`` becomes at
    least 1.19e-5 and ``atol`` at least 1.19e-6. Traceable.

    A comparison with another solver library is like for like only when that library is handed
    these tolerances, not the requested ones (the benchmarks do so).

    Args:
        rtol: the requested relative tolerance.
        atol: the requested absolute tolerance.
        dtype: the state's dtype.

    Returns:
        ``(rtol, atol)`` as 0-d arrays of `dtype`.

    Examples:
        >>> from sdeml.core import effective_tolerances
        >>> [f"{float(v):.3g}" for v in effective_tolerances(1e-7, 1e-9, jnp.float32)]
        ['1.19e-05', '1.19e-06']
        >>> [float(v) for v in effective_tolerances(1e-7, 1e-9, jnp.float64)]  # untouched
        [1e-07, 1e-09]
    """
    eps = float(jnp.finfo(dtype).eps)
    # In the state's dtype: a float32 state under jax_enable_x64 with float64 tolerances gave the
    # implicit solvers' Newton loop a carry of mixed dtypes (a structure error).
    rtol_a = jnp.maximum(jnp.asarray(rtol, dtype=dtype), jnp.asarray(RTOL_EPS_FLOOR * eps, dtype))
    atol_a = jnp.maximum(jnp.asarray(atol, dtype=dtype), jnp.asarray(ATOL_EPS_FLOOR * eps, dtype))
    return rtol_a, atol_a


def integrate_ode(
    f: Callable[[Any, Any, Any], Any],
    y0: PyTree[ArrayLike],
    t0: RealScalarLike,
    t1: RealScalarLike | None,
    *,
    solver: str | diffrax.AbstractSolver = "tsit5",
    ts: Real[ArrayLike, " n_save"] | None = None,
    step_to_ts: bool = False,
    dense: bool = False,
    n_steps: int | np.integer | None = None,
    dt0: RealScalarLike | None = None,
    adaptive: bool | None = None,
    rtol: RealScalarLike = DEFAULT_RTOL,
    atol: RealScalarLike = DEFAULT_ATOL,
    norm: Callable[[PyTree], Array] | None = None,
    dtmin: RealScalarLike | None = None,
    max_steps: int | np.integer = DEFAULT_MAX_STEPS,
    args: Any = None,
    adjoint: diffrax.AbstractAdjoint | None = None,
    throw: bool = True,
    count_evals: bool = False,
    with_nfe: bool = True,
    name: str = "solve_ode",
) -> ODESolution:
    r"""The front behind `solve_ode` that every ODE solve of sdeml goes through.

    As `solve_ode`, and also: `y0` may be any PyTree of floating arrays (augmented states of
    CNFs and likelihoods); time may run backwards (``t1 < t0``, as in probability-flow
    sampling); `norm` sets the step-size controller's error norm; `adaptive` chooses between
    the PID controller and constant steps of size `dt0` (``None``: adaptive exactly when the
    solver has an error estimate, read from the registry); `name` labels error messages.

    Args:
        f: vector field ``f(t, y, args)``, returning a PyTree of `y`'s structure.
        y0: initial state, a PyTree of finite floating arrays (half precision is integrated in
            float32, as in `solve_ode`).
        t0: initial time.
        t1: final time, different from `t0` (``t1 < t0`` integrates backwards); None with
            `ts`: ``ts[-1]`` (the solution at the final time is then the last saved state, one
            save fewer to slice away).
        solver: as in `solve_ode`.
        ts: save times ``(n_save,)`` between `t0` and `t1`, monotone in the direction of
            integration; default ``[t0, t1]``.
        step_to_ts: end an adaptive step at every time in `ts` (see `solve_ode`).
        dense: also keep the dense interpolant.
        n_steps: number of equal steps (fixed-step mode).
        dt0: constant step (``adaptive=False``) or initial step of the adaptive controller;
            its size only: the direction of integration is that of ``t1 - t0``.
        adaptive: PID controller (True) or constant steps (False); ``None``: decided by the
            solver.
        rtol: relative tolerance, floored as in `effective_tolerances`.
        atol: absolute tolerance, floored likewise.
        norm: the controller's error norm (diffrax's RMS norm by default).
        dtmin: smallest step of the controller.
        max_steps: cap on attempted steps.
        args: passed to `f`.
        adjoint: a ``diffrax.AbstractAdjoint``; default ``RecursiveCheckpointAdjoint()``.
        throw: raise `ODESolveError` on failure (else return the result code).
        count_evals: count vector-field evaluations on the host (see `solve_ode`).
        with_nfe: compute ``nfe``. False for a caller that reads only the states (``nfe`` is
            then -1): an adaptive FSAL method (tsit5, dopri5, ...) then carries no count of the
            attempts before its first accepted step through its step loop.
        name: the caller's name, which starts every error message.

    Returns:
        An `ODESolution`; every leaf of ``ys`` has the leading axis ``n_save``.

    Examples:
        >>> from sdeml.core import integrate_ode
        >>> f = lambda t, y, args: {"x": y["v"], "v": -y["x"]}  # harmonic oscillator
        >>> y_pi = {"x": -jnp.ones(()), "v": jnp.zeros(())}  # the state at t = pi
        >>> sol = integrate_ode(f, y_pi, jnp.pi, 0.0)  # backwards to t = 0
        >>> sol.ys["x"].shape, round(float(sol.ys["x"][-1]), 5)  # x(0) = -cos(pi) = 1
        ((2,), 1.0)

    References:
        P. Kidger, On Neural Differential Equations, PhD thesis, 2021 (diffrax).
    """
    info = solver_info(get_solver(solver, kind="ode"))
    solver_obj = get_solver(solver, kind="ode")
    leaves = jax.tree_util.tree_leaves(y0)
    if not leaves:
        raise ValueError(f"{name}: `y0` has no arrays.")
    for leaf in leaves:
        dt_ = getattr(leaf, "dtype", None) or np.asarray(leaf).dtype
        if not jnp.issubdtype(dt_, jnp.inexact):
            raise ValueError(
                f"{name}: `y0` must be a floating-point array, got dtype {dt_}; "
                "e.g. jnp.array([1.0, 0.0], dtype=jnp.float64)."
            )
    y0 = jax.tree_util.tree_map(jnp.asarray, y0)
    if not _is_traced(y0) and not _all_finite_host(y0):
        raise ValueError(f"{name}: the initial value `y0` contains NaN or inf.")
    _check_field_output(f, y0, t0, args, name)
    if n_steps is not None and dt0 is not None:
        raise ValueError(f"{name}: give either `n_steps` or `dt0`, not both.")
    if n_steps is not None and (
        isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer) or n_steps <= 0
    ):
        raise ValueError(f"{name}: `n_steps` must be a positive integer, got {n_steps!r}.")
    # Bools are refused (True read as 1.0 was a tolerance of 100 %), and so are non-finite
    # steps (dt0 = inf took one step across the whole interval) and non-scalars.
    dt0_v = _real_scalar(name, "dt0", dt0)
    if dt0_v is not None and not (np.isfinite(dt0_v) and dt0_v != 0):
        raise ValueError(f"{name}: `dt0` must be finite and nonzero, got {dt0!r}.")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer) or max_steps <= 0:
        raise ValueError(f"{name}: `max_steps` must be a positive integer, got {max_steps!r}.")
    rtol_v, atol_v = _real_scalar(name, "rtol", rtol), _real_scalar(name, "atol", atol)
    if rtol_v is not None and not 0 < rtol_v < np.inf:
        raise ValueError(f"{name}: `rtol` must be finite and > 0, got {rtol!r}.")
    if atol_v is not None and not 0 <= atol_v < np.inf:
        raise ValueError(f"{name}: `atol` must be finite and >= 0, got {atol!r}.")
    dtmin_v = _real_scalar(name, "dtmin", dtmin)
    if dtmin_v is not None and not 0 <= dtmin_v < np.inf:
        raise ValueError(f"{name}: `dtmin` must be finite and >= 0, got {dtmin!r}.")
    if adaptive and not info.adaptive:
        raise ValueError(
            f"{name}: solver {type(solver_obj).__name__} has no error estimate, so it cannot "
            "adapt its step: use constant steps (`n_steps`, or `dt0` with adaptive=False) or an "
            "adaptive solver (tsit5, dopri5, dopri8, bosh3, heun, kvaerno5, ...)."
        )
    ends_at_ts = t1 is None
    if ends_at_ts:
        if ts is None:
            raise ValueError(f"{name}: `t1` is None, which needs the save times `ts`.")
        t1 = jnp.asarray(ts)[-1]
    concrete_times, t0_val, t1_val = _check_times(t0, t1, ts, forward_only=False)

    dtype = jnp.result_type(*[x.dtype for x in jax.tree_util.tree_leaves(y0)])
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    t0 = jnp.asarray(t0, dtype=dtype)
    t1 = jnp.asarray(t1, dtype=dtype)
    if not concrete_times:
        t1 = cast(Array, eqx.error_if(t1, t1 == t0, f"{name}: `t1` must differ from `t0`."))
    elif np.asarray(t0_val, dtype) == np.asarray(t1_val, dtype):  # (not t0, t1: maybe staged)
        t_s = distinct_times(t0_val, t1_val)
        raise ValueError(
            f"{name}: t0={t_s[0]} and t1={t_s[1]} are the same time in {dtype} (the state's "
            f"dtype), which spaces times near {max(abs(t0_val), abs(t1_val)):.6g} "
            f"{time_spacing(t0_val, t1_val, dtype):.3g} apart: "
            "shift time so that it starts at 0 (solve in t - t0), or enable float64 with "
            'jax.config.update("jax_enable_x64", True).'
        )
    ts = None if ts is None else jnp.asarray(ts, dtype=dtype)
    # Half precision (bfloat16, float16) is integrated in float32 and the results are cast back:
    # 8 or 11 bits hold no error estimate (the tolerance floors below, 100 eps, would be 0.78 and
    # 0.098) and every step's sum was rounded to them: y' = -y to t = 1 in bfloat16 came out 4 %
    # off, the harmonic oscillator's amplitude at t = 10 was 104 instead of 1. The times keep
    # their rounding to the state's dtype (exact in float32).
    state_dtype, leaf_dtypes = dtype, None
    if jnp.finfo(dtype).bits < 32:
        leaf_dtypes = jax.tree_util.tree_map(lambda x: x.dtype, y0)
        f = _InStateDtypes(f, y0, state_dtype)  # the field still sees the caller's dtypes
        dtype = jnp.dtype(jnp.float32)
        y0 = jax.tree_util.tree_map(lambda x: x.astype(dtype), y0)
        t0, t1 = t0.astype(dtype), t1.astype(dtype)
        ts = None if ts is None else ts.astype(dtype)
    # Floored at the resolution of the state's dtype (see RTOL_EPS_FLOOR): issue #17.
    rtol_a: Any
    atol_a: Any
    if not _is_traced(rtol, atol) and _is_traced(y0, t0, t1, ts, args):
        # Inside a caller's trace, concrete tolerances are fixed in the caller's program anyway:
        # as Python numbers they are literals in the step loop rather than loop-invariant arrays
        # computed on every call. The same values as `effective_tolerances`, in NumPy: under a
        # trace (omnistaging) jnp would stage even these constants as tracers.
        eps = float(np.finfo(dtype).eps)
        rtol_a = float(np.asarray(max(float(rtol), RTOL_EPS_FLOOR * eps), dtype))
        atol_a = float(np.asarray(max(float(atol), ATOL_EPS_FLOOR * eps), dtype))
    else:
        # As arrays, new tolerances reuse the compiled program (a Python float would be static).
        rtol_a, atol_a = effective_tolerances(rtol, atol, dtype)
        if _is_traced(rtol, atol):
            # checked at run time: a negative or NaN rtol was silently floored to 100 eps
            r, a = jnp.asarray(rtol), jnp.asarray(atol)
            bad = ~((r > 0) & jnp.isfinite(r) & (a >= 0) & jnp.isfinite(a))
            rtol_a = eqx.error_if(
                rtol_a, bad, f"{name}: `rtol` must be finite and > 0, and `atol` finite and >= 0."
            )

    if adaptive is None:
        adaptive = info.adaptive and n_steps is None
    if step_to_ts and (n_steps is not None or not adaptive):
        raise ValueError(
            f"{name}: `step_to_ts` ends adaptive steps at the save times; constant steps "
            "(`n_steps`, or a solver without error estimate) already land where they land: "
            "choose `ts` on the step grid, or let the steps adapt."
        )
    if n_steps is not None:
        controller = diffrax.ConstantStepSize()
        step0 = (t1 - t0) / n_steps
        # One compiled program serves every n_steps <= max_steps (the loop bound is static).
        max_steps = max(int(max_steps), int(n_steps))
    elif not adaptive:
        if dt0 is None:
            raise ValueError(
                f"{name}: solver {type(solver_obj).__name__} runs with constant steps here "
                "(it has no error estimate, or adaptive=False): pass `n_steps` or a step `dt0`."
            )
        controller = diffrax.ConstantStepSize()
        step0 = jnp.asarray(dt0, dtype)
        if concrete_times:
            step0 = jnp.copysign(jnp.abs(step0), t1 - t0)
            if not _is_traced(dt0):
                needed = int(np.ceil(abs(t1_val - t0_val) / abs(float(dt0)) - 1e-9))
                max_steps = max(int(max_steps), needed)
    else:
        pid: dict[str, Any] = dict(rtol=rtol_a, atol=atol_a, dtmin=dtmin, force_dtmin=False)
        if norm is not None:
            pid["norm"] = norm
        # force_dtmin=False: falling below dtmin is a failure (dt_min_reached), not ignored.
        controller = diffrax.PIDController(**pid)
        if step_to_ts and ts is not None:
            controller = diffrax.ClipStepSizeController(controller, step_ts=ts)
        step0 = None if dt0 is None else jnp.asarray(dt0, dtype)
        if step0 is not None and concrete_times:
            step0 = jnp.copysign(jnp.abs(step0), t1 - t0)

    if info.implicit and isinstance(controller, diffrax.ConstantStepSize):
        # diffrax takes the Newton tolerances of implicit solvers from an adaptive controller;
        # with constant steps they come from rtol/atol here instead.
        rf = solver_obj.root_finder
        # (the default tolerances are a diffrax sentinel meaning "from the controller")
        if not all(isinstance(getattr(rf, k, 0.0), float | int) for k in ("rtol", "atol")):
            solver_obj = eqx.tree_at(
                lambda s: s.root_finder,
                solver_obj,
                # 0-d array tolerances: new values do not recompile (effective_tolerances)
                _ResolvedChord(rtol=rtol_a, atol=atol_a, norm=optx.max_norm),
            )
    sol = _solve(
        f,
        y0,
        t0,
        t1,
        ts,
        args,
        solver_obj,
        controller,
        step0,
        int(max_steps),
        info,
        bool(count_evals),
        diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint,
        bool(dense),
        not throw,
        bool(with_nfe),
        ends_at_ts,
    )
    if throw:
        label = f"{name}, {type(solver_obj).__name__}"
        facts: dict[str, Any] = dict(implicit=bool(info.implicit), dtype_name=jnp.dtype(dtype).name)
        if sol.result.is_traced():
            at_ts = ts is not None
            sol = _throw_traced(sol, label, t0, t1, int(max_steps), f, args, y0, at_ts, **facts)
        elif not bool(sol.ok):
            examined = _examined(sol, f, args, t0, y0, bool(info.implicit), ts is not None)
            details = _details(examined, t0, t1)
            raise ODESolveError(_failure_message(label, int(max_steps), *details, **facts))
    if leaf_dtypes is not None:  # half precision: back to the state's dtypes
        back = lambda tree: jax.tree_util.tree_map(lambda x, d: x.astype(d), tree, leaf_dtypes)
        sol = eqx.tree_at(
            lambda s: (s.ts, s.ys, s.t_final, s.y_final, s.stiffness),
            sol,
            (
                sol.ts.astype(state_dtype),
                back(sol.ys),
                sol.t_final.astype(state_dtype),
                back(sol.y_final),
                sol.stiffness.astype(state_dtype),
            ),
        )
    return sol


def solve_ode(
    f: Callable[[Any, Any, Any], Any],
    y0: PyTree[ArrayLike],
    t0: RealScalarLike,
    t1: RealScalarLike,
    *,
    solver: str | diffrax.AbstractSolver = "tsit5",
    ts: Real[ArrayLike, " n_save"] | None = None,
    step_to_ts: bool = False,
    dense: bool = False,
    n_steps: int | np.integer | None = None,
    dt0: RealScalarLike | None = None,
    rtol: RealScalarLike = DEFAULT_RTOL,
    atol: RealScalarLike = DEFAULT_ATOL,
    dtmin: RealScalarLike | None = None,
    max_steps: int | np.integer = DEFAULT_MAX_STEPS,
    args: Any = None,
    throw: bool = True,
    count_evals: bool = False,
    adjoint: diffrax.AbstractAdjoint | None = None,
) -> ODESolution:
    r"""Solve $\dot y = f(t, y, \text{args})$, $y(t_0) = y_0$ on $[t_0, t_1]$ with diffrax.

    Fixed steps (``n_steps``, or ``dt0`` with a solver without error estimate: Euler, RK4) or
    adaptive steps (PID controller with ``rtol``/``atol``: Heun, Bosh3, Tsit5, Dopri5/8,
    implicit Euler, Kvaerno3/4/5); whether a solver can adapt is read from its tableau
    (`sdeml.core.solver_info`). Jit-, vmap- and grad-compatible; a failure raises
    `ODESolveError` with its details, eagerly and (as the text of a
    ``JaxRuntimeError``) under ``jit``/``grad``/``vmap`` whichever outputs are used, or comes
    back as a result code with ``throw=False``. Every ODE solve in sdeml (neural ODEs, CNFs,
    probability-flow sampling and likelihoods, gradient flows) runs through the same front.

    Args:
        f: vector field ``f(t, y, args) -> dy/dt``, the signature of every vector field in
            sdeml; same structure as ``y``.
        y0: initial state, a floating array of any shape (or a PyTree of them); finite. A
            half-precision state (bfloat16, float16) is integrated in float32 and the saved states
            and times come back in its dtype (the dense interpolant stays float32).
        t0, t1: the interval, ``t1 > t0``.
        solver: a registered name (``sdeml.core.solver_names("ode")``: ``"euler"``,
            ``"heun"``, ``"midpoint"``, ``"ralston"``, ``"bosh3"``, ``"rk4"``, ``"tsit5"``,
            ``"dopri5"``, ``"dopri8"``, ``"implicit_euler"``, ``"kvaerno3"``, ``"kvaerno4"``,
            ``"kvaerno5"``) or any ``diffrax.AbstractSolver``.
        ts: times at which to save, within ``[t0, t1]`` and non-decreasing; default ``[t0, t1]``.
            With adaptive steps the states between steps are read off the solver's dense
            interpolant, whose order can be below the method's: diffrax 0.7.2's Dopri8
            interpolant has local error order 6 (measured), not 9 as its steps, so at
            rtol = atol = 1e-10 its interior states were 6.6e-9 off a linear test problem while
            its endpoint was 1.2e-11 off (Kvaerno5's third-order Hermite interpolant: 2.5e-8
            against 6.6e-10; Tsit5 and Dopri5 keep pace). `step_to_ts` avoids that.
        step_to_ts: with adaptive steps, end a step at every time in `ts` (diffrax's
            ``ClipStepSizeController``), so that each saved state is a step's endpoint, at the
            method's own accuracy, for one step more per save time at most.
        dense: also keep the dense interpolant (``sol.evaluate(t)``).
        n_steps: number of equal steps (fixed-step mode, any solver).
        dt0: a constant step for solvers without error estimate, otherwise the initial step of the
            adaptive controller (``None``: chosen automatically); finite and nonzero, its size
            only (the sign is ignored).
        rtol, atol: tolerances of the adaptive controller (and of the implicit solvers' Newton).
            Defaults ``DEFAULT_RTOL = 1e-6``, ``DEFAULT_ATOL = 1e-9``. They are floored at what
            the state's dtype resolves, ``RTOL_EPS_FLOOR * eps = 100 eps`` and
            ``ATOL_EPS_FLOOR * eps = 10 eps`` (float32: 1.19e-5 and 1.19e-6; float64: 2.2e-14
            and 2.2e-15; half precision: float32's), see `effective_tolerances`. ``rtol``
            finite and > 0, ``atol`` finite and >= 0 (checked at run time when traced).
        dtmin: smallest step the controller may take; below it the result is ``dt_min_reached``.
        max_steps: cap on attempted steps (default ``DEFAULT_MAX_STEPS = 16384``), so that a
            stiff problem stops instead of hanging.
        args: passed to ``f``.
        throw: on failure raise `ODESolveError`, whose message names the cause, suggests
            the fix (an implicit solver for stiffness) and gives the details (solver, t reached,
            steps, rejected steps, ``max_steps``, mean step, $h\rho$). Under ``jax.jit`` it is
            raised at run time by a host callback and reaches the caller as a
            ``jax.errors.JaxRuntimeError`` carrying the same text (under ``vmap``: that of the
            first failed member). ``False`` returns the result code in ``sol.result`` instead.
        count_evals: count every vector-field evaluation with a host callback, so that
            ``nfe`` is exact also for implicit solvers (Newton iterations included; one Jacobian
            by autodiff counts as one evaluation). Works eagerly, under ``jax.jit`` and under
            ``jax.grad``; not under ``jax.vmap`` (``ValueError``). Opt-in because each evaluation
            costs a host round trip, tens of microseconds.
        adjoint: how gradients flow through the solve (a ``diffrax.AbstractAdjoint``); default
            ``diffrax.RecursiveCheckpointAdjoint()`` (reverse mode: ``jax.grad``/``jacrev``).
            Use ``diffrax.ForwardMode()`` for ``jax.jacfwd``, ``diffrax.BacksolveAdjoint()`` for
            the continuous adjoint of neural ODEs.

    Returns:
        An `ODESolution` with ``ts``, ``ys`` (shape ``(len(ts), *y0.shape)``), the step
        statistics, ``nfe``, a stiffness indicator and ``result``.

    Examples:
        >>> import sdeml
        >>> sol = sdeml.solve_ode(lambda t, y, args: -y, jnp.ones(2), 0.0, 1.0,
        ...                       ts=jnp.linspace(0.0, 1.0, 11))
        >>> sol.ys.shape, sol.result_name
        ((11, 2), 'successful')
        >>> bool(jnp.allclose(sol.ys[:, 0], jnp.exp(-sol.ts), rtol=1e-5))  # y(t) = e^{-t}
        True
        >>> stiff = lambda t, y, args: -1e4 * (y - jnp.cos(t))  # df/dy = -1e4
        >>> sdeml.solve_ode(stiff, jnp.zeros(1), 0.0, 1.0, max_steps=200, throw=False).result_name
        'stiff'

        With ``solver="kvaerno5"`` the stiff problem takes a few dozen steps.

    References:
        P. Kidger, On Neural Differential Equations, PhD thesis, 2021 (diffrax).
        Hairer & Wanner, Solving ODEs II: Stiff and Differential-Algebraic Problems, §IV.2.
    """
    if ts is not None and not _is_traced(ts) and np.any(np.diff(np.asarray(ts)) < 0):
        raise ValueError("`ts` must be non-decreasing.")
    _check_times(t0, t1, ts, forward_only=True)
    # everything else is the front's to check and do
    steps: dict[str, Any] = {"n_steps": n_steps, "dt0": dt0, "dtmin": dtmin, "max_steps": max_steps}
    out: dict[str, Any] = {"ts": ts, "dense": dense, "throw": throw, "count_evals": count_evals}
    out["step_to_ts"] = step_to_ts
    tol: dict[str, Any] = {"rtol": rtol, "atol": atol, "adjoint": adjoint, "args": args}
    return integrate_ode(f, y0, t0, t1, solver=solver, name="solve_ode", **steps, **out, **tol)
