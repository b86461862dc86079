"""sdeml.ode: a jit-able ODE solver front over diffrax, and closed forms of linear systems."""

from ._linear import linear_ode_solution, linear_ode_solution_eig
from ._solve import ODEResult, ODESolution, ODESolveError, solve_ode
from ._solvers import RK4, get_ode_solver

__all__ = [
    "RK4",
    "ODEResult",
    "ODESolution",
    "ODESolveError",
    "get_ode_solver",
    "linear_ode_solution",
    "linear_ode_solution_eig",
    "solve_ode",
]
