"""Solver names for :func:`sdeml.solve_ode`, and classical RK4 as a diffrax Butcher tableau.

diffrax ships every method the issue lists except the classical fourth-order Runge–Kutta method, so
RK4 is defined here the way diffrax defines its own explicit methods: a Butcher tableau handed to
``diffrax.AbstractERK``. All stepping, interpolation and saving is diffrax's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import diffrax
import numpy as np

__all__ = ["RK4", "SOLVERS", "get_ode_solver", "is_implicit", "has_error_estimate"]

# Classical RK4 (Kutta 1901): c = (0, 1/2, 1/2, 1), b = (1/6, 1/3, 1/3, 1/6). It has no embedded
# lower-order method, so the error weights are zero and it is used with constant steps only.
_rk4_tableau = diffrax.ButcherTableau(
    c=np.array([0.5, 0.5, 1.0]),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.zeros(4),
    a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
)


class RK4(diffrax.AbstractERK):
    r"""The classical fourth-order Runge–Kutta method, as a diffrax solver.

    $$k_1 = f(t_n, y_n),\; k_2 = f(t_n + \tfrac h2, y_n + \tfrac h2 k_1),\;
      k_3 = f(t_n + \tfrac h2, y_n + \tfrac h2 k_2),\; k_4 = f(t_n + h, y_n + h k_3),$$
    $$y_{n+1} = y_n + \tfrac h6 (k_1 + 2k_2 + 2k_3 + k_4).$$

    Global error $O(h^4)$; four vector-field evaluations per step. It has no embedded error
    estimate, so use it with ``diffrax.ConstantStepSize`` (``solve_ode(..., n_steps=N)``).

    Example:
        >>> sol = sdeml.solve_ode(lambda t, y, args: -y, jnp.ones(2), 0.0, 1.0,
        ...                       solver=sdeml.RK4(), n_steps=10)

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


# Name -> constructor. Kept as constructors so each call gets a fresh (stateless) solver object.
SOLVERS: dict[str, Callable[[], diffrax.AbstractSolver]] = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "rk4": RK4,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "implicit_euler": diffrax.ImplicitEuler,
    "kvaerno3": diffrax.Kvaerno3,
    "kvaerno4": diffrax.Kvaerno4,
    "kvaerno5": diffrax.Kvaerno5,
}


def get_ode_solver(solver: str | diffrax.AbstractSolver) -> diffrax.AbstractSolver:
    """Return the diffrax solver named by ``solver`` (or ``solver`` itself if it is one).

    Args:
        solver: one of ``SOLVERS`` (``"euler"``, ``"heun"``, ``"rk4"``, ``"tsit5"``, ``"dopri5"``,
            ``"dopri8"``, ``"implicit_euler"``, ``"kvaerno3"``, ``"kvaerno4"``, ``"kvaerno5"``),
            case-insensitive, or any ``diffrax.AbstractSolver`` instance.

    Returns:
        A diffrax solver object.

    Example:
        >>> get_ode_solver("kvaerno5")
        Kvaerno5(...)
    """
    if isinstance(solver, diffrax.AbstractSolver):
        return solver
    if isinstance(solver, str) and solver.lower() in SOLVERS:
        return SOLVERS[solver.lower()]()
    raise ValueError(
        f"`solver` must be a diffrax solver or one of {sorted(SOLVERS)}, got {solver!r}."
    )


def is_implicit(solver: diffrax.AbstractSolver) -> bool:
    """True for implicit (stiff) solvers: implicit Euler and the Kvaerno ESDIRK family."""
    return isinstance(solver, diffrax.AbstractImplicitSolver)


def has_error_estimate(solver: diffrax.AbstractSolver) -> bool:
    """True when the solver carries an embedded error estimate, so adaptive steps are possible."""
    if isinstance(solver, diffrax.Euler | RK4):
        return False
    tableau = getattr(solver, "tableau", None)
    if tableau is not None and hasattr(tableau, "b_error"):
        return bool(np.any(np.asarray(tableau.b_error) != 0))
    # Implicit Euler estimates its error by comparison with an explicit Euler step.
    return isinstance(solver, diffrax.ImplicitEuler | diffrax.AbstractAdaptiveSolver)
