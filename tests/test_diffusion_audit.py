"""Regression tests of the diffusion audit: forward-SDE marginals and transitions, prior
log-densities, exact Gaussian-mixture scores, samplers and the probability-flow likelihood on
exactly solvable data laws, EDM's schedule and preconditioning, and argument checks. Every
reference is computed here (closed forms, NumPy/SciPy in float64)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest
from scipy import special, stats

import sdeml
from sdeml import diffusion as dif
from sdeml.data import GaussianMixture

F64 = jnp.float64
BMIN, BMAX, SMIN, SMAX = 0.1, 20.0, 0.01, 10.0


@pytest.fixture
def no_jaxtyping(monkeypatch):
    """The functions' own checks, not the annotation checks of the test hook that run first."""
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)


def _int_beta(t):
    return BMIN * t + 0.5 * (BMAX - BMIN) * t * t


def _ref_alpha_sigma(name, t):
    """alpha(t), sigma(t) of VP / sub-VP (beta linear in [0.1, 20]) and VE (0.01, 10), float64."""
    t = np.float64(t)
    if name == "ve":
        r = math.log(SMAX / SMIN)
        return 1.0, SMIN * math.sqrt(math.expm1(2.0 * r * t))  # sqrt(varsigma^2 - sigma_min^2)
    b = _int_beta(t)
    alpha = math.exp(-0.5 * b)
    return alpha, (math.sqrt(-math.expm1(-b)) if name == "vp" else -math.expm1(-b))


def _prior_std(name):
    """N(0, I) for VP and sub-VP (Song et al.); VE: the exact marginal std at T, sqrt(10^2 -
    0.01^2) (score_sde's code rounds it to sigma_max)."""
    return _ref_alpha_sigma(name, 1.0)[1] if name == "ve" else 1.0


def _sde(name):
    return {
        "vp": dif.VPSDE(BMIN, BMAX),
        "subvp": dif.SubVPSDE(BMIN, BMAX),
        "ve": dif.VESDE(SMIN, SMAX),
    }[name]


NAMES = ["vp", "subvp", "ve"]


# ------------------------------------------------------------------ marginals and transitions
@pytest.mark.parametrize("name", NAMES)
def test_marginal_mean_and_std_match_the_closed_forms_at_small_and_end_times(name):
    sde = _sde(name)
    x0 = np.array([1.5, -0.5])
    for t in (1e-9, 1e-6, 1e-3, 0.3, 1.0):
        a, s = _ref_alpha_sigma(name, t)
        mean, std = sde.marginal(jnp.asarray(x0, F64), t)
        np.testing.assert_allclose(mean, a * x0, rtol=1e-13)
        np.testing.assert_allclose(float(std), s, rtol=1e-12)
        with jax.enable_x64(False):  # float32: no cancellation at small t either
            t32 = np.float32(t)
            a32, s32 = _ref_alpha_sigma(name, float(t32))
            np.testing.assert_allclose(float(sde.alpha(t32)), a32, rtol=1e-6)
            np.testing.assert_allclose(float(sde.sigma(t32)), s32, rtol=2e-6)
    assert sde.prior_std == pytest.approx(_prior_std(name), rel=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_transition_std_keeps_its_digits_for_nearby_times_in_float32(name):
    # sigma(t)^2 - r^2 sigma(s)^2 cancelled: for t - s = 1e-6 in float32 the std was 0.6-1%
    # off (VP 0.0032112 against 0.0031911); now every SDE writes it as a product of expm1's
    sde = _sde(name)
    s32 = np.float32(0.5)
    t32 = s32 + np.float32(1e-6)
    s, t = float(s32), float(t32)  # the reference at the float32 times themselves
    if name == "ve":
        r = math.log(SMAX / SMIN)
        var = SMIN**2 * math.exp(2 * r * s) * math.expm1(2 * r * (t - s))
    else:
        d = (t - s) * (BMIN + 0.5 * (BMAX - BMIN) * (t + s))  # B(t) - B(s), no subtraction
        var = -math.expm1(-d)
        if name == "subvp":
            var *= -math.expm1(-(_int_beta(s) + _int_beta(t)))
    ratio = math.exp(-0.5 * d) if name != "ve" else 1.0
    with jax.enable_x64(False):
        mean, std = sde.transition(jnp.ones(2, jnp.float32), s32, t32)
    assert std.dtype == jnp.float32
    np.testing.assert_allclose(float(std), math.sqrt(var), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(mean), ratio, rtol=1e-6)
    # float64, moderate gap: the same closed form (transition kernel of the linear SDE)
    mean, std = sde.transition(jnp.ones(1, F64), 0.2, 0.7)
    a2, s2 = _ref_alpha_sigma(name, 0.2)
    a7, s7 = _ref_alpha_sigma(name, 0.7)
    np.testing.assert_allclose(float(std), math.sqrt(s7**2 - (a7 / a2 * s2) ** 2), rtol=1e-12)


def test_transition_refuses_a_backward_time_pair():
    # s > t returned r > 1 and a variance clipped to 0, without an error
    with pytest.raises(ValueError, match="s <= t"):
        dif.VPSDE().transition(jnp.ones(2), 0.6, 0.3)


@pytest.mark.parametrize("name", NAMES)
def test_prior_logp_is_scipys_normal_log_density(name, no_jaxtyping):
    sde = _sde(name)
    x = np.array([0.3, -1.2, 2.0])
    ref = stats.norm.logpdf(x, scale=_prior_std(name)).sum()
    assert float(sde.prior_logp(jnp.asarray(x, F64))) == pytest.approx(ref, rel=1e-13)
    # a list and integer data are read as floats (a list raised a TypeError on x**2)
    ints = [1, 0, -2]
    ref = stats.norm.logpdf(ints, scale=_prior_std(name)).sum()
    assert float(sde.prior_logp(ints)) == pytest.approx(ref, rel=1e-13)
    assert float(sde.prior_logp(jnp.asarray(ints))) == pytest.approx(ref, rel=1e-13)


def test_vp_without_beta_min_inverts_an_infinite_log_snr_to_zero():
    # beta_min = 0: t = 2c / (beta_min + sqrt(beta_min^2 + 4ac)) was 0/0 = NaN at c = 0
    sde = dif.VPSDE(0.0, 20.0)
    assert float(sde.t_from_log_snr(jnp.inf)) == 0.0
    ts = jnp.array([1e-4, 0.3, 1.0], F64)
    np.testing.assert_allclose(sde.t_from_log_snr(sde.log_snr(ts)), ts, rtol=1e-10)
    assert math.isfinite(float(jax.grad(sde.t_from_log_snr)(jnp.asarray(3.0, F64))))


def test_sde_constructors_refuse_bools_non_finite_values_and_strings(no_jaxtyping):
    # all were accepted: True read as 1.0, "0.1" as 0.1, an infinite beta_max or sigma_max gave
    # sigma(t) = 1 or inf at every t > 0
    for make, match in [
        (lambda: dif.VPSDE(True, 20.0), "`beta_min`"),
        (lambda: dif.VPSDE("0.1", 20.0), "`beta_min`"),
        (lambda: dif.VPSDE(0.1, math.inf), "`beta_max`"),
        (lambda: dif.SubVPSDE(0.1, 20.0, T=math.inf), "`T`"),
        (lambda: dif.VESDE(0.01, math.inf), "`sigma_max`"),
        (lambda: dif.VESDE(0.01, 10.0, T=True), "`T`"),
    ]:
        with pytest.raises(ValueError, match=match):
            make()
    assert dif.VPSDE(np.float32(0.1), np.int64(20)).beta_max == 20.0  # NumPy scalars still


# ------------------------------------------------------------------ exact mixture score
def test_mixture_score_and_log_density_against_scipy_and_finite_differences():
    w = np.array([0.2, 0.5, 0.3])
    mu = np.array([[-2.0, 0.5], [0.0, 0.0], [3.0, -1.0]])
    s = np.array([[0.3, 0.6], [1.0, 0.2], [0.5, 0.5]])
    gm = GaussianMixture(jnp.asarray(w, F64), jnp.asarray(mu, F64), jnp.asarray(s, F64))

    def logp(name, t, x):  # log p_t(x) = log sum_k w_k N(x; a mu_k, a^2 s_k^2 + sigma^2)
        a, sg = _ref_alpha_sigma(name, t)
        sd = np.sqrt(a**2 * s**2 + sg**2)
        return float(special.logsumexp(np.log(w) + stats.norm.logpdf(x, a * mu, sd).sum(axis=1)))

    x = np.array([0.4, -0.3])
    for name in NAMES:
        sc = dif.MixtureScore(gm, _sde(name))
        for t in (0.0, 0.05, 0.5):
            assert float(sc.log_prob(t, jnp.asarray(x))) == pytest.approx(
                logp(name, t, x), rel=1e-12
            )
            h = 1e-5
            fd = [(logp(name, t, x + e) - logp(name, t, x - e)) / (2 * h) for e in h * np.eye(2)]
            np.testing.assert_allclose(sc(t, jnp.asarray(x)), fd, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ samplers, exactly solvable
def _point_mass_score(sde, mu):
    # data = the point mu: p_t = N(alpha mu, sigma^2 I), score -(x - alpha mu) / sigma^2. Its
    # noise prediction is constant along each PF-ODE trajectory and its data prediction is mu,
    # so every exponential integrator is exact with any grid.
    return lambda t, x: -(x - sde.alpha(t) * mu) / sde.sigma(t) ** 2


@pytest.mark.slow  # ~10 s: a dozen sampler compilations per SDE
@pytest.mark.parametrize("name", NAMES)
def test_point_mass_data_makes_every_ode_sampler_exact(name):
    sde, eps, mu = _sde(name), 1e-3, jnp.array([0.7, -1.3], F64)
    sc = _point_mass_score(sde, mu)
    x_T = sde.prior_sample((8, 2), key=jr.key(0), dtype=F64)
    aT, sT = _ref_alpha_sigma(name, 1.0)
    ae, se = _ref_alpha_sigma(name, eps)
    exact = ae * np.asarray(mu) + se / sT * (np.asarray(x_T) - aT * np.asarray(mu))
    kw = dict(eps=eps, denoise=False, x_T=x_T, key=jr.key(1))
    runs = {}
    for multistep in (True, False):
        for pred in ("noise", "data"):
            runs[f"dpm-{multistep}-{pred}"] = dif.dpm_solver_sampler(
                sc, sde, (8, 2), n_steps=4, order=3, multistep=multistep, prediction=pred, **kw
            )
            runs[f"unipc-{multistep}-{pred}"] = dif.unipc_sampler(
                sc, sde, (8, 2), n_steps=4, order=3, prediction=pred,
                variant="bh2" if multistep else "bh1", **kw,
            )  # fmt: skip
    runs["edm-heun"] = dif.edm_heun_sampler(sc, sde, (8, 2), n_steps=3, **kw)
    for label, r in runs.items():
        np.testing.assert_allclose(np.asarray(r.x), exact, rtol=1e-8, atol=1e-9, err_msg=label)


@pytest.mark.slow  # ~9 s each: an adaptive solve with an exact divergence, compiled
@pytest.mark.parametrize("name", NAMES)
def test_probability_flow_likelihood_of_gaussian_data_is_the_closed_form(name):
    # Data N(mu, diag s0^2): the PF-ODE map is affine, x_T = a_T mu + v_T / v_eps (x - a_eps mu)
    # with v_t = sqrt(a_t^2 s0^2 + sigma_t^2), so with the standard prior
    # log p = log N(x_T; 0, prior_std^2) + sum log(v_T / v_eps) exactly.
    sde, eps = _sde(name), 1e-3
    mu, s0 = np.array([0.7, -1.3]), np.array([0.4, 0.9])
    gm = GaussianMixture(jnp.ones(1, F64), jnp.asarray(mu[None], F64), jnp.asarray(s0[None], F64))
    x = np.array([0.2, 0.5])
    aT, sT = _ref_alpha_sigma(name, 1.0)
    ae, se = _ref_alpha_sigma(name, eps)
    vT, ve = np.sqrt(aT**2 * s0**2 + sT**2), np.sqrt(ae**2 * s0**2 + se**2)
    x_T = aT * mu + vT / ve * (x - ae * mu)
    ref = stats.norm.logpdf(x_T, scale=_prior_std(name)).sum() + np.log(vT / ve).sum()
    r = dif.log_likelihood(
        dif.MixtureScore(gm, sde), sde, jnp.asarray(x, F64), eps=eps, rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(np.asarray(r.x_T), x_T, rtol=1e-7, atol=1e-8)
    assert float(r.logp) == pytest.approx(ref, abs=1e-6)


def test_log_likelihood_reads_integer_data_and_checks_n_probes(no_jaxtyping):
    # integer x was refused by the ODE front as "`y0` must be a floating-point array"; n_probes
    # = 2.5 failed inside jr.rademacher and True was compared as 1
    sde = dif.VPSDE()
    sc = dif.MixtureScore(sdeml.data.gaussian_mixture_2d(F64), sde)
    # traced, not compiled: the integer sample is read as the default float (float64 here)
    out = jax.eval_shape(lambda: dif.log_likelihood(sc, sde, jnp.array([1, 0]), eps=1e-3))
    assert out.logp.dtype == F64 and out.x_T.dtype == F64 and out.x_T.shape == (2,)
    for bad in (2.5, True, 1):
        with pytest.raises(ValueError, match="`n_probes`"):
            dif.log_likelihood(
                sc, sde, jnp.zeros(2), divergence="hutchinson", n_probes=bad, key=jr.key(0)
            )


def test_likelihood_weighted_dsm_loss_of_a_zero_score_is_the_time_average():
    # zero score: per-sample loss |z|^2 g^2 / sigma^2, so E L = d / (T - eps) int g^2/sigma^2 dt;
    # for VP g^2 / sigma^2 = beta / (1 - e^{-B}) = d/dt log(e^B - 1)
    sde, eps, b = dif.VPSDE(), 0.05, 20_000
    loss = dif.dsm_loss(
        lambda t, x: jnp.zeros_like(x), sde, jnp.zeros((b, 2), F64),
        weighting="likelihood", eps=eps, key=jr.key(0),
    )  # fmt: skip
    ref = 2 * math.log(math.expm1(_int_beta(1.0)) / math.expm1(_int_beta(eps))) / (1 - eps)
    assert float(loss) == pytest.approx(ref, rel=0.03)


# ------------------------------------------------------------------ EDM
def test_edm_schedule_and_preconditioning_are_karras_et_al():
    n, smin, smax, rho = 18, 0.002, 80.0, 7.0
    i = np.arange(n + 1)
    ref = (smax ** (1 / rho) + i / n * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    np.testing.assert_allclose(dif.edm_time_grid(n, smin, smax, rho), ref, rtol=1e-12)
    sig, sd = np.array([0.002, 0.3, 1.0, 80.0]), 0.5
    c_skip, c_out, c_in, c_noise = dif.edm_scalings(jnp.asarray(sig, F64), sd)
    np.testing.assert_allclose(c_skip, sd**2 / (sig**2 + sd**2), rtol=1e-14)
    np.testing.assert_allclose(c_out, sig * sd / np.sqrt(sig**2 + sd**2), rtol=1e-14)
    np.testing.assert_allclose(c_in, 1 / np.sqrt(sig**2 + sd**2), rtol=1e-14)
    np.testing.assert_allclose(c_noise, np.log(sig) / 4, rtol=1e-14)
    np.testing.assert_allclose(
        dif.edm_loss_weight(jnp.asarray(sig, F64), sd), (sig**2 + sd**2) / (sig * sd) ** 2
    )


def test_edm_functions_refuse_non_positive_sigma_bools_and_infinities(no_jaxtyping):
    # edm_scalings(0) gave c_noise = -inf, edm_scalings(-1) a NaN c_noise and a negative c_out,
    # edm_loss_weight(0) inf; rho=True made a uniform grid, sigma_max=inf a grid of NaN
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="`sigma`"):
            dif.edm_scalings(bad)
        with pytest.raises(ValueError, match="`sigma`"):
            dif.edm_loss_weight(bad)
    with pytest.raises(ValueError, match="`rho`"):
        dif.edm_time_grid(4, rho=True)
    with pytest.raises(ValueError, match="`sigma_max`"):
        dif.edm_time_grid(4, sigma_max=math.inf)
    with pytest.raises(ValueError, match="`p_std`"):
        dif.edm_sigma_sample(4, p_std=True, key=jr.key(0))
    with pytest.raises(ValueError, match="`s_churn`"):
        dif.edm_sampler(dif.MixtureDenoiser(sdeml.data.gaussian_mixture_2d()), (4, 2),
                        s_churn=True, key=jr.key(0))  # fmt: skip


def test_consistency_loss_reads_integer_data():
    # the rho-grid was built in the batch's integer dtype: every sigma truncated, a NaN loss
    S = 0.5

    def teacher(sigma, x):
        return S**2 / (S**2 + sigma**2) * x

    class Exact(eqx.Module):  # the exact consistency map of N(0, S^2 I)
        sigma_min: float = 0.002

        def __call__(self, sigma, x):
            return x * jnp.sqrt((S**2 + self.sigma_min**2) / (S**2 + sigma**2))

    ints = jnp.array([[1, 0], [0, -1], [2, 1]])
    a = dif.consistency_distillation_loss(Exact(), teacher, ints, key=jr.key(1))
    b = dif.consistency_distillation_loss(Exact(), teacher, ints.astype(F64), key=jr.key(1))
    assert math.isfinite(float(a)) and float(a) == float(b)


# ------------------------------------------------------------------ sampler argument checks
def test_samplers_refuse_bad_shapes_orders_and_snr(no_jaxtyping):
    sde, k = dif.VPSDE(), jr.key(0)
    score = lambda t, x: -x
    # shapes: a negative size failed in MLIR, 0 with an IndexError, 4.0 with a TypeError
    for shape in ((-4, 2), (0, 2), (4.0, 2), (True, 2)):
        for run in (
            lambda s: dif.euler_maruyama_sampler(score, sde, s, n_steps=3, key=k),
            lambda s: dif.dpm_solver_sampler(score, sde, s, n_steps=3, key=k),
            lambda s: dif.unipc_sampler(score, sde, s, n_steps=3, key=k),
            lambda s: dif.edm_sampler(lambda sg, x: x, s, n_steps=3, key=k),
        ):
            with pytest.raises(ValueError, match="`shape`"):
                run(shape)
    # order True was order 1 and 2.0 was order 2, silently
    for order in (True, 2.0):
        with pytest.raises(ValueError, match="`order`"):
            dif.dpm_solver_sampler(score, sde, (4, 2), n_steps=3, order=order, key=k)
        with pytest.raises(ValueError, match="`order`"):
            dif.unipc_sampler(score, sde, (4, 2), n_steps=3, order=order, key=k)
    for snr in (True, math.inf):
        with pytest.raises(ValueError, match="`snr`"):
            dif.pc_sampler(score, sde, (4, 2), n_steps=3, snr=snr, key=k)
    # NumPy integers are still sizes
    assert sdeml.diffusion._samplers.check_shape((np.int64(4), 2, 3)) == (4, 2, 3)


@pytest.mark.parametrize("param", ["score", "eps", "x0"])
@pytest.mark.parametrize(
    "sde", [dif.VPSDE(), dif.VESDE(), dif.SubVPSDE()], ids=["vp", "ve", "subvp"]
)
def test_score_model_answers_in_the_state_dtype_for_a_float64_time(param, sde):
    # a float64 t with a float32 state promoted the score to float64 (an error under strict
    # promotion), though the network answers in the state's dtype; EDMDenoiser and
    # ConsistencyModel already cast their sigma
    net = sdeml.nn.TimeMLP(2, width=8, depth=1, key=jr.key(0))  # float32 parameters
    model = dif.ScoreModel(net, sde, param)
    x32 = jnp.array([0.3, -0.7], jnp.float32)
    t64, t32 = jnp.asarray(0.4, F64), jnp.asarray(0.4, jnp.float32)
    for fn in (model, model.eps, model.x0):
        out = fn(t64, x32)
        assert out.dtype == jnp.float32
        np.testing.assert_allclose(out, fn(t32, x32), rtol=1e-5, atol=1e-6)
    x64 = x32.astype(F64)  # a float64 state: a float64 answer, as the network's own
    assert model(t64, x64).dtype == F64 and model.x0(t32, x64).dtype == F64
