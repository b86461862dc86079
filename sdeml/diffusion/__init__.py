"""sdeml.diffusion: score-based generative modelling through SDEs.

Forward SDEs (VP, sub-VP, VE), exact Gaussian-mixture marginals and scores, score/noise/data
parameterisations, denoising score matching, samplers (reverse-SDE Euler-Maruyama,
predictor-corrector, probability-flow ODE, DPM-Solver) and likelihoods through the
probability-flow ODE. The EDM parameterisation (sigma as time, preconditioned denoiser, rho-grid,
Heun sampler with churn), UniPC, consistency distillation from a PF-ODE teacher, and the
log-density gap of samples under a known mixture.
"""

from ._consistency import ConsistencyModel as ConsistencyModel
from ._consistency import consistency_distillation_loss as consistency_distillation_loss
from ._consistency import consistency_sampler as consistency_sampler
from ._consistency import consistency_scalings as consistency_scalings
from ._density_gap import DensityGap as DensityGap
from ._density_gap import log_density_gap as log_density_gap
from ._edm import EDMDenoiser as EDMDenoiser
from ._edm import MixtureDenoiser as MixtureDenoiser
from ._edm import ScoreDenoiser as ScoreDenoiser
from ._edm import denoiser_to_eps as denoiser_to_eps
from ._edm import denoiser_to_score as denoiser_to_score
from ._edm import edm_loss as edm_loss
from ._edm import edm_loss_weight as edm_loss_weight
from ._edm import edm_probability_flow as edm_probability_flow
from ._edm import edm_sampler as edm_sampler
from ._edm import edm_scalings as edm_scalings
from ._edm import edm_sigma_sample as edm_sigma_sample
from ._edm import edm_time_grid as edm_time_grid
from ._edm import eps_to_denoiser as eps_to_denoiser
from ._edm import gaussian_noise as gaussian_noise
from ._edm import gaussian_prior as gaussian_prior
from ._edm import score_to_denoiser as score_to_denoiser
from ._likelihood import DIVERGENCES as DIVERGENCES
from ._likelihood import LikelihoodResult as LikelihoodResult
from ._likelihood import log_likelihood as log_likelihood
from ._loss import WEIGHTINGS as WEIGHTINGS
from ._loss import dsm_loss as dsm_loss
from ._mixture import MixtureScore as MixtureScore
from ._mixture import mixture_marginal as mixture_marginal
from ._param import PARAMETERISATIONS as PARAMETERISATIONS
from ._param import ScoreModel as ScoreModel
from ._param import eps_to_score as eps_to_score
from ._param import score_to_eps as score_to_eps
from ._param import score_to_x0 as score_to_x0
from ._param import x0_to_score as x0_to_score
from ._samplers import GRIDS as GRIDS
from ._samplers import SAMPLERS as SAMPLERS
from ._samplers import SampleResult as SampleResult
from ._samplers import dpm_solver_sampler as dpm_solver_sampler
from ._samplers import dpm_time_grid as dpm_time_grid
from ._samplers import euler_maruyama_sample as euler_maruyama_sample
from ._samplers import euler_maruyama_sampler as euler_maruyama_sampler
from ._samplers import pc_sampler as pc_sampler
from ._samplers import probability_flow_sampler as probability_flow_sampler
from ._samplers import resolve_time_grid as resolve_time_grid
from ._samplers import sample as sample
from ._sde import SDES as SDES
from ._sde import VESDE as VESDE
from ._sde import VPSDE as VPSDE
from ._sde import AbstractDiffusionSDE as AbstractDiffusionSDE
from ._sde import ReverseSDE as ReverseSDE
from ._sde import SubVPSDE as SubVPSDE
from ._sde import get_sde as get_sde
from ._time_grid import TimeGridFit as TimeGridFit
from ._time_grid import optimize_time_grid as optimize_time_grid
from ._unipc import UNIPC_GRIDS as UNIPC_GRIDS
from ._unipc import edm_heun_sampler as edm_heun_sampler
from ._unipc import unipc_edm_sampler as unipc_edm_sampler
from ._unipc import unipc_sampler as unipc_sampler
from ._unipc import unipc_time_grid as unipc_time_grid

__all__ = [
    "ConsistencyModel",
    "consistency_distillation_loss",
    "consistency_sampler",
    "consistency_scalings",
    "AbstractDiffusionSDE",
    "DIVERGENCES",
    "LikelihoodResult",
    "MixtureScore",
    "PARAMETERISATIONS",
    "ReverseSDE",
    "SAMPLERS",
    "SDES",
    "SampleResult",
    "ScoreModel",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
    "WEIGHTINGS",
    "dpm_solver_sampler",
    "dpm_time_grid",
    "GRIDS",
    "resolve_time_grid",
    "TimeGridFit",
    "optimize_time_grid",
    "dsm_loss",
    "eps_to_score",
    "euler_maruyama_sample",
    "euler_maruyama_sampler",
    "get_sde",
    "log_likelihood",
    "mixture_marginal",
    "pc_sampler",
    "probability_flow_sampler",
    "sample",
    "score_to_eps",
    "score_to_x0",
    "x0_to_score",
    "DensityGap",
    "log_density_gap",
    "EDMDenoiser",
    "MixtureDenoiser",
    "ScoreDenoiser",
    "denoiser_to_eps",
    "denoiser_to_score",
    "edm_loss",
    "edm_loss_weight",
    "edm_probability_flow",
    "edm_sampler",
    "edm_scalings",
    "edm_sigma_sample",
    "edm_time_grid",
    "eps_to_denoiser",
    "gaussian_noise",
    "gaussian_prior",
    "score_to_denoiser",
    "UNIPC_GRIDS",
    "edm_heun_sampler",
    "unipc_edm_sampler",
    "unipc_sampler",
    "unipc_time_grid",
]
