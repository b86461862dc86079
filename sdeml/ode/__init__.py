"""sdeml.ode: ODEs through the core's one solve front, and closed forms of linear systems."""

from ..core import RK4 as RK4
from ..core import ODEResult as ODEResult
from ..core import ODESolution as ODESolution
from ..core import ODESolveError as ODESolveError
from ..core import solve_ode as solve_ode
from ._linear import linear_ode_solution as linear_ode_solution
from ._linear import linear_ode_solution_eig as linear_ode_solution_eig

__all__ = [
    "ODEResult",
    "ODESolution",
    "ODESolveError",
    "RK4",
    "linear_ode_solution",
    "linear_ode_solution_eig",
    "solve_ode",
]
