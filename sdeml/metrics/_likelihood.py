"""Negative log-likelihood and bits-per-dimension conversions."""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ..core._checks import as_float, check_int, check_positive, check_positive_int


def bits_per_dim(
    nll_nats: ArrayLike,
    dim: int,
    *,
    n_levels: int | None = None,
    data_range: float | int = 1.0,
) -> Float[Array, "..."]:
    r"""Bits per dimension from a negative log-density in nats.

    Continuous data (``n_levels=None``): $\text{bpd} = \mathrm{NLL}/(d\ln 2)$.

    Discrete data with uniform dequantisation: the data take `n_levels` equally spaced values over
    an interval of width `data_range` in the model's coordinates, i.e. a bin of width
    $\Delta = \text{data\_range}/\text{n\_levels}$, and the model density is evaluated at the
    dequantised point $x + u\Delta$, $u\sim U[0,1)^d$. Then $-\log_2 P(\text{bin}) \le
    -\log_2 p(x) - d\log_2\Delta$ (Jensen), so

    $$\text{bpd} = \frac{\mathrm{NLL}}{d\ln 2} - \log_2\Delta.$$

    For 8-bit images scaled to $[0,1]$: ``n_levels=256, data_range=1``; to $[-1,1]$:
    ``data_range=2``. For the 8x8 digits of `sdeml.data.load_digits` (17 levels
    $2k/16-1$, bin width $2/16$): ``n_levels=17, data_range=2 * 17 / 16``.

    Args:
        nll_nats: $-\log p(x)$ in nats (any shape).
        dim: $d$, the number of dimensions of one sample.
        n_levels: number of discrete levels per dimension, or None for continuous data.
        data_range: width of the interval the `n_levels` bins tile, in model coordinates.

    Returns:
        Bits per dimension, same shape as `nll_nats`.

    Examples:
        >>> import math
        >>> from sdeml.metrics import bits_per_dim
        >>> float(bits_per_dim(64 * math.log(2), 64))  # continuous: NLL / (d ln 2)
        1.0
        >>> # digits: the bin is 2 / 16 wide, so log2(bin) = -3 bits are added
        >>> round(float(bits_per_dim(100.0, 64, n_levels=17, data_range=2 * 17 / 16)), 4)
        5.2542

    References:
        Theis, van den Oord & Bethge, A note on the evaluation of generative models, ICLR 2016.
        Ho et al., Flow++, ICML 2019 (dequantisation).
    """
    dim = check_positive_int("dim", dim)
    bpd = as_float(nll_nats) / (dim * math.log(2.0))  # an integer NLL: the default float
    if n_levels is not None:
        n_levels = check_int("n_levels", n_levels, 2)
        check_positive("data_range", data_range)
        bpd = bpd - math.log2(float(data_range) / n_levels)
    return bpd


def gaussian_nll(x: ArrayLike, mean: ArrayLike = 0.0, std: ArrayLike = 1.0) -> Float[Array, ""]:
    r"""$-\log\mathcal N(x; \mu, \sigma^2 I)$ summed over all entries of one sample `x`, in nats.

    $$\tfrac12\sum_i \big((x_i-\mu_i)/\sigma_i\big)^2 + \sum_i\log\sigma_i + \tfrac d2\log 2\pi.$$

    Args:
        x: one sample, any shape (``(d,)``, ``(1, 8, 8)``, ...); $d$ is its size.
        mean: $\mu$, broadcastable to `x`.
        std: $\sigma > 0$, broadcastable to `x`.

    Returns:
        The negative log-density in nats, a scalar.

    Examples:
        >>> from sdeml.metrics import gaussian_nll
        >>> round(float(gaussian_nll(jnp.zeros(2))), 6)  # log(2 pi)
        1.837877
        >>> x = jnp.array([0.5, -1.0, 2.0])
        >>> expected = -jax.scipy.stats.norm.logpdf(x, 1.0, 2.0).sum()
        >>> bool(jnp.allclose(gaussian_nll(x, 1.0, 2.0), expected))
        True
    """
    x = jnp.asarray(x)
    x = as_float(x)  # integer data: in its own dtype, std 2.5 -> 2
    for name, v in (("mean", mean), ("std", std)):
        shape = jnp.shape(v)
        try:
            fits = jnp.broadcast_shapes(shape, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:  # a larger mean summed the density of several samples, silently
            raise ValueError(
                f"`{name}` must broadcast to the sample's shape {x.shape}, got shape {shape}; "
                "for a batch of samples, jax.vmap over them"
            )
    check_positive("std", std)
    mean = jnp.asarray(mean, x.dtype)
    std_b = jnp.broadcast_to(jnp.asarray(std, x.dtype), x.shape)
    z = (x - mean) / std_b
    return 0.5 * jnp.sum(z**2) + jnp.sum(jnp.log(std_b)) + 0.5 * x.size * math.log(2 * math.pi)
