"""sdeml.pfgm: Poisson flow generative models.

PFGM++ (any number D of augmented dimensions; D = inf is diffusion in EDM form): the heavy-tailed
perturbation kernel and prior, the denoiser objective, sampling through the EDM samplers (Heun,
Euler, UniPC) with only the prior changed, and the exact ideal denoiser of a finite data set.
The original PFGM (D = 1) in its augmented variable: the empirical Poisson field, normalised-field
regression and the backward ODE with a clipped prior.
"""

from ._kernel import IdealDenoiser as IdealDenoiser
from ._kernel import PFGMPPKernel as PFGMPPKernel
from ._kernel import check_D as check_D
from ._kernel import clip_norm as clip_norm
from ._kernel import pfgmpp_loss as pfgmpp_loss
from ._kernel import pfgmpp_sampler as pfgmpp_sampler
from ._pfgm import normalised_field as normalised_field
from ._pfgm import pfgm_loss as pfgm_loss
from ._pfgm import pfgm_perturb as pfgm_perturb
from ._pfgm import pfgm_prior as pfgm_prior
from ._pfgm import pfgm_sampler as pfgm_sampler
from ._pfgm import poisson_field as poisson_field

__all__ = [
    "IdealDenoiser",
    "PFGMPPKernel",
    "check_D",
    "clip_norm",
    "normalised_field",
    "pfgm_loss",
    "pfgm_perturb",
    "pfgm_prior",
    "pfgm_sampler",
    "pfgmpp_loss",
    "pfgmpp_sampler",
    "poisson_field",
]
