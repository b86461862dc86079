"""The 8x8 handwritten digits shipped inside scikit-learn (no download) and minibatching."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from ..core._checks import check_float_dtype, check_int, check_positive_int

DIGITS_LEVELS = 17  # pixel values are the integers 0..16
_DIGITS_SIZE = 1797  # images in scikit-learn's digits


class Digits(NamedTuple):
    """A fixed split of the scikit-learn digits.

    Attributes:
        x_train, x_test: images of shape ``(n, 1, 8, 8)`` with values ``2 * (k / 16) - 1``
            in ``[-1, 1]``, ``k`` the integer pixel value 0..16.
        y_train, y_test: labels 0..9, shapes ``(n,)`` and ``(m,)``.

    Examples:
        >>> d = sdeml.data.load_digits()
        >>> d.x_train.shape, d.y_train.shape, d.x_test.shape, d.y_test.shape
        ((1438, 1, 8, 8), (1438,), (359, 1, 8, 8), (359,))
        >>> k = 8 * (d.x_train + 1)  # back to the integer pixel values 0..16
        >>> bool(jnp.all(k == jnp.round(k))), int(k.min()), int(k.max())
        (True, 0, 16)
    """

    x_train: Float[Array, "n 1 8 8"]
    y_train: Int[Array, " n"]
    x_test: Float[Array, "m 1 8 8"]
    y_test: Int[Array, " m"]


@functools.lru_cache(maxsize=4)
def _digits_np(test_fraction: float, split_seed: int):
    from sklearn.datasets import load_digits as _load
    from sklearn.utils import Bunch

    ds = _load()
    assert isinstance(ds, Bunch)  # (the tuple form is only for return_X_y=True)
    x = ds.images.astype(np.float64)  # (1797, 8, 8), integers 0..16
    y = ds.target.astype(np.int32)
    perm = np.random.default_rng(split_seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def load_digits(test_fraction: float = 0.2, split_seed: int = 0, dtype=None) -> Digits:
    r"""The 1,797 scikit-learn 8x8 digits, split into train and test, scaled to $[-1, 1]$.

    Pixel $k\in\{0,\dots,16\}$ maps to $x = 2k/16 - 1$. For likelihoods, the dequantisation
    convention is uniform noise over one level: a level is $2/16$ wide in this scale (see
    `sdeml.metrics.bits_per_dim` with ``n_levels=17``, ``data_range=2 * 17 / 16``).

    Args:
        test_fraction: fraction held out as the test set, in (0, 1).
        split_seed: seed of the fixed permutation behind the split.
        dtype: float dtype of the images (default: JAX's default float).

    Returns:
        A `Digits` tuple: images ``(n, 1, 8, 8)`` and labels ``(n,)`` (train 1,438 / test 359
        at the default split).

    Examples:
        >>> from sdeml.data import load_digits
        >>> d = load_digits()
        >>> d.x_train.shape, d.x_test.shape
        ((1438, 1, 8, 8), (359, 1, 8, 8))
        >>> float(d.x_train.min()), float(d.x_train.max())
        (-1.0, 1.0)
        >>> load_digits(test_fraction=0.5).x_test.shape  # round(0.5 * 1797) held out
        (898, 1, 8, 8)

    References:
        Alpaydin & Kaynak, UCI Optical Recognition of Handwritten Digits, 1998 (as shipped by
        scikit-learn, ``sklearn.datasets.load_digits``).
    """
    if isinstance(test_fraction, bool) or not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}")
    n_test = int(round(float(test_fraction) * _DIGITS_SIZE))
    if not 0 < n_test < _DIGITS_SIZE:  # 1e-4 had given an empty test split, silently
        raise ValueError(
            f"`test_fraction` = {test_fraction} leaves an empty split of the {_DIGITS_SIZE} "
            f"images (round({test_fraction} * {_DIGITS_SIZE}) = {n_test} held out)"
        )
    split_seed = check_int("split_seed", split_seed, 0)  # 1.7 had been read as 1, True as 1
    dt = check_float_dtype(dtype)
    xtr, ytr, xte, yte = _digits_np(float(test_fraction), split_seed)

    def scale(x):
        return jnp.asarray(2.0 * x / 16.0 - 1.0, dt)[:, None]

    return Digits(scale(xtr), jnp.asarray(ytr), scale(xte), jnp.asarray(yte))


def minibatch(data: PyTree, key: PRNGKeyArray, batch_size: int) -> PyTree:
    """A random minibatch (drawn with replacement) of a dataset held in memory.

    Every leaf of `data` must share its leading dimension ``n``; the same indices are used for
    all leaves. Drawing with replacement keeps the function pure and the batch a function of the
    key alone, which is what `sdeml.train.make_step` needs for exact resumption.

    Args:
        data: an array of shape ``(n, ...)`` or a PyTree of such arrays (e.g. ``(x, y)``).
        key: PRNG key.
        batch_size: number of rows drawn, $B$.

    Returns:
        The same PyTree structure with leading dimension ``batch_size``: ``(B, ...)``.

    Examples:
        >>> from sdeml.data import minibatch
        >>> x = jnp.arange(10.0)[:, None]
        >>> xb, yb = minibatch((x, 2 * x), jr.key(0), 4)  # the same rows of every leaf
        >>> xb.shape, yb.shape, bool(jnp.all(yb == 2 * xb))
        ((4, 1), (4, 1), True)
    """
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("`data` has no arrays")
    n = jnp.shape(leaves[0])[0] if jnp.ndim(leaves[0]) else 0
    for leaf in leaves:
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != n:
            shapes = [jnp.shape(x) for x in leaves]
            raise ValueError(
                f"every array in `data` needs the same leading dimension, got {shapes}"
            )
    if n == 0:
        raise ValueError("`data` is empty")
    batch_size = check_positive_int("batch_size", batch_size)  # NumPy integers too
    idx = jr.randint(key, (batch_size,), 0, n)
    return jax.tree.map(lambda a: jnp.asarray(a)[idx], data)
