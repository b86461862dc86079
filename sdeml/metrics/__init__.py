"""sdeml.metrics: two-sample metrics with their floors, likelihood units, digit-sample scores."""

from ._digits import (
    DigitsClassifier,
    digits_classifier,
    digits_scores,
    frechet_distance,
    nearest_neighbour_distances,
)
from ._likelihood import bits_per_dim, gaussian_nll
from ._two_sample import (
    DEFAULT_BANDWIDTH_FACTORS,
    median_bandwidth,
    median_ratio,
    mmd,
    sliced_wasserstein,
)

__all__ = [
    "DEFAULT_BANDWIDTH_FACTORS",
    "DigitsClassifier",
    "bits_per_dim",
    "digits_classifier",
    "digits_scores",
    "frechet_distance",
    "gaussian_nll",
    "median_bandwidth",
    "median_ratio",
    "mmd",
    "nearest_neighbour_distances",
    "sliced_wasserstein",
]
