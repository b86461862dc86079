"""Universal differential equations: known terms + a network fitted through the ODE front, then
sparse regression (SINDy) recovers the missing terms as readable equations.

Pieces: candidate libraries (`polynomial_library`, `Library`, `format_equations`), sequentially
thresholded least squares (`stlsq`, vmapped over thresholds by `stlsq_path`), model selection by
information criteria (`information_criterion`, `sindy` on the regression residual,
`trajectory_criterion` on the observed trajectory), refits (`lstsq_on_support`,
`refit_through_ode`; `select_by_refit` chooses among refitted supports), the UDE itself (`UDE`,
`TrajectoryModel`, `trajectory_loss`), the guarded quasi-Newton phase (`lbfgs_minimize`, the
core's), and the Lotka–Volterra benchmark of Rackauckas et al. (2020). The Adam phase is the
training loop of `sdeml.train`.
"""

from ..core import LBFGSResult as LBFGSResult
from ..core import QuasiNewtonError as QuasiNewtonError
from ..core import lbfgs_minimize as lbfgs_minimize
from ._library import Library as Library
from ._library import format_equations as format_equations
from ._library import polynomial_library as polynomial_library
from ._lotka_volterra import LV_PARAMS as LV_PARAMS
from ._lotka_volterra import LV_Y0 as LV_Y0
from ._lotka_volterra import InteractionReport as InteractionReport
from ._lotka_volterra import interaction_report as interaction_report
from ._lotka_volterra import lotka_volterra_data as lotka_volterra_data
from ._lotka_volterra import lotka_volterra_known as lotka_volterra_known
from ._lotka_volterra import lotka_volterra_truth as lotka_volterra_truth
from ._sindy import LibraryField as LibraryField
from ._sindy import SINDyResult as SINDyResult
from ._sindy import information_criterion as information_criterion
from ._sindy import lstsq_on_support as lstsq_on_support
from ._sindy import sindy as sindy
from ._sindy import stlsq as stlsq
from ._sindy import stlsq_path as stlsq_path
from ._ude import UDE as UDE
from ._ude import RefitSelection as RefitSelection
from ._ude import TrajectoryModel as TrajectoryModel
from ._ude import extrapolation_error as extrapolation_error
from ._ude import finite_differences as finite_differences
from ._ude import refit_through_ode as refit_through_ode
from ._ude import select_by_refit as select_by_refit
from ._ude import trajectory_criterion as trajectory_criterion
from ._ude import trajectory_loss as trajectory_loss

__all__ = [
    "InteractionReport",
    "LBFGSResult",
    "LV_PARAMS",
    "LV_Y0",
    "Library",
    "LibraryField",
    "QuasiNewtonError",
    "RefitSelection",
    "SINDyResult",
    "TrajectoryModel",
    "UDE",
    "extrapolation_error",
    "finite_differences",
    "format_equations",
    "information_criterion",
    "interaction_report",
    "lbfgs_minimize",
    "lotka_volterra_data",
    "lotka_volterra_known",
    "lotka_volterra_truth",
    "select_by_refit",
    "lstsq_on_support",
    "polynomial_library",
    "refit_through_ode",
    "sindy",
    "stlsq",
    "stlsq_path",
    "trajectory_criterion",
    "trajectory_loss",
]
