"""sdeml.neural_ode: neural ODEs on the core ODE front, the gradient audit, ResNet <-> Euler,
time series.

Every vector field here is called as ``func(t, y, args)``, like `sdeml.solve_ode` and `sdeml.SDE`;
solver names and their facts come from the core registry (`sdeml.core.solver_names`,
`sdeml.core.solver_info`), and solves return the core's `sdeml.ODESolution`.
"""

from ._adjoints import ADJOINT_NAMES as ADJOINT_NAMES
from ._adjoints import AbstractODEModel as AbstractODEModel
from ._adjoints import check_solve_options as check_solve_options
from ._adjoints import get_adjoint as get_adjoint
from ._adjoints import set_solve_options as set_solve_options
from ._adjoints import solve_options as solve_options
from ._audit import AdjointReport as AdjointReport
from ._audit import GradientAudit as GradientAudit
from ._audit import gradient_audit as gradient_audit
from ._fields import MLPField as MLPField
from ._neural_ode import NeuralODE as NeuralODE
from ._neural_ode import check_field_signature as check_field_signature
from ._neural_ode import check_times as check_times
from ._neural_ode import with_adjoint as with_adjoint
from ._resnet import EulerResNet as EulerResNet
from ._resnet import resnet_limit as resnet_limit
from ._time_series import SPIRAL_A as SPIRAL_A
from ._time_series import StepModel as StepModel
from ._time_series import add_noise as add_noise
from ._time_series import integrate as integrate
from ._time_series import irregular_times as irregular_times
from ._time_series import relative_error as relative_error
from ._time_series import sample_windows as sample_windows
from ._time_series import spiral_field as spiral_field
from ._time_series import window_loss as window_loss

__all__ = [
    "ADJOINT_NAMES",
    "AbstractODEModel",
    "AdjointReport",
    "EulerResNet",
    "GradientAudit",
    "MLPField",
    "NeuralODE",
    "SPIRAL_A",
    "StepModel",
    "add_noise",
    "check_field_signature",
    "check_solve_options",
    "check_times",
    "get_adjoint",
    "gradient_audit",
    "integrate",
    "irregular_times",
    "relative_error",
    "resnet_limit",
    "sample_windows",
    "set_solve_options",
    "solve_options",
    "spiral_field",
    "window_loss",
    "with_adjoint",
]
