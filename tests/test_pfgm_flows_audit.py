"""Regression tests of the PFGM, flows and nn audit: wrong numbers and argument checks, each
against a reference computed here (closed forms, SciPy/NumPy in float64)."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest
from scipy import linalg, stats

from sdeml import flows, nn, pfgm


@pytest.fixture
def no_jaxtyping(monkeypatch):
    """The functions' own checks, not the annotation checks of the test hook that run first."""
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)


# ------------------------------------------------------------------------------------ PFGM++


def test_kernel_log_prob_of_integer_and_mixed_dtype_points():
    # integer points cast sigma = 0.5 to the integer 0: a NaN log-density
    x, y = np.array([1, 0, 2]), np.array([0, 0, 1])
    for D in (0.5, 4.0, 128.0):
        ref = stats.multivariate_t(loc=y, shape=0.25 * np.eye(3), df=D).logpdf(x)
        k = pfgm.PFGMPPKernel(D)
        assert float(k.log_prob(jnp.array(x), jnp.array(y), 0.5)) == pytest.approx(ref, rel=1e-12)
        mixed = k.log_prob(jnp.array(x, jnp.float64), jnp.array(y), 0.5)
        assert float(mixed) == pytest.approx(ref, rel=1e-12)
    ref = stats.multivariate_normal(y, 0.25 * np.eye(3)).logpdf(x)
    got = pfgm.PFGMPPKernel(math.inf).log_prob(jnp.array(x), jnp.array(y), 0.5)
    assert float(got) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("D", [0.5, 4.0, 1e9, math.inf])
def test_radius_sq_cdf_at_non_positive_and_nan_z(D):
    # negative z gave NaN (incomplete beta/gamma outside [0, 1]) and NaN z read as 0
    z = jnp.array([-jnp.inf, -1.0, 0.0, 2.0, jnp.inf, jnp.nan])
    got = np.asarray(pfgm.PFGMPPKernel(D).radius_sq_cdf(z, 3))
    ref_2 = stats.chi2.cdf(2.0, 3) if math.isinf(D) else stats.f.cdf(2.0 / 3, 3, D)
    np.testing.assert_allclose(got[:5], [0.0, 0.0, 0.0, ref_2, 1.0], rtol=1e-9, atol=1e-12)
    assert np.isnan(got[5])


def test_kernel_noise_at_small_D_stays_finite_in_float32():
    # Gamma(D/2) draws underflowed to 0 in float32 (1.3 % at D = 0.1): inf/NaN noise. In log
    # space only the draws beyond float32's range (|x - y| > 3e38, about 1e-4 here) are inf.
    n, N, D, sigma = 50_000, 3, 0.1, 0.5
    with jax.enable_x64(False):
        noise = pfgm.PFGMPPKernel(D).noise(jr.key(0), jnp.full((n,), sigma), (n, N))
        assert noise.dtype == jnp.float32
    noise = np.asarray(noise, np.float64)
    finite = np.all(np.isfinite(noise), axis=1)
    assert np.mean(~finite) < 1e-3
    # R^2 / (N sigma^2) ~ F(N, D), the inf draws in the far tail where they belong
    r2 = np.where(finite, np.sum(noise**2, axis=1), np.inf) / (N * sigma**2)
    assert stats.kstest(r2, stats.f(N, D).cdf).statistic < 0.01


def test_ideal_denoiser_of_integer_data_and_points():
    data = np.array([[0, 0], [2, 0], [0, 4]])

    def ref(x, sigma, D):
        d2 = np.sum((data - x) ** 2, axis=1)
        logw = -0.5 * (x.size + D) * np.log1p(d2 / (sigma**2 * D))
        w = np.exp(logw - logw.max())
        return w @ data / w.sum()

    den = pfgm.IdealDenoiser(jnp.array(data), 8.0)
    for x in (np.array([1, 1]), np.array([1.0, 0.5])):
        np.testing.assert_allclose(den(0.5, jnp.array(x)), ref(x, 0.5, 8.0), rtol=1e-12)
    # a float32 state against float64 data: float32 out (a sampler's state keeps its dtype)
    out = den(0.5, jnp.array([1.0, 0.5], jnp.float32))
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref(np.array([1.0, 0.5]), 0.5, 8.0), rtol=1e-6)


def test_check_D_accepts_concrete_scalars_and_refuses_bools():
    assert pfgm.check_D(jnp.array(4.0)) == 4.0
    assert pfgm.PFGMPPKernel(np.float32(2.5)).D == 2.5
    for bad in (True, np.bool_(True), jnp.array(True), 0, -1.0, float("nan"), "4"):
        with pytest.raises(ValueError, match="`D`"):
            pfgm.check_D(bad)


def test_kernel_size_and_scale_arguments(no_jaxtyping):
    k = pfgm.PFGMPPKernel(4.0)
    for kwargs, name in [
        ({"n": -1}, "n"),
        ({"n": True}, "n"),
        ({"n": 2.5}, "n"),
        ({"sigma": -1.0}, "sigma"),
    ]:
        args = {"n": 3, "N": 2, "sigma": 0.5} | kwargs
        with pytest.raises(ValueError, match=f"`{name}`"):
            k.sample_radius_sq(**args, key=jr.key(0))
    for shape, sigma_max, name in [
        ((3, 2), -1.0, "sigma_max"),
        ((3, 2), 0.0, "sigma_max"),
        ((-3, 2), 1.0, "shape"),
        ((), 1.0, "shape"),
    ]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            k.prior(shape, sigma_max, key=jr.key(0))
    with pytest.raises(ValueError, match="`max_radius`"):
        pfgm.clip_norm(jnp.ones((2, 2)), True)  # read as a radius of 1


def test_clip_norm_of_integer_samples_and_a_numpy_radius():
    x = jnp.array([[3, 4], [0, 1]])
    np.testing.assert_allclose(pfgm.clip_norm(x, 2.0), [[1.2, 1.6], [0.0, 1.0]], rtol=1e-15)
    # a NumPy float32 radius (and z_max) failed against float64 samples
    got = pfgm.clip_norm(jnp.array([[3.0, 4.0]]), np.float32(1.0))
    np.testing.assert_allclose(got, [[0.6, 0.8]], rtol=1e-7)


# -------------------------------------------------------------------------------- PFGM (D = 1)


def _direct_field(data, x, z):
    xt = np.append(x, z).astype(np.float64)
    d = xt - np.concatenate([data, np.zeros((len(data), 1))], axis=1)
    return np.mean(d / np.linalg.norm(d, axis=1, keepdims=True) ** (len(x) + 1), axis=0)


def test_poisson_field_of_integer_charges_and_points():
    data, x, z = np.array([[0, 0], [2, 0], [0, 4]]), np.array([1, 2]), 1
    ex, ez, log_c = pfgm.poisson_field(jnp.array(data), jnp.array(x), jnp.array(z))
    got = np.exp(float(log_c)) * np.append(np.asarray(ex), float(ez))
    np.testing.assert_allclose(got, _direct_field(data, x, z), rtol=1e-12)
    e = _direct_field(data, x, z)
    np.testing.assert_allclose(
        pfgm.normalised_field(jnp.array(data), jnp.array(x), 1),
        -math.sqrt(2) * e / np.linalg.norm(e),
        rtol=1e-12,
    )


def _one_charge_field(z, x):
    return pfgm.normalised_field(jnp.zeros((1, 2)), x, z)


# one charge at the origin: the field lines are rays, x(z) = x_T z / z_max
X_T = np.array([[3, -1], [1, 2]])
RAYS = dict(z_max=10.0, z_min=1e-2, rtol=1e-8, atol=1e-10, key=jr.key(0))


def test_pfgm_sampler_from_an_integer_start_follows_the_rays_of_one_charge():
    # an integer start was refused as an integer ODE state
    res = pfgm.pfgm_sampler(_one_charge_field, (2, 2), x_T=jnp.array(X_T), **RAYS)
    np.testing.assert_allclose(res.x, X_T * 1e-2 / 10.0, rtol=1e-6)


def test_pfgm_sampler_keeps_a_float32_state_under_x64():
    # the float64 z (and the float64 field of float64 charges) failed against a float32 state
    res = pfgm.pfgm_sampler(_one_charge_field, (2, 2), x_T=jnp.array(X_T, jnp.float32), **RAYS)
    assert res.x.dtype == jnp.float32
    np.testing.assert_allclose(res.x, X_T * 1e-2 / 10.0, rtol=1e-4)


def test_pfgm_sampler_interval_checks(no_jaxtyping):
    for kwargs, name in [
        ({"z_min": True}, "z_min"),  # read as 1
        ({"z_max": math.inf}, "z_max"),
        ({"z_min": 0.0}, "z_min"),
        ({"z_min": 50.0}, "z_max"),
    ]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            pfgm.pfgm_sampler(_one_charge_field, (2, 2), **kwargs, key=jr.key(0))


# ------------------------------------------------------------------------------------- CNF

A = np.array([[0.3, -1.0, 0.2], [0.5, -0.2, 0.1], [0.0, 0.4, 0.1]])


def _linear_logp(x):
    """log p_1(x) of dz/dt = A z from N(0, I): log N(e^{-A} x) - tr A."""
    return stats.multivariate_normal(np.zeros(3)).logpdf(linalg.expm(-A) @ x) - np.trace(A)


def _linear_cnf():
    a = jnp.array(A)
    return flows.CNF(lambda t, z, args: a @ z, rtol=1e-10, atol=1e-10)


# integer points were refused ("must be floating") while cnf_loss read them as floats
def test_cnf_log_prob_of_an_integer_point():
    x = np.array([1, 0, -2])
    assert float(_linear_cnf().log_prob(jnp.array(x))) == pytest.approx(_linear_logp(x), abs=1e-8)


def test_cnf_batch_log_prob_of_integer_points():
    xb = np.array([[1, 0, -2], [0, 1, 1]])
    out = _linear_cnf().batch_log_prob_and_stats(jnp.array(xb))
    np.testing.assert_allclose(out.log_prob, [_linear_logp(v) for v in xb], atol=1e-8)


def test_cnf_transform_of_an_integer_base_point():
    z0 = np.array([1, -1, 0])
    x1, lp = _linear_cnf().transform(jnp.array(z0))
    np.testing.assert_allclose(x1, linalg.expm(A) @ z0, atol=1e-8)
    assert float(lp) == pytest.approx(_linear_logp(linalg.expm(A) @ z0), abs=1e-8)


def test_standard_normal_logp_of_a_batch_and_integers():
    # a batch (b, d) summed all squares into one number with d read as b
    z = np.array([[0.3, -1.2, 0.5], [1.0, 0.0, 2.0]])
    got = flows.standard_normal_logp(jnp.array(z))
    np.testing.assert_allclose(got, stats.norm.logpdf(z).sum(axis=1), rtol=1e-14)
    got = flows.standard_normal_logp(jnp.array([1, 0]))
    assert float(got) == pytest.approx(stats.norm.logpdf([1.0, 0.0]).sum(), rel=1e-14)


def test_cnf_flag_and_batch_checks(no_jaxtyping):
    cnf = flows.CNF(lambda t, z, args: -z)
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match="`joint`"):
        flows.cnf_loss(cnf, x, joint=1)
    with pytest.raises(ValueError, match="`jacobian_norm`"):
        cnf.log_prob_and_stats(x[0], jacobian_norm=0)
    with pytest.raises(ValueError, match="b >= 1"):
        cnf.batch_log_prob_and_stats(jnp.zeros((0, 3)))  # an IndexError
    with pytest.raises(ValueError, match="b >= 1"):
        flows.cnf_loss(cnf, jnp.zeros((0, 3)))


# --------------------------------------------------------------------------- flow matching


def test_conditional_path_of_integer_points_and_a_traced_sigma():
    x0, x1, t = np.array([[0, 1], [2, -1]]), np.array([[1, 1], [0, 3]]), np.array([0, 1])
    xt, ut = flows.conditional_path(jnp.array(x0), jnp.array(x1), jnp.array(t))
    np.testing.assert_array_equal(xt, (1 - t[:, None]) * x0 + t[:, None] * x1)
    np.testing.assert_array_equal(ut, x1 - x0)
    # sigma swept under jit: `sigma > 0` had failed on the tracer
    a, b, tt = jnp.array(x0, float), jnp.array(x1, float), jnp.array([0.25, 0.5])
    eager = flows.conditional_path(a, b, tt, 0.1, key=jr.key(0))[0]
    traced = jax.jit(lambda s: flows.conditional_path(a, b, tt, s, key=jr.key(0))[0])(0.1)
    np.testing.assert_allclose(traced, eager, rtol=1e-14)
    mean = (1 - np.asarray(tt)[:, None]) * x0 + np.asarray(tt)[:, None] * x1
    assert not np.allclose(eager, mean)  # the noise is there


def test_sample_flow_of_integer_points_and_time_checks(no_jaxtyping):
    x0 = np.array([[1, 0], [2, -1]])
    got = flows.sample_flow(lambda t, x: -x, jnp.array(x0), n_steps=50, solver="rk4")
    np.testing.assert_allclose(got, np.exp(-1.0) * x0, rtol=1e-8)
    for kwargs, name in [({"t1": True}, "t1"), ({"t0": float("nan")}, "t0"), ({"t1": -1.0}, "t1")]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            flows.sample_flow(lambda t, x: -x, jnp.ones((2, 2)), **kwargs)


# -------------------------------------------------------------------------------------- nn


def _mlp_ref(f, t, x):
    e = np.asarray(f.embed(t), np.float64)
    h = np.concatenate([x, e])
    for i, (lin, tp) in enumerate(zip(f.layers, f.time_proj, strict=True)):
        pre = np.asarray(lin.weight) @ h + np.asarray(lin.bias)
        pre = pre + (np.asarray(tp.weight) @ e if i else 0.0)
        h = pre / (1 + np.exp(-pre))
    return np.asarray(f.out.weight) @ h + np.asarray(f.out.bias)


def test_time_mlp_of_integer_and_lower_precision_inputs():
    f = nn.TimeMLP(2, 16, 2, 4, key=jr.key(0), dtype=jnp.float64)
    x = np.array([1, -2])
    np.testing.assert_allclose(f(0.3, jnp.array(x)), _mlp_ref(f, 0.3, x), rtol=1e-12)
    # float32 in, float32 out against float64 parameters (a strict-promotion error)
    out = f(0.3, jnp.array(x, jnp.float32))
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, _mlp_ref(f, 0.3, x), rtol=1e-6)


@pytest.mark.slow  # building the U-Net eagerly takes several seconds
def test_unet8_of_an_integer_image_and_a_float32_image():
    u = nn.UNet8(1, 8, 16, key=jr.key(1), dtype=jnp.float64)
    img = np.arange(64).reshape(1, 8, 8) % 3
    ref = u(0.3, jnp.array(img, jnp.float64))
    np.testing.assert_allclose(u(0.3, jnp.array(img)), ref, rtol=1e-14)
    out = u(0.3, jnp.array(img, jnp.float32))  # float32 in, float32 out
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_nn_sizes_are_positive_ints(no_jaxtyping):
    key = jr.key(0)
    for make, name in [
        (lambda: nn.TimeMLP(2, 8, 1, out_dim=0, key=key), "out_dim"),  # became in_dim
        (lambda: nn.TimeMLP(True, 8, 1, key=key), "in_dim"),
        (lambda: nn.TimeMLP(2, 2.5, 1, key=key), "width"),
        (lambda: nn.TimeMLP(2, 8, 1.0, key=key), "depth"),
        (lambda: nn.TimeMLP(2, 8, 1, embed_dim=3, key=key), "embed_dim"),
        (lambda: nn.TimeMLP(2, 8, 1, embed_scale=float("nan"), key=key), "scale"),
        (lambda: nn.UNet8(True, 8, key=key), "channels"),
        (lambda: nn.UNet8(1, 8.0, key=key), "width"),
        (lambda: nn.UNet8(1, 8, 5, key=key), "embed_dim"),
        (lambda: nn.GaussianFourierEmbedding(4.0, key=key), "dim"),
        (lambda: nn.GaussianFourierEmbedding(4, -1.0, key=key), "scale"),
    ]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            make()
    assert nn.TimeMLP(2, 8, 1, out_dim=np.int64(3), key=key).out.weight.shape == (3, 8)
