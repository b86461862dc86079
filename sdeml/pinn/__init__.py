"""Physics-informed neural networks: PDE residuals by autodiff, problems with exact solutions."""

from ._pinn import PINN as PINN
from ._pinn import pinn_error as pinn_error
from ._pinn import pinn_loss as pinn_loss
from ._problems import Burgers1D as Burgers1D
from ._problems import Collocation as Collocation
from ._problems import Heat1D as Heat1D
from ._problems import sample_collocation as sample_collocation

__all__ = [
    "Burgers1D",
    "Collocation",
    "Heat1D",
    "PINN",
    "pinn_error",
    "pinn_loss",
    "sample_collocation",
]
