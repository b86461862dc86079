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


@pytest.mark.slow  # 7 s: moved from the default run (12-07, later: default run < 10 min)
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


def test_time_mlp_matches_its_formula():
    # h_0 = [x, e(t)], h_1 = SiLU(A_0 h_0 + b_0), h_{l+1} = SiLU(A_l h_l + b_l + C_l e(t)),
    # f = A_L h_L + b_L, written out with the concatenation (the module splits A_0 instead)
    with jax.enable_x64(True):
        f = nn.TimeMLP(3, width=16, depth=3, key=jr.key(2), dtype=jnp.float64)
        t, x = jnp.float64(0.37), jr.normal(jr.key(3), (3,), jnp.float64)
        e = f.embed(t)
        h = jnp.concatenate([x, e])
        for i, lin in enumerate(f.layers):
            assert lin.bias is not None
            pre = lin.weight @ h + lin.bias
            h = jax.nn.silu(pre + (f.time_proj[i].weight @ e if i else 0.0))
        assert f.out.bias is not None
        ref = f.out.weight @ h + f.out.bias
        assert jnp.allclose(f(t, x), ref, rtol=1e-13, atol=1e-13)


def test_time_mlp_dropout_only_with_key():
    f = nn.TimeMLP(2, width=16, depth=2, dropout=0.5, key=jr.key(0))
    x = jnp.ones(2)
    assert jnp.array_equal(f(0.2, x), f(0.2, x))
    assert not jnp.array_equal(f(0.2, x, key=jr.key(1)), f(0.2, x, key=jr.key(2)))


@pytest.mark.slow  # over 10 s; CI runs it after the default suite
def test_unet8_shapes_and_errors():
    net = nn.UNet8(width=8, key=jr.key(0))
    x = jnp.zeros((3, 1, 8, 8))
    out = jax.vmap(net)(jnp.array([0.1, 0.5, 0.9]), x)
    assert out.shape == (3, 1, 8, 8) and jnp.all(jnp.isfinite(out))
    with pytest.raises(ValueError, match=r"\(1, 8, 8\)"):
        net(0.5, jnp.zeros((8, 8)))


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_unet8_convolution_and_group_norm_match_references():
    from sdeml.nn._unet import _Conv, _GroupNorm

    x = jr.normal(jr.key(1), (8, 8, 6))
    for stride, pad, k in [(1, 1, 3), (2, 1, 3), (1, 0, 1)]:
        conv = _Conv(6, 5, k, stride, pad, key=jr.key(2))
        ref = (
            jax.lax.conv_general_dilated(
                x[None],
                conv.weight,
                (stride, stride),
                ((pad, pad), (pad, pad)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )[0]
            + conv.bias
        )
        assert conv(x).shape == ref.shape
        assert jnp.allclose(conv(x), ref, atol=1e-5)
    gn = _GroupNorm(2, 6)
    g = x.reshape(8, 8, 2, 3)
    ref = (g - g.mean((0, 1, 3), keepdims=True)) / jnp.sqrt(g.var((0, 1, 3), keepdims=True) + 1e-5)
    assert jnp.allclose(gn(x), ref.reshape(8, 8, 6), atol=1e-5)
    # each group is normalised: mean 0, variance 1 over its channels and pixels
    out = gn(x).reshape(64, 2, 3)
    assert jnp.allclose(out.mean((0, 2)), 0.0, atol=1e-5)
    assert jnp.allclose(out.var((0, 2)), 1.0, atol=1e-3)
