"""sdeml.langevin: Langevin samplers (ULA, MALA, SGLD) as batched init/step kernels sharing one
Langevin step, the overdamped Langevin SDE, Gibbs-law checks (TV, KS, ULA's exact biased
invariant law) and the 1-D Fokker–Planck equation with the exact law of its EM chain."""

from ._fokker_planck import HistogramTest as HistogramTest
from ._fokker_planck import em_chain_bin_probabilities as em_chain_bin_probabilities
from ._fokker_planck import fokker_planck_1d as fokker_planck_1d
from ._fokker_planck import histogram_chi2 as histogram_chi2
from ._fokker_planck import histogram_test as histogram_test
from ._fokker_planck import simulate_scalar_sde as simulate_scalar_sde
from ._kernels import MALA as MALA
from ._kernels import SGLD as SGLD
from ._kernels import ULA as ULA
from ._kernels import LangevinInfo as LangevinInfo
from ._kernels import LangevinSDE as LangevinSDE
from ._kernels import LangevinState as LangevinState
from ._kernels import SGLDState as SGLDState
from ._kernels import batched_value_and_grad as batched_value_and_grad
from ._kernels import histogram_chains as histogram_chains
from ._kernels import langevin_step as langevin_step
from ._kernels import run_chains as run_chains
from ._laplace import laplace_approximation as laplace_approximation
from ._single_chain import mala_chain as mala_chain
from ._single_chain import ula_chain as ula_chain
from ._stationary import Potentials as Potentials
from ._stationary import gibbs_bin_probabilities as gibbs_bin_probabilities
from ._stationary import ula_gaussian_stationary_cov as ula_gaussian_stationary_cov
from ._stationary import ula_invariant_bin_probabilities as ula_invariant_bin_probabilities

__all__ = [
    "mala_chain",
    "ula_chain",
    "HistogramTest",
    "LangevinInfo",
    "LangevinSDE",
    "LangevinState",
    "MALA",
    "Potentials",
    "SGLD",
    "SGLDState",
    "ULA",
    "batched_value_and_grad",
    "em_chain_bin_probabilities",
    "fokker_planck_1d",
    "gibbs_bin_probabilities",
    "histogram_chains",
    "histogram_chi2",
    "histogram_test",
    "langevin_step",
    "laplace_approximation",
    "run_chains",
    "simulate_scalar_sde",
    "ula_gaussian_stationary_cov",
    "ula_invariant_bin_probabilities",
]
