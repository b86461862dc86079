"""Scoring generated 8x8 digits with a small classifier's confidence and features.

The classifier is an argument: training it (and caching the weights) is the application
layer's job (`sdeml.train.digits_classifier`), so no metric imports the training loop.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..core._checks import common_float_dtype
from ..data import load_digits


class DigitsClassifier(eqx.Module):
    """An MLP classifier for 8x8 digits in ``[-1, 1]``: 64 -> 256 -> 128 (features) -> 10.

    The weights are float32. A trained one, the same network for every run, comes from
    ``sdeml.train.digits_classifier()`` (trained once, then cached on disk).

    Args:
        key: PRNG key of the initial weights.

    Examples:
        >>> from sdeml.metrics import DigitsClassifier
        >>> clf = DigitsClassifier(key=jr.key(0))  # untrained: for shapes only
        >>> x = sdeml.data.load_digits().x_test[0]  # one image, (1, 8, 8) (or (64,))
        >>> clf.logits(x).shape, clf.features(x).shape
        ((10,), (128,))
    """

    l1: eqx.nn.Linear
    l2: eqx.nn.Linear
    l3: eqx.nn.Linear

    def __init__(self, *, key: PRNGKeyArray):
        k1, k2, k3 = jr.split(key, 3)
        f32 = jnp.float32
        self.l1 = eqx.nn.Linear(64, 256, key=k1, dtype=f32)
        self.l2 = eqx.nn.Linear(256, 128, key=k2, dtype=f32)
        self.l3 = eqx.nn.Linear(128, 10, key=k3, dtype=f32)

    def features(self, x: Float[ArrayLike, "..."]) -> Float[Array, " 128"]:
        """The penultimate-layer features of one image."""
        x = jnp.asarray(x, jnp.float32)
        if x.size != 64:
            raise ValueError(f"a digit image has 64 pixels (shape (1, 8, 8)), got {x.shape}")
        h = jax.nn.gelu(self.l1(x.reshape(64)))
        return jax.nn.gelu(self.l2(h))

    def logits(self, x: Float[ArrayLike, "..."]) -> Float[Array, " 10"]:
        """Class logits of one image."""
        return self.l3(self.features(x))


def frechet_distance(a: ArrayLike, b: ArrayLike) -> float:
    r"""Fréchet distance between Gaussians fitted to two feature sets.

    $$\|\mu_a-\mu_b\|^2 + \mathrm{tr}\big(\Sigma_a + \Sigma_b - 2(\Sigma_a^{1/2}\Sigma_b
    \Sigma_a^{1/2})^{1/2}\big).$$

    Args:
        a, b: features of shape ``(n, f)`` and ``(m, f)``.

    Returns:
        A non-negative float (computed in float64 with NumPy).

    Examples:
        >>> from sdeml.metrics import frechet_distance
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.standard_normal((500, 4)), rng.standard_normal((500, 4)) + 1
        >>> round(frechet_distance(a, b), 1)  # |mu_a - mu_b|^2 = 4, equal covariances
        4.2
        >>> abs(frechet_distance(a, a)) < 1e-9
        True

    References:
        Heusel et al., GANs Trained by a Two Time-Scale Update Rule..., NeurIPS 2017 (FID).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (n, f) and (m, f), got {a.shape}, {b.shape}")
    for name, v in (("a", a), ("b", b)):
        if v.shape[0] < 2:  # one sample has no covariance (NaN, then LinAlgError)
            raise ValueError(
                f"`{name}` needs at least 2 samples to fit a covariance, got {v.shape}"
            )
        if not np.all(np.isfinite(v)):
            raise ValueError(f"`{name}` holds non-finite features (NaN or inf)")
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    sa_half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sa_half @ sb @ sa_half
    tr_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)))
    fd = np.sum((mu_a - mu_b) ** 2) + np.trace(sa) + np.trace(sb) - 2 * tr_sqrt
    return max(float(fd), 0.0)  # a squared distance: rounding below 0 (equal sets) is 0


def nearest_neighbour_distances(x: ArrayLike, ref: ArrayLike) -> Float[Array, " n"]:
    r"""Euclidean distance from each row of `x` to its nearest row of `ref` (flattened samples).

    $$d_i = \min_j \|x_i - r_j\|_2.$$

    Args:
        x: samples ``(n, ...)``, each flattened.
        ref: reference samples ``(m, ...)`` of the same trailing size.

    Returns:
        The distances, shape ``(n,)``.

    Examples:
        >>> from sdeml.metrics import nearest_neighbour_distances
        >>> x = jnp.array([[0.0, 0.0], [3.0, 4.0]])
        >>> ref = jnp.array([[0.0, 0.0], [0.0, 1.0]])
        >>> [round(float(v), 4) for v in nearest_neighbour_distances(x, ref)]  # 0 and sqrt(18)
        [0.0, 4.2426]
    """
    x, ref = jnp.asarray(x), jnp.asarray(ref)
    dtype = common_float_dtype(x, ref)  # f32 with f64: the wider (it had failed)
    # one float dtype for both: `ref` cast to an integer `x`'s dtype was truncated (0.4 -> 0)
    x = x.astype(dtype).reshape(x.shape[0], -1)
    ref = ref.astype(dtype).reshape(ref.shape[0], -1)
    if x.shape[1] != ref.shape[1]:
        raise ValueError(f"sample shapes differ: {x.shape[1:]} vs {ref.shape[1:]}")

    def one(xi):
        return jnp.sqrt(jnp.min(jnp.sum((ref - xi) ** 2, axis=1)))

    return jax.lax.map(one, x, batch_size=256)


def digits_scores(
    samples: Float[ArrayLike, "n 1 8 8"],
    classifier: Any,  # a DigitsClassifier: checked with a message saying how to get one
) -> dict[str, float | list[float]]:
    r"""Classifier-based quality of generated digits, against the fixed train/test split.

    * ``confidence``: mean max-softmax probability of the samples;
    * ``class_hist`` and ``class_tv``: the predicted-class histogram and its total-variation
      distance $\tfrac12\sum_c|h_c - \tfrac1{10}|$ to uniform;
    * ``frechet``: Fréchet distance between classifier features of samples and of the train
      images, beside ``frechet_test``, the same between test and train images;
    * ``nn_ratio``: median nearest-neighbour distance (pixel space) of samples to the training
      set over that of held-out test images; below 1 means samples sit closer to training images
      than fresh data does (memorisation; issue #7 targets >= 0.9).

    Args:
        samples: generated images, shape ``(n, 1, 8, 8)`` in ``[-1, 1]``.
        classifier: a trained `DigitsClassifier`, e.g. ``sdeml.train.digits_classifier()``
            (the same network for every run, so scores compare).

    Returns:
        A dict of floats (and the histogram as a list).

    Examples:
        With ``clf = sdeml.train.digits_classifier()`` (trained, cached) real test images score
        a confidence of about 0.97. An untrained classifier shows the keys and the sanity checks
        (test images scored as samples: the Fréchet distance equals the floor, the ratio is 1):

        >>> from sdeml.metrics import DigitsClassifier, digits_scores
        >>> clf = DigitsClassifier(key=jr.key(0))
        >>> s = digits_scores(sdeml.data.load_digits().x_test, clf)
        >>> sorted(s)
        ['class_hist', 'class_tv', 'confidence', 'frechet', 'frechet_test', 'nn_ratio']
        >>> s["nn_ratio"], s["frechet"] == s["frechet_test"], len(s["class_hist"])
        (1.0, True, 10)

    References:
        Heusel et al., NeurIPS 2017 (Fréchet distance). Issue #7 (the nearest-neighbour ratio).
    """
    x = jnp.asarray(samples)
    if x.ndim != 4 or x.shape[1:] != (1, 8, 8):
        raise ValueError(f"`samples` must have shape (n, 1, 8, 8), got {x.shape}")
    if not isinstance(classifier, DigitsClassifier):
        raise TypeError(
            "`classifier` must be a trained DigitsClassifier (sdeml.train.digits_classifier())"
        )
    clf = classifier
    d = load_digits()
    probs = jax.nn.softmax(jax.vmap(clf.logits)(x), axis=-1)
    pred = jnp.argmax(probs, axis=-1)
    hist = np.bincount(np.asarray(pred), minlength=10) / x.shape[0]
    f_s = np.asarray(jax.vmap(clf.features)(x))
    f_tr = np.asarray(jax.vmap(clf.features)(d.x_train))
    f_te = np.asarray(jax.vmap(clf.features)(d.x_test))
    nn_s = nearest_neighbour_distances(x, d.x_train)
    nn_te = nearest_neighbour_distances(d.x_test, d.x_train)
    return {
        "confidence": float(jnp.mean(jnp.max(probs, axis=-1))),
        "class_hist": hist.tolist(),
        "class_tv": float(0.5 * np.sum(np.abs(hist - 0.1))),
        "frechet": frechet_distance(f_s, f_tr),
        "frechet_test": frechet_distance(f_te, f_tr),
        "nn_ratio": float(jnp.median(nn_s) / jnp.median(nn_te)),
    }
