"""sdeml.optim_dynamics: optimisation as dynamics — gradient flow vs gradient descent, the
modified flow, SGD as an SDE and the stationary covariances of SGD and of its SDE."""

from ._flow import flow_gd_deviation as flow_gd_deviation
from ._flow import gradient_descent as gradient_descent
from ._flow import gradient_flow as gradient_flow
from ._flow import modified_loss as modified_loss
from ._sgd_sde import SGD as SGD
from ._sgd_sde import SGDSDE as SGDSDE
from ._sgd_sde import SGDInfo as SGDInfo
from ._sgd_sde import SGDState as SGDState
from ._sgd_sde import gradient_noise_cov as gradient_noise_cov
from ._sgd_sde import minibatch_factor as minibatch_factor
from ._sgd_sde import per_example_gradients as per_example_gradients
from ._sgd_sde import sgd_stationary_cov as sgd_stationary_cov
from ._sgd_sde import solve_continuous_lyapunov as solve_continuous_lyapunov
from ._sgd_sde import solve_discrete_lyapunov as solve_discrete_lyapunov

__all__ = [
    "SGD",
    "SGDInfo",
    "SGDSDE",
    "SGDState",
    "flow_gd_deviation",
    "gradient_descent",
    "gradient_flow",
    "gradient_noise_cov",
    "minibatch_factor",
    "modified_loss",
    "per_example_gradients",
    "sgd_stationary_cov",
    "solve_continuous_lyapunov",
    "solve_discrete_lyapunov",
]
