"""sdeml.dynamics: equilibria, Jacobians, stability classes, Lyapunov checks, phase portraits and a
zoo of classic systems (exponential growth, oscillators, Van der Pol, Lotka–Volterra, SIR, Lorenz).
"""

from ._analysis import (
    STABILITY_CLASSES,
    Equilibrium,
    classify_equilibrium,
    find_equilibrium,
    jacobian,
    stability_name,
)
from ._lyapunov import LyapunovCheck, check_lyapunov, lyapunov_derivative, quadratic_lyapunov
from ._portrait import phase_portrait
from ._zoo import (
    SIR,
    AbstractODESystem,
    DampedOscillator,
    ExponentialGrowth,
    HarmonicOscillator,
    Lorenz,
    LotkaVolterra,
    VanDerPol,
)

__all__ = [
    "SIR",
    "STABILITY_CLASSES",
    "AbstractODESystem",
    "DampedOscillator",
    "Equilibrium",
    "ExponentialGrowth",
    "HarmonicOscillator",
    "Lorenz",
    "LotkaVolterra",
    "LyapunovCheck",
    "VanDerPol",
    "check_lyapunov",
    "classify_equilibrium",
    "find_equilibrium",
    "jacobian",
    "lyapunov_derivative",
    "phase_portrait",
    "quadratic_lyapunov",
    "stability_name",
]
