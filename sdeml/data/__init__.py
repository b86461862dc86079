"""sdeml.data: datasets made on the fly (2-D toys drawn i.i.d.), scikit-learn's small data sets
(8x8 digits, breast cancer) and minibatching.

Names are loaded on first use (`sdeml._lazy`): a config check reads the data sizes without JAX.
"""

import typing as _typing

from .. import _lazy as _lazy

if _typing.TYPE_CHECKING:
    from ._constants import BREAST_CANCER_SIZE as BREAST_CANCER_SIZE
    from ._digits import DIGITS_LEVELS as DIGITS_LEVELS
    from ._digits import Digits as Digits
    from ._digits import load_digits as load_digits
    from ._digits import minibatch as minibatch
    from ._mixture import GaussianMixture as GaussianMixture
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

if not _typing.TYPE_CHECKING:  # type checkers read the imports above: a typo stays an error
    __getattr__, __dir__ = _lazy.attach(__name__, __file__)
