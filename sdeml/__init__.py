"""sdeml: differential equations for machine learning, on JAX.

Everything a notebook user needs is importable from here. Each theme package defines its public
names in ``__all__``; this module re-exports them, so ``sdeml.simulate``, ``sdeml.VPSDE`` and
friends all live at the top level. The experiment machinery stays in ``sdeml.run`` and the
training loop in ``sdeml.train``.
"""

from . import data as data
from . import metrics as metrics
from . import nn as nn
from . import run as run
from . import train as train
from .diffusion import *  # noqa: F403
from .dynamics import *  # noqa: F403
from .flows import *  # noqa: F403
from .langevin import *  # noqa: F403
from .neural_ode import *  # noqa: F403
from .ode import *  # noqa: F403
from .optim_dynamics import *  # noqa: F403
from .pinn import *  # noqa: F403
from .sde import *  # noqa: F403

__version__ = "0.1.0"
