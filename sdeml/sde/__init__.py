"""sdeml.sde: fast batched fixed-step SDE simulation, solvers, an analytic zoo and order tools."""

from ._brownian import brownian_path, coarsen_increments, sample_increments
from ._convergence import OrderResult, plot_orders, strong_order, weak_order
from ._diffrax import to_diffrax, virtual_brownian_tree
from ._sde import (
    SDE,
    AbstractSDE,
    check_shapes,
    ito_to_stratonovich,
    stratonovich_correction,
    stratonovich_to_ito,
)
from ._simulate import Paths, euler_maruyama, simulate, solve_increments
from ._solvers import (
    SRA1,
    AbstractSolver,
    EulerMaruyama,
    Milstein,
    SolverState,
    StochasticHeun,
)
from ._solvers import (
    get_solver as get_sde_solver,
)
from ._zoo import BrownianMotion, GeometricBrownianMotion, OrnsteinUhlenbeck, SineForcedSDE

__all__ = [
    "SDE",
    "SRA1",
    "AbstractSDE",
    "AbstractSolver",
    "BrownianMotion",
    "EulerMaruyama",
    "GeometricBrownianMotion",
    "Milstein",
    "OrderResult",
    "OrnsteinUhlenbeck",
    "Paths",
    "SineForcedSDE",
    "SolverState",
    "StochasticHeun",
    "brownian_path",
    "check_shapes",
    "coarsen_increments",
    "euler_maruyama",
    "get_sde_solver",
    "ito_to_stratonovich",
    "plot_orders",
    "sample_increments",
    "simulate",
    "solve_increments",
    "strong_order",
    "stratonovich_correction",
    "stratonovich_to_ito",
    "to_diffrax",
    "virtual_brownian_tree",
    "weak_order",
]
