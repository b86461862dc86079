"""The neural ODE module: a learned vector field integrated through the core's one ODE front."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from ..core._ode import DEFAULT_ATOL, DEFAULT_RTOL, ODEResult, ODESolution, integrate_ode
from ._adjoints import (
    AbstractODEModel,
    check_solve_options,
    get_adjoint,
    replace_adjoint,
    set_solve_options,
    solve_options,
)


def check_field_signature(func: Callable[..., Any], owner: str) -> None:
    """Raise a `ValueError` unless `func` can be called as ``func(t, y, args)``.

    ``f(t, y, args)`` is the signature of every vector field in sdeml (`solve_ode`, `SDE`,
    `NeuralODE`, `CNF`). A field written as ``f(t, y)`` would otherwise fail deep inside the
    solve with a message about arguments or shapes; this names the signature instead. Callables
    whose signature Python cannot read are accepted as they are.

    Args:
        func: the vector field.
        owner: who asks (named in the message), e.g. ``"NeuralODE"``.

    Returns:
        None; raises `ValueError` for a field that cannot take ``(t, y, args)``.

    Examples:
        >>> from sdeml.neural_ode import check_field_signature
        >>> check_field_signature(lambda t, y, args: -y, "NeuralODE")  # passes silently
        >>> check_field_signature(lambda t, y: -y, "NeuralODE")
        Traceback (most recent call last):
        ...
        ValueError: NeuralODE: the vector field must be called as `func(t, y, args)`, ...
    """
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # builtins and C callables: nothing to read
        return
    try:
        sig.bind(0.0, None, None)
    except TypeError:
        name = getattr(func, "__name__", type(func).__name__)
        raise ValueError(
            f"{owner}: the vector field must be called as `func(t, y, args)`, the signature of "
            f"every vector field in sdeml (solve_ode, SDE, NeuralODE, CNF); got {name}{sig}. "
            "Add the argument (`def f(t, y, args=None)`) or wrap it: "
            "`lambda t, y, args: f(t, y)`."
        ) from None


def check_times(ts: ArrayLike, name: str = "ts") -> Array:
    """Return `ts` as an array after checking that it is 1-D, finite and strictly increasing.

    Concrete times are checked eagerly (a `ValueError`); traced times with `eqx.error_if`.

    Args:
        ts: the times, shape ``(n,)`` with ``n >= 1``.
        name: the argument's name in the messages.

    Returns:
        `ts` as a floating array of shape ``(n,)`` (integers are cast to the default float).

    Examples:
        >>> from sdeml.neural_ode import check_times
        >>> check_times([0, 1, 2]).dtype
        dtype('float64')
        >>> check_times(jnp.array([0.0, 0.5, 0.5]))
        Traceback (most recent call last):
        ...
        ValueError: `ts` must be strictly increasing; ts[1] = 0.5 is followed by ts[2] = 0.5
    """
    ts_arr = jnp.asarray(ts)
    if ts_arr.ndim != 1 or ts_arr.shape[0] < 1:
        raise ValueError(f"`{name}` must have shape (n,) with n >= 1, got {ts_arr.shape}")
    if not jnp.issubdtype(ts_arr.dtype, jnp.floating):
        ts_arr = ts_arr.astype(jnp.result_type(float))
    try:
        host = np.asarray(ts_arr)
    except jax.errors.TracerArrayConversionError:
        # `~(diff > 0)`, not `diff <= 0`: a NaN compares False both ways and slipped through
        bad_ts = ~jnp.all(jnp.isfinite(ts_arr)) | ~jnp.all(jnp.diff(ts_arr) > 0)
        return eqx.error_if(ts_arr, bad_ts, f"`{name}` must be finite and strictly increasing.")
    if not np.all(np.isfinite(host)):
        raise ValueError(f"`{name}` must be finite (no NaN or inf), got {host}")
    bad = np.nonzero(np.diff(host) <= 0)[0]
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"`{name}` must be strictly increasing; {name}[{i}] = {host[i]} is followed by "
            f"{name}[{i + 1}] = {host[i + 1]}"
        )
    return ts_arr


class _ParamsAsArgs(eqx.Module):
    """``func(t, y, args)`` rebuilt from its arrays, which travel in the solve's `args`.

    Every adjoint differentiates `args` (backsolve differentiates nothing that a closure holds),
    so the field's parameters go there, next to the caller's own `args`; the non-array parts
    of the field stay here, static. A module rather than a closure: equal fields give equal
    wrappers, so eager solves hit the compilation cache.
    """

    static: Any

    def __call__(self, t, y, args):
        params, user_args = args
        return eqx.combine(params, self.static)(t, y, user_args)


def _trivial_solution(ts: Array, y0: PyTree) -> ODESolution:
    """The solution of a single save time: nothing is integrated."""
    zero = jnp.zeros((), jnp.int32)
    return ODESolution(
        ts=ts,
        ys=jax.tree.map(lambda x: x[None], y0),
        result=ODEResult.successful,
        num_steps=zero,
        num_accepted_steps=zero,
        num_rejected_steps=zero,
        nfe=zero,
        t_final=ts[0],
        y_final=y0,
        stiffness=jnp.full((), jnp.nan, ts.dtype),
        diffrax_result=diffrax.RESULTS.successful,
    )


class NeuralODE(AbstractODEModel):
    r"""A neural ODE $\dot h = f_\theta(t, h, \text{args})$ solved at requested times.

    $h(t_k) = h(t_0) + \int_{t_0}^{t_k} f_\theta(s, h(s), \text{args})\,ds$ for the times
    $t_0 < \dots < t_{n-1}$ given at call time; the first returned state is the initial one.
    Every solve runs through the core's one ODE front (`sdeml.core.integrate_ode`): the same
    failure policy (`sdeml.ODESolveError`, eagerly and under ``jit``/``grad``/``vmap``), the same
    solver registry and the same evaluation count ``nfe``.

    Args:
        func: the vector field ``func(t, y, args) -> dy/dt`` with ``y`` of the state's shape
            (the signature of `solve_ode` and `SDE`); an equinox module whose arrays are the
            parameters $\theta$. ``func(t, y)`` is refused with a message naming the signature.
        solver: a registered name (``sdeml.core.solver_names("ode")``: ``euler, heun, midpoint,
            ralston, bosh3, rk4, tsit5, dopri5, dopri8, implicit_euler, kvaerno3, kvaerno4,
            kvaerno5``) or a diffrax solver.
        adjoint: ``checkpoint`` (backpropagate through the solver, recursive checkpointing),
            ``backsolve`` (continuous adjoint), ``direct``, or a diffrax adjoint.
        rtol, atol: tolerances of the PID step-size controller (adaptive solves); defaults are
            the core's (``1e-6``, ``1e-9``).
        dt0: the constant step (constant-step solves) or the initial step (adaptive; None lets
            the controller pick it).
        adaptive: use the PID controller. Default: exactly when the solver has an error
            estimate, read from the registry (`sdeml.core.solver_info`); Euler and RK4 have
            none, so they need `dt0`, and ``adaptive=True`` with them is an error.
        max_steps: the step budget of one solve (default 4096: a training solve; reverse-mode
            checkpointing grows with it); exceeding it raises `sdeml.ODESolveError`.
        count_evals: count every evaluation on the host, so that ``nfe`` is exact for implicit
            solvers too (otherwise -1 for them); not under ``jax.vmap`` (see `solve_ode`).

    The options are static settings: part of the model's tree structure (and so of the compiled
    program), not leaves, so that a jitted call flattens no more than the field. ``eqx.tree_at``
    cannot reach them; `sdeml.neural_ode.with_adjoint` swaps the adjoint.

    Returns:
        ``node(ts, y0, args)`` returns the states, shape ``(len(ts), *y0.shape)``;
        ``node.solve(ts, y0, args)`` returns the core `sdeml.ODESolution` (``ts``, ``ys``,
        ``num_steps``, ``nfe``, ``result``, ...).

    Examples:
        Decay $\dot h = -h$, whose solution is $h(t) = e^{-t} h(0)$:

        >>> node = sdeml.NeuralODE(lambda t, y, args: -y, solver="dopri5", rtol=1e-8, atol=1e-8)
        >>> ts = jnp.linspace(0.0, 1.0, 5)
        >>> ys = node(ts, jnp.ones(2))
        >>> ys.shape, bool(jnp.allclose(ys, jnp.exp(-ts)[:, None], atol=1e-7))
        ((5, 2), True)
        >>> rk4 = sdeml.NeuralODE(lambda t, y, args: -y, solver="rk4", dt0=0.01)  # constant steps
        >>> sol = rk4.solve(ts, jnp.ones(2))
        >>> int(sol.num_steps), int(sol.nfe)  # 100 steps of 4 evaluations
        (100, 400)

        A learned field is an equinox module such as ``sdeml.MLPField(2, 64, 2, key=...)``;
        ``eqx.filter_grad`` of a loss of ``node(ts, y0)`` differentiates its arrays under the
        node's `adjoint` (`gradient_audit` compares the adjoints).

    References:
        Chen, Rubanova, Bettencourt, Duvenaud, Neural Ordinary Differential Equations,
        NeurIPS 2018. arXiv:1806.07366. Kidger, On Neural Differential Equations, 2022.
        arXiv:2202.02435.
    """

    func: Callable[..., Any]

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        solver: str | diffrax.AbstractSolver = "tsit5",
        adjoint: str | diffrax.AbstractAdjoint = "checkpoint",
        rtol: float = DEFAULT_RTOL,
        atol: float = DEFAULT_ATOL,
        dt0: float | None = None,
        adaptive: bool | None = None,
        max_steps: int = 4096,
        count_evals: bool = False,
    ):
        check_field_signature(func, "NeuralODE")
        self.func = func
        options = check_solve_options(
            "NeuralODE", solver, adjoint, rtol, atol, dt0, adaptive, max_steps, count_evals
        )
        set_solve_options(self, options)

    def solve(
        self,
        ts: Float[ArrayLike, " n"],
        y0: PyTree[Float[Array, "..."]],
        args: Any = None,
        *,
        with_nfe: bool = True,
    ) -> ODESolution:
        """Solve from ``(ts[0], y0)`` and save at every time in `ts` (see the class docstring).

        Args:
            ts: strictly increasing times, shape ``(n,)``; the solve starts at ``ts[0]``.
            y0: the initial state (an array, or a PyTree of arrays).
            args: passed to the field as its third argument.
            with_nfe: compute the evaluation count ``nfe`` (False: it is -1, and an adaptive
                FSAL solver carries no count of attempts through its loop, as calling the node
                does).

        Returns:
            A `sdeml.ODESolution` whose ``ys`` has leading axis ``n``.
        """
        times = check_times(ts)
        y0 = jax.tree.map(jnp.asarray, y0)
        leaves = jax.tree.leaves(y0)
        if not leaves or not all(jnp.issubdtype(x.dtype, jnp.floating) for x in leaves):
            got = [str(x.dtype) for x in leaves]
            raise ValueError(f"`y0` must be a floating array (or a PyTree of them), got {got}")
        try:
            out = jax.eval_shape(lambda: self.func(times[0], y0, args))
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"the vector field cannot take a state of shape {_shapes(y0)}: {e}"
            ) from None
        if jax.tree.structure(out) != jax.tree.structure(y0) or _shapes(out) != _shapes(y0):
            raise ValueError(
                f"the vector field maps a state of shape {_shapes(y0)} to {_shapes(out)}; "
                "`y0` must have the shape the vector field expects (use jax.vmap to batch)"
            )
        times = times.astype(jnp.result_type(*leaves))
        if times.shape[0] == 1:  # nothing to integrate; keep the output shape uniform
            return _trivial_solution(times, y0)
        params, static = eqx.partition(self.func, eqx.is_array)
        field = _ParamsAsArgs(static)
        return integrate_ode(
            field,
            y0,
            times[0],
            None,  # times[-1]
            ts=times,
            args=(params, args),
            name="NeuralODE",
            with_nfe=with_nfe,
            **solve_options(self),
        )

    def __call__(
        self, ts: Float[ArrayLike, " n"], y0: PyTree[Float[Array, "..."]], args: Any = None
    ) -> PyTree[Float[Array, "n ..."]]:
        """The states at `ts`, shape ``(len(ts), *y0.shape)``: `solve` without the evaluation
        count, which a caller of the states alone does not read."""
        return self.solve(ts, y0, args, with_nfe=False).ys


def _shapes(tree: Any) -> Any:
    shapes = [getattr(x, "shape", type(x).__name__) for x in jax.tree.leaves(tree)]
    return shapes[0] if len(shapes) == 1 else shapes


def with_adjoint(tree: Any, adjoint: str | diffrax.AbstractAdjoint) -> Any:
    """A copy of `tree` in which every `NeuralODE` and `sdeml.CNF` uses `adjoint` (the rest is
    unchanged).

    A model's solver and adjoint are static settings (part of its compiled program, not of its
    PyTree), so ``eqx.tree_at`` cannot reach them: swap the adjoint with this, or build the model
    again with ``adjoint=...``.

    Args:
        tree: a model (any PyTree) containing `NeuralODE` or `CNF` modules
            (`AbstractODEModel`).
        adjoint: a name (``checkpoint``, ``backsolve``, ``direct``) or a diffrax adjoint.

    Returns:
        The same PyTree with the adjoint of every such model replaced.

    Examples:
        >>> from sdeml.neural_ode import with_adjoint
        >>> node = sdeml.NeuralODE(lambda t, y, args: -y)
        >>> model = {"encoder": jnp.ones(3), "ode": node}
        >>> with_adjoint(model, "backsolve")["ode"].adjoint
        BacksolveAdjoint(...)
        >>> node.adjoint  # the original is unchanged
        RecursiveCheckpointAdjoint(...)
    """
    adj = get_adjoint(adjoint)
    is_node = lambda x: isinstance(x, AbstractODEModel)
    nodes = [x for x in jax.tree.leaves(tree, is_leaf=is_node) if is_node(x)]
    if not nodes:
        raise ValueError("`tree` contains no NeuralODE or CNF whose adjoint could be set")

    def swap(x):
        return replace_adjoint(x, adj) if is_node(x) else x

    return jax.tree.map(swap, tree, is_leaf=is_node)
