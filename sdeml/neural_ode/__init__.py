"""sdeml.neural_ode: neural ODEs on diffrax, the gradient audit, ResNet <-> Euler, time series."""

from ._audit import AdjointReport, GradientAudit, gradient_audit
from ._fields import MLPField
from ._neural_ode import NeuralODE, NeuralODESolution, check_times, with_adjoint
from ._resnet import EulerResNet, resnet_limit
from ._solvers import ADJOINT_NAMES, SOLVER_NAMES, count_nfe, get_adjoint, get_solver
from ._time_series import (
    SPIRAL_A,
    StepModel,
    add_noise,
    integrate,
    irregular_times,
    relative_error,
    sample_windows,
    spiral_field,
    window_loss,
)

__all__ = [
    "ADJOINT_NAMES",
    "SOLVER_NAMES",
    "SPIRAL_A",
    "AdjointReport",
    "EulerResNet",
    "GradientAudit",
    "MLPField",
    "NeuralODE",
    "NeuralODESolution",
    "StepModel",
    "add_noise",
    "check_times",
    "count_nfe",
    "get_adjoint",
    "get_solver",
    "gradient_audit",
    "integrate",
    "irregular_times",
    "relative_error",
    "resnet_limit",
    "sample_windows",
    "spiral_field",
    "window_loss",
    "with_adjoint",
]
