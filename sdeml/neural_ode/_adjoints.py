"""Adjoint names (how gradients flow through a neural-ODE solve) and the solve options that
`NeuralODE` and `CNF` share.

Solver names and their facts (adaptive? evaluations per step?) come from the core registry
(`sdeml.core.get_solver`, `sdeml.core.solver_info`); only the adjoints are named here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import numpy as np

from ..core._checks import check_positive, check_positive_int
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
    if dt0 is not None:
        try:
            check_positive("dt0", dt0)  # finite too: dt0 = inf passed `dt0 > 0`
        except ValueError as e:
            raise ValueError(f"{owner}: {e}") from None
    if adaptive and not (0 < rtol < float("inf") and 0 <= atol < float("inf")):
        raise ValueError(
            f"{owner}: `rtol` must be finite and > 0, and `atol` finite and >= 0; got "
            f"rtol={rtol}, atol={atol}"
        )
    try:
        max_steps = check_positive_int("max_steps", max_steps)
    except ValueError as e:
        raise ValueError(f"{owner}: {e}") from None
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


class _Options:
    """A model's solve options (`SOLVE_OPTIONS`), held in one static field.

    Static, the options are part of the model's tree structure instead of subtrees and fields
    of their own: flattening the model, which `jax.jit` and `eqx.filter_jit` do on every call
    (and `jax.block_until_ready` on every result), visits the model's node and its field, and
    reads two attributes instead of nine, each a few microseconds through equinox's attribute
    lookup (benchmarks/RESULTS.md, 2026-12-06: 30-50 us of a neural ODE's gradient call).
    Hashable, as a static field must be, also when the adjoint holds a dict (diffrax's
    `BacksolveAdjoint` keeps its ``kwargs`` in one): the hash and equality are those of the
    options' leaves and tree structures, computed once.
    """

    __slots__ = ("values", "_key", "_hash")

    def __init__(self, values: dict[str, Any], owner: str):
        key = []
        for name in SOLVE_OPTIONS:
            leaves, treedef = jax.tree_util.tree_flatten(values[name])
            if any(isinstance(x, jax.Array | np.ndarray) for x in leaves):
                raise ValueError(
                    f"{owner}: the {name} {type(values[name]).__name__} holds arrays; a model's "
                    f"{name} is a static setting (part of its compiled program), so give its "
                    "numbers as Python floats"
                )
            key.append((name, treedef, tuple(leaves)))
        try:
            self._hash = hash(tuple(key))
        except TypeError as e:
            raise ValueError(
                f"{owner}: a solve option holds an unhashable setting ({e}); a model's solve "
                "options are static (part of its compiled program)"
            ) from None
        self.values, self._key = dict(values), tuple(key)

    def replace(self, owner: str, **changes: Any) -> _Options:
        return _Options({**self.values, **changes}, owner)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, _Options) or self._hash != other._hash:
            return False
        return self._key == other._key

    def __repr__(self) -> str:
        return "SolveOptions(" + ", ".join(f"{k}={v!r}" for k, v in self.values.items()) + ")"


def set_solve_options(model: AbstractODEModel, options: dict[str, Any]) -> None:
    """Set the options from `check_solve_options` on a model being initialised (in its
    ``__init__``), as one static setting: part of the model's tree structure, not leaves.

    Args:
        model: the `AbstractODEModel` whose ``__init__`` is running.
        options: the dict `check_solve_options` returned.

    Returns:
        None; the model's options are set.

    Examples:
        >>> from sdeml.neural_ode import AbstractODEModel, check_solve_options, set_solve_options
        >>> class Decay(AbstractODEModel):
        ...     func: object
        ...     def __init__(self, **kw):
        ...         self.func = lambda t, y, args: -y
        ...         set_solve_options(self, check_solve_options("Decay", **kw))
        >>> m = Decay(solver="tsit5", adjoint="backsolve", rtol=1e-6, atol=1e-9, dt0=None,
        ...           adaptive=None, max_steps=64, count_evals=False)
        >>> m.adjoint, m.max_steps, jax.tree.leaves(m)  # the options are static: no leaves
        (BacksolveAdjoint(...), 64, [<function ...>])
    """
    model._options = _Options(options, type(model).__name__)


def replace_adjoint(model: AbstractODEModel, adjoint: diffrax.AbstractAdjoint) -> Any:
    """A copy of `model` that uses `adjoint` (`eqx.tree_at` cannot reach a static field)."""
    new = object.__new__(type(model))
    for field in dataclasses.fields(model):
        object.__setattr__(new, field.name, getattr(model, field.name))
    options = model._options.replace(type(model).__name__, adjoint=adjoint)
    object.__setattr__(new, "_options", options)
    return new


def _option(name: str, doc: str) -> Any:
    """A read-only attribute of a model: its solve option `name`."""
    return property(lambda self: self._options.values[name], doc=doc)


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
    _options: _Options = eqx.field(static=True)

    solver = _option("solver", "The diffrax solver.")
    adjoint = _option("adjoint", "The diffrax adjoint (`sdeml.neural_ode.with_adjoint` swaps it).")
    rtol = _option("rtol", "The relative tolerance of the adaptive step-size controller.")
    atol = _option("atol", "The absolute tolerance of the adaptive step-size controller.")
    dt0 = _option(
        "dt0", "The constant step, or the initial step of an adaptive solve (None: chosen)."
    )
    adaptive = _option("adaptive", "Whether the PID controller adapts the step.")
    max_steps = _option("max_steps", "The step budget of one solve.")
    count_evals = _option("count_evals", "Whether evaluations are counted on the host (exact nfe).")
