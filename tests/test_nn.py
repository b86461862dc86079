"""sdeml.nn: shapes, jit/vmap/grad, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

from sdeml import nn


def test_fourier_embedding_is_frozen_and_bounded():
    emb = nn.GaussianFourierEmbedding(16, key=jr.key(0), dtype=jnp.float64)
    e = emb(0.3)
    assert e.shape == (16,)
    # sin^2 + cos^2 = 1 for each frequency
    assert jnp.allclose(e[:8] ** 2 + e[8:] ** 2, 1.0)
    g = eqx.filter_grad(lambda m: jnp.sum(m(0.3)))(emb)
    assert jnp.all(g.W == 0.0)


def test_time_mlp_jit_vmap_grad_against_loop():
    f = nn.TimeMLP(3, width=32, depth=2, key=jr.key(0), dtype=jnp.float64)
    ts = jnp.linspace(0, 1, 5, dtype=jnp.float64)
    xs = jr.normal(jr.key(1), (5, 3), jnp.float64)
    batched = eqx.filter_jit(jax.vmap(f))(ts, xs)
    loop = jnp.stack([f(t, x) for t, x in zip(ts, xs, strict=True)])
    assert jnp.allclose(batched, loop, atol=1e-12)
    g = eqx.filter_grad(lambda m: jnp.sum(jax.vmap(m)(ts, xs) ** 2))(f)
    assert jnp.all(jnp.isfinite(g.out.weight)) and jnp.any(g.out.weight != 0)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        f(0.1, jnp.zeros(4))


def test_time_mlp_dropout_only_with_key():
    f = nn.TimeMLP(2, width=16, depth=2, dropout=0.5, key=jr.key(0))
    x = jnp.ones(2)
    assert jnp.array_equal(f(0.2, x), f(0.2, x))
    assert not jnp.array_equal(f(0.2, x, key=jr.key(1)), f(0.2, x, key=jr.key(2)))


def test_unet8_shapes_and_errors():
    net = nn.UNet8(width=8, key=jr.key(0))
    x = jnp.zeros((3, 1, 8, 8))
    out = jax.vmap(net)(jnp.array([0.1, 0.5, 0.9]), x)
    assert out.shape == (3, 1, 8, 8) and jnp.all(jnp.isfinite(out))
    with pytest.raises(ValueError, match=r"\(1, 8, 8\)"):
        net(0.5, jnp.zeros((8, 8)))
