"""Adjoint names (how gradients flow through a neural-ODE solve) and the solve options that
`NeuralODE` and `CNF` share.

Solver names and their facts (adaptive? evaluations per step?) come from the core registry
(`sdeml.core.get_solver`, `sdeml.core.solver_info`); only the adjoints are named here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx

from ..core._solvers import get_solver, solver_info, solver_names

_ADJOINTS: dict[str, Callable[[], diffrax.AbstractAdjoint]] = {
    "checkpoint": diffrax.RecursiveCheckpointAdjoint,
    "backsolve": diffrax.BacksolveAdjoint,
    "direct": diffrax.DirectAdjoint,
}

ADJOINT_NAMES: tuple[str, ...] = tuple(_ADJOINTS)


def get_adjoint(adjoint: str | diffrax.AbstractAdjoint) -> diffrax.AbstractAdjoint:
    """A diffrax adjoint from its name (or the adjoint itself).

    Args:
        adjoint: ``checkpoint`` (backpropagation through the solver with recursive
            checkpointing), ``backsolve`` (the continuous adjoint ODE solved backwards) or
            ``direct``; or a ``diffrax.AbstractAdjoint`` instance.

    Returns:
        The diffrax adjoint.

    Examples:
        >>> get_adjoint("backsolve")
        BacksolveAdjoint(...)
    """
    if isinstance(adjoint, diffrax.AbstractAdjoint):
        return adjoint
    if not isinstance(adjoint, str) or adjoint.lower() not in _ADJOINTS:
        raise ValueError(f"unknown adjoint {adjoint!r}; valid names: {', '.join(ADJOINT_NAMES)}")
    return _ADJOINTS[adjoint.lower()]()


SOLVE_OPTIONS: tuple[str, ...] = (
    "solver",
    "adjoint",
    "rtol",
    "atol",
    "dt0",
    "adaptive",
    "max_steps",
    "count_evals",
)


def check_solve_options(
    owner: str,
    solver: str | diffrax.AbstractSolver,
    adjoint: str | diffrax.AbstractAdjoint,
    rtol: float,
    atol: float,
    dt0: float | None,
    adaptive: bool | None,
    max_steps: int,
    count_evals: bool,
) -> dict[str, Any]:
    """The validated solve options of a model built on the ODE front (`NeuralODE`, `CNF`).

    The solver comes from the core registry, whose `solver_info` says whether it can adapt
    (an error estimate in its tableau); ``adaptive=None`` adapts exactly when it can. A constant
    step solve needs `dt0`.

    Args:
        owner: the model's name, for the messages.
        solver, adjoint: names or diffrax instances (the order of `SOLVE_OPTIONS`).
        rtol, atol, dt0, adaptive, max_steps, count_evals: as `sdeml.core.integrate_ode`.

    Returns:
        The options by name (`SOLVE_OPTIONS`), ready to set as the model's fields.

    Raises:
        ValueError: naming the option and what it must be.

    Examples:
        >>> check_solve_options("NeuralODE", "rk4", "checkpoint", 1e-6, 1e-9, 0.01, None, 4096,
        ...                     False)["adaptive"]
        False
    """
    solver_obj = get_solver(solver, kind="ode")
    adjoint_obj = get_adjoint(adjoint)
    info = solver_info(solver_obj)
    name = type(solver_obj).__name__
    if adaptive and not info.adaptive:
        raise ValueError(
            f"{owner}: solver {name} has no error estimate, so it cannot be adaptive: drop "
            "adaptive=True and give a constant step `dt0`, or choose an adaptive solver "
            f"({', '.join(n for n in solver_names('ode') if solver_info(n).adaptive)})"
        )
    if adaptive is None:
        adaptive = info.adaptive
    if not adaptive and dt0 is None:
        why = "has no error estimate" if not info.adaptive else "runs with adaptive=False"
        raise ValueError(
            f"{owner}: solver {name} {why}, so it takes constant steps: give the step `dt0` "
            "(e.g. dt0=0.01)"
        )
    if dt0 is not None and not dt0 > 0:
        raise ValueError(f"{owner}: `dt0` must be > 0, got {dt0}")
    if adaptive and not (rtol > 0 and atol >= 0):
        raise ValueError(
            f"{owner}: `rtol` must be > 0 and `atol` >= 0, got rtol={rtol}, atol={atol}"
        )
    if isinstance(max_steps, bool) or not (isinstance(max_steps, int) and max_steps > 0):
        raise ValueError(f"{owner}: `max_steps` must be a positive int, got {max_steps!r}")
    return dict(
        solver=solver_obj,
        adjoint=adjoint_obj,
        rtol=float(rtol),
        atol=float(atol),
        dt0=None if dt0 is None else float(dt0),
        adaptive=bool(adaptive),
        max_steps=max_steps,
        count_evals=bool(count_evals),
    )


def solve_options(model: Any) -> dict[str, Any]:
    """A model's solve options (`SOLVE_OPTIONS`) as keyword arguments of `integrate_ode`.

    Args:
        model: an `AbstractODEModel` (a `NeuralODE` or a `CNF`).

    Returns:
        A dict from each name in `SOLVE_OPTIONS` to the model's value of that field.

    Examples:
        >>> from sdeml.core import integrate_ode
        >>> from sdeml.neural_ode import NeuralODE, solve_options
        >>> node = NeuralODE(lambda t, y, args: -y, solver="rk4", dt0=0.1)
        >>> opts = solve_options(node)
        >>> opts["solver"], opts["dt0"], opts["adaptive"]
        (RK4(), 0.1, False)
        >>> y1 = integrate_ode(node.func, jnp.ones(1), 0.0, 1.0, **opts).y_final
        >>> f"{abs(float(y1[0]) - np.exp(-1)):.0e}"  # RK4, h = 0.1: error O(h^4)
        '...e-07'
    """
    return {k: getattr(model, k) for k in SOLVE_OPTIONS}


class AbstractODEModel(eqx.Module):
    """A model solved on the core ODE front: a vector field and its solve options.

    `NeuralODE` and `CNF` are ones; a subclass's ``__init__`` sets the options from
    `check_solve_options` and passes them to `sdeml.core.integrate_ode` with `solve_options`.

    Attributes:
        func: the vector field ``func(t, y, args)`` (abstract: the subclass declares it).
        solver: the diffrax solver (from the core registry).
        adjoint: the diffrax adjoint (`get_adjoint`).
        rtol, atol: tolerances of the adaptive step-size controller.
        dt0: the constant step, or the initial step of an adaptive solve (None: chosen).
        adaptive: whether the PID controller adapts the step.
        max_steps: the step budget of one solve.
        count_evals: whether evaluations are counted on the host (exact ``nfe``).

    Examples:
        >>> from sdeml.neural_ode import AbstractODEModel
        >>> node = sdeml.NeuralODE(lambda t, y, args: -y)
        >>> isinstance(node, AbstractODEModel), node.solver, node.adaptive, node.rtol
        (True, Tsit5(...), True, 1e-06)
    """

    func: eqx.AbstractVar[Callable[..., Any]]
    solver: diffrax.AbstractSolver
    adjoint: diffrax.AbstractAdjoint
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    dt0: float | None = eqx.field(static=True)
    adaptive: bool = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    count_evals: bool = eqx.field(static=True)
