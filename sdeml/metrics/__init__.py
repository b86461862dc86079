"""sdeml.metrics: two-sample metrics with their floors, likelihood units, digit-sample scores.

Metrics are shared-layer numerics: they never train a network (see `sdeml.train.digits_classifier`).
"""

from ._digits import DigitsClassifier as DigitsClassifier
from ._digits import digits_scores as digits_scores
from ._digits import frechet_distance as frechet_distance
from ._digits import nearest_neighbour_distances as nearest_neighbour_distances
from ._distances import expected_tv_iid as expected_tv_iid
from ._distances import ks_distance as ks_distance
from ._distances import total_variation as total_variation
from ._likelihood import bits_per_dim as bits_per_dim
from ._likelihood import gaussian_nll as gaussian_nll
from ._two_sample import DEFAULT_BANDWIDTH_FACTORS as DEFAULT_BANDWIDTH_FACTORS
from ._two_sample import median_bandwidth as median_bandwidth
from ._two_sample import median_ratio as median_ratio
from ._two_sample import mmd as mmd
from ._two_sample import mmd_ratio_to_floor as mmd_ratio_to_floor
from ._two_sample import sliced_wasserstein as sliced_wasserstein

__all__ = [
    "DEFAULT_BANDWIDTH_FACTORS",
    "DigitsClassifier",
    "bits_per_dim",
    "digits_scores",
    "expected_tv_iid",
    "frechet_distance",
    "gaussian_nll",
    "ks_distance",
    "median_bandwidth",
    "median_ratio",
    "mmd",
    "mmd_ratio_to_floor",
    "nearest_neighbour_distances",
    "sliced_wasserstein",
    "total_variation",
]
