"""sdeml.sde: fast batched fixed-step SDE simulation, solvers, an analytic zoo and order tools."""

from ..core import SDE as SDE
from ..core import SRA1 as SRA1
from ..core import AbstractSDE as AbstractSDE
from ..core import AbstractSolver as AbstractSolver
from ..core import EulerMaruyama as EulerMaruyama
from ..core import Milstein as Milstein
from ..core import Paths as Paths
from ..core import SolverState as SolverState
from ..core import StochasticHeun as StochasticHeun
from ..core import brownian_path as brownian_path
from ..core import check_shapes as check_shapes
from ..core import coarsen_increments as coarsen_increments
from ..core import euler_maruyama as euler_maruyama
from ..core import ito_to_stratonovich as ito_to_stratonovich
from ..core import milstein as milstein
from ..core import sample_increments as sample_increments
from ..core import simulate as simulate
from ..core import simulate_path as simulate_path
from ..core import solve_increments as solve_increments
from ..core import sra1 as sra1
from ..core import stochastic_heun as stochastic_heun
from ..core import stratonovich_correction as stratonovich_correction
from ..core import stratonovich_to_ito as stratonovich_to_ito
from ..core import to_diffrax as to_diffrax
from ..core import virtual_brownian_tree as virtual_brownian_tree
from ._convergence import OrderResult as OrderResult
from ._convergence import plot_orders as plot_orders
from ._convergence import strong_order as strong_order
from ._convergence import weak_order as weak_order
from ._zoo import BrownianMotion as BrownianMotion
from ._zoo import GeometricBrownianMotion as GeometricBrownianMotion
from ._zoo import OrnsteinUhlenbeck as OrnsteinUhlenbeck
from ._zoo import SineForcedSDE as SineForcedSDE

__all__ = [
    "AbstractSDE",
    "AbstractSolver",
    "BrownianMotion",
    "EulerMaruyama",
    "GeometricBrownianMotion",
    "Milstein",
    "OrderResult",
    "OrnsteinUhlenbeck",
    "Paths",
    "SDE",
    "SRA1",
    "SineForcedSDE",
    "SolverState",
    "StochasticHeun",
    "brownian_path",
    "check_shapes",
    "coarsen_increments",
    "euler_maruyama",
    "ito_to_stratonovich",
    "plot_orders",
    "sample_increments",
    "milstein",
    "simulate",
    "simulate_path",
    "sra1",
    "stochastic_heun",
    "solve_increments",
    "stratonovich_correction",
    "stratonovich_to_ito",
    "strong_order",
    "to_diffrax",
    "virtual_brownian_tree",
    "weak_order",
]
