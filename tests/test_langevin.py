"""Langevin samplers against analytic stationary laws; Gibbs/ULA-invariant tools; bad input."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.stats

import sdeml
from sdeml.langevin import (
    MALA,
    SGLD,
    ULA,
    Potentials,
    batched_value_and_grad,
    gibbs_bin_probabilities,
    histogram_chains,
    histogram_chi2,
    langevin_step,
    mala_chain,
    run_chains,
    ula_chain,
    ula_gaussian_stationary_cov,
    ula_invariant_bin_probabilities,
)
from sdeml.metrics import expected_tv_iid, ks_distance, total_variation

F64 = jnp.float64
PREC = jnp.diag(jnp.array([1.0, 10.0], F64))  # anisotropic Gaussian, condition number 10


def _final_states(kernel, x0, n_steps, key):
    """Final states of independent chains: exact i.i.d. draws of the chain's law at n_steps."""
    state, acc, _ = jax.jit(lambda s, k: run_chains(kernel, s, n_steps, key=k))(
        kernel.init(x0), key
    )
    return state.position, acc


def _cov_and_se(xs):
    """Covariance diagonal of i.i.d. rows and its standard error (Gaussian 4th moment)."""
    v = jnp.var(xs, axis=0)
    return v, v * jnp.sqrt(2.0 / xs.shape[0])


def test_batched_value_and_grad_matches_vmap():
    x = jr.normal(jr.key(0), (3, 4, 2), F64)
    u, g = batched_value_and_grad(Potentials.mixture_2d, x)
    flat = x.reshape(-1, 2)
    np.testing.assert_allclose(u.ravel(), jax.vmap(Potentials.mixture_2d)(flat), rtol=1e-13)
    np.testing.assert_allclose(
        g.reshape(-1, 2), jax.vmap(jax.grad(Potentials.mixture_2d))(flat), rtol=1e-12
    )


def test_ula_gaussian_biased_variance():
    # h * lambda_max = 0.5: ULA's variance along lambda = 10 is T/(lambda (1 - 0.25)) = 4/3 of
    # the target's, a 33% bias; 10^4 independent chains give a 1.4% standard error, so the
    # closed form is checked to within 4 standard errors and the target is rejected by > 10.
    h, n = 0.05, 10_000
    ula = ULA(Potentials.gaussian(PREC), step_size=h)
    xs, _ = _final_states(ula, jnp.zeros((n, 2), F64), 300, jr.key(1))  # (1 - h)^600 ~ 4e-14
    var, se = _cov_and_se(xs)
    exact = jnp.diag(ula_gaussian_stationary_cov(PREC, h))
    assert jnp.all(jnp.abs(var - exact) < 4 * se), (var, exact, se)
    assert abs(var[1] - 0.1) > 10 * se[1]  # the discretisation bias is detected


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_one_langevin_step_under_ula_mala_sgld_and_the_engine():
    # issue #16: ULA, SGLD (full batch) and MALA's proposal are the one update
    # theta' = theta - h grad U + sqrt(2 h T) xi, which is also the engine's EM step on the
    # overdamped Langevin SDE with dW = sqrt(h) xi.
    h, temp = 0.07, 0.6
    pot = Potentials.gaussian(PREC)
    x = jr.normal(jr.key(30), (6, 2), F64)
    grad = jax.vmap(jax.grad(pot))(x)
    key = jr.key(31)
    ula = ULA(pot, step_size=h, temperature=temp)
    ref = langevin_step(x, grad, h, temp, jr.normal(key, x.shape, F64))
    np.testing.assert_allclose(ula.step(ula.init(x), key=key)[0].position, ref, rtol=1e-14)
    np.testing.assert_allclose(ref, x - h * grad + jnp.sqrt(2 * h * temp) * jr.normal(key, x.shape))
    xi = jr.normal(key, x.shape, F64)
    em = jax.vmap(
        lambda y, dw: (
            sdeml.core.EulerMaruyama()
            .step(ula.sde, sdeml.core.SolverState(jnp.asarray(0.0, F64), y), h, dw)
            .y
        )
    )(x, jnp.sqrt(h) * xi)
    np.testing.assert_allclose(em, ref, rtol=1e-12, atol=1e-14)
    mala = MALA(pot, step_size=h, temperature=temp)
    new, info = mala.step(mala.init(x), key=key)
    prop = langevin_step(x, grad, h, temp, jr.normal(jr.split(key)[0], x.shape, F64))
    acc = np.asarray(info.is_accepted)
    assert acc.any() and np.all(info.acceptance_rate <= 1.0)
    np.testing.assert_allclose(new.position[acc], prop[acc], rtol=1e-14)
    np.testing.assert_array_equal(new.position[~acc], x[~acc])
    data_x = jr.normal(jr.key(32), (20, 2), F64)
    sgld = SGLD(
        lambda th, xi: -0.5 * jnp.sum((th - xi) ** 2), lambda th: -0.5 * jnp.sum(th**2), data_x,
        batch_size=20, step_size=h, temperature=temp,
    )  # fmt: skip
    g_full = jax.vmap(jax.grad(sgld.potential))(x)
    ref_sgld = langevin_step(x, g_full, h, temp, jr.normal(jr.split(key)[1], x.shape, F64))
    np.testing.assert_allclose(sgld.step(sgld.init(x), key=key)[0].position, ref_sgld, rtol=1e-12)


def test_ula_on_the_engine_has_ulas_biased_gaussian_law():
    # ULA's chain run by sdeml.simulate on ULA(...).sde (EM with dt = h): the same biased
    # stationary variance as the kernel (T/(lambda (1 - h lambda / 2))), within 4 standard errors,
    # and the target's variance 0.1 is rejected.
    h, n = 0.05, 20_000
    ula = ULA(Potentials.gaussian(PREC), step_size=h)
    paths = sdeml.simulate(
        ula.sde, jnp.zeros(2, F64), t1=300 * h, n_steps=300, n_paths=n, dtype=F64, key=jr.key(33)
    )
    var, se = _cov_and_se(paths.xs[:, -1])
    exact = jnp.diag(ula_gaussian_stationary_cov(PREC, h))
    assert jnp.all(jnp.abs(var - exact) < 4 * se), (var, exact, se)
    assert abs(var[1] - 0.1) > 10 * se[1]


def test_em_chain_law_ou_closed_form():
    # For dX = -theta X dt + g dW the EM chain is Gaussian with m' = (1 - theta dt) m and
    # v' = (1 - theta dt)^2 v + g^2 dt. The Chapman-Kolmogorov quadrature is spectrally accurate
    # (grid spacing <= g sqrt(dt) / 4): against that exact density summed by the same midpoint
    # rule per bin, agreement to 1e-12 (measured 5e-16); against exact normal-cdf bin masses,
    # the midpoint rule's own O(h^2) error (measured <= 4.7e-5, 1e-5 after the first save). The
    # continuous OU law differs by the EM time-step bias, ~6e-4 here, resolved 10x over.
    theta, g, dt, m0, s0 = 1.0, 0.8, 0.01, 1.5, 0.3
    lo, hi, bins, every, n_saves = -4.0, 5.0, 45, 20, 5
    q = sdeml.langevin.em_chain_bin_probabilities(
        lambda x: -theta * x, g, lambda x: jax.scipy.stats.norm.pdf(x, m0, s0),
        lo, hi, bins, dt, n_saves, every,
    )  # fmt: skip
    assert q.shape == (n_saves + 1, bins)
    per_bin = int(np.ceil((hi - lo) / bins / (g * np.sqrt(dt) / 4)))
    h = (hi - lo) / (bins * per_bin)
    fine = lo + (np.arange(bins * per_bin) + 0.5) * h
    edges = np.linspace(lo, hi, bins + 1)
    m, v, mid, cdf, ou = m0, s0**2, [], [], []
    for k in range(n_saves * every + 1):
        if k % every == 0:
            sd = np.sqrt(v)
            mid.append((scipy.stats.norm.pdf(fine, m, sd) * h).reshape(bins, -1).sum(-1))
            cdf.append(np.diff(scipy.stats.norm.cdf(edges, m, sd)))
            decay = np.exp(-theta * k * dt)
            ou_sd = np.sqrt(s0**2 * decay**2 + g**2 / (2 * theta) * (1 - decay**2))
            ou.append(np.diff(scipy.stats.norm.cdf(edges, m0 * decay, ou_sd)))
        m, v = (1 - theta * dt) * m, (1 - theta * dt) ** 2 * v + g**2 * dt
    np.testing.assert_allclose(q, np.array(mid), atol=1e-12)
    np.testing.assert_allclose(q, np.array(cdf), atol=6e-5)
    assert np.max(np.abs(q[-1] - ou[-1])) > 4e-4  # the EM time-step bias is resolved


def test_mala_gaussian_no_bias():
    # The same large step: MALA's Metropolis test removes the bias entirely (4-SE band).
    h, n = 0.05, 10_000
    mala = MALA(Potentials.gaussian(PREC), step_size=h)
    xs, acc = _final_states(mala, jnp.zeros((n, 2), F64), 400, jr.key(2))
    var, se = _cov_and_se(xs)
    assert jnp.all(jnp.abs(var - jnp.array([1.0, 0.1])) < 4 * se), (var, se)
    assert 0.5 < float(acc.mean()) < 1.0
    assert abs(float(jnp.mean(xs[:, 0]))) < 4 / np.sqrt(n)


def test_temperature_scales_gibbs_law():
    # pi_T of a Gaussian is N(0, T P^-1): at T = 2.5 the variances are 2.5 and 0.25.
    n, temp = 10_000, 2.5
    mala = MALA(Potentials.gaussian(PREC), step_size=0.03, temperature=temp)
    xs, _ = _final_states(mala, jnp.zeros((n, 2), F64), 400, jr.key(3))
    var, se = _cov_and_se(xs)
    assert jnp.all(jnp.abs(var - jnp.array([2.5, 0.25])) < 4 * se), (var, se)


@pytest.mark.slow  # 10 s: long chains for a TV and KS check
def test_mala_double_well_gibbs_tv_and_ks():
    # Independent chains' final states are i.i.d. from the chain's law; with MALA that law is
    # the Gibbs density, so the histogram's TV must be at the i.i.d. sampling level (TV has
    # relative spread ~ 1/sqrt(n_bins); 1.3x the expectation is > 4 of its standard deviations)
    # and chi^2/dof must be ~ 1 (sd sqrt(2/49) = 0.2; band 1.8).
    n, lo, hi, bins = 10_000, -2.5, 2.5, 50
    mala = MALA(Potentials.double_well, step_size=0.1)
    x0 = 0.5 * jr.normal(jr.key(4), (n, 1), F64)  # in the bulk: see _kernels
    xs, _ = _final_states(mala, x0, 300, jr.key(5))
    counts = jnp.histogram(xs[:, 0], bins=bins, range=(lo, hi))[0]
    probs, outside = gibbs_bin_probabilities(Potentials.double_well, lo, hi, bins)
    assert float(outside) < 1e-10
    tv = total_variation(counts / n, probs)
    assert tv < 1.3 * expected_tv_iid(probs, n), (tv, expected_tv_iid(probs, n))
    chi2, _, _ = histogram_chi2(counts, probs)
    assert chi2 < 1.8
    # KS from the sample against the Gibbs CDF on a fine grid (critical value at 1%: 1.63/sqrt n)
    grid = jnp.linspace(lo, hi, 20_001)
    dens = jnp.exp(-jax.vmap(Potentials.double_well)(grid[:, None]))
    cdf = jnp.concatenate([jnp.zeros(1), jnp.cumsum(0.5 * (dens[1:] + dens[:-1]))])
    cdf = cdf / cdf[-1]
    assert ks_distance(xs[:, 0], lambda x: jnp.interp(x, grid, cdf)) < 1.63 / np.sqrt(n)


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_ula_double_well_bias_explained_by_its_invariant_law():
    # h = 0.05: ULA's histogram agrees with ULA's own invariant law (computed from the
    # discretised kernel) at the sampling level, and is far from the Gibbs law (chi^2 >> 1).
    n, lo, hi, bins, h = 10_000, -2.5, 2.5, 50, 0.05
    ula = ULA(Potentials.double_well, step_size=h)
    xs, _ = _final_states(ula, 0.5 * jr.normal(jr.key(6), (n, 1), F64), 300, jr.key(7))
    counts = jnp.histogram(xs[:, 0], bins=bins, range=(lo, hi))[0]
    gibbs, _ = gibbs_bin_probabilities(Potentials.double_well, lo, hi, bins)
    ula_law, out = ula_invariant_bin_probabilities(Potentials.double_well, h, lo, hi, bins)
    assert abs(float(jnp.sum(ula_law) + out) - 1.0) < 1e-10
    chi2_own, _, _ = histogram_chi2(counts, ula_law)
    chi2_gibbs, _, _ = histogram_chi2(counts, gibbs)
    assert chi2_own < 1.8 < 5.0 < chi2_gibbs, (chi2_own, chi2_gibbs)
    tv_hist = total_variation(counts / n, gibbs)
    tv_law = total_variation(ula_law, gibbs)
    assert abs(tv_hist - tv_law) < 2 * expected_tv_iid(gibbs, n), (tv_hist, tv_law)


@pytest.mark.slow  # 8 s: moved from the default run (12-07, later: default run < 10 min)
def test_ula_invariant_law_converges_to_gibbs_linearly():
    # The bias of ULA is O(h): TV(ULA law, Gibbs) halves when h halves (slope 1 +- 0.15).
    hs = jnp.array([0.04, 0.02, 0.01])
    gibbs, _ = gibbs_bin_probabilities(Potentials.double_well, -2.5, 2.5, 50)
    tvs = jnp.array(
        [
            total_variation(
                ula_invariant_bin_probabilities(
                    Potentials.double_well, float(h), -2.5, 2.5, 50, n_sub=8
                )[0],
                gibbs,
            )
            for h in hs
        ]
    )
    slope = np.polyfit(np.log(hs), np.log(tvs), 1)[0]
    assert abs(slope - 1.0) < 0.15, (tvs, slope)


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_mixture_2d_histogram_tv():
    # 2-D mixture through the histogram accumulated over 2000 chains x 150 steps. Successive
    # steps are correlated, so the bound is coarse: TV below 4x the i.i.d. level of
    # n_chains * n_steps / 10 samples (an autocorrelation time of ~10 steps).
    n, steps, bins = 2000, 150, 20
    mala = MALA(Potentials.mixture_2d, step_size=0.2)
    x0 = 2.0 * jr.normal(jr.key(8), (n, 2), F64)
    state, _, _ = jax.jit(lambda s, k: run_chains(mala, s, 200, key=k))(mala.init(x0), jr.key(9))
    hist = jax.jit(lambda s, k: histogram_chains(mala, s, steps, -3.5, 3.5, bins, key=k))
    _, counts, acc = hist(state, jr.key(10))
    probs, outside = gibbs_bin_probabilities(Potentials.mixture_2d, -3.5, 3.5, bins, d=2, n_sub=4)
    tv = total_variation(counts / (n * steps), probs)
    assert counts.shape == (bins, bins)
    assert tv < 4 * expected_tv_iid(probs, n * steps / 10), tv
    assert 0.4 < float(acc.mean()) < 1.0


def test_sgld_gaussian_mean_closed_form():
    # x_i ~ N(theta, 1), prior N(0, 10^2): U = theta^2/200 + sum (theta - x_i)^2 / 2 (lambda =
    # N + 1/100). With replacement, the minibatch gradient adds variance N^2 Var(x)/B, so SGLD
    # is the linear recursion theta' = (1 - h lambda) theta + ... with stationary variance
    # (2h + h^2 N^2 Var(x) / B) / (1 - (1 - h lambda)^2) and mean the posterior mean.
    n_data, b, h = 100, 10, 5e-4
    x = 1.0 + jr.normal(jr.key(11), (n_data,), F64)
    sgld = SGLD(
        lambda th, xi: -0.5 * (th[0] - xi) ** 2,
        lambda th: -0.5 * th[0] ** 2 / 100.0,
        x,
        batch_size=b,
        step_size=h,
        replace=True,
    )
    lam = n_data + 0.01
    post_mean = jnp.sum(x) / lam
    var = (2 * h + h**2 * n_data**2 * jnp.var(x) / b) / (1 - (1 - h * lam) ** 2)
    n = 5_000
    xs, _ = _final_states(sgld, jnp.full((n, 1), float(post_mean), F64), 200, jr.key(12))
    v, se = _cov_and_se(xs)
    assert abs(v[0] - var) < 4 * se[0], (v, var)
    assert abs(float(jnp.mean(xs)) - post_mean) < 4 * jnp.sqrt(var / n)
    assert var > 1.2 / lam  # the minibatch noise is visible against the posterior variance


def test_sgld_full_batch_is_ula():
    x = jr.normal(jr.key(13), (30, 2), F64)
    loglik = lambda th, xi: -0.5 * jnp.sum((th - xi) ** 2)
    logprior = lambda th: -0.5 * jnp.sum(th**2)
    sgld = SGLD(loglik, logprior, x, batch_size=30, step_size=0.01)
    ula = ULA(sgld.potential, step_size=0.01)
    x0 = jr.normal(jr.key(14), (5, 2), F64)
    s1, _ = sgld.step(sgld.init(x0), key=jr.key(15))
    # SGLD splits the key (minibatch, noise); drive ULA with the same noise key.
    s2, _ = ula.step(ula.init(x0), key=jr.split(jr.key(15))[1])
    np.testing.assert_allclose(s1.position, s2.position, rtol=1e-12)


def test_ks_distance_matches_scipy():
    x = jr.normal(jr.key(16), (500,), F64)
    ours = ks_distance(x, jax.scipy.stats.norm.cdf)
    assert abs(float(ours) - scipy.stats.kstest(np.asarray(x), "norm").statistic) < 1e-12


def test_vmap_over_step_sizes_matches_loop_and_traces_once():
    hs = jnp.array([0.01, 0.02, 0.04], F64)
    x0 = jnp.zeros((8, 2), F64)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def final(h, key):
        mala = MALA(Potentials.gaussian(PREC), step_size=h)
        return run_chains(mala, mala.init(x0), 20, key=key)[0].position

    batched = jax.vmap(final, in_axes=(0, None))(hs, jr.key(17))
    loop = jnp.stack([final(h, jr.key(17)) for h in hs])  # scalar arrays: no retrace
    np.testing.assert_allclose(batched, loop, rtol=1e-10, atol=1e-12)


def test_grad_through_ula_chain():
    # d E[x_n] / d x0 for ULA on U = x^2 / 2 is (1 - h)^n exactly (noise is additive).
    ula = ULA(lambda x: 0.5 * jnp.sum(x**2), step_size=0.1)

    def mean_final(x0):
        s = run_chains(ula, ula.init(jnp.full((4, 1), x0)), 10, key=jr.key(18))[0]
        return jnp.mean(s.position)

    assert abs(float(jax.grad(mean_final)(jnp.asarray(0.3, F64))) - 0.9**10) < 1e-12


def test_top_level_export():
    assert sdeml.MALA is MALA and sdeml.run_chains is run_chains


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ULA(lambda x: x, step_size=0.1).init(jnp.zeros((3, 2))), "potential.*scalar"),
        (lambda: MALA(Potentials.double_well, step_size=0.0), "step_size"),
        (lambda: ULA(Potentials.double_well, step_size=-1.0), "step_size"),
        (lambda: MALA(Potentials.double_well, step_size=0.1, temperature=0.0), "temperature"),
        # a step size of shape (n,) broadcast against the chains: MALA's 3 chains in d = 1 came
        # back as (3, 3) (here the annotation refuses it first), ula_chain took one per
        # coordinate and mala_chain failed inside its scan
        (lambda: _chain(ula_chain, step_size=jnp.full(2, 0.1)), "`step_size` must be a scalar"),
        (lambda: _chain(mala_chain, temperature=jnp.ones(2)), "`temperature` must be a scalar"),
        (
            lambda: SGLD(
                lambda t, x: x, lambda t: jnp.zeros(()), jnp.zeros(5), batch_size=6, step_size=0.1
            ),
            "batch_size",
        ),
        (
            lambda: SGLD(
                lambda t, x: t * x, lambda t: jnp.sum(t), jnp.zeros(5), batch_size=2, step_size=0.1
            ).init(jnp.zeros((2, 2))),
            "log_likelihood.*scalar",
        ),
        (lambda: ULA(Potentials.double_well, step_size=0.1).init(jnp.asarray(1.0)), "position"),
        (lambda: gibbs_bin_probabilities(Potentials.double_well, 1.0, -1.0, 10), "hi"),
        (lambda: ula_invariant_bin_probabilities(Potentials.double_well, 1e-4, -2, 2, 10), "n_sub"),
        (lambda: total_variation(jnp.ones(3), jnp.ones(4)), "shape"),
        # histogram helpers: each argument named (n_steps=0 gave NaN acceptance, lo > hi
        # counted anyway, n_bins=0 an IndexError)
        (lambda: _hist(n_steps=0), "`n_steps` must be a positive integer"),
        (lambda: _hist(n_steps=True), "`n_steps` must be a positive integer"),
        (lambda: _hist(lo=3.0, hi=-3.0), "`hi` must be greater than `lo`"),
        (lambda: _hist(lo=jnp.zeros(3)), r"`lo` must be a scalar or .* shape \(1,\)"),
        (lambda: _hist(hi=jnp.inf), "must be finite"),
        (lambda: gibbs_bin_probabilities(Potentials.double_well, -1.0, 1.0, 0), "`n_bins`"),
        (lambda: gibbs_bin_probabilities(Potentials.double_well, -1.0, 1.0, 4, n_sub=0), "n_sub"),
        (lambda: gibbs_bin_probabilities(Potentials.double_well, -1, 1, 4, pad_bins=-1), "pad"),
        (
            lambda: gibbs_bin_probabilities(
                Potentials.mixture_2d, jnp.zeros(2), -jnp.ones(2), 4, 2
            ),
            "`hi` must be greater than `lo`",
        ),
        (lambda: ula_invariant_bin_probabilities(Potentials.double_well, 0.1, 2, -2, 10), "`hi`"),
        (lambda: ula_invariant_bin_probabilities(Potentials.double_well, 0.1, -2, 2, 0), "n_bins"),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def _chain(chain, step_size=0.1, temperature=1.0):
    U = lambda x: 0.5 * jnp.sum(x**2)
    kw = dict(step_size=step_size, temperature=temperature, key=jr.key(0))
    return chain(U, jnp.zeros(2, F64), 10, **kw)


def _hist(n_steps=5, lo=-3.0, hi=3.0, n_bins=6):
    ula = ULA(Potentials.double_well, step_size=0.1)
    state = ula.init(jnp.zeros((4, 1), F64))
    return histogram_chains(ula, state, n_steps, lo, hi, n_bins, key=jr.key(0))


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_gibbs_bin_probabilities_per_coordinate_box():
    """Per-coordinate `lo`/`hi` (as `histogram_chains` takes them): for a separable potential
    the 2-D bin probabilities are the outer product of the 1-D ones (the same margin in bins
    each side, so the normalising boxes are products too), and they match N(0, I)."""
    lo, hi = jnp.array([-1.0, -2.0], F64), jnp.array([1.0, 2.0], F64)
    U2 = Potentials.gaussian(jnp.eye(2, dtype=F64))
    U1 = Potentials.gaussian(jnp.eye(1, dtype=F64))
    p2, out2 = gibbs_bin_probabilities(U2, lo, hi, 5, d=2, pad_bins=20)
    p_a, _ = gibbs_bin_probabilities(U1, -1.0, 1.0, 5, pad_bins=20)
    p_b, _ = gibbs_bin_probabilities(U1, -2.0, 2.0, 5, pad_bins=20)
    assert p2.shape == (5, 5)
    np.testing.assert_allclose(p2, jnp.outer(p_a, p_b), rtol=1e-10, atol=1e-14)
    cdf = jax.scipy.stats.norm.cdf
    exact = jnp.outer(jnp.diff(cdf(jnp.linspace(-1, 1, 6))), jnp.diff(cdf(jnp.linspace(-2, 2, 6))))
    # midpoint rule on 8 sub-cells per bin: O(w^2) with w = 0.05 and 0.1, about 1e-4 relative
    np.testing.assert_allclose(p2, exact, rtol=2e-3)
    np.testing.assert_allclose(out2, 1.0 - exact.sum(), rtol=2e-3)
    # a scalar bound and a (d,) one mix, as in histogram_chains
    p_mix, _ = gibbs_bin_probabilities(U2, -1.0, jnp.array([1.0, 1.0], F64), 5, d=2)
    p_sc, _ = gibbs_bin_probabilities(U2, -1.0, 1.0, 5, d=2)
    np.testing.assert_allclose(p_mix, p_sc, rtol=1e-12)


def _ou_density(t, x, theta=1.0, sigma=0.8, m0=1.5, s0=0.3):
    m = m0 * jnp.exp(-theta * t)
    v = s0**2 * jnp.exp(-2 * theta * t) + sigma**2 / (2 * theta) * (1 - jnp.exp(-2 * theta * t))
    return jax.scipy.stats.norm.pdf(x, m, jnp.sqrt(v))


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_fokker_planck_ou_second_order_and_mass():
    # OU from a Gaussian: the exact density is Gaussian. Max error at n = 50, 100, 200 cells
    # (dt = 1/400, time error ~1e-6 << space error): measured slope 2.00 +- 0.02; band 0.15.
    lo, hi = -4.0, 5.0
    errs = []
    for n in (50, 100, 200):
        x = lo + (jnp.arange(n, dtype=F64) + 0.5) * (hi - lo) / n
        ts, x, p = sdeml.langevin.fokker_planck_1d(
            lambda t, x: -x,
            lambda t, x: 0.8 + 0 * x,
            _ou_density(0.0, x),
            lo,
            hi,
            0.0,
            1.0,
            400,
            100,
        )
        np.testing.assert_allclose(p.sum(1) * (hi - lo) / n, 1.0, atol=1e-12)  # conservative
        exact = jax.vmap(_ou_density, in_axes=(0, None))(ts, x)
        errs.append(float(jnp.max(jnp.abs(p - exact))))
    slope = np.polyfit(np.log([50, 100, 200]), np.log(errs), 1)[0]
    assert abs(slope + 2.0) < 0.15, (errs, slope)


def test_fokker_planck_constant_coefficients_and_integer_density():
    # dX = c dt + g dW from the cell at 0: a Gaussian of mean c t and variance g^2 t (+ the
    # cell's h^2/12). A constant coefficient returned as a scalar failed ("'float' object is
    # not subscriptable"), and an integer p0 failed inside the scan.
    c, g, lo, hi, n, t1 = 0.5, 0.6, -4.0, 4.0, 200, 1.0
    h = (hi - lo) / n
    p0 = np.zeros(n, np.int64)
    p0[n // 2] = 1  # 1 / h after scaling: the cell centred at h / 2
    ts, x, p = sdeml.langevin.fokker_planck_1d(
        lambda t, x: c, lambda t, x: g, jnp.asarray(p0), lo, hi, 0.0, t1, 100
    )
    ts2, _, p2 = sdeml.langevin.fokker_planck_1d(
        lambda t, x: jnp.full_like(x, c), lambda t, x: jnp.full_like(x, g),
        jnp.asarray(p0, F64), lo, hi, 0.0, t1, 100,
    )  # fmt: skip
    np.testing.assert_allclose(p, p2, rtol=1e-12, atol=1e-15)
    mass = jnp.sum(p[-1]) * h
    mean = jnp.sum(x * p[-1]) * h / mass
    var = jnp.sum((x - mean) ** 2 * p[-1]) * h / mass
    assert abs(float(mass) - h) < 1e-12 and ts.shape == (101,)
    assert abs(float(mean) - (h / 2 + c * t1)) < 1e-3
    assert abs(float(var) - (g**2 * t1 + h**2 / 12)) < 1e-3


# Double-well Langevin SDE dX = -U'(X) dt + sqrt(2) dW from N(1.5, 0.3^2), U = (x^2 - 1)^2, on
# [-3, 3]; FD: 600 cells, 500 Crank-Nicolson steps to t = 1; paths: 10^5 EM paths at dt = 5e-4.
# Deterministic errors, in units of the histogram's sampling sd (measured with the exact EM-chain
# law and a grid twice as fine): EM bias <= 0.4 per bin (chi^2 noncentrality <= 0.8), FD error
# <= 0.05, so the comparison is limited by sampling error alone.
_FP_LO, _FP_HI, _FP_BINS, _FP_PATHS = -3.0, 3.0, 40, 100_000
_FP_ALPHA, _FP_TIMES = 0.01, 5  # familywise level over the 5 times x 2 statistics


def _double_well_fd(drift_scale=1.0):
    drift = lambda t, x: -drift_scale * 4 * x * (x**2 - 1)
    n_cells = 600
    x = _FP_LO + (jnp.arange(n_cells, dtype=F64) + 0.5) * (_FP_HI - _FP_LO) / n_cells
    ts, x, p = sdeml.langevin.fokker_planck_1d(
        drift, lambda t, x: jnp.sqrt(2.0) + 0 * x, jax.scipy.stats.norm.pdf(x, 1.5, 0.3),
        _FP_LO, _FP_HI, 0.0, 1.0, 500, 100,
    )  # fmt: skip
    return ts, p.reshape(p.shape[0], _FP_BINS, -1).sum(-1) * (_FP_HI - _FP_LO) / n_cells


@functools.cache
def _double_well_histograms():
    drift = lambda t, x: -4 * x * (x**2 - 1)
    diff = lambda t, x: jnp.sqrt(2.0) + 0 * x
    x0 = 1.5 + 0.3 * jr.normal(jr.key(19), (_FP_PATHS,), F64)
    ts, xs = sdeml.langevin.simulate_scalar_sde(
        drift, diff, x0, 0.0, 1.0, 2000, 400, key=jr.key(20)
    )
    xs = jnp.clip(xs, _FP_LO, _FP_HI)  # the FD mass never leaves [lo, hi]: count every path
    hist = jax.vmap(lambda x: jnp.histogram(x, bins=_FP_BINS, range=(_FP_LO, _FP_HI))[0])
    return ts, hist(xs)


def _fp_pvalues(probs, counts):
    res = jax.vmap(sdeml.langevin.histogram_test)(counts[1:], probs[1:])  # t = 0.2, ..., 1.0
    return np.concatenate([res.chi2_pvalue, res.max_z_pvalue])


@pytest.mark.slow  # over 10 s; CI runs it after the default suite
def test_fokker_planck_matches_path_histograms():
    # Issue #6: the FD density and the histograms agree within sampling error at every time:
    # all 10 p-values >= alpha / 10 (Bonferroni; familywise level 1%). Measured: smallest
    # p-value 0.061 (familywise 0.61).
    ts, probs = _double_well_fd()
    ts2, counts = _double_well_histograms()
    np.testing.assert_allclose(ts, ts2, atol=1e-14)
    pvals = _fp_pvalues(probs, counts)
    assert pvals.size == 2 * _FP_TIMES
    assert np.all(pvals >= _FP_ALPHA / pvals.size), pvals


@pytest.mark.slow  # > 10 s
def test_fokker_planck_check_rejects_perturbed_drift():
    # The same criterion can fail: with the FD drift 5% too strong the bin probabilities move by
    # ~2 sampling sd (chi^2 noncentrality ~ 50-80 per time): measured smallest p-value 4e-17 (and
    # 7e-7 at 3%), against the threshold 1e-3.
    _, counts = _double_well_histograms()
    pvals = _fp_pvalues(_double_well_fd(1.05)[1], counts)
    assert np.min(pvals) < _FP_ALPHA / pvals.size, pvals


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_fokker_planck_histogram_test_pooling_and_exact_tail():
    # Pearson's chi^2 over the pooled bins equals scipy's; the max-|z| p-value is the exact
    # binomial tail, Sidak-corrected: a bin of expectation 33.2 holding 57 (z = 4.1) has p = 2.2e-4,
    # six times the normal tail.
    n = 10_000
    probs = np.diff(scipy.stats.norm.cdf(np.linspace(-4, 4, 41)))
    probs /= probs.sum()
    counts = np.random.default_rng(0).multinomial(n, probs)
    res = sdeml.langevin.histogram_test(counts, probs)
    expected = n * probs
    groups, acc, g = np.zeros(40, int), 0.0, 0
    for j, e in enumerate(expected):  # the greedy left-to-right pooling, in plain Python
        groups[j], acc = g, acc + e
        if acc >= 5:
            g, acc = g + 1, 0.0
    groups[groups == g] = g - 1 if acc > 0 else g
    c, e = np.bincount(groups, counts), np.bincount(groups, expected)
    ref = scipy.stats.chisquare(c, e)
    assert int(res.n_groups) == c.size and int(res.dof) == c.size - 1
    np.testing.assert_allclose([res.chi2, res.chi2_pvalue], [ref.statistic, ref.pvalue], rtol=1e-9)
    pz = 2 * np.minimum(scipy.stats.binom.sf(c - 1, n, e / n), scipy.stats.binom.cdf(c, n, e / n))
    np.testing.assert_allclose(res.max_z_pvalue, 1 - (1 - pz.min()) ** c.size, rtol=1e-8)
    tail = sdeml.langevin.histogram_test(
        np.array([57, 100_000 - 57]), np.array([33.2e-5, 1 - 33.2e-5])
    )
    p57 = 2 * scipy.stats.binom.sf(56, 100_000, 33.2e-5)  # 2.2e-4; the normal tail: 3.6e-5
    np.testing.assert_allclose(tail.max_z_pvalue, 1 - (1 - p57) ** 2, rtol=1e-8)
    with pytest.raises(ValueError, match="same shape"):
        sdeml.langevin.histogram_test(counts, probs[:-1])


def test_fokker_planck_histogram_test_calibrated_under_the_null():
    # 4000 exact multinomial histograms (10^4 samples, 40 Gaussian bins, sparse tails pooled):
    # rejection rates at 5% and 1% (binomial sd 0.35% and 0.16%); the max-|z| test is
    # conservative (exact tails are discrete, Sidak over negatively correlated cells): measured
    # 5.2% / 1.2% (chi^2) and 3.6% / 0.75% (max |z|); median max |z| 2.31 vs the expected 2.32.
    probs = np.diff(scipy.stats.norm.cdf(np.linspace(-4, 4, 41)))
    probs /= probs.sum()
    counts = np.random.default_rng(1).multinomial(10_000, probs, size=4000)
    res = jax.jit(jax.vmap(lambda c: sdeml.langevin.histogram_test(c, probs)))(counts)
    assert 0.04 < np.mean(res.chi2_pvalue < 0.05) < 0.06
    assert 0.005 < np.mean(res.chi2_pvalue < 0.01) < 0.015
    assert 0.025 < np.mean(res.max_z_pvalue < 0.05) < 0.055
    assert np.mean(res.max_z_pvalue < 0.01) < 0.013
    assert abs(np.median(res.max_abs_z) / res.expected_max_abs_z[0] - 1) < 0.03


def test_laplace_approximation_gaussian_exact():
    # For a Gaussian target the Laplace approximation is exact: mode m, whitening W with
    # W W^T = P^{-1}.
    m = jnp.array([0.5, -1.0], F64)
    prec = jnp.array([[4.0, 1.0], [1.0, 2.0]], F64)
    mode, w = sdeml.langevin.laplace_approximation(
        lambda x: 0.5 * (x - m) @ prec @ (x - m), jnp.zeros(2, F64)
    )
    np.testing.assert_allclose(mode, m, atol=1e-12)
    np.testing.assert_allclose(w @ w.T, jnp.linalg.inv(prec), rtol=1e-12)


@pytest.mark.parametrize(
    ("potential", "start", "match", "mode_from_08"),
    [
        # Newton seeks any stationary point: from 0.3 the double well's goes to the maximum at
        # 0, and the Cholesky factor of the negative Hessian was NaN.
        (lambda th: jnp.sum((th**2 - 1) ** 2), 0.3, "not positive definite", 1.0),
        # sqrt(1 + x^2): Newton's step is x -> -x^3, diverging from 1.5 (NaN) ...
        (lambda th: jnp.sum(jnp.sqrt(1 + th**2)), 1.5, "not positive definite", 0.0),
        # ... and cycling between +-1 from 1: a finite "mode" 1 that is not the mode 0.
        (lambda th: jnp.sum(jnp.sqrt(1 + th**2)), 1.0, "did not converge", 0.0),
    ],
)
def test_laplace_approximation_refuses_a_point_that_is_not_the_mode(
    potential, start, match, mode_from_08
):
    with pytest.raises(eqx.EquinoxRuntimeError, match=match):
        sdeml.langevin.laplace_approximation(potential, jnp.array([start], F64))
    mode, w = sdeml.langevin.laplace_approximation(potential, jnp.array([0.8], F64))
    assert abs(float(mode[0]) - mode_from_08) < 1e-12  # nearer the mode, Newton converges
    with pytest.raises(ValueError, match="floating"):
        sdeml.langevin.laplace_approximation(potential, jnp.array([1]))


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_histogram_chains_counts_every_step():
    # Same key sequence as run_chains(thin=1): the accumulated counts equal the histogram of the
    # stored chains, exactly.
    ula = ULA(Potentials.mixture_2d, step_size=0.1)
    s0 = ula.init(jr.normal(jr.key(21), (50, 2), F64))
    _, _, xs = run_chains(ula, s0, 30, observe=lambda s: s.position, key=jr.key(22))
    _, counts, _ = histogram_chains(ula, s0, 30, -2.0, 2.0, 8, key=jr.key(22))
    flat = xs.reshape(-1, 2)
    ref = jnp.histogram2d(flat[:, 0], flat[:, 1], bins=8, range=((-2, 2), (-2, 2)))[0]
    np.testing.assert_array_equal(counts, ref)


def _shifted_uniform_histogram(n: int, n_bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Uniform bins with 2 sampling sd moved from bin 1 to bin 0 (integer counts)."""
    probs = np.full(n_bins, 1 / n_bins)
    counts = np.round(n * probs)
    shift = np.round(2 * np.sqrt(n / n_bins))
    counts[0] += shift
    counts[1] -= shift
    return counts, probs


@pytest.mark.slow  # ~6 s
def test_histogram_test_pvalues_float32_at_large_n():
    # float32 betainc with parameters ~N cancels two huge log-gammas: max_z_pvalue read 0.676 at
    # N = 1e6 (exact 0.827) and -inf at 1e8 (exact 0.826). The tails are now taken in float64 on
    # the host; in float32 they match SciPy's exact binomial tails to the float32 rounding of
    # the counts (measured 2e-5 at 1e8). Eager and jit agree (one compilation for all N).
    test = jax.jit(sdeml.langevin.histogram_test)
    for n in (10**4, 10**6, 10**8):
        counts, probs = _shifted_uniform_histogram(n)
        up = scipy.stats.binom.sf(counts - 1, n, probs)
        p_min = np.min(np.minimum(1.0, 2 * np.minimum(up, scipy.stats.binom.cdf(counts, n, probs))))
        exact = -np.expm1(probs.size * np.log1p(-p_min))  # Sidak over the 40 groups
        with jax.enable_x64(False):
            res = test(jnp.asarray(counts, jnp.float32), jnp.asarray(probs, jnp.float32))
        assert res.max_z_pvalue.dtype == jnp.float32 and res.chi2_pvalue.dtype == jnp.float32
        np.testing.assert_allclose(res.max_z_pvalue, exact, rtol=1e-4, err_msg=str(n))
        chi2_exact = scipy.stats.chi2.sf(float(res.chi2), int(res.dof))
        np.testing.assert_allclose(res.chi2_pvalue, chi2_exact, rtol=1e-5, atol=1e-7)
    with jax.enable_x64(False):
        eager = sdeml.langevin.histogram_test(
            jnp.asarray(counts, jnp.float32), jnp.asarray(probs, jnp.float32)
        )
    for a, b in zip(jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(res), strict=True):
        # float32: chi2 and z (e.g. -2.4e-5 for 0) round differently when fused; p-values agree
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_histogram_test_chi2_pvalue_float32_at_many_groups():
    # float32 gammaincc at large dof: P(chi^2_dof >= chi^2) was off by 2e-3 at dof = 1e4 (by 0.04
    # at 1e6, and 1.67 at 1e7); now SciPy's in float64, to float32 rounding.
    n_bins = 10_001
    probs = np.full(n_bins, 1 / n_bins)
    counts = np.random.default_rng(3).multinomial(50 * n_bins, probs)
    with jax.enable_x64(False):
        res = sdeml.langevin.histogram_test(
            jnp.asarray(counts, jnp.float32), jnp.asarray(probs, jnp.float32)
        )
    assert int(res.dof) == n_bins - 1
    exact = scipy.stats.chi2.sf(float(res.chi2), int(res.dof))
    np.testing.assert_allclose(res.chi2_pvalue, exact, rtol=1e-5)


@pytest.mark.parametrize(
    "counts, probs, match, also_chi2",
    [
        # a negative probability passed silently, with both p-values 1.0
        ([20.0, 30.0, 50.0], [-0.2, 0.7, 0.5], "`probs` must be finite and >= 0", True),
        ([20.0, -30.0, 50.0], [0.2, 0.3, 0.5], "`counts` must be finite and >= 0", True),
        ([20.0, 30.0, 50.0], [0.2, 0.3, jnp.nan], "`probs` must be finite", True),
        ([20.0, 30.0, 50.0], [0.3, 0.3, 0.5], "`probs` must sum to at most 1", True),
        ([20.0, 30.0, 50.0], [0.2, 0.3, 0.4], "`probs` must sum to 1", False),  # chi2: < 1 is ok
        ([20.0, 30.0], [0.2, 0.3, 0.5], "same shape", True),  # histogram_chi2: a TypeError
    ],
)
def test_histogram_checks_refuse_what_is_not_a_histogram(counts, probs, match, also_chi2):
    counts, probs = jnp.array(counts, F64), jnp.array(probs, F64)
    with pytest.raises(ValueError, match=match):
        sdeml.langevin.histogram_test(counts, probs)
    if also_chi2:
        with pytest.raises(ValueError, match=match):
            histogram_chi2(counts, probs)
    else:
        assert np.isfinite(histogram_chi2(counts, probs)[0])


@pytest.mark.parametrize(
    "precision, match",
    [
        (-jnp.eye(2, dtype=F64), "positive definite"),  # was a "covariance" of -0.952 I
        (jnp.diag(jnp.array([1.0, 0.0], F64)), "positive definite"),  # was inf
        (jnp.ones((2, 2), F64), "positive definite"),  # singular: to rounding
        (jnp.array([[1.0, 0.5], [0.0, 1.0]], F64), "symmetric"),  # eigh read one triangle
        (jnp.ones(2, F64), r"square \(d, d\) matrix"),  # a TypeError deep in eigh
        (jnp.ones((2, 3), F64), r"square \(d, d\) matrix"),
    ],
)
def test_ula_gaussian_stationary_cov_refuses_a_bad_precision(precision, match):
    with pytest.raises(ValueError, match=f"`precision` must be .*{match}"):
        ula_gaussian_stationary_cov(precision, 0.1)


def test_ula_gaussian_stationary_cov_refuses_a_bad_traced_precision_at_run_time():
    # (the bad call first: a cached executable's run-time error comes back as a ValueError)
    cov = jax.jit(lambda p: ula_gaussian_stationary_cov(p, 0.1))
    with pytest.raises(jax.errors.JaxRuntimeError, match="must be positive definite"):
        cov(-jnp.eye(2, dtype=F64))
    np.testing.assert_allclose(cov(PREC), ula_gaussian_stationary_cov(PREC, 0.1), rtol=1e-12)


def test_histogram_checks_let_rounding_below_zero_pass():
    # a solved density's empty tail bins read -3e-33 (the fokker_planck experiment): rounding,
    # not a negative probability; it is read as 0
    from sdeml.langevin import histogram_chi2, histogram_test

    counts = jnp.array([0.0, 30.0, 70.0])
    probs = jnp.array([-2.8e-33, 0.3, 0.7])
    clean = jnp.array([0.0, 0.3, 0.7])
    a, b = histogram_test(counts, probs), histogram_test(counts, clean)
    assert float(a.chi2_pvalue) == float(b.chi2_pvalue)
    assert float(a.max_z_pvalue) == float(b.max_z_pvalue)
    z, z_clean = histogram_chi2(counts, probs)[2], histogram_chi2(counts, clean)[2]
    np.testing.assert_array_equal(z, z_clean)


def test_sgld_takes_numpy_integer_batch_sizes():
    # a NumPy integer batch size (e.g. from a config or np.arange) was refused; it is kept as a
    # Python int, so the step equals the Python-int one; a bool is still refused
    data_x = jr.normal(jr.key(40), (20, 2), F64)

    def make(b):
        return SGLD(
            lambda th, xi: -0.5 * jnp.sum((th - xi) ** 2), lambda th: -0.5 * jnp.sum(th**2),
            data_x, batch_size=b, step_size=0.01,
        )  # fmt: skip

    x = jnp.zeros((3, 2), F64)
    ref = make(5).step(make(5).init(x), key=jr.key(41))[0].position
    sgld = make(np.int64(5))
    assert type(sgld.batch_size) is int
    np.testing.assert_array_equal(sgld.step(sgld.init(x), key=jr.key(41))[0].position, ref)
    with pytest.raises(ValueError, match="batch_size"):
        make(True)
