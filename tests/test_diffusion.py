"""sdeml.diffusion against closed forms: SDE marginals, exact mixture scores, samplers,
likelihoods, DPM-Solver's convergence order, bad input."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import sdeml
from sdeml import data, metrics

F64 = jnp.float64
SDES = [sdeml.VPSDE(0.1, 20.0), sdeml.SubVPSDE(0.1, 20.0), sdeml.VESDE(0.01, 8.0)]


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_marginal_variance_solves_its_ode(sde):
    # For dX = f X dt + g dW: d(log alpha)/dt = f and d(sigma^2)/dt = 2 f sigma^2 + g^2 (exact).
    ts = jnp.array([0.05, 0.3, 0.7, 0.95], F64)
    dla = jax.vmap(jax.grad(sde.log_alpha))(ts)
    dvar = jax.vmap(jax.grad(lambda t: sde.sigma(t) ** 2))(ts)
    f, g = jax.vmap(sde.drift_coef)(ts), jax.vmap(sde.diffusion_coef)(ts)
    assert jnp.allclose(dla, f, rtol=1e-12)
    assert jnp.allclose(dvar, 2 * f * sde.sigma(ts) ** 2 + g**2, rtol=1e-10)
    assert jnp.allclose(sde.t_from_log_snr(sde.log_snr(ts)), ts, rtol=1e-10)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_diffusion_sdes_are_core_sdes_with_one_signature(sde: sdeml.diffusion.AbstractDiffusionSDE):
    # issue #16: drift(t, y, args) = f(t) y and diffusion(t, y, args) = g(t) (additive noise)
    assert isinstance(sde, sdeml.core.AbstractSDE) and sde.noise == "additive"
    y, t = jnp.array([[0.3, -1.2], [2.0, 0.5]], F64), jnp.asarray(0.4, F64)
    sdeml.core.check_shapes(sde, y)
    np.testing.assert_allclose(sde.drift(t, y, None), sde.drift_coef(t) * y, rtol=1e-15)
    np.testing.assert_allclose(sde.diffusion(t, y, None), jnp.full_like(y, sde.diffusion_coef(t)))
    # the transition from s = 0 is the marginal; transitions compose (Chapman-Kolmogorov)
    x0 = jnp.array([1.0, -0.5], F64)
    for a, b in zip(sde.transition(x0, 0.0, 0.6), sde.marginal(x0, 0.6), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    m1, s1 = sde.transition(x0, 0.1, 0.4)
    m2, s2 = sde.transition(m1, 0.4, 0.8)
    r = jnp.exp(sde.log_alpha(0.8) - sde.log_alpha(0.4))
    m, s = sde.transition(x0, 0.1, 0.8)
    np.testing.assert_allclose(m2, m, rtol=1e-12)
    np.testing.assert_allclose(s2**2 + (r * s1) ** 2, s**2, rtol=1e-12)


def _linear_em_moments(f, g, m, v, ts):
    """Exact mean and variance of the EM chain x' = x + f(t) x h + g(t) sqrt(h) z on `ts`."""
    for t, h in zip(ts[:-1], np.diff(ts), strict=True):
        a = 1.0 + f(t) * h
        m, v = a * m, a**2 * v + g(t) ** 2 * h
    return m, v


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_engine_forward_paths_match_exact_transition(sde):
    # The forward SDE simulated by the engine (EM, 400 steps on [0.25, 0.75], 40k paths, f64)
    # against the exact transition N(r x_s, sigma_t^2 - r^2 sigma_s^2). The band is 4 standard
    # errors plus the EM chain's own deterministic bias (its moments are exact by recursion:
    # the SDE is linear), so a wrong drift or diffusion (a 2% change) is caught.
    s, t, n_paths, n_steps = 0.25, 0.75, 40_000, 400
    x_s = jnp.array([1.0, -0.5], F64)
    paths = sdeml.simulate(
        sde, x_s, t0=s, t1=t, n_steps=n_steps, n_paths=n_paths, dtype=F64, key=jr.key(3)
    )
    x = paths.xs[:, -1]
    mean, std = sde.transition(x_s, s, t)
    ts = np.linspace(s, t, n_steps + 1)
    f = lambda u: float(sde.drift_coef(u))
    g = lambda u: float(sde.diffusion_coef(u))
    em_m, em_v = _linear_em_moments(f, g, np.asarray(x_s), 0.0, ts)
    bias_m, bias_s = np.abs(em_m - np.asarray(mean)), abs(np.sqrt(em_v) - float(std))
    assert np.all(bias_m < 0.01 * np.abs(np.asarray(mean)) + 1e-12)  # EM is weakly first order
    se_m, se_s = float(std) / np.sqrt(n_paths), float(std) / np.sqrt(2 * n_paths)
    np.testing.assert_array_less(np.abs(jnp.mean(x, 0) - mean), 4 * se_m + bias_m)
    np.testing.assert_array_less(np.abs(jnp.std(x, 0) - std), 4 * se_s + bias_s)


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_reverse_sde_sampler_recovers_gaussian_data():
    # Data N(mu, s0^2 I): the exact score is linear, so the reverse-SDE EM chain that
    # `euler_maruyama_sampler` runs through the engine is linear too and its mean and variance
    # are exact by recursion. 20k samples match them within 4 standard errors, and the chain's
    # law (EM with 1000 steps, eps = 1e-3) is within 1% of the data law.
    sde, s0, n, n_steps, eps = sdeml.VPSDE(), 0.6, 20_000, 1000, 1e-3
    mu = jnp.array([1.5, -0.5], F64)
    gm = data.GaussianMixture(jnp.ones(1, F64), mu[None], jnp.full((1,), s0, F64))
    sc = sdeml.MixtureScore(gm, sde)
    rev = sde.reverse(sc)
    assert isinstance(rev, sdeml.core.AbstractSDE) and rev.noise == "additive"
    y, u = jnp.array([0.2, 0.1], F64), jnp.asarray(0.3, F64)
    t = sde.T - u
    np.testing.assert_allclose(
        rev.drift(u, y, None),
        sde.diffusion_coef(t) ** 2 * sc(t, y) - sde.drift_coef(t) * y,
        rtol=1e-14,
    )
    r = sdeml.diffusion.euler_maruyama_sampler(
        sc, sde, (n, 2), n_steps=n_steps, eps=eps, denoise=False, dtype=F64, key=jr.key(4)
    )
    assert int(r.nfe) == n_steps
    # reverse chain per coordinate: y' = y + [g^2 s(t, y) - f y] h + g sqrt(h) z with
    # s(t, y) = -(y - a mu) / (a^2 s0^2 + sigma^2): y' = c y + d + g sqrt(h) z
    h = (sde.T - eps) / n_steps
    tt = jnp.asarray(sde.T - h * np.arange(n_steps), F64)
    a, sg = np.asarray(sde.alpha(tt)), np.asarray(sde.sigma(tt))
    f, g2 = np.asarray(sde.drift_coef(tt)), np.asarray(sde.diffusion_coef(tt)) ** 2
    var_t = a**2 * s0**2 + sg**2
    cs, ds = 1.0 + (-g2 / var_t - f) * h, g2 * a / var_t * h
    m, v = np.zeros(2), np.ones(2)
    for i in range(n_steps):
        m, v = cs[i] * m + ds[i] * np.asarray(mu), cs[i] ** 2 * v + g2[i] * h
    np.testing.assert_allclose(m, mu, rtol=0.01)
    np.testing.assert_allclose(v, s0**2, rtol=0.01)
    x = np.asarray(r.x)
    np.testing.assert_array_less(np.abs(x.mean(0) - m), 4 * np.sqrt(v / n))
    np.testing.assert_array_less(np.abs(x.var(0) - v), 4 * v * np.sqrt(2 / n))
    # the predictor-corrector sampler's predictor is the same engine step: with no corrector
    # steps it samples the same chain law
    pc = sdeml.diffusion.pc_sampler(
        sc, sde, (n, 2), n_steps=n_steps, n_corrector=0, eps=eps, denoise=False, dtype=F64,
        key=jr.key(5),
    )  # fmt: skip
    xp = np.asarray(pc.x)
    np.testing.assert_array_less(np.abs(xp.mean(0) - m), 4 * np.sqrt(v / n))
    np.testing.assert_array_less(np.abs(xp.var(0) - v), 4 * v * np.sqrt(2 / n))


def test_em_sampler_path_output():
    sde = sdeml.VPSDE()
    sc = sdeml.MixtureScore(data.gaussian_mixture_2d(F64), sde)
    r = sdeml.diffusion.euler_maruyama_sampler(
        sc, sde, (16, 2), n_steps=20, n_saves=5, denoise=False, dtype=F64, key=jr.key(0)
    )
    h = (1.0 - 1e-3) / 20
    assert r.path is not None and r.ts is not None
    assert r.path.shape == (5, 16, 2) and r.ts.shape == (5,)
    np.testing.assert_allclose(r.ts, 1.0 - h * np.arange(0, 21, 5), rtol=1e-12)
    prior = sde.prior_sample((16, 2), key=jr.split(jr.key(0))[0], dtype=F64)
    np.testing.assert_array_equal(r.path[0], prior)  # the walk starts at the prior draw
    np.testing.assert_array_equal(r.path[-1], r.x)
    r3 = sdeml.diffusion.euler_maruyama_sampler(
        sc, sde, (16, 2), n_steps=22, n_saves=5, key=jr.key(0)
    )
    assert r3.path is not None and r3.path.shape == (5, 16, 2) and int(r3.nfe) == 23


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_mixture_score_is_gradient_of_marginal_density(sde):
    sc = sdeml.MixtureScore(data.gaussian_mixture_2d(F64), sde)
    x, t = jnp.array([0.4, -0.3], F64), jnp.asarray(0.37, F64)
    assert jnp.allclose(sc(t, x), jax.grad(lambda y: sc.log_prob(t, y))(x), rtol=1e-10)


def test_parameterisation_conversions_round_trip():
    sde = sdeml.VPSDE()
    x, s = jnp.array([0.3, -1.0], F64), jnp.array([2.0, 0.5], F64)
    a, sg = sde.alpha(0.4), sde.sigma(0.4)
    assert jnp.allclose(sdeml.diffusion.eps_to_score(sdeml.diffusion.score_to_eps(s, sg), sg), s)
    assert jnp.allclose(
        sdeml.diffusion.x0_to_score(sdeml.diffusion.score_to_x0(s, x, a, sg), x, a, sg), s
    )
    net = sdeml.nn.TimeMLP(2, width=16, depth=1, key=jr.key(0), dtype=F64)
    m_eps = sdeml.diffusion.ScoreModel(net, sde, "eps")
    m_x0 = sdeml.diffusion.ScoreModel(net, sde, "x0")
    assert jnp.allclose(m_eps.eps(0.4, x), net(0.4, x))
    assert jnp.allclose(m_x0.x0(0.4, x), net(0.4, x))
    assert jnp.allclose(m_eps(0.4, x), -net(0.4, x) / sg)


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_dsm_loss_with_exact_gaussian_score_matches_closed_form():
    # data N(0, s0^2 I): for the exact score E||sigma s + z||^2 = d alpha^2 s0^2 / v,
    # v = alpha^2 s0^2 + sigma^2; the loss is its average over t ~ U[eps, T].
    sde, s0, d, eps = sdeml.VPSDE(), 0.7, 2, 1e-3
    gm = data.GaussianMixture(jnp.ones(1, F64), jnp.zeros((1, d), F64), jnp.full((1,), s0, F64))
    sc = sdeml.MixtureScore(gm, sde)
    batch = gm.sample(20000, key=jr.key(0))
    loss = sdeml.dsm_loss(sc, sde, batch, eps=eps, key=jr.key(1))
    ts = jnp.linspace(eps, 1.0, 20001, dtype=F64)
    a2 = sde.alpha(ts) ** 2
    exact = jnp.mean(d * a2 * s0**2 / (a2 * s0**2 + sde.sigma(ts) ** 2))
    # per-sample losses have sd ~1 (chi-square-like); SE at b = 20000 is ~0.01
    assert abs(float(loss) - float(exact)) < 0.03, (loss, exact)
    lw = sdeml.dsm_loss(sc, sde, batch[:64], weighting="likelihood", key=jr.key(2))
    assert jnp.isfinite(lw)


def _floor_setup(gm, n=2000):
    ref = [gm.sample(n, key=jr.key(1000 + i)) for i in range(8)]
    bw = metrics.median_bandwidth(ref[0]) * jnp.asarray(metrics.DEFAULT_BANDWIDTH_FACTORS, F64)
    return ref, (lambda a, b: metrics.mmd(a, b, bw))


@pytest.mark.slow
@pytest.mark.parametrize(
    "method,kw",
    [("em", dict(n_steps=1000)), ("pc", dict(n_steps=500)), ("ode", {}), ("dpm", {})],
)
def test_exact_score_sampling_reproduces_mixture(method, kw):
    # issue #7: n = 2000, median over 3 sampling seeds, MMD within 1.5x the two-sample floor
    # (few-step DPM-Solver (20 NFE): within 2x). Floor = median over 5 data-vs-data pairs.
    gm = data.gaussian_mixture_2d(F64)
    sde = sdeml.VPSDE()
    ref, m = _floor_setup(gm)
    sc = sdeml.MixtureScore(gm, sde)
    gen = [
        sdeml.sample(sc, sde, (2000, 2), method=method, key=jr.key(s), dtype=F64, **kw).x
        for s in range(3)
    ]
    r = metrics.median_ratio(m, gen, ref[:3], ref[3:6])
    floor = float(np.median([m(ref[i], ref[i + 3]) for i in range(5)] + [m(ref[5], ref[7])]))
    ratio = r["value"] / floor
    assert ratio < (2.0 if method == "dpm" else 1.5), (method, ratio, r)


def test_pf_nfe_formula_counts_every_evaluation():
    count = []

    def score(t, x):
        jax.debug.callback(lambda: count.append(1))
        return -x

    sde = sdeml.VESDE(0.01, 2.0)
    r = sdeml.diffusion.probability_flow_sampler(
        score, sde, (1, 2), rtol=1e-4, atol=1e-4, key=jr.key(0), dtype=F64
    )
    jax.block_until_ready(r.x)
    assert int(r.nfe) == len(count)


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_likelihood_exact_score_matches_analytic_density():
    sde = sdeml.VPSDE()
    gm = data.gaussian_mixture_2d(F64)
    sc = sdeml.MixtureScore(gm, sde)
    xs = jnp.array([[0.3, -0.2], [-1.4, 0.5]], F64)
    # with the exact marginal at T as prior, the result is log p_eps(x) up to solver error
    # (tolerances 1e-6 give ~1e-5 nats); issue #7 asks for 1e-3
    res = jax.vmap(
        lambda x: sdeml.log_likelihood(
            sc, sde, x, eps=1e-3, prior_logp=lambda y: sc.log_prob(sde.T, y)
        )
    )(xs)
    exact = jax.vmap(lambda x: sc.log_prob(1e-3, x))(xs)
    assert jnp.max(jnp.abs(res.logp - exact)) < 1e-3
    # raw data density on the 8-Gaussian mixture with the standard prior at eps = 1e-5:
    # the prior mismatch and eps cut-off are below 1e-3 nats there; issue #7 asks for 1e-2
    gm8 = data.eight_gaussians_mixture(dtype=F64)
    sc8 = sdeml.MixtureScore(gm8, sde)
    x8 = jnp.array([1.9, 0.1], F64)
    r8 = sdeml.log_likelihood(sc8, sde, x8, eps=1e-5)
    assert abs(float(r8.logp - gm8.log_prob(x8))) < 1e-2


@pytest.mark.slow
def test_hutchinson_within_three_standard_errors():
    sde = sdeml.SubVPSDE()
    sc = sdeml.MixtureScore(data.gaussian_mixture_2d(F64), sde)
    x = jnp.array([0.3, -0.2], F64)
    exact = sdeml.log_likelihood(sc, sde, x, eps=1e-3)
    for s in range(3):
        h = sdeml.log_likelihood(
            sc, sde, x, eps=1e-3, divergence="hutchinson", n_probes=10, key=jr.key(s)
        )
        assert float(h.stderr) > 0
        assert abs(float(h.logp - exact.logp)) < 3 * float(h.stderr)


@pytest.mark.parametrize(
    "multistep,prediction",
    [
        pytest.param(False, "noise", id="single-noise", marks=pytest.mark.slow),
        pytest.param(False, "data", id="single-data", marks=pytest.mark.slow),
        pytest.param(True, "noise", id="multi-noise", marks=pytest.mark.slow),
        pytest.param(True, "data", id="multi-data", marks=pytest.mark.slow),
    ],
)
def test_dpm_solver_convergence_order(multistep, prediction):
    # Gaussian data: exact score; reference = tight-tolerance Tsit5 PF-ODE from the same x_T.
    sde = sdeml.VPSDE()
    gm = data.GaussianMixture(
        jnp.ones(2, F64), jnp.array([[-1.0, 0], [1.0, 0]], F64), jnp.full((2,), 0.5, F64)
    )
    sc = sdeml.MixtureScore(gm, sde)
    xT = sde.prior_sample((64, 2), key=jr.key(0), dtype=F64)
    eps = 0.05
    ref = sdeml.diffusion.probability_flow_sampler(
        sc, sde, (64, 2), rtol=1e-11, atol=1e-11, eps=eps, x_T=xT, key=jr.key(0)
    ).x
    ns = [12, 24, 48] if multistep else [8, 16, 32]
    for order in (1, 2, 3):
        errs = [
            float(
                jnp.max(
                    jnp.abs(
                        sdeml.diffusion.dpm_solver_sampler(
                            sc,
                            sde,
                            (64, 2),
                            n_steps=n,
                            order=order,
                            multistep=multistep,
                            prediction=prediction,
                            eps=eps,
                            denoise=False,
                            x_T=xT,
                            key=jr.key(0),
                        ).x
                        - ref
                    )
                )
            )
            for n in ns
        ]
        slope = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
        assert abs(slope - order) < 0.5, (order, errs, slope)  # asymptotic regime: +-0.5


@pytest.mark.slow
def test_few_step_sampler_on_eight_gaussians():
    # issue #7: few-step sampler, <= 20 score evaluations -> MMD <= 2x the floor at n = 2000.
    # Exact score, median over 5 seeds against this floor: multistep DPM-Solver-3 gives ~1.65x
    # (EM-1000 scores alike here: 8 Gaussians' MMD is dominated by binomial mode weights),
    # DDIM with the same budget several times more, so the bound can fail.
    gm = data.eight_gaussians_mixture(dtype=F64)
    sde = sdeml.VPSDE()
    ref, m = _floor_setup(gm)
    sc = sdeml.MixtureScore(gm, sde)
    floor = float(np.median([m(ref[i], ref[i + 3]) for i in range(5)]))

    def ratio(**kw):
        f = jax.jit(
            lambda k: sdeml.sample(sc, sde, (2000, 2), method="dpm", key=k, dtype=F64, **kw)
        )
        rs = [f(jr.key(s)) for s in range(5)]
        assert all(int(r.nfe) <= 20 for r in rs)
        return float(np.median([m(r.x, ref[i % 8]) for i, r in enumerate(rs)])) / floor

    assert ratio() < 2.0
    assert ratio(order=1) > 2.0


def test_samplers_jit_and_shapes():
    sde = sdeml.VESDE(0.01, 4.0)
    sc = sdeml.MixtureScore(data.gaussian_mixture_2d(F64), sde)
    f = jax.jit(
        lambda k: sdeml.diffusion.pc_sampler(
            sc, sde, (16, 2), n_steps=20, n_saves=5, key=k, dtype=F64
        )
    )
    r = f(jr.key(0))
    assert r.x.shape == (16, 2) and r.path.shape[1:] == (16, 2) and int(r.nfe) == 41
    assert jnp.array_equal(r.x, f(jr.key(0)).x)


def test_bad_input_messages():
    sde = sdeml.VPSDE()
    net = sdeml.nn.TimeMLP(2, width=8, depth=1, key=jr.key(0))
    model = sdeml.diffusion.ScoreModel(net, sde)
    with pytest.raises(ValueError, match="valid: vp, subvp, ve"):
        sdeml.diffusion.get_sde("cosine")
    with pytest.raises(ValueError, match="valid: em, pc, ode, dpm"):
        sdeml.sample(model, sde, (4, 2), method="ddim", key=jr.key(0))
    with pytest.raises(ValueError, match="eps"):
        sdeml.dsm_loss(model, sde, jnp.zeros((4, 2)), eps=1.5, key=jr.key(0))
    with pytest.raises(ValueError, match="`T` must be greater than `eps`"):
        sdeml.dsm_loss(model, sdeml.VPSDE(T=0.001), jnp.zeros((4, 2)), eps=0.01, key=jr.key(0))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        sdeml.dsm_loss(model, sde, jnp.zeros((4, 3)), key=jr.key(0))
    with pytest.raises(ValueError, match="beta_min < beta_max"):
        sdeml.VPSDE(5.0, 1.0)
    with pytest.raises(ValueError, match="parameterisation"):
        sdeml.diffusion.ScoreModel(net, sde, "v")  # pyright: ignore[reportArgumentType]


def test_a_score_of_the_wrong_shape_is_refused():
    # A score returning shape (1,) for 2-D samples used to broadcast silently: EM, PC, the ODE
    # sampler and the likelihood ran to wrong numbers (log p = -2.3e4 at a typical point).
    sde, k = sdeml.VPSDE(), jr.key(0)
    bad = lambda t, x: -jnp.sum(x, keepdims=True)
    d = sdeml.diffusion
    runs = {
        "em": lambda: d.euler_maruyama_sampler(bad, sde, (4, 2), n_steps=3, key=k),
        "pc": lambda: d.pc_sampler(bad, sde, (4, 2), n_steps=3, key=k),
        "ode": lambda: d.probability_flow_sampler(bad, sde, (4, 2), key=k),
        "dpm": lambda: d.dpm_solver_sampler(bad, sde, (4, 2), n_steps=3, key=k),
        "one": lambda: d.euler_maruyama_sample(bad, sde, (2,), n_steps=3, key=k),
        "logp": lambda: d.log_likelihood(bad, sde, jnp.ones(2)),
    }
    for name, run in runs.items():
        with pytest.raises(ValueError, match=r"shape \(2,\) to shape \(1,\)"):
            run()
            pytest.fail(name)


def test_a_negative_n_saves_is_refused():
    # a negative n_saves was taken as "save, every n_steps steps": a path of 2 states
    sde, k = sdeml.VPSDE(), jr.key(0)
    sc = lambda t, x: -x
    d = sdeml.diffusion
    with pytest.raises(ValueError, match="`n_saves`"):
        d.euler_maruyama_sampler(sc, sde, (4, 2), n_steps=3, n_saves=-1, key=k)
    with pytest.raises(ValueError, match="`n_saves`"):
        d.pc_sampler(sc, sde, (4, 2), n_steps=3, n_saves=-1, key=k)
    # True was read as one saved state; the ODE sampler had no check at all
    with pytest.raises(ValueError, match="`n_saves` must be a non-negative int, got True"):
        d.euler_maruyama_sampler(sc, sde, (4, 2), n_steps=3, n_saves=True, key=k)
    for bad in (True, -2):
        with pytest.raises(ValueError, match="`n_saves`"):
            d.probability_flow_sampler(sc, sde, (4, 2), n_saves=bad, key=k)


def test_subvp_log_snr_inverse_holds_in_float32_at_small_times():
    # the log-alpha form cancelled near alpha = 1: t = 1e-3 came back as 1.0056e-3 in float32,
    # and a float32 sub-VP "logsnr" grid was not uniform in lambda (spread 1.23 of the mean)
    sde = sdeml.diffusion.SubVPSDE()
    with jax.enable_x64(False):
        t = jnp.asarray(np.logspace(-5, 0, 30), jnp.float32)
        back = sde.t_from_log_snr(sde.log_snr(t))
        assert float(jnp.max(jnp.abs(back / t - 1))) < 1e-5
        ts, _ = sdeml.diffusion.dpm_time_grid(sde, 500, 1e-3, "logsnr")
        steps = jnp.diff(sde.log_snr(ts))
        assert float((jnp.max(steps) - jnp.min(steps)) / jnp.mean(steps)) < 0.02
    t64 = jnp.asarray(np.logspace(-8, 0, 30))
    np.testing.assert_allclose(sde.t_from_log_snr(sde.log_snr(t64)), t64, rtol=1e-12)


def test_diffusion_checks_read_numpy_and_jax_scalars_and_integer_data(monkeypatch):
    # The suite's jaxtyping hook refuses a NumPy or JAX scalar against a `float` annotation
    # first; a user (or a sweep) passes them, so the hook is off here, as for a user.
    import jaxtyping

    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    sde = sdeml.diffusion.VPSDE()
    score = lambda t, x: -x
    # `eps` as a JAX or NumPy scalar skipped the check, and the sampler ran past t = 0
    for bad in (jnp.array(-0.1), np.float32(0.0)):
        with pytest.raises(ValueError, match="`eps`"):
            sdeml.diffusion.euler_maruyama_sampler(
                score, sde, (4, 2), n_steps=5, eps=bad, key=jr.key(0)
            )
    with pytest.raises(ValueError, match="`rho` must be positive"):
        sdeml.diffusion.edm_time_grid(5, rho=np.float32(-7.0))
    with pytest.raises(ValueError, match="`n_steps` must be a positive integer"):
        sdeml.diffusion.dpm_time_grid(sde, 0, 1e-3)  # a one-point grid before
    # integer data: jr.normal refused the dtype, naming neither `batch` nor `dtype`
    ints = jnp.array([[1, 2], [3, 4], [0, 1]])
    floats = ints.astype(jnp.result_type(float))
    for loss in (
        lambda b: sdeml.diffusion.dsm_loss(score, sde, b, key=jr.key(1)),
        lambda b: sdeml.diffusion.edm_loss(lambda s, x: 0.5 * x, b, key=jr.key(1)),
    ):
        assert float(loss(ints)) == float(loss(floats))
    with pytest.raises(ValueError, match="the denoiser maps a sample of shape"):
        sdeml.diffusion.edm_loss(lambda s, x: x[:1], floats, key=jr.key(1))
