"""sdeml.data: datasets made on the fly (2-D toys drawn i.i.d.), scikit-learn's small data sets
(8x8 digits, breast cancer) and minibatching."""

from ._digits import DIGITS_LEVELS as DIGITS_LEVELS
from ._digits import Digits as Digits
from ._digits import load_digits as load_digits
from ._digits import minibatch as minibatch
from ._mixture import GaussianMixture as GaussianMixture
from ._tabular import BREAST_CANCER_SIZE as BREAST_CANCER_SIZE
from ._tabular import Tabular as Tabular
from ._tabular import load_breast_cancer as load_breast_cancer
from ._toys import TOYS as TOYS
from ._toys import checkerboard as checkerboard
from ._toys import circles as circles
from ._toys import eight_gaussians as eight_gaussians
from ._toys import eight_gaussians_mixture as eight_gaussians_mixture
from ._toys import gaussian_mixture_2d as gaussian_mixture_2d
from ._toys import mixture_2d as mixture_2d
from ._toys import swiss_roll as swiss_roll
from ._toys import toy as toy
from ._toys import toy_mixture as toy_mixture
from ._toys import two_moons as two_moons

__all__ = [
    "BREAST_CANCER_SIZE",
    "DIGITS_LEVELS",
    "Digits",
    "GaussianMixture",
    "TOYS",
    "Tabular",
    "checkerboard",
    "circles",
    "eight_gaussians",
    "eight_gaussians_mixture",
    "gaussian_mixture_2d",
    "load_breast_cancer",
    "load_digits",
    "minibatch",
    "mixture_2d",
    "swiss_roll",
    "toy",
    "toy_mixture",
    "two_moons",
]
