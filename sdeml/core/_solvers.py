"""The one solver registry: every ODE and SDE solver by name, with the facts about it.

A solver fact (its order, whether it adapts its step, how many vector-field evaluations a step
costs) is read here and nowhere else. For diffrax's Runge–Kutta methods the facts are *derived*
from the Butcher tableau, never tabulated: a method can adapt its step when its error weights
``b_error`` are not all zero; a step evaluates the field once per stage, less one when the
tableau is first-same-as-last (FSAL). So a solver that is not registered (any
``diffrax.AbstractERK``) is described just as well as one that is.

Names are unique across kinds: ``"euler"`` and ``"heun"`` are the ODE methods, and the SDE
schemes are ``"euler_maruyama"`` (alias ``"em"``), ``"milstein"``, ``"stochastic_heun"`` and
``"sra1"``. Asking for a solver of the wrong kind says which name to use instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import diffrax
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np

from ._sde_solvers import SRA1, AbstractSolver, EulerMaruyama, Milstein, StochasticHeun

__all__ = [
    "RK4",
    "SolverInfo",
    "get_solver",
    "solver_info",
    "solver_names",
]


class _UnrolledStages:
    r"""The step of an explicit Runge–Kutta method with its stages written out, not looped.

    diffrax runs the stages of a step in a checkpointed loop, so reverse-mode differentiation
    through a solve evaluates each stage's forward pass once more inside the step's own backward
    pass (the solve's checkpoints already re-run the step). Written out, a stage's residuals are
    kept for its backward pass. The arithmetic is the tableau's, term by term (zero coefficients
    skipped), and the outputs are diffrax's (error estimate, dense output $k$, the
    first-same-as-last state), so adjoints, controllers, dense output and events work unchanged
    and results agree with diffrax's to rounding. Measured on the 2-core Intel Xeon of the
    benchmarks (float32, 2026-12-05): the loss gradient of a CNF (dopri5, batch 256, 19
    evaluations) 7.6-8.0 -> 6.2 ms; of a neural ODE on 20 trajectories (rtol 1e-7) 1.45 -> 1.05
    ms with dopri5 and 1.9-2.1 -> 1.26 ms with tsit5. A forward-only solve of a large field costs
    the same (a 256-wide score network, 4096 points: within 4 %); a small field's is faster
    (Lorenz 1.4x). The gain depends on the machine: on the 2-core AMD EPYC (2026-12-06, jax
    0.10.2, compiled programs called in alternation) the CNF gradient went 12.8 -> 11.1 ms and
    Lorenz 0.42 -> 0.24 ms, but the neural ODE's gradient did not gain (two runs: 1.58 -> 1.59
    and 1.46 -> 1.51 ms with dopri5, 1.57 -> 1.64 and 1.45 -> 1.52 ms with tsit5; RESULTS.md).
    The price is compilation: the field is traced once per stage, and XLA:CPU builds the kernels
    of each stage's matrix products on a program's first run (the neural ODE's compiled training
    loop: 45 YNNPACK products against 10 with diffrax's loop, a one-off of ~40-120 ms). A single
    program compiles 0.1-0.7 s slower, and compile-bound smoke runs of whole experiments take
    longer (with XLA's backend optimisation off, as CI runs them: UDE 120 -> 162 s, CNF 29 -> 37
    s, PFGM++ 34 -> 39 s). A single ODE term only (the case of every sdeml theme); anything else
    falls back to diffrax's loop.
    """

    tableau: ClassVar[diffrax.ButcherTableau]

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):  # noqa: D102
        tab = self.tableau
        # one ODE term, bare or in diffrax's wrapper for the direction of time
        plain = type(getattr(terms, "term", terms)) is diffrax.ODETerm
        if not plain or not isinstance(tab, diffrax.ButcherTableau) or float(tab.c1) != 0.0:
            return super().step(  # type: ignore[misc]
                terms, t0, t1, y0, args, solver_state, made_jump
            )
        control = terms.contr(t0, t1)
        dt = t1 - t0

        def vf(t, y):
            return terms.vf(t, y, args)

        def combine(weights, ks, base):
            used = [(float(w), k) for w, k in zip(weights, ks, strict=True) if float(w) != 0.0]
            if not used:
                return base

            def leaf(*parts):
                acc = parts[0]
                for (w, _), k in zip(used, parts[1:], strict=True):
                    acc = acc + w * k
                return acc

            return jax.tree.map(leaf, base, *[k for _, k in used])

        if tab.fsal:
            first_step, f_last = solver_state
            # the stored last stage is this step's first, except on the first step or after a
            # jump; the predicate is made unbatched (any over a vmap) so that the branch not
            # taken is not evaluated
            fresh = eqxi.unvmap_any(first_step | made_jump)
            f = jax.lax.cond(fresh, lambda: vf(t0, y0), lambda: f_last)
        else:
            f = vf(t0, y0)
        ks, yi = [terms.prod(f, control)], y0
        for a_row, c in zip(tab.a_lower, tab.c, strict=True):
            yi = combine(a_row, ks, y0)
            f = vf(t1 if float(c) == 1.0 else t0 + float(c) * dt, yi)
            ks.append(terms.prod(f, control))
        # f and yi are the last stage's: the next step's first (FSAL), the solution (SSAL)
        y1 = yi if tab.ssal else combine(tab.b_sol, ks, y0)
        zero = jax.tree.map(jnp.zeros_like, y0)
        y_error = combine(tab.b_error, ks, zero)
        dense_info = dict(y0=y0, y1=y1, k=jax.tree.map(lambda *k: jnp.stack(k), *ks))
        new_state = (jnp.array(False), f) if tab.fsal else None
        return y1, y_error, dense_info, new_state, diffrax.RESULTS.successful


class Heun(_UnrolledStages, diffrax.Heun):
    """diffrax's `Heun` with its stages written out (see `_UnrolledStages`)."""


class Midpoint(_UnrolledStages, diffrax.Midpoint):
    """diffrax's `Midpoint` with its stages written out (see `_UnrolledStages`)."""


class Ralston(_UnrolledStages, diffrax.Ralston):
    """diffrax's `Ralston` with its stages written out (see `_UnrolledStages`)."""


class Bosh3(_UnrolledStages, diffrax.Bosh3):
    """diffrax's `Bosh3` with its stages written out (see `_UnrolledStages`)."""


class Tsit5(_UnrolledStages, diffrax.Tsit5):
    """diffrax's `Tsit5` with its stages written out (see `_UnrolledStages`)."""


class Dopri5(_UnrolledStages, diffrax.Dopri5):
    """diffrax's `Dopri5` with its stages written out (see `_UnrolledStages`)."""


class Dopri8(_UnrolledStages, diffrax.Dopri8):
    """diffrax's `Dopri8` with its stages written out (see `_UnrolledStages`)."""


# Classical RK4 (Kutta 1901): c = (0, 1/2, 1/2, 1), b = (1/6, 1/3, 1/3, 1/6). It has no embedded
# lower-order method, so its error weights are zero: it cannot adapt its step.
_rk4_tableau = diffrax.ButcherTableau(
    c=np.array([0.5, 0.5, 1.0]),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.zeros(4),
    a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
)


class RK4(_UnrolledStages, diffrax.AbstractERK):
    r"""The classical fourth-order Runge–Kutta method, as a diffrax solver.

    $$k_1 = f(t_n, y_n),\; k_2 = f(t_n + \tfrac h2, y_n + \tfrac h2 k_1),\;
      k_3 = f(t_n + \tfrac h2, y_n + \tfrac h2 k_2),\; k_4 = f(t_n + h, y_n + h k_3),$$
    $$y_{n+1} = y_n + \tfrac h6 (k_1 + 2k_2 + 2k_3 + k_4).$$

    Global error $O(h^4)$; four vector-field evaluations per step. It has no embedded error
    estimate, so it runs with constant steps only (``solve_ode(..., n_steps=N)``).

    Args:
        scan_kind: how diffrax loops over the stages (``None``, ``"lax"``, ``"checkpointed"`` or
            ``"bounded"``); the default suits almost every use.

    Examples:
        >>> import sdeml
        >>> f = lambda t, y, args: -y  # dy/dt = -y, y(0) = 1: y(1) = e^{-1}
        >>> solve = lambda n: sdeml.solve_ode(f, jnp.ones(1), 0, 1, solver=sdeml.RK4(), n_steps=n)
        >>> int(solve(10).nfe)  # four evaluations a step
        40
        >>> err = lambda n: float(jnp.abs(solve(n).ys[-1, 0] - jnp.exp(-1.0)))
        >>> round(float(np.log2(err(10) / err(20))), 1)  # observed order, 4
        4.1

    References:
        W. Kutta, Beitrag zur näherungsweisen Integration totaler Differentialgleichungen,
        Z. Math. Phys. 46 (1901). Hairer, Nørsett & Wanner, Solving ODEs I, §II.1.
    """

    tableau: ClassVar[diffrax.ButcherTableau] = _rk4_tableau
    interpolation_cls: ClassVar[Callable[..., diffrax.ThirdOrderHermitePolynomialInterpolation]] = (
        diffrax.ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms):
        return 4


@dataclasses.dataclass(frozen=True)
class SolverInfo:
    """What is known about a solver, read by every theme that takes one.

    Attributes:
        name: the registry name (``""`` for an unregistered solver).
        kind: ``"ode"`` (a diffrax solver) or ``"sde"`` (an sdeml fixed-step scheme).
        order: the classical order of an ODE method; the strong order of an SDE scheme.
        weak_order: the weak order of an SDE scheme (``None`` for ODE methods).
        adaptive: whether it carries an embedded error estimate, so that a step-size controller
            can drive it (read from the tableau's error weights).
        implicit: whether each step solves a nonlinear system (stiff solvers).
        stages: vector-field evaluations of one step, before first-same-as-last reuse (for an
            SDE scheme, drift evaluations per step); ``None`` when not fixed (implicit methods:
            Newton iterations vary).
        fsal: whether the last stage of a step is the first of the next (one evaluation saved
            per step after the first).
        calculus: ``"ito"`` or ``"stratonovich"`` for SDE schemes, ``None`` for ODE methods.

    Examples:
        >>> from sdeml.core import solver_info
        >>> info = solver_info("tsit5")
        >>> info.order, info.adaptive, info.stages, info.fsal
        (5.0, True, 7, True)
        >>> info.nfe(10)  # (7 - 1) * 10 + 1: the last stage of a step is the next one's first
        61
        >>> solver_info("stochastic_heun").calculus
        'stratonovich'
    """

    name: str
    kind: Literal["ode", "sde"]
    order: float
    weak_order: float | None
    adaptive: bool
    implicit: bool
    stages: int | None
    fsal: bool
    calculus: str | None = None

    def nfe(self, num_steps: Any, leading_attempts: Any = 1) -> Any:
        r"""Vector-field evaluations of a solve of ``num_steps`` attempted steps.

        $\text{NFE} = (s - \text{FSAL})\,n + \text{FSAL}\cdot a$, where $a$ is the number of
        attempted steps up to and including the first accepted one (an FSAL method evaluates
        its first stage anew until a step is accepted; 1 with constant steps). Works on
        arrays (traced or not). Raises for implicit methods, whose Newton iterations vary.
        """
        if self.stages is None:
            raise ValueError(
                f"{self.name or 'this solver'} is implicit: its evaluations depend on the Newton "
                "iterations; count them with solve_ode(..., count_evals=True)"
            )
        fsal = int(self.fsal)
        return (self.stages - fsal) * num_steps + fsal * leading_attempts


# name -> constructor; kind and facts are derived by `solver_info`.
_ODE: dict[str, Callable[[], diffrax.AbstractSolver]] = {
    "euler": diffrax.Euler,
    "heun": Heun,
    "midpoint": Midpoint,
    "ralston": Ralston,
    "bosh3": Bosh3,
    "rk4": RK4,
    "tsit5": Tsit5,
    "dopri5": Dopri5,
    "dopri8": Dopri8,
    "implicit_euler": diffrax.ImplicitEuler,
    "kvaerno3": diffrax.Kvaerno3,
    "kvaerno4": diffrax.Kvaerno4,
    "kvaerno5": diffrax.Kvaerno5,
}
_SDE: dict[str, Callable[[], AbstractSolver]] = {
    "euler_maruyama": EulerMaruyama,
    "milstein": Milstein,
    "stochastic_heun": StochasticHeun,
    "sra1": SRA1,
}
_ALIASES = {"em": "euler_maruyama"}
# Drift evaluations per step of the SDE schemes (the diffusion is evaluated alongside).
_SDE_STAGES = {EulerMaruyama: 1, Milstein: 1, StochasticHeun: 2, SRA1: 2}


def solver_names(kind: Literal["ode", "sde"] | None = None) -> tuple[str, ...]:
    """The registered names, of one kind or of both (aliases excluded).

    Args:
        kind: ``"ode"`` (diffrax methods for `solve_ode`), ``"sde"`` (fixed-step schemes for
            `simulate`) or ``None`` (both, ODE names first).

    Returns:
        A tuple of names, each accepted by `get_solver` and `solver_info`.

    Examples:
        >>> from sdeml.core import solver_names
        >>> solver_names("ode")
        ('euler', 'heun', 'midpoint', ..., 'kvaerno5')
        >>> solver_names("sde")
        ('euler_maruyama', 'milstein', 'stochastic_heun', 'sra1')
    """
    if kind == "ode":
        return tuple(_ODE)
    if kind == "sde":
        return tuple(_SDE)
    if kind is None:
        return tuple(_ODE) + tuple(_SDE)
    raise ValueError(f"`kind` must be 'ode', 'sde' or None, got {kind!r}")


def get_solver(solver: Any, kind: Literal["ode", "sde"] = "ode") -> Any:
    """The solver named `solver` (case-insensitive), or `solver` itself when it is one.

    Args:
        solver: a registered name or a solver instance (a ``diffrax.AbstractSolver`` for
            ``kind="ode"``, an `AbstractSolver` for ``kind="sde"``).
        kind: which kind the caller integrates.

    Returns:
        A fresh solver instance.

    Raises:
        ValueError: for an unknown name (listing the valid ones of that kind) or a solver of the
            other kind (naming the right one where there is one).

    Examples:
        >>> from sdeml.core import get_solver
        >>> get_solver("kvaerno5")
        Kvaerno5(...)
        >>> get_solver("milstein", kind="sde")
        Milstein()
    """
    if kind not in ("ode", "sde"):
        raise ValueError(f"`kind` must be 'ode' or 'sde', got {kind!r}")
    table = _ODE if kind == "ode" else _SDE
    if kind == "ode" and isinstance(solver, diffrax.AbstractSolver):
        return solver
    if kind == "sde" and isinstance(solver, AbstractSolver):
        return solver
    if isinstance(solver, str):
        name = _ALIASES.get(solver.lower(), solver.lower())
        if name in table:
            return table[name]()
        other = _SDE if kind == "ode" else _ODE
        if name in other:
            hint = {"heun": "stochastic_heun", "euler": "euler_maruyama"}.get(name)
            what = "an ODE method" if kind == "sde" else "an SDE scheme"
            more = f"; for SDEs use {hint!r}" if hint else ""
            raise ValueError(
                f"solver {solver!r} is {what}, not usable here{more}; valid names: "
                f"{', '.join(table)}"
            )
        raise ValueError(f"unknown solver {solver!r}; valid names: {', '.join(table)}")
    want = "a diffrax.AbstractSolver" if kind == "ode" else "an sdeml AbstractSolver"
    raise ValueError(
        f"`solver` must be a name ({', '.join(table)}) or {want}, got {type(solver).__name__}"
    )


def solver_info(solver: Any) -> SolverInfo:
    """The facts about a solver (a name or an instance; see `SolverInfo`).

    For explicit Runge–Kutta methods everything is read from the Butcher tableau, so any
    ``diffrax.AbstractERK`` is described, registered or not.

    Args:
        solver: a registered name (`solver_names`; ``"em"`` too), a ``diffrax.AbstractSolver`` or
            an sdeml `AbstractSolver`.

    Returns:
        A `SolverInfo`.

    Raises:
        ValueError: for an unknown name or an object that is not a solver.

    Examples:
        >>> import diffrax
        >>> from sdeml.core import solver_info
        >>> solver_info("rk4").adaptive
        False
        >>> solver_info(diffrax.Dopri8()).nfe(10)    # 13 new stages a step, FSAL
        131
    """
    if isinstance(solver, str):
        name = _ALIASES.get(solver.lower(), solver.lower())
        if name in _SDE:
            solver = _SDE[name]()
        elif name in _ODE:
            solver = _ODE[name]()
        else:
            raise ValueError(f"unknown solver {solver!r}; valid names: {', '.join(solver_names())}")
    if isinstance(solver, AbstractSolver):
        return SolverInfo(
            name=_name_of(solver, _SDE),
            kind="sde",
            order=float(solver.strong_order),
            weak_order=float(solver.weak_order),
            adaptive=False,
            implicit=False,
            stages=_SDE_STAGES.get(type(solver)),
            fsal=False,
            calculus=solver.calculus,
        )
    if not isinstance(solver, diffrax.AbstractSolver):
        raise ValueError(f"not a solver: {solver!r}")
    name = _name_of(solver, _ODE)
    order = float(solver.order(diffrax.ODETerm(lambda t, y, args: y)))  # type: ignore[arg-type]
    implicit = isinstance(solver, diffrax.AbstractImplicitSolver)
    tableau = getattr(solver, "tableau", None)
    if isinstance(solver, diffrax.Euler):
        return SolverInfo(name, "ode", order, None, False, False, 1, False)
    if isinstance(solver, diffrax.ImplicitEuler):
        # its error estimate compares against an explicit Euler step
        return SolverInfo(name, "ode", order, None, True, True, None, False)
    if isinstance(tableau, diffrax.ButcherTableau):
        adaptive = bool(np.any(np.asarray(tableau.b_error) != 0))
        stages = None if implicit else len(tableau.b_sol)
        fsal = bool(tableau.fsal) and not implicit
        return SolverInfo(name, "ode", order, None, adaptive, implicit, stages, fsal)
    # Any other diffrax solver: adaptive when diffrax marks it so; evaluations unknown.
    adaptive = isinstance(solver, diffrax.AbstractAdaptiveSolver)
    return SolverInfo(name, "ode", order, None, adaptive, implicit, None, False)


def _name_of(solver: Any, table: dict[str, Callable[[], Any]]) -> str:
    for name, make in table.items():
        # diffrax's own class of a method registered with its stages written out is the same
        # method under the same name
        twin = isinstance(make, type) and issubclass(make, _UnrolledStages)
        if type(solver) is make or (twin and type(solver) in make.__bases__[1:]):
            return name
    return ""
