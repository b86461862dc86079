"""sdeml.diffusion: score-based generative modelling through SDEs.

Forward SDEs (VP, sub-VP, VE), exact Gaussian-mixture marginals and scores, score/noise/data
parameterisations, denoising score matching, samplers (reverse-SDE Euler-Maruyama,
predictor-corrector, probability-flow ODE, DPM-Solver) and likelihoods through the
probability-flow ODE.
"""

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
from ._samplers import SAMPLERS as SAMPLERS
from ._samplers import SampleResult as SampleResult
from ._samplers import dpm_solver_sampler as dpm_solver_sampler
from ._samplers import euler_maruyama_sample as euler_maruyama_sample
from ._samplers import euler_maruyama_sampler as euler_maruyama_sampler
from ._samplers import pc_sampler as pc_sampler
from ._samplers import probability_flow_sampler as probability_flow_sampler
from ._samplers import sample as sample
from ._sde import SDES as SDES
from ._sde import VESDE as VESDE
from ._sde import VPSDE as VPSDE
from ._sde import AbstractDiffusionSDE as AbstractDiffusionSDE
from ._sde import ReverseSDE as ReverseSDE
from ._sde import SubVPSDE as SubVPSDE
from ._sde import get_sde as get_sde

__all__ = [
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
]
