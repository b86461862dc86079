"""sdeml.dynamics: equilibria, Jacobians, stability classes, Lyapunov checks, phase portraits and a
zoo of classic systems (exponential growth, oscillators, Van der Pol, Lotka–Volterra, SIR, Lorenz).
"""

from ._analysis import STABILITY_CLASSES as STABILITY_CLASSES
from ._analysis import Equilibrium as Equilibrium
from ._analysis import classify_equilibrium as classify_equilibrium
from ._analysis import find_equilibrium as find_equilibrium
from ._analysis import jacobian as jacobian
from ._analysis import stability_name as stability_name
from ._lyapunov import LyapunovCheck as LyapunovCheck
from ._lyapunov import check_lyapunov as check_lyapunov
from ._lyapunov import lyapunov_derivative as lyapunov_derivative
from ._lyapunov import quadratic_lyapunov as quadratic_lyapunov
from ._portrait import phase_portrait as phase_portrait
from ._zoo import SIR as SIR
from ._zoo import AbstractODESystem as AbstractODESystem
from ._zoo import DampedOscillator as DampedOscillator
from ._zoo import ExponentialGrowth as ExponentialGrowth
from ._zoo import HarmonicOscillator as HarmonicOscillator
from ._zoo import Lorenz as Lorenz
from ._zoo import LotkaVolterra as LotkaVolterra
from ._zoo import VanDerPol as VanDerPol

__all__ = [
    "AbstractODESystem",
    "DampedOscillator",
    "Equilibrium",
    "ExponentialGrowth",
    "HarmonicOscillator",
    "Lorenz",
    "LotkaVolterra",
    "LyapunovCheck",
    "SIR",
    "STABILITY_CLASSES",
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
