"""A small time-conditioned U-Net for 8x8 single-channel images."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ..core._checks import check_positive_int
from ._mlp import GaussianFourierEmbedding, _in_dtype


def _groups(c: int) -> int:
    for g in (8, 4, 2, 1):
        if c % g == 0:
            return g
    return 1


# Convolutions are written as patch extraction + one matrix product, channels last. XLA's CPU
# backend runs its native convolution's gradients 10-50x slower inside loop bodies (the training
# loop's `fori_loop`; jax-ml/jax#12868) than outside; matrix products have no such cliff, and on
# 8x8 images they are as fast as the native convolution outside loops too.
class _Conv(eqx.Module):
    """A 2-D convolution of one channels-last image ``(H, W, C_in) -> (H', W', C_out)``."""

    weight: Array  # (k, k, C_in, C_out)
    bias: Array  # (C_out,)
    stride: int = eqx.field(static=True)
    padding: int = eqx.field(static=True)

    def __init__(self, c_in, c_out, kernel, stride=1, padding=0, *, key, dtype=None):
        kw, kb = jr.split(key)
        lim = 1.0 / (c_in * kernel * kernel) ** 0.5  # uniform fan-in init, as eqx/torch
        self.weight = jr.uniform(kw, (kernel, kernel, c_in, c_out), dtype, -lim, lim)
        self.bias = jr.uniform(kb, (c_out,), dtype, -lim, lim)
        self.stride, self.padding = stride, padding

    def __call__(self, x):
        k, s, p = self.weight.shape[0], self.stride, self.padding
        h, w, c = x.shape
        xp = jnp.pad(x, ((p, p), (p, p), (0, 0)))
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        cols = [
            xp[i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s]
            for i in range(k)
            for j in range(k)
        ]
        patches = jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]
        return patches @ self.weight.reshape(k * k * c, -1) + self.bias


class _GroupNorm(eqx.Module):
    """Group normalisation of one channels-last image, with a per-channel affine map."""

    weight: Array
    bias: Array
    groups: int = eqx.field(static=True)

    def __init__(self, groups: int, channels: int, dtype=None):
        self.weight = jnp.ones((channels,), dtype)
        self.bias = jnp.zeros((channels,), dtype)
        self.groups = groups

    def __call__(self, x):
        h, w, c = x.shape
        g = x.reshape(h, w, self.groups, c // self.groups)
        mean = jnp.mean(g, axis=(0, 1, 3), keepdims=True)
        var = jnp.var(g, axis=(0, 1, 3), keepdims=True)
        g = (g - mean) * jax.lax.rsqrt(var + 1e-5)
        return g.reshape(h, w, c) * self.weight + self.bias


class _ResBlock(eqx.Module):
    norm1: _GroupNorm
    conv1: _Conv
    temb: eqx.nn.Linear
    norm2: _GroupNorm
    conv2: _Conv
    skip: _Conv | None

    def __init__(self, c_in: int, c_out: int, t_dim: int, *, key, dtype=None):
        k1, k2, k3, k4 = jr.split(key, 4)
        self.norm1 = _GroupNorm(_groups(c_in), c_in, dtype=dtype)
        self.conv1 = _Conv(c_in, c_out, 3, padding=1, key=k1, dtype=dtype)
        self.temb = eqx.nn.Linear(t_dim, c_out, key=k2, dtype=dtype)
        self.norm2 = _GroupNorm(_groups(c_out), c_out, dtype=dtype)
        self.conv2 = _Conv(c_out, c_out, 3, padding=1, key=k3, dtype=dtype)
        self.skip = _Conv(c_in, c_out, 1, key=k4, dtype=dtype) if c_in != c_out else None

    def __call__(self, x, e, dropout, key):
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = h + self.temb(e)
        h = jax.nn.silu(self.norm2(h))
        if key is not None and dropout > 0:
            keep = jr.bernoulli(key, 1 - dropout, h.shape)
            h = jnp.where(keep, h / (1 - dropout), 0.0)
        h = self.conv2(h)
        return h + (self.skip(x) if self.skip is not None else x)


def _up(x):  # nearest-neighbour upsampling by 2, channels last
    return jnp.repeat(jnp.repeat(x, 2, axis=0), 2, axis=1)


class UNet8(eqx.Module):
    r"""A small U-Net $f(t, x)$ for images of shape ``(channels, 8, 8)``.

    Resolutions 8x8 -> 4x4 -> 2x2 and back, residual blocks with GroupNorm and SiLU, the
    time embedding (Gaussian-Fourier features, then an MLP) added inside every block, skip
    connections by concatenation, output of the input's shape:

    $$f(t, x) = \mathrm{Dec}\big(\mathrm{Enc}(x, e(t)), e(t)\big) \in \mathbb R^{C\times8\times8}.$$

    Args:
        channels: image channels $C$.
        width: base number of feature maps (doubled at 4x4 and 2x2).
        embed_dim: size of the time embedding.
        embed_scale: frequency scale of the Fourier features.
        dropout: dropout rate inside the residual blocks (active only when `key` is passed).
        key: PRNG key of the initial weights.

    Returns:
        A module ``f(t, x, *, key=None)`` mapping one image to an array of the same shape.

    Examples:
        >>> net = UNet8(width=32, key=jr.key(0))
        >>> net(0.5, jnp.zeros((1, 8, 8))).shape
        (1, 8, 8)

    References:
        Ronneberger et al., U-Net, MICCAI 2015. Ho et al., DDPM, NeurIPS 2020 (time-conditioned
        residual U-Net).
    """

    embed: GaussianFourierEmbedding
    t_mlp: eqx.nn.MLP
    conv_in: _Conv
    enc0: _ResBlock
    down0: _Conv
    enc1: _ResBlock
    down1: _Conv
    mid0: _ResBlock
    mid1: _ResBlock
    dec1: _ResBlock
    dec0: _ResBlock
    norm_out: _GroupNorm
    conv_out: _Conv
    channels: int = eqx.field(static=True)
    dropout: float = eqx.field(static=True)

    def __init__(
        self,
        channels: int = 1,
        width: int = 32,
        embed_dim: int = 64,
        embed_scale: float = 16.0,
        dropout: float = 0.0,
        *,
        key: PRNGKeyArray,
        dtype=None,
    ):
        # positive ints (channels=True had built a 1-channel net, width=8.0 failed inside JAX)
        channels = check_positive_int("channels", channels)
        width = check_positive_int("width", width)
        embed_dim = check_positive_int("embed_dim", embed_dim)
        if embed_dim % 2:
            raise ValueError(f"`embed_dim` must be a positive even int, got {embed_dim}")
        if isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}")
        ks = jr.split(key, 12)
        c, c2, td = width, 2 * width, 4 * width
        self.embed = GaussianFourierEmbedding(embed_dim, embed_scale, key=ks[0], dtype=dtype)
        self.t_mlp = eqx.nn.MLP(
            embed_dim, td, td, 1, activation=jax.nn.silu, key=ks[1], dtype=dtype
        )
        self.conv_in = _Conv(channels, c, 3, padding=1, key=ks[2], dtype=dtype)
        self.enc0 = _ResBlock(c, c, td, key=ks[3], dtype=dtype)
        self.down0 = _Conv(c, c2, 3, stride=2, padding=1, key=ks[4], dtype=dtype)
        self.enc1 = _ResBlock(c2, c2, td, key=ks[5], dtype=dtype)
        self.down1 = _Conv(c2, c2, 3, stride=2, padding=1, key=ks[6], dtype=dtype)
        self.mid0 = _ResBlock(c2, c2, td, key=ks[7], dtype=dtype)
        self.mid1 = _ResBlock(c2, c2, td, key=ks[8], dtype=dtype)
        self.dec1 = _ResBlock(2 * c2, c2, td, key=ks[9], dtype=dtype)
        self.dec0 = _ResBlock(c2 + c, c, td, key=ks[10], dtype=dtype)
        self.norm_out = _GroupNorm(_groups(c), c, dtype=dtype)
        self.conv_out = _Conv(c, channels, 3, padding=1, key=ks[11], dtype=dtype)
        self.channels = channels
        self.dropout = dropout

    def __call__(
        self,
        t: Real[ArrayLike, ""],
        x: Real[ArrayLike, "..."],  # (c, 8, 8): checked with a clear message
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "c 8 8"]:
        if jnp.shape(x) != (self.channels, 8, 8):
            raise ValueError(
                f"UNet8 expects one image of shape ({self.channels}, 8, 8), got {jnp.shape(x)}; "
                "use jax.vmap for a batch"
            )
        x, out_dtype = _in_dtype(x, self.conv_in.weight.dtype)
        ks = list(jr.split(key, 6)) if key is not None else [None] * 6
        e = self.t_mlp(self.embed(t).astype(x.dtype))
        p = self.dropout
        x = jnp.moveaxis(x, 0, -1)  # (8, 8, c): channels last inside
        h0 = self.enc0(self.conv_in(x), e, p, ks[0])  # (8, 8, c)
        h1 = self.enc1(self.down0(h0), e, p, ks[1])  # (4, 4, 2c)
        h = self.down1(h1)  # (2, 2, 2c)
        h = self.mid1(self.mid0(h, e, p, ks[2]), e, p, ks[3])
        h = self.dec1(jnp.concatenate([_up(h), h1], axis=-1), e, p, ks[4])  # (4, 4, 2c)
        h = self.dec0(jnp.concatenate([_up(h), h0], axis=-1), e, p, ks[5])  # (8, 8, c)
        out = jnp.moveaxis(self.conv_out(jax.nn.silu(self.norm_out(h))), -1, 0)
        return out.astype(out_dtype)
