"""Adjoint names: how gradients flow through a neural-ODE solve.

Solver names and their facts (adaptive? evaluations per step?) come from the core registry
(`sdeml.core.get_solver`, `sdeml.core.solver_info`); only the adjoints are named here.
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax

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

    Example:
        >>> get_adjoint("backsolve")
        BacksolveAdjoint(...)
    """
    if isinstance(adjoint, diffrax.AbstractAdjoint):
        return adjoint
    if not isinstance(adjoint, str) or adjoint.lower() not in _ADJOINTS:
        raise ValueError(f"unknown adjoint {adjoint!r}; valid names: {', '.join(ADJOINT_NAMES)}")
    return _ADJOINTS[adjoint.lower()]()
