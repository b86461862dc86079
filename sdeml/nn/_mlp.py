"""Time-conditioned MLP with a Gaussian-Fourier time embedding."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ..core._checks import as_float, check_positive, check_positive_int
from ..core._normals import standard_normal


def _in_dtype(x: ArrayLike, params_dtype: jnp.dtype) -> tuple[Array, jnp.dtype]:
    """`x` in the parameters' dtype, and the dtype to return: `x`'s own if floating, else the
    parameters'. An integer `x` had cast the time embedding to integers (or failed), and a
    float32 `x` against float64 parameters failed under strict promotion; the network computes
    in its parameters' precision and a float32 state stays float32."""
    x = jnp.asarray(x)
    out = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else params_dtype
    return as_float(x).astype(params_dtype), out


class GaussianFourierEmbedding(eqx.Module):
    r"""Random Fourier features of a scalar time, with frozen frequencies.

    $$e(t) = \big[\sin(2\pi W t),\ \cos(2\pi W t)\big],\qquad W_j \sim \mathcal N(0, s^2).$$

    Args:
        dim: output size (even).
        scale: $s$, the frequency scale (large $s$ resolves fast changes in $t$).
        key: PRNG key of $W$ (frozen: gradients do not flow into it).

    Returns:
        A module mapping a scalar $t$ to shape ``(dim,)``.

    Examples:
        >>> emb = GaussianFourierEmbedding(32, key=jr.key(0)); emb(0.5).shape
        (32,)

    References:
        Tancik et al., Fourier Features Let Networks Learn High Frequency Functions, NeurIPS 2020.
        Song et al., Score-Based Generative Modeling through SDEs, ICLR 2021 (time embedding).
    """

    W: Float[Array, " half"]

    def __init__(self, dim: int, scale: float = 16.0, *, key: PRNGKeyArray, dtype=None):
        # ints only (4.0 had failed inside JAX, True read as 1), and a finite scale > 0 (NaN
        # gave NaN features, 0 a constant embedding)
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim <= 0 or dim % 2:
            raise ValueError(f"`dim` must be a positive even int, got {dim!r}")
        check_positive("scale", scale)
        w = standard_normal(key, (int(dim) // 2,), dtype)
        self.W = jnp.asarray(scale, w.dtype) * w

    def __call__(self, t: Real[ArrayLike, ""]) -> Float[Array, " dim"]:
        t = jnp.asarray(t, self.W.dtype)
        if t.ndim != 0:
            raise ValueError(f"`t` must be a scalar, got shape {t.shape}; use jax.vmap to batch")
        proj = 2 * math.pi * jax.lax.stop_gradient(self.W) * t
        return jnp.concatenate([jnp.sin(proj), jnp.cos(proj)])


class TimeMLP(eqx.Module):
    r"""An MLP of $(t, x)$ for vector fields and scores on low-dimensional data.

    $$h_0 = [x, e(t)],\quad h_{l+1} = \mathrm{SiLU}(A_l h_l + b_l + C_l e(t)),\quad
    f(t, x) = A_L h_L + b_L,$$

    with $e$ a `GaussianFourierEmbedding`; the embedding is fed to every hidden layer.

    Args:
        in_dim: dimension $d$ of $x$ (output has the same size unless `out_dim` is given).
        width: hidden width.
        depth: number of hidden layers (>= 1).
        embed_dim: size of the time embedding.
        embed_scale: frequency scale of the embedding.
        out_dim: output size (default `in_dim`).
        dropout: dropout rate on hidden layers (active only when a `key` is passed to the call).
        key: PRNG key of the initial weights.

    Returns:
        A module ``f(t, x, *, key=None) -> (out_dim,)`` for one sample; vmap over a batch.

    Examples:
        >>> f = TimeMLP(2, width=128, depth=3, key=jr.key(0))
        >>> f(0.3, jnp.zeros(2)).shape
        (2,)

    References:
        Song et al., ICLR 2021; Lipman et al., Flow Matching for Generative Modeling, ICLR 2023.
    """

    embed: GaussianFourierEmbedding
    layers: tuple[eqx.nn.Linear, ...]
    time_proj: tuple[eqx.nn.Linear, ...]
    out: eqx.nn.Linear
    in_dim: int = eqx.field(static=True)
    dropout: float = eqx.field(static=True)

    def __init__(
        self,
        in_dim: int,
        width: int = 256,
        depth: int = 3,
        embed_dim: int = 32,
        embed_scale: float = 16.0,
        out_dim: int | None = None,
        dropout: float = 0.0,
        *,
        key: PRNGKeyArray,
        dtype=None,
    ):
        # positive ints (a bool read as 1; out_dim=0 had silently become in_dim)
        in_dim, width = check_positive_int("in_dim", in_dim), check_positive_int("width", width)
        depth = check_positive_int("depth", depth)
        embed_dim = check_positive_int("embed_dim", embed_dim)
        if embed_dim % 2:
            raise ValueError(f"`embed_dim` must be a positive even int, got {embed_dim}")
        out_dim = in_dim if out_dim is None else check_positive_int("out_dim", out_dim)
        if isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}")
        keys = jr.split(key, 2 * depth + 2)
        self.embed = GaussianFourierEmbedding(embed_dim, embed_scale, key=keys[0], dtype=dtype)
        dims = [in_dim + embed_dim] + [width] * depth
        self.layers = tuple(
            eqx.nn.Linear(dims[i], dims[i + 1], key=keys[1 + i], dtype=dtype) for i in range(depth)
        )
        self.time_proj = tuple(
            eqx.nn.Linear(embed_dim, width, use_bias=False, key=keys[1 + depth + i], dtype=dtype)
            for i in range(depth)
        )
        self.out = eqx.nn.Linear(width, out_dim, key=keys[-1], dtype=dtype)
        self.in_dim = in_dim
        self.dropout = dropout

    def __call__(
        self, t: Real[ArrayLike, ""], x: Real[ArrayLike, " d"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, " out"]:
        if jnp.shape(x) != (self.in_dim,):
            raise ValueError(
                f"TimeMLP expects x of shape ({self.in_dim},), got {jnp.shape(x)}; use jax.vmap "
                "for a batch"
            )
        x, out_dtype = _in_dtype(x, self.out.weight.dtype)
        e = self.embed(t).astype(x.dtype)
        keys = jr.split(key, len(self.layers)) if key is not None and self.dropout else None
        h = x
        for i, (lin, tp) in enumerate(zip(self.layers, self.time_proj, strict=True)):
            if i == 0:
                # A_0 [x, e] as A_x x + A_e e: under vmap over samples at one time the e part is
                # computed once for the batch instead of once per sample (the same parameters)
                w = lin.weight
                assert lin.bias is not None  # built with use_bias=True
                pre = w[:, : self.in_dim] @ x + (w[:, self.in_dim :] @ e + lin.bias)
            else:
                pre = lin(h) + tp(e)
            h = jax.nn.silu(pre)
            if keys is not None:
                keep = jr.bernoulli(keys[i], 1 - self.dropout, h.shape)
                h = jnp.where(keep, h / (1 - self.dropout), 0.0)
        return self.out(h).astype(out_dtype)
