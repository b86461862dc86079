"""Physics-informed neural networks: PDE residuals by autodiff, reference solutions computed in the
library (closed forms, Cole–Hopf quadrature, a spectral solver), adaptive sampling, causal
weighting, and a guarded full-batch L-BFGS phase.

Implement `AbstractPDE` for your own equation; `sample_collocation`, `pinn_loss`, `pinn_error` and
`lbfgs_minimize` work with any problem.
"""

from ..core import LBFGSResult as LBFGSResult
from ..core import QuasiNewtonError as QuasiNewtonError
from ..core import lbfgs_minimize as lbfgs_minimize
from ._pinn import PINN as PINN
from ._pinn import pinn_error as pinn_error
from ._pinn import pinn_loss as pinn_loss
from ._pinn import rad_resample as rad_resample
from ._pinn import reference_grid as reference_grid
from ._pinn import residuals as residuals
from ._problems import AbstractPDE as AbstractPDE
from ._problems import Burgers1D as Burgers1D
from ._problems import Collocation as Collocation
from ._problems import Convection1D as Convection1D
from ._problems import Heat1D as Heat1D
from ._problems import RaissiBurgers as RaissiBurgers
from ._problems import check_domain as check_domain
from ._problems import sample_collocation as sample_collocation
from ._problems import sample_interior as sample_interior
from ._reference import burgers_cole_hopf as burgers_cole_hopf
from ._reference import burgers_spectral as burgers_spectral

__all__ = [
    "AbstractPDE",
    "Burgers1D",
    "Collocation",
    "Convection1D",
    "Heat1D",
    "LBFGSResult",
    "QuasiNewtonError",
    "PINN",
    "RaissiBurgers",
    "burgers_cole_hopf",
    "burgers_spectral",
    "check_domain",
    "lbfgs_minimize",
    "pinn_error",
    "pinn_loss",
    "rad_resample",
    "reference_grid",
    "residuals",
    "sample_collocation",
    "sample_interior",
]
