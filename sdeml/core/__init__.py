"""sdeml.core: what every theme is built on.

One SDE type (`AbstractSDE`, `SDE`) with one drift/diffusion signature ``f(t, y, args)``, the
fixed-step SDE engine (`simulate`, the solvers' `step`, Brownian increments; single paths with
`simulate_path` and the scheme functions, whose `jax.vmap` runs the engine), one ODE solve front
over diffrax (`solve_ode`), the one guarded quasi-Newton phase (`lbfgs_minimize`), one solver
registry whose entries carry their metadata (order, adaptivity, stages, evaluations per step),
and argument and time-grid validation. Themes import from here; nothing here imports a theme.
"""

from ._brownian import brownian_path as brownian_path
from ._brownian import coarsen_increments as coarsen_increments
from ._brownian import sample_increments as sample_increments
from ._diffrax import to_diffrax as to_diffrax
from ._diffrax import virtual_brownian_tree as virtual_brownian_tree
from ._lbfgs import METHOD_LABELS as METHOD_LABELS
from ._lbfgs import LBFGSResult as LBFGSResult
from ._lbfgs import QuasiNewtonError as QuasiNewtonError
from ._lbfgs import lbfgs_minimize as lbfgs_minimize
from ._ode import DEFAULT_ATOL as DEFAULT_ATOL
from ._ode import DEFAULT_MAX_STEPS as DEFAULT_MAX_STEPS
from ._ode import DEFAULT_RTOL as DEFAULT_RTOL
from ._ode import ODEResult as ODEResult
from ._ode import ODESolution as ODESolution
from ._ode import ODESolveError as ODESolveError
from ._ode import effective_tolerances as effective_tolerances
from ._ode import integrate_ode as integrate_ode
from ._ode import solve_ode as solve_ode
from ._sde import SDE as SDE
from ._sde import AbstractSDE as AbstractSDE
from ._sde import check_shapes as check_shapes
from ._sde import ito_to_stratonovich as ito_to_stratonovich
from ._sde import stratonovich_correction as stratonovich_correction
from ._sde import stratonovich_to_ito as stratonovich_to_ito
from ._sde_solvers import SRA1 as SRA1
from ._sde_solvers import AbstractSolver as AbstractSolver
from ._sde_solvers import EulerMaruyama as EulerMaruyama
from ._sde_solvers import Milstein as Milstein
from ._sde_solvers import SolverState as SolverState
from ._sde_solvers import StochasticHeun as StochasticHeun
from ._simulate import Paths as Paths
from ._simulate import simulate as simulate
from ._simulate import solve_increments as solve_increments
from ._single import euler_maruyama as euler_maruyama
from ._single import milstein as milstein
from ._single import simulate_path as simulate_path
from ._single import sra1 as sra1
from ._single import stochastic_heun as stochastic_heun
from ._solvers import RK4 as RK4
from ._solvers import SolverInfo as SolverInfo
from ._solvers import get_solver as get_solver
from ._solvers import solver_info as solver_info
from ._solvers import solver_names as solver_names
