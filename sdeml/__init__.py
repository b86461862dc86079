"""sdeml: differential equations for machine learning, on JAX.

The door: the names a notebook user reaches for first, written out below, and every theme as a
namespace (``sdeml.langevin.histogram_test``, ``sdeml.diffusion.dpm_solver_sampler``, ...).

Layers (imports only go down; `tests/test_layers.py` checks it):

- ``sdeml.core``: one SDE type and engine (`simulate`), one ODE front (`solve_ode`), one solver
  registry (`get_solver`, `solver_info`), Brownian increments and argument checks;
- shared: ``sdeml.nn``, ``sdeml.data``, ``sdeml.metrics``;
- themes: ``sde`` ``ode`` ``dynamics`` ``neural_ode`` ``flows`` ``diffusion`` ``langevin``
  ``optim_dynamics`` ``pfgm`` ``pinn`` ``ude``;
- application: ``sdeml.train`` (the training loop and its config), ``sdeml.run`` (configs, run
  directories, the ``sdeml`` command), ``sdeml.experiments``.

Every name is loaded on first use (PEP 562 ``__getattr__``): ``import sdeml`` imports neither JAX
nor a theme, so the ``sdeml`` command starts at once (issue #18); ``sdeml.SDE`` imports the core
the first time it is read. The re-exports below are written out for readers and type checkers.
"""

import typing as _typing

from . import _lazy as _lazy

if _typing.TYPE_CHECKING:
    from . import core as core
    from . import data as data
    from . import diffusion as diffusion
    from . import dynamics as dynamics
    from . import flows as flows
    from . import langevin as langevin
    from . import metrics as metrics
    from . import neural_ode as neural_ode
    from . import nn as nn
    from . import ode as ode
    from . import optim_dynamics as optim_dynamics
    from . import pfgm as pfgm
    from . import pinn as pinn
    from . import run as run
    from . import sde as sde
    from . import train as train
    from . import ude as ude
    from .core import RK4 as RK4
    from .core import SDE as SDE
    from .core import SRA1 as SRA1
    from .core import AbstractSDE as AbstractSDE
    from .core import EulerMaruyama as EulerMaruyama
    from .core import Milstein as Milstein
    from .core import ODEResult as ODEResult
    from .core import ODESolution as ODESolution
    from .core import ODESolveError as ODESolveError
    from .core import Paths as Paths
    from .core import StochasticHeun as StochasticHeun
    from .core import euler_maruyama as euler_maruyama
    from .core import get_solver as get_solver
    from .core import simulate as simulate
    from .core import solve_ode as solve_ode
    from .core import solver_info as solver_info
    from .core import to_diffrax as to_diffrax
    from .diffusion import VESDE as VESDE
    from .diffusion import VPSDE as VPSDE
    from .diffusion import MixtureScore as MixtureScore
    from .diffusion import SubVPSDE as SubVPSDE
    from .diffusion import dsm_loss as dsm_loss
    from .diffusion import log_likelihood as log_likelihood
    from .diffusion import sample as sample
    from .flows import CNF as CNF
    from .flows import cfm_loss as cfm_loss
    from .flows import sample_flow as sample_flow
    from .langevin import MALA as MALA
    from .langevin import SGLD as SGLD
    from .langevin import ULA as ULA
    from .langevin import run_chains as run_chains
    from .neural_ode import MLPField as MLPField
    from .neural_ode import NeuralODE as NeuralODE
    from .optim_dynamics import SGDSDE as SGDSDE
    from .optim_dynamics import gradient_flow as gradient_flow
    from .pinn import PINN as PINN
    from .sde import BrownianMotion as BrownianMotion
    from .sde import GeometricBrownianMotion as GeometricBrownianMotion
    from .sde import OrnsteinUhlenbeck as OrnsteinUhlenbeck
    from .sde import strong_order as strong_order
    from .sde import weak_order as weak_order

__version__ = "0.1.0"


if not _typing.TYPE_CHECKING:  # type checkers read the imports above: a typo stays an error
    __getattr__, __dir__ = _lazy.attach(__name__, __file__, {"__version__"})
