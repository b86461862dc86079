"""Small tabular data sets shipped inside scikit-learn (no download)."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float

from ..core._checks import check_float_dtype, check_int


class Tabular(NamedTuple):
    """A train/test split of a tabular classification data set.

    Attributes:
        x_train, x_test: features ``(n, d + 1)``, standardised with the training split's mean
            and standard deviation, and a last column of ones (the intercept).
        y_train, y_test: labels 0/1 as floats, shapes ``(n,)`` and ``(m,)``.

    Examples:
        >>> d = sdeml.data.load_breast_cancer()
        >>> bool(jnp.allclose(d.x_train[:, :-1].mean(0), 0.0, atol=1e-12))  # standardised
        True
        >>> bool(jnp.all(d.x_train[:, -1] == 1.0)), bool(jnp.all(d.x_test[:, -1] == 1.0))
        (True, True)
    """

    x_train: Float[Array, "n d"]
    y_train: Float[Array, " n"]
    x_test: Float[Array, "m d"]
    y_test: Float[Array, " m"]


def load_breast_cancer(
    test_fraction: float = 0.2, *, seed: int = 0, dtype: DTypeLike | None = None
) -> Tabular:
    """The Wisconsin breast cancer data (569 x 30, binary), split, standardised, with intercept.

    The split is stratified by label (scikit-learn's ``train_test_split`` with
    ``random_state=seed``); the test split holds ``ceil(569 * test_fraction)`` examples.

    Args:
        test_fraction: the share of examples held out, in ``(0, 1)``.
        seed: the split's seed.
        dtype: the arrays' float dtype (default: JAX's default float).

    Returns:
        A `Tabular` split: features ``(n, 31)`` (30 standardised columns and the intercept),
        labels ``(n,)``.

    Examples:
        >>> from sdeml.data import load_breast_cancer
        >>> d = load_breast_cancer(0.2, seed=0)
        >>> d.x_train.shape, d.x_test.shape  # ceil(569 * 0.2) = 114 held out
        ((455, 31), (114, 31))
        >>> round(float(d.y_train.mean()), 2), round(float(d.y_test.mean()), 2)  # stratified
        (0.63, 0.63)

    References:
        Street, Wolberg & Mangasarian, Nuclear feature extraction for breast tumor diagnosis,
        1993 (the UCI data set scikit-learn ships).
    """
    if isinstance(test_fraction, bool) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}")
    seed = check_int("seed", seed, 0)  # scikit-learn read True as 1 and 1.5 failed inside it
    dt = check_float_dtype(dtype)  # an integer dtype had truncated the standardised features

    from sklearn.datasets import load_breast_cancer as _sk_load
    from sklearn.model_selection import train_test_split

    x, y = _sk_load(return_X_y=True)
    xtr, xte, ytr, yte = map(  # arrays already (typed as a list of array-likes)
        np.asarray, train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    )
    mu, sd = xtr.mean(0), xtr.std(0)

    def features(a: np.ndarray) -> np.ndarray:
        return np.concatenate([(a - mu) / sd, np.ones((a.shape[0], 1))], 1)

    f = lambda a: jnp.asarray(a, dt)
    return Tabular(f(features(xtr)), f(ytr), f(features(xte)), f(yte))
