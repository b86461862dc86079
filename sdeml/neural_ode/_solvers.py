"""Name registries for diffrax solvers and adjoints, and the function-evaluation count."""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import jax.numpy as jnp
from jaxtyping import Array, Int

# name -> (constructor, vector-field evaluations per step, evaluations before the first step).
# The per-step counts are the stages a step computes anew: first-same-as-last (FSAL) tableaux
# (Bosh3, Tsit5, Dopri5) reuse the last stage of the previous step, and diffrax's Dopri8 reuses
# one stage too (13 of its 14). They were checked against a host-side counter (tests).
_SOLVERS: dict[str, tuple[Callable[[], diffrax.AbstractSolver], int, int]] = {
    "euler": (diffrax.Euler, 1, 0),
    "heun": (diffrax.Heun, 2, 0),
    "midpoint": (diffrax.Midpoint, 2, 0),
    "ralston": (diffrax.Ralston, 2, 0),
    "bosh3": (diffrax.Bosh3, 3, 1),
    "tsit5": (diffrax.Tsit5, 6, 1),
    "dopri5": (diffrax.Dopri5, 6, 1),
    "dopri8": (diffrax.Dopri8, 13, 1),
}

_ADJOINTS: dict[str, Callable[[], diffrax.AbstractAdjoint]] = {
    "checkpoint": diffrax.RecursiveCheckpointAdjoint,
    "backsolve": diffrax.BacksolveAdjoint,
    "direct": diffrax.DirectAdjoint,
}

SOLVER_NAMES: tuple[str, ...] = tuple(_SOLVERS)
ADJOINT_NAMES: tuple[str, ...] = tuple(_ADJOINTS)


def get_solver(solver: str | diffrax.AbstractSolver) -> diffrax.AbstractSolver:
    """A diffrax solver from its name (or the solver itself).

    Args:
        solver: one of ``euler, heun, midpoint, ralston, bosh3, tsit5, dopri5, dopri8`` or a
            ``diffrax.AbstractSolver`` instance.

    Returns:
        The diffrax solver.

    Example:
        >>> get_solver("dopri5")
        Dopri5(...)
    """
    if isinstance(solver, diffrax.AbstractSolver):
        return solver
    if not isinstance(solver, str) or solver.lower() not in _SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; valid names: {', '.join(SOLVER_NAMES)}")
    return _SOLVERS[solver.lower()][0]()


def get_adjoint(adjoint: str | diffrax.AbstractAdjoint) -> diffrax.AbstractAdjoint:
    """A diffrax adjoint from its name (or the adjoint itself).

    Args:
        adjoint: ``checkpoint`` (backpropagation through the solver with recursive
            checkpointing), ``backsolve`` (the continuous adjoint ODE solved backwards) or
            ``direct``; or a ``diffrax.AbstractAdjoint`` instance.

    Returns:
        The diffrax adjoint.

    Example:
        >>> get_adjoint("backsolve")
        BacksolveAdjoint(...)
    """
    if isinstance(adjoint, diffrax.AbstractAdjoint):
        return adjoint
    if not isinstance(adjoint, str) or adjoint.lower() not in _ADJOINTS:
        raise ValueError(f"unknown adjoint {adjoint!r}; valid names: {', '.join(ADJOINT_NAMES)}")
    return _ADJOINTS[adjoint.lower()]()


def is_adaptive(solver: diffrax.AbstractSolver) -> bool:
    """Whether the solver carries an embedded error estimate (can drive a PID controller)."""
    return isinstance(solver, diffrax.AbstractAdaptiveSolver)


def count_nfe(solver: diffrax.AbstractSolver, num_steps: Int[Array, ""]) -> Int[Array, ""]:
    """Vector-field evaluations of a forward solve from its attempted-step count.

    $\\mathrm{NFE} = s\\,n_\\text{steps} + c$ with $s$ the new stages per step and $c$ the
    initial evaluation of FSAL tableaux; diffrax's initial step-size selection (``dt0=None``) may
    add up to two more. Returns -1 for a solver outside the registry.
    """
    for make, per_step, init in _SOLVERS.values():
        if type(solver) is make:
            return per_step * jnp.asarray(num_steps) + init
    return jnp.asarray(-1) + 0 * jnp.asarray(num_steps)
