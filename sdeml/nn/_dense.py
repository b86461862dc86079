r"""Affine maps with thin products kept out of XLA:CPU's matrix-product library.

A product with an inner or outer size of one or two (the first and last layers of a network on
2-D states, the input and output layers of a PINN) costs XLA:CPU more as a library product than
its arithmetic: each becomes a YNNPACK fusion whose kernel is built on the program's first run
and handed to the thread pool on every call. `affine` writes such a product another way:

- inner size <= `THIN`: a few broadcast multiply-adds, which fuse with the activation and with
  the Runge-Kutta stage arithmetic around them;
- outer size <= `THIN`: one matrix-vector product per output (XLA emits these itself).

Measured on a 2-core AMD EPYC (benchmarks/RESULTS.md, 2026-12-07, later), against plain
products: the spiral demo's loss gradient 9-20 % faster and its first-run one-off 40-60 ms ->
2 ms; the 2-D CNF's gradient (batch 256) 23 % faster. A threshold of 4 was slower for a 3-D
field at batch 256 (+21 %) and at batch 20 (+4 %), and writing a thin outer product as a sum of
elementwise products was twice as slow for the CNF, so neither is used.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

# The largest inner or outer size written another way (see the module docstring).
THIN = 2


def affine(x: Array, weight: Array, bias: Array | None = None) -> Array:
    r"""$x W^\top + b$ over the last axis of `x` (any leading batch axes).

    Equal to ``x @ weight.T + bias`` up to the order of summation. When the inner size (columns
    of `weight`) is at most `THIN`, the product is written as broadcast multiplies and adds;
    when the outer size (rows) is, as one matrix-vector product per output.

    Args:
        x: shape ``(..., k)``.
        weight: shape ``(m, k)`` (equinox's ``Linear.weight`` layout).
        bias: shape ``(m,)``, or None.

    Returns:
        Shape ``(..., m)``.

    Examples:
        >>> from sdeml.nn import affine
        >>> w = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        >>> affine(jnp.array([1.0, -1.0]), w, jnp.array([0.5, 0.0, 0.0])).tolist()
        [-0.5, -1.0, -1.0]
    """
    m, k = weight.shape
    if x.shape[-1] != k:
        raise ValueError(f"affine: x has {x.shape[-1]} features, the weight takes {k}")
    if k <= THIN:
        y = x[..., 0:1] * weight[:, 0]
        for j in range(1, k):
            y = y + x[..., j : j + 1] * weight[:, j]
    elif m <= THIN:
        y = jnp.stack([x @ weight[j] for j in range(m)], axis=-1)
    else:
        y = x @ weight.T
    return y if bias is None else y + bias


def linear(layer: eqx.nn.Linear, x: Array) -> Array:
    """``layer(x)`` for one input, through `affine` (``"scalar"`` sizes as equinox reads them)."""
    if layer.in_features == "scalar":
        x = jnp.reshape(x, (1,))
    y = affine(x, layer.weight, layer.bias)
    return jnp.reshape(y, ()) if layer.out_features == "scalar" else y


def mlp(net: eqx.nn.MLP, x: Array) -> Array:
    """``net(x)`` for one input, each layer through `linear` (the same parameters and result).

    Examples:
        >>> from sdeml.nn import mlp
        >>> net = eqx.nn.MLP(2, 3, 16, 2, key=jr.key(0))
        >>> x = jnp.array([0.3, -0.7])
        >>> bool(jnp.allclose(mlp(net, x), net(x), atol=1e-6))
        True
    """
    if getattr(net, "scan", False):  # equinox's stacked-layer form: its own call
        return net(x)
    layers = net.layers
    if net.depth == 0:  # equinox applies no final activation at depth 0
        return linear(layers[0], x)
    for i, layer in enumerate(layers[:-1]):
        x = _act(net.activation, i)(linear(layer, x))
    x = linear(layers[-1], x)
    fa: Callable = net.final_activation
    return fa(x) if net.out_size == "scalar" else _elementwise(fa, x)


def _act(activation, i: int) -> Callable:
    # equinox allows a per-layer activation pytree; the common case is one function
    picked = jax.tree.map(lambda a: a[i] if eqx.is_array(a) else a, activation)
    return lambda h: _elementwise(picked, h)


def _elementwise(fn: Callable, h: Array) -> Array:
    # equinox applies activations per element through vmap; for plain jnp functions that is
    # the same as applying them to the vector
    return jax.vmap(fn)(h) if h.ndim == 1 else fn(h)
