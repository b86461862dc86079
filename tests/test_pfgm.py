"""sdeml.pfgm against closed forms: the PFGM++ kernel's radial law (BetaPrime, chi^2 limit), the
ideal denoiser's 1/D approach to the Gaussian one, D = inf as diffusion, the D = 1 Poisson field
as PFGM++, sampling through the EDM samplers, and bad input (issue #21)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.scipy.special import gammainc

import sdeml
import sdeml.diffusion as dif
import sdeml.pfgm as pfgm

F64 = jnp.float64


def _chi2_cdf(N):
    return lambda z: gammainc(N / 2.0, z / 2.0)


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
@pytest.mark.parametrize("N", [2, 64])
def test_radius_law_is_beta_prime_and_tends_to_chi2(N):
    # Sampled R^2/sigma^2 against chi^2_N: below 0.01 in KS at D = 1e5 (200k draws: the KS
    # statistic's own noise is ~0.87/sqrt(n) = 0.002), and the exact KS distance between the
    # BetaPrime law (regularised incomplete beta) and chi^2_N falls with D.
    n, sigma = 200_000, 0.7
    draws = pfgm.PFGMPPKernel(1e5).sample_radius_sq(n, N, sigma, dtype=F64, key=jr.key(N))
    ks = sdeml.metrics.ks_distance(draws / sigma**2, _chi2_cdf(N))
    assert ks < 0.01, ks
    # the sampler agrees with its own exact CDF at a small D, where it is far from chi^2
    k4 = pfgm.PFGMPPKernel(4.0)
    d4 = k4.sample_radius_sq(n, N, sigma, dtype=F64, key=jr.key(7))
    assert sdeml.metrics.ks_distance(d4 / sigma**2, lambda z: k4.radius_sq_cdf(z, N)) < 0.01
    # exact KS(BetaPrime_D, chi^2_N) on a fine grid, decreasing in D
    z = jnp.linspace(1e-6, N + 12 * math.sqrt(2 * N) + 40, 20_001, dtype=F64)
    exact = [
        float(jnp.max(jnp.abs(pfgm.PFGMPPKernel(D).radius_sq_cdf(z, N) - _chi2_cdf(N)(z))))
        for D in (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
    ]
    assert all(a > b for a, b in zip(exact, exact[1:], strict=False)), exact
    assert exact[-1] < 1e-3  # the approach is O(1/D)


def test_kernel_noise_converges_pathwise_to_gaussian_and_matches_log_prob():
    sig = jnp.full((5000,), 0.5, F64)
    g = pfgm.PFGMPPKernel(math.inf).noise(jr.key(0), sig, (5000, 3))
    errs = [
        float(jnp.max(jnp.abs(pfgm.PFGMPPKernel(D).noise(jr.key(0), sig, (5000, 3)) - g)))
        for D in (1e3, 1e5, 1e7)
    ]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-2, errs
    # the kernel's normalised density: integrates to one in N = 1 (quadrature)
    k = pfgm.PFGMPPKernel(3.0)
    xs = jnp.linspace(-400.0, 400.0, 400_001, dtype=F64)[:, None]
    p = jnp.exp(jax.vmap(lambda x: k.log_prob(x, jnp.zeros(1, F64), 0.8))(xs))
    mass = float(jnp.trapezoid(p, xs[:, 0]))
    assert abs(mass - 1.0) < 1e-4, mass  # the tail beyond |x| = 400 is ~ 1e-8


def test_ideal_denoiser_approaches_gaussian_like_one_over_D():
    data = sdeml.data.toy("moons", 64, key=jr.key(0), dtype=F64)
    xs = jr.normal(jr.key(1), (32, 2), F64)
    sigma = 0.6
    gauss = jax.vmap(pfgm.IdealDenoiser(data, math.inf), in_axes=(None, 0))(sigma, xs)
    Ds = np.array([1e2, 1e3, 1e4, 1e5])
    dist = []
    for D in Ds:
        den = jax.vmap(pfgm.IdealDenoiser(data, float(D)), in_axes=(None, 0))(sigma, xs)
        dist.append(float(jnp.sqrt(jnp.mean(jnp.sum((den - gauss) ** 2, axis=1)))))
    slope = np.polyfit(np.log(Ds), np.log(dist), 1)[0]
    assert abs(slope + 1.0) < 0.15, (slope, dist)


def test_ideal_denoiser_is_stable_and_D_inf_is_the_mixture_denoiser():
    # far from the data (all raw weights underflow) the log-sum-exp weights stay finite
    data = jnp.array([[0.0, 0.0], [1.0, 0.0]], F64)
    for D in (1.0, 64.0, math.inf):
        out = pfgm.IdealDenoiser(data, D)(1e-3, jnp.array([300.0, 5.0], F64))
        assert jnp.all(jnp.isfinite(out))
    # D = inf with the data as zero-width mixture components is the Gaussian ideal denoiser
    gm = sdeml.data.GaussianMixture(jnp.ones(2, F64), data, jnp.full((2,), 1e-9, F64))
    x = jnp.array([0.3, 0.2], F64)
    np.testing.assert_allclose(
        pfgm.IdealDenoiser(data, math.inf)(0.4, x), dif.MixtureDenoiser(gm)(0.4, x), atol=1e-12
    )


def test_poisson_field_is_pfgmpp_at_D_1():
    # z E_x / E_z = x - D(x, sigma = z) with the D = 1 ideal denoiser: PFGM is PFGM++ at D = 1
    data = sdeml.data.toy("moons", 50, key=jr.key(2), dtype=F64)
    den = pfgm.IdealDenoiser(data, 1.0)
    for x, z in [(jnp.array([0.2, -0.1], F64), 0.3), (jnp.array([5.0, 3.0], F64), 7.0)]:
        ex, ez, _ = pfgm.poisson_field(data, x, jnp.asarray(z, F64))
        np.testing.assert_allclose(z * ex / ez, x - den(z, x), rtol=1e-10, atol=1e-12)
        f = pfgm.normalised_field(data, x, jnp.asarray(z, F64))
        assert abs(float(jnp.linalg.norm(f)) - math.sqrt(2)) < 1e-12 and f[-1] < 0


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_pfgm_backward_ode_with_empirical_field_reaches_the_data():
    # Field lines end on the charges; one that left its charge at the angle theta to the
    # hyperplane is still z / tan(theta) away at height z. Far prior draws come from grazing
    # lines (theta ~ 1e-3 here), hence z_min = 1e-6 for every draw to be within 0.01.
    data = jnp.array([[-1.0, 0.0], [1.0, 0.5], [0.0, -1.0]], F64)
    field = lambda z, x: pfgm.normalised_field(data, x, z)
    kw = dict(z_max=30.0, rtol=1e-6, atol=1e-6, dtype=F64, key=jr.key(3))
    r = pfgm.pfgm_sampler(field, (64, 2), z_min=1e-6, **kw)
    nearest = jnp.min(jnp.linalg.norm(r.x[:, None] - data[None], axis=-1), axis=1)
    assert float(jnp.max(nearest)) < 0.01, nearest


def test_pfgm_prior_is_clipped_because_its_moments_are_infinite():
    raw = pfgm.PFGMPPKernel(1.0).prior((20_000, 2), 10.0, dtype=F64, key=jr.key(4))
    clipped = pfgm.pfgm_prior((20_000, 2), 10.0, dtype=F64, key=jr.key(4))
    rn, cn = jnp.linalg.norm(raw, axis=1), jnp.linalg.norm(clipped, axis=1)
    assert float(jnp.max(rn)) > 20 * 10.0 * math.sqrt(2)  # a few absurd draws
    assert float(jnp.max(cn)) <= 20 * 10.0 * math.sqrt(2) + 1e-9
    np.testing.assert_allclose(jnp.median(rn), jnp.median(cn))  # only the tail is touched


# D = 128: 9 s, moved from the default run (12-07, later: default run < 10 min)
@pytest.mark.parametrize(
    "D",
    [
        pytest.param(2.0, marks=pytest.mark.slow),
        pytest.param(128.0, marks=pytest.mark.slow),
        math.inf,
    ],
)
def test_pfgmpp_samples_the_data_with_the_ideal_denoiser(D):
    data = jnp.array([[-1.0, 0.0], [1.0, 0.5], [0.0, -1.0]], F64)
    den = pfgm.IdealDenoiser(data, D)
    r = pfgm.pfgmpp_sampler(
        den, D, (200, 2), n_steps=24, sigma_min=2e-3, sigma_max=20.0, max_radius=1e3, dtype=F64,
        key=jr.key(5),
    )  # fmt: skip
    nearest = jnp.min(jnp.linalg.norm(r.x[:, None] - data[None], axis=-1), axis=1)
    assert float(jnp.max(nearest)) < 1e-3 and int(r.nfe) == 49
    # every point is reached (counts near 200/3 each; the law of the ODE maps prior to data)
    counts = jnp.bincount(jnp.argmin(jnp.linalg.norm(r.x[:, None] - data[None], axis=-1), 1))
    assert int(jnp.min(counts)) > 30


@pytest.mark.slow  # > 10 s
def test_pfgmpp_loss_is_edm_loss_at_D_inf_and_finite():
    den = dif.EDMDenoiser(sdeml.nn.TimeMLP(2, 16, 1, embed_scale=1.0, key=jr.key(0), dtype=F64))
    batch = sdeml.data.toy("moons", 32, key=jr.key(1), dtype=F64)
    loss = eqx.filter_jit(lambda d, D: pfgm.pfgmpp_loss(d, batch, D, key=jr.key(2)))
    a = loss(den, math.inf)
    b = dif.edm_loss(den, batch, noise_fn=pfgm.PFGMPPKernel(math.inf).noise, key=jr.key(2))
    np.testing.assert_allclose(a, b, rtol=1e-12)
    grads = eqx.filter_jit(
        eqx.filter_grad(lambda d: pfgm.pfgmpp_loss(d, batch, 4.0, key=jr.key(2)))
    )
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads(den), eqx.is_array))
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in leaves)
    net = sdeml.nn.TimeMLP(2, 16, 1, out_dim=3, key=jr.key(3), dtype=F64)
    ploss = eqx.filter_jit(
        lambda n_: pfgm.pfgm_loss(lambda z, x: n_(jnp.log(z), x), batch, key=jr.key(4))
    )
    assert jnp.isfinite(ploss(net))


@pytest.mark.parametrize("bad", [0.0, -1.0, "x", True])
def test_bad_D_is_one_clear_error(bad):
    with pytest.raises(ValueError, match="`D`"):
        pfgm.PFGMPPKernel(bad)
    with pytest.raises(ValueError, match="`D`"):
        pfgm.IdealDenoiser(jnp.zeros((3, 2)), bad)


def test_numpy_D_is_accepted_and_a_nonpositive_clip_refused():
    # D = np.int64(8) (NumPy arithmetic) was refused as "not a positive number"; a radius <= 0
    # clipped every draw to 0 (or, negative, flipped it through the origin) without a word
    assert pfgm.check_D(np.int64(8)) == 8.0 and pfgm.PFGMPPKernel(np.float32(4.0)).D == 4.0
    x = jnp.array([[3.0, 4.0]])
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="`max_radius`"):
            pfgm.clip_norm(x, bad)
        with pytest.raises(ValueError, match="`max_radius`"):
            pfgm.pfgm_prior((4, 2), 10.0, max_radius=bad, key=jr.key(0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.slow  # 4-6 s a dtype
def test_kernel_log_prob_and_radius_cdf_hold_at_every_D(dtype):
    # Against SciPy (an independent implementation): the kernel is a multivariate t with D
    # degrees of freedom and scale sigma^2 I, and N R^2 / (N sigma^2) an F(N, D) variable. In
    # float32, log_prob read -18.7 for -0.95 at D = 1e8 (two log-gammas cancelling) and the CDF
    # was wrong from D ~ 1e4 (0.196 for 0.221 at D = 1e6; 0, 0, 1 at 1e8).
    from scipy import stats

    rng = np.random.default_rng(0)
    with jax.enable_x64(dtype == "float64"):
        for N in (1, 2, 7, 64):
            x, y, sigma = rng.normal(size=N) * 0.7, rng.normal(size=N) * 0.2, 0.5
            for D in (0.5, 3.0, 37.5, 1e3, 1e5, 1e8, 1e12, 1e40):
                tol = 2e-6 * (1 + N) if dtype == "float32" else 1e-9
                if D < 1e7:
                    ref = stats.multivariate_t(y, sigma**2 * np.eye(N), df=D).logpdf(x)
                else:  # SciPy's t loses digits here; the Gaussian is within (N^2 + u^2) / D
                    ref = stats.multivariate_normal(y, sigma**2 * np.eye(N)).logpdf(x)
                    u = np.sum((x - y) ** 2) / sigma**2
                    tol = max(tol, 10 * (N**2 + u**2) / D)
                k = pfgm.PFGMPPKernel(D)
                got = k.log_prob(jnp.asarray(x, dtype), jnp.asarray(y, dtype), sigma)
                assert got.dtype == dtype and np.isfinite(float(got))
                assert float(got) == pytest.approx(ref, abs=tol), (N, D)
        q = np.array([0.001, 0.01, 0.3, 0.5, 0.7, 0.99, 0.999])
        for N in (1, 2, 7, 100):
            for D in (0.5, 3.0, 30.0, 1e3, 1e4, 1e6, 1e8, 1e12):
                z = jnp.asarray(N * stats.f(N, D).ppf(q), dtype)
                got = np.asarray(pfgm.PFGMPPKernel(D).radius_sq_cdf(z, N))
                tol = (1e-4 if N > 7 else 1e-5) if dtype == "float32" else 1e-9
                np.testing.assert_allclose(got, q, atol=tol, err_msg=f"N={N}, D={D}")
        edges = pfgm.PFGMPPKernel(1e8).radius_sq_cdf(jnp.array([0.0, -1.0, jnp.inf], dtype), 2)
        np.testing.assert_array_equal(np.asarray(edges), [0.0, 0.0, 1.0])
        with pytest.raises(ValueError, match="`N` must be a positive integer"):
            pfgm.PFGMPPKernel(4.0).radius_sq_cdf(jnp.asarray(1.0, dtype), 0)


def test_kernel_arguments_are_checked_by_name():
    k = pfgm.PFGMPPKernel(4.0)
    with pytest.raises(ValueError, match="`sigma` must be finite and > 0"):
        k.log_prob(jnp.ones(2), jnp.zeros(2), 0.0)  # NaN before
    with pytest.raises(ValueError, match="`x` and `y` must have one shape"):
        k.log_prob(jnp.ones(2), jnp.zeros((3, 2)), 0.5)  # summed three densities before
    with pytest.raises(ValueError, match="`max_radius` must be positive"):
        pfgm.clip_norm(jnp.array([[3.0, 4.0]]), jnp.array(-1.0))  # flipped the sample before
    np.testing.assert_array_equal(pfgm.clip_norm(jnp.ones((2, 2)), math.inf), jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="`z_max` must be finite and > 0"):
        pfgm.pfgm_prior((3, 2), -1.0, key=jr.key(0))  # blamed max_radius before


def test_pfgm_helpers_take_integer_data_and_check_shapes():
    batch = jnp.array([[1, 2], [3, 4]])
    x, z = pfgm.pfgm_perturb(batch, key=jr.key(0))  # failed inside jr.normal before
    assert x.dtype == jnp.result_type(float) and x.shape == (2, 2) and z.shape == (2,)
    data = jnp.array([[0.0, 0.0], [2.0, 0.0]])
    # without the suite's jaxtyping hook (which names the parameter first), the function's own
    with pytest.raises((ValueError, TypeError), match="`data`, `x` and `z` must|parameter 'x'"):
        pfgm.poisson_field(data, jnp.zeros(3), jnp.asarray(1.0))  # a broadcasting error before
    with pytest.raises(ValueError, match="`data`, `x` and `z` must have shapes"):
        unchecked = getattr(pfgm.poisson_field, "__wrapped__", pfgm.poisson_field)
        unchecked(data, jnp.zeros(3), jnp.asarray(1.0))
    with pytest.raises(ValueError, match="`sigma` must be finite and > 0"):
        pfgm.IdealDenoiser(data, 4.0)(0.0, jnp.zeros(2))  # NaN before
