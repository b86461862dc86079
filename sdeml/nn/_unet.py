"""A small time-conditioned U-Net for 8x8 single-channel images."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._mlp import GaussianFourierEmbedding


def _groups(c: int) -> int:
    for g in (8, 4, 2, 1):
        if c % g == 0:
            return g
    return 1


class _ResBlock(eqx.Module):
    norm1: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv2d
    temb: eqx.nn.Linear
    norm2: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv2d
    skip: eqx.nn.Conv2d | None

    def __init__(self, c_in: int, c_out: int, t_dim: int, *, key, dtype=None):
        k1, k2, k3, k4 = jr.split(key, 4)
        self.norm1 = eqx.nn.GroupNorm(_groups(c_in), c_in, dtype=dtype)
        self.conv1 = eqx.nn.Conv2d(c_in, c_out, 3, padding=1, key=k1, dtype=dtype)
        self.temb = eqx.nn.Linear(t_dim, c_out, key=k2, dtype=dtype)
        self.norm2 = eqx.nn.GroupNorm(_groups(c_out), c_out, dtype=dtype)
        self.conv2 = eqx.nn.Conv2d(c_out, c_out, 3, padding=1, key=k3, dtype=dtype)
        self.skip = eqx.nn.Conv2d(c_in, c_out, 1, key=k4, dtype=dtype) if c_in != c_out else None

    def __call__(self, x, e, dropout, key):
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = h + self.temb(e)[:, None, None]
        h = jax.nn.silu(self.norm2(h))
        if key is not None and dropout > 0:
            keep = jr.bernoulli(key, 1 - dropout, h.shape)
            h = jnp.where(keep, h / (1 - dropout), 0.0)
        h = self.conv2(h)
        return h + (self.skip(x) if self.skip is not None else x)


def _up(x):  # nearest-neighbour upsampling by 2, channels first
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


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

    Example:
        >>> net = UNet8(width=32, key=jr.key(0))
        >>> net(0.5, jnp.zeros((1, 8, 8))).shape
        (1, 8, 8)

    References:
        Ronneberger et al., U-Net, MICCAI 2015. Ho et al., DDPM, NeurIPS 2020 (time-conditioned
        residual U-Net).
    """

    embed: GaussianFourierEmbedding
    t_mlp: eqx.nn.MLP
    conv_in: eqx.nn.Conv2d
    enc0: _ResBlock
    down0: eqx.nn.Conv2d
    enc1: _ResBlock
    down1: eqx.nn.Conv2d
    mid0: _ResBlock
    mid1: _ResBlock
    dec1: _ResBlock
    dec0: _ResBlock
    norm_out: eqx.nn.GroupNorm
    conv_out: eqx.nn.Conv2d
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
        if channels <= 0 or width <= 0:
            raise ValueError(f"`channels` and `width` must be positive, got {channels}, {width}")
        if not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout}")
        ks = jr.split(key, 12)
        c, c2, td = width, 2 * width, 4 * width
        self.embed = GaussianFourierEmbedding(embed_dim, embed_scale, key=ks[0], dtype=dtype)
        self.t_mlp = eqx.nn.MLP(
            embed_dim, td, td, 1, activation=jax.nn.silu, key=ks[1], dtype=dtype
        )
        self.conv_in = eqx.nn.Conv2d(channels, c, 3, padding=1, key=ks[2], dtype=dtype)
        self.enc0 = _ResBlock(c, c, td, key=ks[3], dtype=dtype)
        self.down0 = eqx.nn.Conv2d(c, c2, 3, stride=2, padding=1, key=ks[4], dtype=dtype)
        self.enc1 = _ResBlock(c2, c2, td, key=ks[5], dtype=dtype)
        self.down1 = eqx.nn.Conv2d(c2, c2, 3, stride=2, padding=1, key=ks[6], dtype=dtype)
        self.mid0 = _ResBlock(c2, c2, td, key=ks[7], dtype=dtype)
        self.mid1 = _ResBlock(c2, c2, td, key=ks[8], dtype=dtype)
        self.dec1 = _ResBlock(2 * c2, c2, td, key=ks[9], dtype=dtype)
        self.dec0 = _ResBlock(c2 + c, c, td, key=ks[10], dtype=dtype)
        self.norm_out = eqx.nn.GroupNorm(_groups(c), c, dtype=dtype)
        self.conv_out = eqx.nn.Conv2d(c, channels, 3, padding=1, key=ks[11], dtype=dtype)
        self.channels = channels
        self.dropout = dropout

    def __call__(
        self,
        t: Float[ArrayLike, ""],
        x: Float[Array, "c 8 8"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "c 8 8"]:
        if jnp.shape(x) != (self.channels, 8, 8):
            raise ValueError(
                f"UNet8 expects one image of shape ({self.channels}, 8, 8), got {jnp.shape(x)}; "
                "use jax.vmap for a batch"
            )
        ks = list(jr.split(key, 6)) if key is not None else [None] * 6
        e = self.t_mlp(self.embed(t).astype(x.dtype))
        p = self.dropout
        h0 = self.enc0(self.conv_in(x), e, p, ks[0])  # (c, 8, 8)
        h1 = self.enc1(self.down0(h0), e, p, ks[1])  # (2c, 4, 4)
        h = self.down1(h1)  # (2c, 2, 2)
        h = self.mid1(self.mid0(h, e, p, ks[2]), e, p, ks[3])
        h = self.dec1(jnp.concatenate([_up(h), h1]), e, p, ks[4])  # (2c, 4, 4)
        h = self.dec0(jnp.concatenate([_up(h), h0]), e, p, ks[5])  # (c, 8, 8)
        return self.conv_out(jax.nn.silu(self.norm_out(h)))
