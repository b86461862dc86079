"""The neural ODE module: a learned vector field integrated by a diffrax solver."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from ._solvers import count_nfe, get_adjoint, get_solver, is_adaptive


class NeuralODESolution(eqx.Module):
    """States of a neural ODE at the requested times, with solver statistics.

    Attributes:
        ts: the requested times, shape ``(n,)``.
        ys: the states, shape ``(n, *state_shape)``.
        num_steps: solver steps attempted (accepted and rejected).
        nfe: forward vector-field evaluations (see `count_nfe`; -1 for an unregistered solver).
    """

    ts: Float[Array, " n"]
    ys: Float[Array, "n ..."]
    num_steps: Int[Array, ""]
    nfe: Int[Array, ""]


def check_times(ts: ArrayLike, name: str = "ts") -> Array:
    """Return `ts` as an array after checking that it is 1-D and strictly increasing.

    Concrete times are checked eagerly (a `ValueError`); traced times with `eqx.error_if`.
    """
    ts_arr = jnp.asarray(ts)
    if ts_arr.ndim != 1 or ts_arr.shape[0] < 1:
        raise ValueError(f"`{name}` must have shape (n,) with n >= 1, got {ts_arr.shape}")
    if not jnp.issubdtype(ts_arr.dtype, jnp.floating):
        ts_arr = ts_arr.astype(jnp.result_type(float))
    try:
        host = np.asarray(ts_arr)
    except jax.errors.TracerArrayConversionError:
        return eqx.error_if(
            ts_arr, jnp.any(jnp.diff(ts_arr) <= 0), f"`{name}` must be strictly increasing."
        )
    bad = np.nonzero(np.diff(host) <= 0)[0]
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"`{name}` must be strictly increasing; {name}[{i}] = {host[i]} is followed by "
            f"{name}[{i + 1}] = {host[i + 1]}"
        )
    return ts_arr


class NeuralODE(eqx.Module):
    r"""A neural ODE $\dot h = f_\theta(t, h)$ solved by diffrax at requested times.

    $h(t_k) = h(t_0) + \int_{t_0}^{t_k} f_\theta(s, h(s))\,ds$ for the times $t_0 < \dots <
    t_{n-1}$ given at call time; the first returned state is the initial one.

    Args:
        func: the vector field, ``func(t, h) -> dh/dt`` with ``h`` of the state's shape (an
            equinox module whose arrays are the parameters $\theta$).
        solver: a name (``euler, heun, midpoint, ralston, bosh3, tsit5, dopri5, dopri8``) or a
            diffrax solver.
        adjoint: ``checkpoint`` (backpropagate through the solver, recursive checkpointing),
            ``backsolve`` (continuous adjoint), ``direct``, or a diffrax adjoint.
        rtol, atol: tolerances of the PID step-size controller (adaptive solvers).
        dt0: the initial step (adaptive) or the constant step (fixed-step solvers); None lets
            an adaptive solver pick it. A fixed-step solver needs it.
        adaptive: use the PID controller; default: whenever the solver has an error estimate.
        max_steps: the step budget of one solve; exceeding it raises an error.

    Returns:
        Calling ``node(ts, y0)`` returns the states, shape ``(len(ts), *y0.shape)``;
        ``node.solve(ts, y0)`` returns an `NeuralODESolution` with the step count and NFE.

    Example:
        >>> node = NeuralODE(lambda t, y: -y, solver="dopri5", rtol=1e-8, atol=1e-8)
        >>> ys = node(jnp.linspace(0.0, 1.0, 5), jnp.ones(2))   # ys[-1] ≈ exp(-1)

    References:
        Chen, Rubanova, Bettencourt, Duvenaud, Neural Ordinary Differential Equations,
        NeurIPS 2018. arXiv:1806.07366. Kidger, On Neural Differential Equations, 2022.
        arXiv:2202.02435.
    """

    func: Callable[..., Any]
    solver: diffrax.AbstractSolver
    adjoint: diffrax.AbstractAdjoint
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    dt0: float | None = eqx.field(static=True)
    adaptive: bool = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        solver: str | diffrax.AbstractSolver = "tsit5",
        adjoint: str | diffrax.AbstractAdjoint = "checkpoint",
        rtol: float = 1e-6,
        atol: float = 1e-8,
        dt0: float | None = None,
        adaptive: bool | None = None,
        max_steps: int = 4096,
    ):
        self.func = func
        self.solver = get_solver(solver)
        self.adjoint = get_adjoint(adjoint)
        if adaptive is None:
            adaptive = is_adaptive(self.solver)
        if adaptive and not is_adaptive(self.solver):
            raise ValueError(
                f"`solver` {type(self.solver).__name__} has no error estimate: pass adaptive=False "
                "and a step `dt0`, or choose an adaptive solver (bosh3, tsit5, dopri5, dopri8)"
            )
        if not adaptive and dt0 is None:
            raise ValueError("a fixed-step solve needs `dt0` (the step size)")
        if dt0 is not None and not dt0 > 0:
            raise ValueError(f"`dt0` must be > 0, got {dt0}")
        if adaptive and not (rtol > 0 and atol > 0):
            raise ValueError(f"`rtol` and `atol` must be > 0, got rtol={rtol}, atol={atol}")
        if not (isinstance(max_steps, int) and max_steps > 0):
            raise ValueError(f"`max_steps` must be a positive int, got {max_steps!r}")
        self.rtol, self.atol = float(rtol), float(atol)
        self.dt0 = None if dt0 is None else float(dt0)
        self.adaptive, self.max_steps = bool(adaptive), max_steps

    def _controller(self) -> diffrax.AbstractStepSizeController:
        if self.adaptive:
            return diffrax.PIDController(rtol=self.rtol, atol=self.atol)
        return diffrax.ConstantStepSize()

    def solve(self, ts: Float[ArrayLike, " n"], y0: Float[Array, "..."]) -> NeuralODESolution:
        """Solve from ``(ts[0], y0)`` and save at every time in `ts` (see the class docstring)."""
        ts = check_times(ts)
        y0 = jnp.asarray(y0)
        if not jnp.issubdtype(y0.dtype, jnp.floating):
            raise ValueError(f"`y0` must be a floating array, got dtype {y0.dtype}")
        try:
            out = jax.eval_shape(lambda: self.func(ts[0], y0))
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"the vector field cannot take a state of shape {y0.shape}: {e}"
            ) from None
        if not hasattr(out, "shape") or out.shape != y0.shape:
            got = getattr(out, "shape", type(out).__name__)
            raise ValueError(
                f"the vector field maps a state of shape {y0.shape} to {got}; "
                "`y0` must have the shape the vector field expects (use jax.vmap to batch)"
            )
        ts = ts.astype(y0.dtype)
        # The field's arrays travel as `args` (not in a closure) so that every adjoint,
        # backsolve included, differentiates them; its non-array parts stay static.
        params, static = eqx.partition(self.func, eqx.is_array)
        term = diffrax.ODETerm(lambda t, y, p: eqx.combine(p, static)(t, y))
        if ts.shape[0] == 1:  # nothing to integrate; keep the output shape uniform
            zero = jnp.zeros((), jnp.int32)
            return NeuralODESolution(ts, y0[None], zero, zero)
        sol = diffrax.diffeqsolve(
            term,
            self.solver,
            ts[0],
            ts[-1],
            # an array, so that eager calls with another step reuse diffrax's compiled solve
            None if self.dt0 is None else jnp.asarray(self.dt0, y0.dtype),
            y0,
            params,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=self._controller(),
            adjoint=self.adjoint,
            max_steps=self.max_steps,
        )
        num_steps = sol.stats["num_steps"]
        return NeuralODESolution(ts, sol.ys, num_steps, count_nfe(self.solver, num_steps))

    def __call__(
        self, ts: Float[ArrayLike, " n"], y0: Float[Array, "..."]
    ) -> Float[Array, "n ..."]:
        """The states at `ts`, shape ``(len(ts), *y0.shape)``."""
        return self.solve(ts, y0).ys


def with_adjoint(tree: Any, adjoint: str | diffrax.AbstractAdjoint) -> Any:
    """A copy of `tree` in which every `NeuralODE` uses `adjoint` (the rest is unchanged).

    Args:
        tree: a model (any PyTree) containing `NeuralODE` modules.
        adjoint: a name (``checkpoint``, ``backsolve``, ``direct``) or a diffrax adjoint.

    Returns:
        The same PyTree with the adjoint of every `NeuralODE` replaced.

    Example:
        >>> model_bs = with_adjoint(model, "backsolve")
    """
    adj = get_adjoint(adjoint)
    is_node = lambda x: isinstance(x, NeuralODE)
    nodes = [x for x in jax.tree.leaves(tree, is_leaf=is_node) if is_node(x)]
    if not nodes:
        raise ValueError("`model` contains no NeuralODE whose adjoint could be set")

    def swap(x):
        return eqx.tree_at(lambda n: n.adjoint, x, adj) if is_node(x) else x

    return jax.tree.map(swap, tree, is_leaf=is_node)
