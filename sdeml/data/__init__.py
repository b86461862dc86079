"""sdeml.data: datasets made on the fly (2-D toys drawn i.i.d., the 8x8 digits) and minibatching."""

from ._digits import DIGITS_LEVELS, Digits, load_digits, minibatch
from ._mixture import GaussianMixture
from ._toys import (
    TOYS,
    checkerboard,
    circles,
    eight_gaussians,
    eight_gaussians_mixture,
    gaussian_mixture_2d,
    mixture_2d,
    swiss_roll,
    toy,
    toy_mixture,
    two_moons,
)

__all__ = [
    "DIGITS_LEVELS",
    "Digits",
    "GaussianMixture",
    "TOYS",
    "checkerboard",
    "circles",
    "eight_gaussians",
    "eight_gaussians_mixture",
    "gaussian_mixture_2d",
    "load_digits",
    "minibatch",
    "mixture_2d",
    "swiss_roll",
    "toy",
    "toy_mixture",
    "two_moons",
]
