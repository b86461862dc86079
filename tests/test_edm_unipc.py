"""EDM parameterisation, EDM Heun, UniPC and the log-density gap against closed forms (issue #21):
the preconditioning identities, exact converters, the exact mixture denoiser, endpoint
convergence orders of the few-step samplers on the exact-score Gaussian mixture (error against a
tight PF-ODE solve from the same initial noises), and bad input."""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import sdeml
import sdeml.diffusion as dif

F64 = jnp.float64
GM = sdeml.data.gaussian_mixture_2d(F64)


def test_edm_preconditioning_identities():
    # Karras et al. Table 1: unit-variance input c_in^2 (sigma^2 + sd^2) = 1, unit-variance
    # effective target ((1 - c_skip)^2 sd^2 + c_skip^2 sigma^2) / c_out^2 = 1, lambda = 1/c_out^2
    sd = 0.7
    for s in (1e-3, 0.1, 1.0, 80.0):
        c_skip, c_out, c_in, c_noise = dif.edm_scalings(jnp.asarray(s, F64), sd)
        np.testing.assert_allclose(c_in**2 * (s**2 + sd**2), 1.0, rtol=1e-13)
        var = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * s**2) / c_out**2
        np.testing.assert_allclose(var, 1.0, rtol=1e-12)
        np.testing.assert_allclose(dif.edm_loss_weight(s, sd), 1.0 / c_out**2, rtol=1e-13)
        np.testing.assert_allclose(c_noise, math.log(s) / 4, rtol=1e-13)
    # with a zero network the denoiser is c_skip x
    net = lambda t, x: jnp.zeros_like(x)
    x = jnp.array([1.0, -2.0], F64)
    np.testing.assert_allclose(dif.EDMDenoiser(net, sd)(0.5, x), sd**2 / (0.25 + sd**2) * x)


def test_converters_are_exact_inverses_and_agree_with_the_x0_form():
    k1, k2 = jr.split(jr.key(0))
    x, d = jr.normal(k1, (5, 3), F64), jr.normal(k2, (5, 3), F64)
    s = 0.37
    score = dif.denoiser_to_score(d, x, s)
    np.testing.assert_allclose(dif.score_to_denoiser(score, x, s), d, rtol=1e-13)
    eps = dif.denoiser_to_eps(d, x, s)
    np.testing.assert_allclose(dif.eps_to_denoiser(eps, x, s), d, rtol=1e-13)
    np.testing.assert_allclose(dif.score_to_eps(score, s), eps, rtol=1e-13)
    np.testing.assert_allclose(dif.x0_to_score(d, x, 1.0, s), score, rtol=1e-13)


@pytest.mark.parametrize("sde", [sdeml.VPSDE(0.1, 20.0), sdeml.VESDE(0.01, 8.0)], ids=str)
def test_score_model_read_as_denoiser_is_the_exact_mixture_denoiser(sde):
    den = dif.ScoreDenoiser(sdeml.MixtureScore(GM, sde), sde)
    exact = dif.MixtureDenoiser(GM)
    x = jnp.array([0.4, -0.3], F64)
    for t in (1e-3, 0.1, 0.5, 0.9):
        s = den.sigma_of(jnp.asarray(t, F64))
        np.testing.assert_allclose(den(s, x), exact(s, x), rtol=1e-9, atol=1e-11)


def test_edm_time_grid():
    g = dif.edm_time_grid(10, 0.002, 80.0, 7.0, dtype=F64)
    assert g.shape == (11,) and float(g[0]) == 80.0 and float(g[-1]) == 0.002
    assert bool(jnp.all(jnp.diff(g) < 0))
    np.testing.assert_allclose(dif.edm_time_grid(4, 1.0, 5.0, 1.0, dtype=F64), [5, 4, 3, 2, 1])
    z = dif.edm_time_grid(3, 0.1, 1.0, append_zero=True, dtype=F64)
    assert z.shape == (5,) and float(z[-1]) == 0.0


def _gap(x, n_data=20_000):
    data = GM.sample(n_data, key=jr.key(99))
    return dif.log_density_gap(x, data, GM)


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
@pytest.mark.parametrize("churn", [0.0, 10.0])
def test_edm_heun_samples_the_mixture(churn):
    # the exact denoiser, 32 Heun steps: the samples' mean log-density under the mixture equals
    # the data's within 4 standard errors (a sampler blurring the modes by 10 % fails it)
    r = dif.edm_sampler(
        dif.MixtureDenoiser(GM), (4000, 2), n_steps=32, sigma_min=2e-3, sigma_max=40.0,
        s_churn=churn, s_tmin=0.05, s_tmax=10.0, dtype=F64, key=jr.key(1),
    )  # fmt: skip
    g = _gap(r.x)
    assert abs(float(g["gap"])) < 4 * float(g["stderr"]), g
    assert int(r.nfe) == 65


@pytest.mark.slow  # ~5 s
def test_log_density_gap_detects_blur_and_collapse():
    x = GM.sample(4000, key=jr.key(2))
    g = _gap(x)
    assert abs(float(g["gap"])) < 4 * float(g["stderr"])
    blur = _gap(x + 0.15 * jr.normal(jr.key(3), x.shape, F64))
    assert float(blur["gap"]) < -6 * float(blur["stderr"])
    means = GM.means[jnp.argmin(jnp.linalg.norm(x[:, None] - GM.means[None], axis=-1), 1)]
    collapse = _gap(means + 0.5 * (x - means))
    assert float(collapse["gap"]) > 6 * float(collapse["stderr"])
    with pytest.raises(ValueError, match="`samples`"):
        dif.log_density_gap(jnp.zeros((10, 3)), jnp.zeros((20, 3)), GM)


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_edm_loss_prefers_the_ideal_denoiser_and_has_gradients():
    batch = GM.sample(256, key=jr.key(4))
    ideal = dif.edm_loss(dif.MixtureDenoiser(GM), batch, sigma_data=1.0, key=jr.key(5))
    ident = dif.edm_loss(lambda s, x: x, batch, sigma_data=1.0, key=jr.key(5))
    assert float(ideal) < 0.5 * float(ident)
    den = dif.EDMDenoiser(sdeml.nn.TimeMLP(2, 16, 1, embed_scale=1.0, key=jr.key(6), dtype=F64))
    grads = eqx.filter_jit(eqx.filter_grad(lambda d: dif.edm_loss(d, batch, key=jr.key(7))))(den)
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array))
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in leaves)


def test_samplers_jit_vmap_match_eager():
    den = dif.MixtureDenoiser(GM)
    run = lambda k: dif.edm_sampler(den, (8, 2), n_steps=6, sigma_max=20.0, dtype=F64, key=k).x
    keys = jr.split(jr.key(8), 3)
    batched = jax.jit(jax.vmap(run))(keys)
    for i in range(3):
        np.testing.assert_allclose(batched[i], run(keys[i]), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ convergence on the mixture
VP = sdeml.VPSDE(0.1, 20.0)
SCORE = sdeml.MixtureScore(GM, VP)
EPS = 1e-3
N_PTS = 256


def _x_T():
    return VP.prior_sample((N_PTS, 2), key=jr.key(10), dtype=F64)


@functools.cache
def _reference():
    return dif.probability_flow_sampler(
        SCORE, VP, (N_PTS, 2), solver="dopri8", rtol=1e-12, atol=1e-12, eps=EPS, x_T=_x_T(),
        key=jr.key(0),
    ).x  # fmt: skip


SAMPLERS = {
    # name: (nominal order, steps -> result); all end at t = eps without the denoising step
    "ddim": (1, lambda M: dict(f=dif.dpm_solver_sampler, order=1, n_steps=M)),
    "edm_euler": (1, lambda M: dict(f=dif.edm_heun_sampler, method="euler", n_steps=M)),
    "edm_heun": (2, lambda M: dict(f=dif.edm_heun_sampler, n_steps=M)),
    "dpmpp_2m": (2, lambda M: dict(f=dif.dpm_solver_sampler, order=2, n_steps=M)),
    # UniP-k alone has order k; the corrector UniC raises it by one at no extra evaluation
    # (Zhao et al. 2023, Theorem 3.1): "UniPC-3" in the sense of order 3 is UniP-3 without the
    # corrector or UniPC with order=2; order=3 with the corrector is fourth order
    "unip_3": (3, lambda M: dict(f=dif.unipc_sampler, order=3, corrector=False, n_steps=M)),
    "unipc_2": (3, lambda M: dict(f=dif.unipc_sampler, order=2, n_steps=M)),
    "unipc_3": (4, lambda M: dict(f=dif.unipc_sampler, order=3, n_steps=M)),
}


def _run(name, M):
    kw = SAMPLERS[name][1](M)
    f = kw.pop("f")
    if f is dif.dpm_solver_sampler:
        kw["prediction"] = "data"
    return f(SCORE, VP, (N_PTS, 2), eps=EPS, denoise=False, x_T=_x_T(), key=jr.key(0), **kw).x


def _err(x, ref):
    return float(jnp.sqrt(jnp.mean(jnp.sum((x - ref) ** 2, axis=1))))


ORDER_STEPS = {  # in the asymptotic range of each method (measured; see the report of #21)
    "ddim": [40, 80, 160, 320],
    "edm_euler": [40, 80, 160, 320],
    "edm_heun": [20, 40, 80, 160],
    "dpmpp_2m": [20, 40, 80, 160],
    "unip_3": [40, 80, 160, 320],
    "unipc_2": [40, 80, 160, 320],
    "unipc_3": [40, 80, 160, 320],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_endpoint_convergence_order(name):
    ref = _reference()
    Ms = ORDER_STEPS[name]
    errs = [_err(_run(name, M), ref) for M in Ms]
    slope = -np.polyfit(np.log(Ms), np.log(errs), 1)[0]
    assert abs(slope - SAMPLERS[name][0]) < 0.3, (slope, errs)


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
@pytest.mark.parametrize("nfe,gain", [(5, 2.2), (10, 3.5)])
def test_multistep_beats_ddim_at_few_steps(nfe, gain):
    # Issue #21 asks for a fivefold gain at NFE 5 and 10. Measured on this mixture (eps = 1e-3,
    # 256 draws, 12-05), DDIM against the best of DPM-Solver++(2M/3M) and UniPC orders 1-3 with
    # either prediction and either B(h), each grid shared by all: log-SNR grid 2.42x (NFE 5,
    # UniPC-2 data) and 3.83x (NFE 10, UniPC-3 noise); EDM rho = 7 grid 2.87x and 3.51x;
    # time-uniform 1.59x and 1.78x. No grid reaches 5x: the samplers are pre-asymptotic there
    # (see the report of #21). The test holds the log-SNR grid's measured margins, less ~10 %.
    # On fitted grids (`optimize_time_grid`) see `test_optimized_grids_against_ddim`.
    ref = _reference()
    ddim = _err(_run("ddim", nfe), ref)
    kw = dict(eps=EPS, denoise=False, x_T=_x_T(), key=jr.key(0), n_steps=nfe)
    multistep = [_err(_run(n, nfe), ref) for n in ("dpmpp_2m", "unipc_2", "unipc_3")]
    noise = dif.unipc_sampler(SCORE, VP, (N_PTS, 2), prediction="noise", **kw).x  # order 3
    multistep.append(_err(noise, ref))
    assert min(multistep) <= ddim / gain, (multistep, ddim)


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_default_prediction_is_the_one_that_measures_better():
    # docs/themes/diffusion.md: the log-density gap on the exact mixture, paired draws. The noise
    # prediction (the default) is better with order 2 and below 10 evaluations, where third-order
    # data prediction is unstable; the data prediction wins only at order 3 with 10 or more
    data = GM.sample(20_000, key=jr.key(99))
    mean_data = float(jnp.mean(jax.vmap(GM.log_prob)(data)))

    def gap(nfe, order, **kw):
        x = dif.dpm_solver_sampler(
            SCORE, VP, (20_000, 2), n_steps=nfe - 1, order=order, dtype=F64, key=jr.key(1), **kw
        ).x
        return float(jnp.mean(jax.vmap(GM.log_prob)(x))) - mean_data

    default, noise = gap(8, 3), gap(8, 3, prediction="noise")
    assert default == noise
    assert gap(8, 3, prediction="data") < noise - 0.5  # measured -1.48 against -0.16
    assert abs(gap(20, 2, prediction="data")) > abs(gap(20, 2, prediction="noise"))
    data20, noise20 = gap(20, 3, prediction="data"), gap(20, 3, prediction="noise")
    assert abs(data20) < 0.7 * abs(noise20)  # measured -0.016 against -0.034


def test_unip2_without_corrector_is_dpm_solver_pp_2m():
    kw = dict(eps=EPS, denoise=False, x_T=_x_T(), key=jr.key(0), n_steps=12)
    a = dif.unipc_sampler(SCORE, VP, (N_PTS, 2), order=2, corrector=False, **kw).x
    b = dif.dpm_solver_sampler(SCORE, VP, (N_PTS, 2), order=2, prediction="data", **kw).x
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ time grids given as times
def _sampler_on(name, M, grid, x_T):
    kw = dict(eps=EPS, denoise=False, x_T=x_T, key=jr.key(0), n_steps=M, grid=grid)
    if name == "unipc":
        return dif.unipc_sampler(SCORE, VP, x_T.shape, order=3, **kw).x
    if name == "unipc_2":
        return dif.unipc_sampler(SCORE, VP, x_T.shape, order=2, **kw).x
    order = {"ddim": 1, "dpmpp_2m": 2, "dpmpp_3m": 3}[name]
    return dif.dpm_solver_sampler(SCORE, VP, x_T.shape, order=order, prediction="data", **kw).x


@pytest.mark.parametrize("name", ["ddim", "dpmpp_3m", "unipc"])
def test_a_grid_given_as_its_times_is_the_named_grid(name):
    x_T = _x_T()[:16]
    ts = dif.unipc_time_grid(VP, 6, EPS, "edm", F64)
    np.testing.assert_array_equal(_sampler_on(name, 6, ts, x_T), _sampler_on(name, 6, "edm", x_T))


@pytest.mark.parametrize(
    "name",
    # unipc ~11 s: moved from the default run (12-06: the default run took 9 min 58 s here)
    ["ddim", "dpmpp_3m", pytest.param("unipc", marks=pytest.mark.slow)],
)
def test_the_endpoint_is_differentiable_in_the_grid(name):
    # the multistep updates select their order with `where`; a 0/0 in a branch not taken
    # (the history's step ratios at the first step) turned the gradient into NaN for DDIM
    x_T, ts = _x_T()[:16], dif.unipc_time_grid(VP, 6, EPS, "logsnr", F64)
    g = jax.grad(lambda ts: jnp.sum(_sampler_on(name, 6, ts, x_T) ** 2))(ts)
    assert bool(jnp.all(jnp.isfinite(g))), g
    assert float(jnp.max(jnp.abs(g[1:-1]))) > 0


def test_bad_grid_arrays_are_refused():
    x_T = _x_T()[:4]
    ts = dif.unipc_time_grid(VP, 4, EPS, "logsnr", F64)
    for bad, msg in [
        (ts[:-1], "`grid` has shape \\(4,\\)"),
        (ts[::-1], "`grid` must be strictly decreasing"),
        (ts.at[2].set(jnp.nan), "`grid` has non-finite times"),
        (ts.at[-1].set(0.01), "`grid` must run from sde.T = 1.0 to eps = 0.001"),
    ]:
        for name in ("ddim", "unipc"):
            with pytest.raises(ValueError, match=msg):
                _sampler_on(name, 4, bad, x_T)


@pytest.mark.slow  # ~14 s: moved from the default run (12-06, the same)
def test_optimize_time_grid_lowers_the_error_on_other_draws():
    x = VP.prior_sample((128, 2), key=jr.key(20), dtype=F64)
    exact = dif.probability_flow_sampler(
        SCORE, VP, x.shape, solver="dopri8", rtol=1e-8, atol=1e-8, eps=EPS, x_T=x, key=jr.key(0)
    ).x  # fmt: skip
    run = lambda ts, x: _sampler_on("ddim", 4, ts, x)
    fit = dif.optimize_time_grid(run, VP, 4, x[:64], exact[:64], eps=EPS, steps=60)
    assert fit.ts.shape == (5,) and fit.history.shape == (60,)
    np.testing.assert_allclose(fit.ts[jnp.array([0, -1])], [VP.T, EPS], rtol=1e-12)
    assert bool(jnp.all(jnp.diff(fit.ts) < 0))
    np.testing.assert_allclose(fit.lambdas, VP.log_snr(fit.ts), rtol=1e-12)
    assert float(fit.error) < 0.8 * float(fit.error_initial)
    np.testing.assert_allclose(float(fit.error_initial), _err(run("logsnr", x[:64]), exact[:64]))
    # scored on draws it was not fitted to
    assert _err(run(fit.ts, x[64:]), exact[64:]) < 0.8 * _err(run("logsnr", x[64:]), exact[64:])


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_optimize_time_grid_bad_input():
    x = _x_T()[:4]
    run = lambda ts, x: _sampler_on("ddim", 3, ts, x)
    for kw, msg in [
        (dict(n_steps=0), "`n_steps`"),
        (dict(steps=0), "`steps`"),
        (dict(learning_rate=0.0), "`learning_rate`"),
        (dict(min_step=1.0), "`min_step` must be in \\[0, 1\\)"),
        (dict(init="cosine"), "unknown `init` grid 'cosine'"),
        (dict(target=x[:3]), "`x_T` and `target` must share one shape"),
    ]:
        args = dict(n_steps=3, target=x) | kw
        with pytest.raises(ValueError, match=msg):
            dif.optimize_time_grid(run, VP, args.pop("n_steps"), x, args.pop("target"), **args)
    with pytest.raises(ValueError, match="not finite"):
        dif.optimize_time_grid(run, VP, 3, x, x * jnp.nan)


@pytest.mark.slow  # ~40 s: eight grid fits
@pytest.mark.parametrize("nfe", [5, 10])
def test_optimized_grids_against_ddim(nfe):
    # Issue #21: the best multistep sampler's endpoint error <= DDIM's / 5 at NFE 5 and 10.
    # Every sampler's grid is fitted (Adam, 300 iterations) on 1024 other draws and scored on
    # the 256 of the order tests. Measured (12-06): NFE 5, multistep best 0.075 (UniPC-3 data)
    # against DDIM 0.484 on its default log-SNR grid, 0.314 on its best named grid (quadratic),
    # 0.232 on its own fitted grid: 6.4x, 4.2x, 3.1x. NFE 10: 0.0095 (UniPC-2) against 0.258,
    # 0.156 and 0.117: 27.3x, 16.5x, 12.4x. The margins below hold ~10 % less.
    x_fit = VP.prior_sample((1024, 2), key=jr.key(123), dtype=F64)
    ref_fit = dif.probability_flow_sampler(
        SCORE, VP, x_fit.shape, solver="dopri8", rtol=1e-12, atol=1e-12, eps=EPS, x_T=x_fit,
        key=jr.key(0),
    ).x  # fmt: skip
    x_T, ref = _x_T(), _reference()

    def fitted(name):
        run = lambda ts, x: _sampler_on(name, nfe, ts, x)
        ts = dif.optimize_time_grid(run, VP, nfe, x_fit, ref_fit, eps=EPS).ts
        return _err(run(ts, x_T), ref)

    ddim_named = {g: _err(_sampler_on("ddim", nfe, g, x_T), ref) for g in dif.GRIDS}
    ddim_fit = fitted("ddim")
    best = min(fitted(n) for n in ("dpmpp_2m", "unipc_2", "unipc"))
    assert best <= ddim_named["logsnr"] / 5, (best, ddim_named)
    gains = {5: (3.8, 2.8), 10: (14.8, 11.1)}[nfe]  # against DDIM's best named grid, its own fit
    assert best <= min(ddim_named.values()) / gains[0], (best, ddim_named)
    assert best <= ddim_fit / gains[1], (best, ddim_fit)


# ------------------------------------------------------------------ bad input
def test_bad_input_is_one_clear_error():
    den = dif.MixtureDenoiser(GM)
    k = jr.key(0)
    with pytest.raises(ValueError, match="`sigma_min` must be below `sigma_max`"):
        dif.edm_time_grid(10, 5.0, 1.0)
    with pytest.raises(ValueError, match="`sigma_min` must be below `sigma_max`"):
        dif.edm_sampler(den, (4, 2), sigma_min=1.0, sigma_max=1.0, key=k)
    with pytest.raises(ValueError, match="`rho`"):
        dif.edm_time_grid(10, 0.1, 1.0, rho=0.0)
    with pytest.raises(ValueError, match="`s_churn`"):
        dif.edm_sampler(den, (4, 2), s_churn=-1.0, key=k)
    with pytest.raises(ValueError, match="`n_steps`"):
        dif.edm_sampler(den, (4, 2), n_steps=0, key=k)
    with pytest.raises(ValueError, match="`n_steps` must be an int >= 3"):
        dif.unipc_sampler(SCORE, VP, (4, 2), n_steps=2, order=3, key=k)
    with pytest.raises(ValueError, match="`n_steps` must be an int >= 2"):
        dif.unipc_edm_sampler(den, (4, 2), n_steps=1, order=2, key=k)
    with pytest.raises(ValueError, match="`order`"):
        dif.unipc_sampler(SCORE, VP, (4, 2), order=4, key=k)
    with pytest.raises(ValueError, match="`sigma_data`"):
        dif.EDMDenoiser(lambda t, x: x, sigma_data=0.0)


def test_a_denoiser_of_the_wrong_shape_is_refused():
    # a denoiser returning (1,) for 2-D samples gave samples of shape (4, 1), silently
    bad = lambda s, x: jnp.sum(x, keepdims=True)
    k = jr.key(0)
    with pytest.raises(ValueError, match=r"shape \(2,\) to shape \(1,\)"):
        dif.edm_sampler(bad, (4, 2), n_steps=3, key=k)
    with pytest.raises(ValueError, match=r"shape \(2,\) to shape \(1,\)"):
        dif.unipc_edm_sampler(bad, (4, 2), n_steps=3, key=k)
    with pytest.raises(ValueError, match=r"shape \(2,\) to shape \(1,\)"):
        dif.unipc_sampler(lambda t, x: jnp.sum(x, keepdims=True), VP, (4, 2), n_steps=3, key=k)
