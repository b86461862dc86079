"""Physics-informed neural networks: PDE residuals by autodiff, problems with exact solutions."""

from ._pinn import PINN, pinn_error, pinn_loss
from ._problems import Burgers1D, Collocation, Heat1D, sample_collocation

__all__ = [
    "PINN",
    "Burgers1D",
    "Collocation",
    "Heat1D",
    "pinn_error",
    "pinn_loss",
    "sample_collocation",
]
