"""sdeml.diffusion: score-based generative modelling through SDEs.

Forward SDEs (VP, sub-VP, VE), exact Gaussian-mixture marginals and scores, score/noise/data
parameterisations, denoising score matching, samplers (reverse-SDE Euler-Maruyama,
predictor-corrector, probability-flow ODE, DPM-Solver) and likelihoods through the
probability-flow ODE.
"""

from ._likelihood import DIVERGENCES, LikelihoodResult, log_likelihood
from ._loss import WEIGHTINGS, dsm_loss
from ._mixture import MixtureScore, mixture_marginal
from ._param import (
    PARAMETERISATIONS,
    ScoreModel,
    eps_to_score,
    score_to_eps,
    score_to_x0,
    x0_to_score,
)
from ._samplers import (
    SAMPLERS,
    SampleResult,
    dpm_solver_sampler,
    euler_maruyama_sampler,
    pc_sampler,
    probability_flow_sampler,
    sample,
)
from ._sde import SDES, VESDE, VPSDE, AbstractDiffusionSDE, SubVPSDE, get_sde

__all__ = [
    "AbstractDiffusionSDE",
    "DIVERGENCES",
    "LikelihoodResult",
    "MixtureScore",
    "PARAMETERISATIONS",
    "SAMPLERS",
    "SDES",
    "SampleResult",
    "ScoreModel",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
    "WEIGHTINGS",
    "dpm_solver_sampler",
    "dsm_loss",
    "eps_to_score",
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
]
