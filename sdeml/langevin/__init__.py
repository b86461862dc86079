"""sdeml.langevin: Langevin samplers (ULA, MALA, SGLD) as batched init/step kernels, Gibbs-law
checks (TV, KS, ULA's exact biased invariant law) and the 1-D Fokker–Planck equation."""

from ._fokker_planck import (
    HistogramTest as HistogramTest,
)
from ._fokker_planck import (
    fokker_planck_1d as fokker_planck_1d,
)
from ._fokker_planck import (
    histogram_chi2 as histogram_chi2,
)
from ._fokker_planck import (
    histogram_test as histogram_test,
)
from ._fokker_planck import (
    simulate_scalar_sde as simulate_scalar_sde,
)
from ._kernels import (
    MALA as MALA,
)
from ._kernels import (
    SGLD as SGLD,
)
from ._kernels import (
    ULA as ULA,
)
from ._kernels import (
    LangevinInfo as LangevinInfo,
)
from ._kernels import (
    LangevinState as LangevinState,
)
from ._kernels import (
    SGLDState as SGLDState,
)
from ._kernels import (
    batched_value_and_grad as batched_value_and_grad,
)
from ._kernels import (
    histogram_chains as histogram_chains,
)
from ._kernels import (
    run_chains as run_chains,
)
from ._laplace import laplace_approximation as laplace_approximation
from ._stationary import (
    Potentials as Potentials,
)
from ._stationary import (
    expected_tv_iid as expected_tv_iid,
)
from ._stationary import (
    gibbs_bin_probabilities as gibbs_bin_probabilities,
)
from ._stationary import (
    ks_distance as ks_distance,
)
from ._stationary import (
    total_variation as total_variation,
)
from ._stationary import (
    ula_gaussian_stationary_cov as ula_gaussian_stationary_cov,
)
from ._stationary import (
    ula_invariant_bin_probabilities as ula_invariant_bin_probabilities,
)

__all__ = [
    "HistogramTest",
    "MALA",
    "SGLD",
    "ULA",
    "LangevinInfo",
    "LangevinState",
    "Potentials",
    "SGLDState",
    "batched_value_and_grad",
    "expected_tv_iid",
    "fokker_planck_1d",
    "gibbs_bin_probabilities",
    "histogram_chains",
    "histogram_chi2",
    "histogram_test",
    "ks_distance",
    "laplace_approximation",
    "run_chains",
    "simulate_scalar_sde",
    "total_variation",
    "ula_gaussian_stationary_cov",
    "ula_invariant_bin_probabilities",
]
