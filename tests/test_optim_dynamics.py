"""Gradient flow vs GD (closed forms, measured orders), SGD as an SDE (Lyapunov closed forms)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.linalg as jsl
import numpy as np
import pytest
import scipy.linalg

import sdeml
from sdeml.langevin import run_chains
from sdeml.optim_dynamics import (
    SGD,
    SGDSDE,
    flow_gd_deviation,
    gradient_descent,
    gradient_flow,
    gradient_noise_cov,
    minibatch_factor,
    modified_loss,
    sgd_stationary_cov,
    solve_continuous_lyapunov,
    solve_discrete_lyapunov,
)

F64 = jnp.float64
H2 = jnp.array([[3.0, 1.0], [1.0, 2.0]], F64)
QUAD = lambda th: 0.5 * th @ H2 @ th
# A non-quadratic loss (cubic and quartic couplings), so the flow/GD gap is not a closed form.
NONQUAD = lambda th: (
    0.5 * (th[0] ** 2 + 4 * th[1] ** 2) + 0.1 * th[0] ** 4 + 0.3 * th[0] * th[1] ** 2
)


@pytest.mark.slow  # 7 s: moved from the default run (12-07, later: default run < 10 min)
def test_gradient_flow_quadratic_closed_form():
    # theta(t) = expm(-H t) theta0; Tsit5 at rtol 1e-10 reaches ~1e-10.
    th0 = jnp.array([1.0, -0.5], F64)
    ts = jnp.linspace(0.0, 2.0, 9, dtype=F64)
    exact = jax.vmap(lambda t: jsl.expm(-H2 * t) @ th0)(ts)
    np.testing.assert_allclose(gradient_flow(QUAD, th0, ts), exact, atol=1e-9)


def test_gradient_descent_closed_form_and_modified_loss():
    th0 = jnp.array([1.0, -0.5], F64)
    lr = 0.1
    gd = gradient_descent(QUAD, th0, lr, 20)
    a = jnp.eye(2, dtype=F64) - lr * H2
    exact = jnp.stack([jnp.linalg.matrix_power(a, k) @ th0 for k in range(21)])
    np.testing.assert_allclose(gd, exact, rtol=1e-12, atol=1e-14)
    # L~ = th^T (H + (lr/2) H^2) th / 2 for a quadratic.
    mod = modified_loss(QUAD, lr)
    np.testing.assert_allclose(mod(th0), 0.5 * th0 @ (H2 + 0.5 * lr * H2 @ H2) @ th0, rtol=1e-13)


@pytest.mark.slow  # over 10 s; CI runs it after the default suite
def test_gd_tracks_flow_at_order_one_and_modified_flow_at_order_two():
    # On the fixed horizon t = 1, |GD - flow| = O(lr) and |GD - modified flow| = O(lr^2):
    # measured slopes 1.05 and 2.1 (bands of 0.15 and 0.25 cover the pre-asymptotic curvature).
    th0 = jnp.array([1.0, 0.5], F64)
    lrs = [0.1, 0.05, 0.025]
    plain = [float(flow_gd_deviation(NONQUAD, th0, lr, round(1 / lr))) for lr in lrs]
    mod = [float(flow_gd_deviation(NONQUAD, th0, lr, round(1 / lr), modified=True)) for lr in lrs]
    s_plain = np.polyfit(np.log(lrs), np.log(plain), 1)[0]
    s_mod = np.polyfit(np.log(lrs), np.log(mod), 1)[0]
    assert abs(s_plain - 1.0) < 0.15, (plain, s_plain)
    assert abs(s_mod - 2.0) < 0.25, (mod, s_mod)
    assert all(m < p for m, p in zip(mod, plain, strict=True))


def test_lyapunov_solvers_match_scipy():
    a = jnp.array([[2.0, 0.3], [0.1, 1.0]], F64)
    q = jnp.array([[1.0, 0.2], [0.2, 0.5]], F64)
    np.testing.assert_allclose(
        solve_continuous_lyapunov(a, q), scipy.linalg.solve_continuous_lyapunov(a, q), rtol=1e-12
    )
    ad = 0.5 * a
    np.testing.assert_allclose(
        solve_discrete_lyapunov(ad, q), scipy.linalg.solve_discrete_lyapunov(ad, q), rtol=1e-12
    )


def test_stationary_variance_1d_closed_forms():
    # The 1-D formulas of the docstring: eta s2 / (2 h B) and eta s2 / (h B (2 - eta h)).
    h, s2, lr, b = 2.0, 3.0, 0.05, 4
    hh, ss = jnp.eye(1, dtype=F64) * h, jnp.eye(1, dtype=F64) * s2
    cont = sgd_stationary_cov(hh, ss, lr, b, discrete=False)[0, 0]
    disc = sgd_stationary_cov(hh, ss, lr, b, discrete=True)[0, 0]
    assert abs(cont - lr * s2 / (2 * h * b)) < 1e-14
    assert abs(disc - lr * s2 / (h * b * (2 - lr * h))) < 1e-14
    assert minibatch_factor(10, 100) == pytest.approx(0.1 * 90 / 99)


@pytest.mark.parametrize(
    "hessian, lr",
    [
        (jnp.eye(1, dtype=F64), 2.0),  # |1 - lr h| = 1: the variance was inf
        (jnp.eye(1, dtype=F64), 3.0),  # |1 - lr h| = 2: the "variance" was -3
        (jnp.diag(jnp.array([1.0, 4.0], F64)), 0.6),  # one unstable direction: lr h = 2.4
    ],
)
def test_sgd_stationary_cov_refuses_unstable_sgd(hessian, lr):
    """SGD has a stationary law only for 0 < lr h < 2 (every eigenvalue h of H)."""
    sigma = jnp.eye(hessian.shape[0], dtype=F64)
    with pytest.raises(ValueError, match=r"SGD has no stationary law.*0 < lr \* h < 2"):
        sgd_stationary_cov(hessian, sigma, lr, 1, discrete=True)
    with pytest.raises(jax.errors.JaxRuntimeError, match="SGD has no stationary law"):
        jax.jit(lambda h: sgd_stationary_cov(h, sigma, lr, 1, discrete=True))(hessian)
    # the SDE's covariance exists for any lr (H positive definite)
    assert jnp.all(jnp.isfinite(sgd_stationary_cov(hessian, sigma, lr, 1, discrete=False)))


def test_sgd_stationary_cov_just_inside_the_stability_bound():
    # lr h = 1.9: eta s2 / (h B (2 - eta h)) = 1.9 / 0.1 = 19, finite and positive
    cov = sgd_stationary_cov(jnp.eye(1, dtype=F64), jnp.eye(1, dtype=F64), 1.9, 1, discrete=True)
    np.testing.assert_allclose(cov[0, 0], 19.0, rtol=1e-12)


@pytest.mark.parametrize(
    "ts, match",
    [
        ([0.0, 1.0, 0.5], "strictly increasing"),  # gave NaN at t = 1 silently
        ([1.0, 0.5, 0.0], "strictly increasing"),  # integrated backwards silently
        ([0.0, 0.0, 1.0], "strictly increasing"),
        ([0.0, jnp.inf], "finite"),
        ([0.0, jnp.nan, 1.0], "finite"),
    ],
)
def test_gradient_flow_refuses_bad_ts(ts, match):
    with pytest.raises(ValueError, match=f"`ts` must be {match}"):
        gradient_flow(QUAD, jnp.ones(2, F64), jnp.array(ts, F64))


def test_gradient_flow_refuses_bad_traced_ts_at_run_time():
    flow = jax.jit(lambda ts: gradient_flow(QUAD, jnp.ones(2, F64), ts))
    with pytest.raises(jax.errors.JaxRuntimeError, match="`ts` must be finite and strictly"):
        flow(jnp.array([0.0, 1.0, 0.5], F64))


def _mean_data(n=200):
    x = 1.5 * jr.normal(jr.key(0), (n,), F64)
    return x, lambda th, xi: 0.5 * 2.0 * (th[0] - xi) ** 2  # h = 2, Sigma = h^2 Var(x)


def test_gradient_noise_cov_quadratic():
    x, loss_i = _mean_data()
    cov = gradient_noise_cov(loss_i, jnp.array([0.7], F64), x)
    assert abs(cov[0, 0] - 4.0 * jnp.var(x)) < 1e-12


def _sgd_stationary_variance(lr, b, key, n_chains=4000, n_record=100):
    """SGD's stationary variance on `_mean_data` and its standard error, as in the sgd_sde
    experiment: burn-in of 6 relaxation times 1/(lr h), records every half relaxation time."""
    x, loss_i = _mean_data()
    h = 2.0
    thin = max(1, round(0.5 / (lr * h)))
    burn = thin * max(1, -(-round(6 / (lr * h)) // thin))
    sgd = SGD(loss_i, x, lr=lr, batch_size=b)
    k1, k2 = jr.split(key)
    obs = jax.jit(
        lambda s: run_chains(
            sgd,
            run_chains(sgd, s, burn, key=k1)[0],
            n_record * thin,
            observe=lambda s: s.position[:, 0],
            thin=thin,
            key=k2,
        )[2]
    )(sgd.init(jnp.full((n_chains, 1), jnp.mean(x))))
    per_chain = jnp.mean((obs - jnp.mean(x)) ** 2, axis=0)  # chains are independent
    return float(jnp.mean(per_chain)), float(jnp.std(per_chain) / np.sqrt(n_chains))


@pytest.mark.parametrize(
    "lr, b",
    [
        (0.02, 8),
        (0.04, 8),
        (0.2, 8),
        (0.02, 1),
        pytest.param(0.02, 64, marks=pytest.mark.slow),
        (0.2, 1),
        (0.2, 64),
    ],
)
def test_sgd_stationary_variance_matches_discrete_closed_form(lr, b):
    # Issue #6: SGD's empirical stationary variance within 3% of the exact discrete-time value,
    # and within 5% of the SDE's over the stated range lr h <= 0.08 (here lr h = 0.04 and the
    # edge 0.08, where the exact gap lr h / (2 - lr h) is 4.2%), for B from 1 to 64; beyond it
    # (lr h = 0.4: gap 25%) the SDE breaks down, whatever B. 4000 chains x 100 records half a
    # relaxation time apart: standard error 0.33%, so the 3% band is ~9 SE and, at the edge, the
    # 5% band ~2.5 SE above the exact 4.2%; also |var - disc| < 4 SE (no bias at all).
    # Measured var/disc (var/SDE): (0.02, 8) 1.0017 (1.022), (0.04, 8) 1.0002 (1.042),
    # (0.2, 8) 1.0005 (1.251), (0.02, 1) 1.0016 (1.022), (0.02, 64) 0.9959 (1.016),
    # (0.2, 1) 0.9939 (1.242), (0.2, 64) 0.9990 (1.249); |var - disc| / SE <= 1.9.
    var, se = _sgd_stationary_variance(lr, b, jr.fold_in(jr.key(1), round(1000 * lr) + b))
    x, _ = _mean_data()
    h = 2.0
    hh, ss = jnp.eye(1, dtype=F64) * h, jnp.eye(1, dtype=F64) * 4.0 * jnp.var(x)
    disc = float(sgd_stationary_cov(hh, ss, lr, b, discrete=True)[0, 0])
    cont = float(sgd_stationary_cov(hh, ss, lr, b, discrete=False)[0, 0])
    assert se / var < 0.006, (se, var)
    assert abs(var / disc - 1) < 0.03, (var, disc)
    assert abs(var - disc) < 4 * se, (var, disc, se)
    if lr * h <= 0.08:
        assert abs(var / cont - 1) < 0.05, (var, cont)
    else:
        assert abs(var / cont - 1) > 0.2, (var, cont)


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_sgd_sde_stationary_matches_lyapunov_2d():
    # 2-D least squares y = x . w* + noise: per-example loss (x.w - y)^2 / 2 has Hessian
    # E[x x^T] and, at w*, noise covariance Sigma(w) (state dependent). The SDE's simulated
    # stationary covariance (EM at dt = lr / 4: relative bias ~ dt lambda_max / 2 < 1%) is
    # compared with the continuous Lyapunov solution with Sigma frozen at w_hat: 15% band (Sigma
    # varies with w by ~ |w - w_hat| |x|^2, and 1000 paths x 16 records give ~ 5% standard error).
    n, lr, b = 256, 0.05, 16
    kx, ky = jr.split(jr.key(3))
    xs = jr.normal(kx, (n, 2), F64) * jnp.array([1.0, 0.6])
    ys = xs @ jnp.array([1.0, -2.0]) + 0.5 * jr.normal(ky, (n,), F64)
    loss_i = lambda w, xy: 0.5 * (xy[0] @ w - xy[1]) ** 2
    w_hat = jnp.linalg.lstsq(xs, ys)[0]
    sde = SGDSDE(loss_i, (xs, ys), lr=lr, batch_size=b)
    hess = xs.T @ xs / n
    pred = sgd_stationary_cov(
        hess, gradient_noise_cov(loss_i, w_hat, (xs, ys)), lr, b, discrete=False
    )
    paths = sde.simulate(jnp.tile(w_hat, (1000, 1)), 12.0, 960, 40, key=jr.key(4))
    dev = paths[8:] - w_hat  # t >= 4.4: three relaxation times 1 / (2 lambda_min) = 1.4
    emp = jnp.einsum("spi,spj->ij", dev, dev) / (dev.shape[0] * dev.shape[1])
    np.testing.assert_allclose(jnp.diag(emp), jnp.diag(pred), rtol=0.15)
    np.testing.assert_allclose(sde.drift(0.0, w_hat), jnp.zeros(2), atol=1e-12)


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_sgd_sde_is_a_core_sde_and_the_engine_gives_its_stationary_cov():
    # issue #16: SGDSDE has the core signature; with Sigma frozen it is additive (matrix) noise
    # and sdeml.simulate on it is an OU process whose stationary covariance solves
    # H S + S H = lr c_B Sigma. Loss l(w, x) = |w - x|^2 / 2: H = I, Sigma = Cov(x) exactly.
    # EM at dt = 0.02 is biased by 1/(1 - dt/2) = 1%; 8000 independent paths at t = 8 (16
    # relaxation times) give 1.6% standard errors: band 4 SE + 1%.
    kx = jr.key(40)
    x = jr.normal(kx, (50, 2), F64) @ jnp.array([[1.0, 0.0], [0.6, 0.5]], F64)
    loss_i = lambda w, xi: 0.5 * jnp.sum((w - xi) ** 2)
    lr, b = 0.2, 4
    sigma = gradient_noise_cov(loss_i, jnp.zeros(2, F64), x)
    frozen = SGDSDE(loss_i, x, lr=lr, batch_size=b, noise_cov=sigma)
    assert isinstance(frozen, sdeml.core.AbstractSDE)
    assert frozen.noise == "additive" and frozen.brownian_dim == 2
    free = SGDSDE(loss_i, x, lr=lr, batch_size=b, dim=2)
    assert free.noise == "general" and free.brownian_dim == 2
    th = jnp.array([0.3, -0.2], F64)
    for sde in (frozen, free):
        sdeml.core.check_shapes(sde, th)
        np.testing.assert_allclose(sde.drift(0.0, th, None), -(th - x.mean(0)), rtol=1e-12)
        g = sde.diffusion(0.0, th, None)
        np.testing.assert_allclose(g @ g.T, lr / b * sigma, rtol=1e-10)
    n = 8000
    paths = sdeml.simulate(
        frozen, x.mean(0), t1=8.0, n_steps=400, n_paths=n, dtype=F64, key=jr.key(41)
    )
    dev = paths.xs[:, -1] - x.mean(0)
    emp = dev.T @ dev / n
    pred = sgd_stationary_cov(jnp.eye(2, dtype=F64), sigma, lr, b, discrete=False)
    se = jnp.sqrt((jnp.diag(pred)[:, None] * jnp.diag(pred)[None, :] + pred**2) / n)
    assert jnp.all(jnp.abs(emp - pred) < 4 * se + 0.01 * jnp.abs(pred)), (emp, pred)
    # SGDSDE.simulate is the same engine run: (n_saves, n_paths, d)
    out = frozen.simulate(jnp.tile(x.mean(0), (8, 1)), 1.0, 10, 5, key=jr.key(42))
    assert out.shape == (2, 8, 2) and out.dtype == F64


def test_sgd_reports_minibatch_loss_not_an_acceptance_rate():
    x, loss_i = _mean_data(40)
    sgd = SGD(loss_i, x, lr=0.1, batch_size=40, replace=False)  # full batch: the full loss
    th = jnp.array([[0.3], [-1.0]], F64)
    state, info = sgd.step(sgd.init(th), key=jr.key(0))
    assert not hasattr(info, "acceptance_rate")
    full = jax.vmap(lambda w: jnp.mean(jax.vmap(loss_i, in_axes=(None, 0))(w, x)))(th)
    np.testing.assert_allclose(info.minibatch_loss, full, rtol=1e-12)
    grad = jax.vmap(jax.grad(lambda w: jnp.mean(jax.vmap(loss_i, in_axes=(None, 0))(w, x))))(th)
    np.testing.assert_allclose(state.position, th - 0.1 * grad, rtol=1e-12)
    _, acc, _ = run_chains(sgd, sgd.init(th), 3, key=jr.key(1))
    assert acc is None


def test_vmap_gd_over_learning_rates_matches_loop():
    th0 = jnp.array([1.0, 0.5], F64)
    lrs = jnp.array([0.01, 0.05, 0.1], F64)
    batched = jax.jit(jax.vmap(lambda lr: gradient_descent(NONQUAD, th0, lr, 15)))(lrs)
    loop = jnp.stack([gradient_descent(NONQUAD, th0, float(lr), 15) for lr in lrs])
    np.testing.assert_allclose(batched, loop, rtol=1e-12)


def test_grad_through_gradient_descent_closed_form():
    # d/dtheta0 of |theta_n|^2 / 2 with theta_n = A^n theta0, A = I - lr H, is (A^n)^T A^n theta0.
    th0 = jnp.array([1.0, -0.5], F64)
    g = jax.grad(lambda t0: 0.5 * jnp.sum(gradient_descent(QUAD, t0, 0.1, 10)[-1] ** 2))(th0)
    an = jnp.linalg.matrix_power(jnp.eye(2, dtype=F64) - 0.1 * H2, 10)
    np.testing.assert_allclose(g, an.T @ an @ th0, rtol=1e-12)


def test_top_level_export():
    assert sdeml.SGDSDE is SGDSDE and sdeml.gradient_flow is gradient_flow


_NAN_H = jnp.array([[jnp.nan, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: SGD(lambda t, x: t[0] * x, jnp.zeros(5), lr=0.1, batch_size=6), "batch_size"),
        (lambda: SGDSDE(lambda t, x: t[0] * x, jnp.zeros(5), lr=0.1, batch_size=0), "batch_size"),
        (lambda: SGD(lambda t, x: t[0] * x, jnp.zeros(5), lr=0.0, batch_size=2), "lr"),
        (
            lambda: SGD(lambda t, x: t * x, jnp.zeros(5), lr=0.1, batch_size=2).init(
                jnp.zeros((3, 2))
            ),
            "per_example_loss.*scalar",
        ),
        (lambda: gradient_descent(lambda th: th, jnp.ones(2), 0.1, 3), "loss.*scalar"),
        (lambda: gradient_descent(QUAD, jnp.ones(2), -0.1, 3), "lr"),
        (lambda: gradient_flow(QUAD, jnp.ones((2, 2)), jnp.linspace(0, 1, 3)), "theta0"),
        (lambda: solve_continuous_lyapunov(jnp.eye(2), jnp.eye(3)), "shape"),
        # a NaN Hessian: NumPy's LinAlgError from the stability check
        (lambda: sgd_stationary_cov(_NAN_H, jnp.eye(2), 0.1, 4, discrete=True), "`hessian`"),
        (lambda: sgd_stationary_cov(_NAN_H, jnp.eye(2), 0.1, 4, discrete=False), "`hessian`"),
        (lambda: solve_discrete_lyapunov(_NAN_H, jnp.eye(2)), "`a` must be finite"),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.slow  # over 10 s; CI runs it after the default suite
def test_modified_lr_flow_equals_flow_of_modified_loss():
    th0 = jnp.array([1.0, 0.5], F64)
    ts = jnp.linspace(0.0, 1.0, 5, dtype=F64)
    a = gradient_flow(NONQUAD, th0, ts, modified_lr=0.1)
    b = gradient_flow(modified_loss(NONQUAD, 0.1), th0, ts)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_frozen_noise_cov_equals_state_dependent_for_quadratic():
    # Additive gradient noise: Sigma(theta) is the same everywhere, so freezing it is exact.
    x, loss_i = _mean_data(50)
    sde = SGDSDE(loss_i, x, lr=0.1, batch_size=5)
    frozen = SGDSDE(loss_i, x, lr=0.1, batch_size=5, noise_cov=4.0 * jnp.var(x) * jnp.eye(1))
    th = jnp.array([0.3], F64)
    np.testing.assert_allclose(sde.diffusion(0.0, th), frozen.diffusion(0.0, th), rtol=1e-12)
    assert abs(float(frozen.diffusion(0.0, th)[0, 0]) ** 2 - 0.1 * 4.0 * jnp.var(x) / 5) < 1e-12


@pytest.mark.parametrize("bad", [0, -2, True])  # a float stops at the `int` annotation
def test_minibatch_factor_refuses_a_bad_batch_size_without_a_dataset(bad):
    with pytest.raises(ValueError, match="batch_size"):
        sdeml.optim_dynamics.minibatch_factor(bad)


@pytest.mark.parametrize(
    "eigs",
    [
        [1.0, -1.0],  # was [[nan, nan], [nan, -0.0125]]
        [1.0, 0.0],  # was nan / inf
        [1.0, -2.0],  # a unique but negative "covariance" (-0.00625): no stationary law
    ],
)
def test_sgd_stationary_cov_refuses_a_hessian_that_is_not_positive_definite(eigs):
    """The SDE has a stationary law only for H positive definite: raise like discrete=True."""
    hessian, sigma = jnp.diag(jnp.array(eigs, F64)), jnp.eye(2, dtype=F64)
    with pytest.raises(ValueError, match=r"SGD SDE has no stationary law.*positive definite"):
        sgd_stationary_cov(hessian, sigma, 0.1, 4, discrete=False)
    # traced: at run time, as the discrete check does
    with pytest.raises(jax.errors.JaxRuntimeError, match="SGD SDE has no stationary law"):
        jax.jit(lambda h: sgd_stationary_cov(h, sigma, 0.1, 4, discrete=False))(hessian)


_CENTRE = jnp.array([[0.0, 1.0], [-1.0, 0.0]], F64)  # eigenvalues +-i
_ROT = jnp.array([[0.6, -0.8], [0.8, 0.6]], F64)


@pytest.mark.parametrize(
    "solve, a, why",
    [
        # A S + S A^T = Q: singular where lambda_i + lambda_j = 0 (all returned NaN/inf)
        (solve_continuous_lyapunov, _CENTRE, r"\[1j, -1j\] with lambda_i \+ lambda_j = 0"),
        (solve_continuous_lyapunov, jnp.diag(jnp.array([1.0, -1.0], F64)), r"\+ lambda_j = 0"),
        (solve_continuous_lyapunov, jnp.diag(jnp.array([1.0, 0.0], F64)), r"\+ lambda_j = 0"),
        (solve_continuous_lyapunov, _ROT @ jnp.diag(jnp.array([2.0, -2.0], F64)) @ _ROT.T, "= 0"),
        # S = A S A^T + Q: singular where lambda_i lambda_j = 1
        (solve_discrete_lyapunov, jnp.eye(2, dtype=F64), "lambda_i lambda_j = 1"),
        (solve_discrete_lyapunov, jnp.diag(jnp.array([2.0, 0.5], F64)), "lambda_j = 1"),
        (solve_discrete_lyapunov, _ROT, "lambda_i lambda_j = 1"),  # on the unit circle
    ],
)
def test_lyapunov_solvers_refuse_an_equation_without_a_unique_solution(solve, a, why):
    with pytest.raises(ValueError, match=f"has no unique solution: `a` has eigenvalues .*{why}"):
        solve(a, jnp.eye(2, dtype=F64))


def test_lyapunov_solvers_accept_nearby_equations_with_a_unique_solution():
    # not Hurwitz / not stable, but uniquely solvable: the checks refuse only singular operators
    q = jnp.array([[1.0, 0.2], [0.2, 0.5]], F64)
    for a in (jnp.diag(jnp.array([1.0, -2.0], F64)), _CENTRE + 1e-6 * jnp.eye(2, dtype=F64)):
        ref = scipy.linalg.solve_continuous_lyapunov(np.asarray(a), np.asarray(q))
        # relative to the solution's size: near the centre it is 4e5 with off-diagonals of 0.1
        atol = 1e-8 * np.max(np.abs(ref))
        np.testing.assert_allclose(solve_continuous_lyapunov(a, q), ref, rtol=1e-8, atol=atol)
    for a in (jnp.diag(jnp.array([2.0, 0.6], F64)), 0.999 * _ROT):
        ref = scipy.linalg.solve_discrete_lyapunov(np.asarray(a), np.asarray(q))
        np.testing.assert_allclose(solve_discrete_lyapunov(a, q), ref, rtol=1e-8)


def test_sgd_and_sgd_sde_name_a_parameter_dimension_that_does_not_match_the_data():
    # least squares on 2 features with 3 parameters: a TypeError from dot_general deep in JAX
    xs = jr.normal(jr.key(0), (20, 2), F64)
    data = (xs, xs @ jnp.array([1.0, -2.0], F64))
    loss_i = lambda w, xy: 0.5 * (xy[0] @ w - xy[1]) ** 2
    match = r"parameters of shape \(3,\) \(d = 3, from `{}`\).*does d match the data"
    with pytest.raises(ValueError, match=match.format("position")):
        SGD(loss_i, data, lr=0.1, batch_size=4).init(jnp.zeros((5, 3), F64))
    with pytest.raises(ValueError, match=match.format("theta0")):
        SGDSDE(loss_i, data, lr=0.1, batch_size=4).simulate(
            jnp.zeros((5, 3), F64), 1.0, 10, key=jr.key(0)
        )
    assert SGD(loss_i, data, lr=0.1, batch_size=4).init(jnp.zeros((5, 2), F64)).position.shape


def test_flow_helpers_take_integer_starts_and_refuse_negative_learning_rates():
    # an integer theta0 gave jax.grad's TypeError; negative rates were accepted silently
    od = sdeml.optim_dynamics
    loss = lambda th: 0.5 * jnp.sum(th**2)
    out = od.gradient_descent(loss, jnp.array([1]), lr=0.1, n_steps=3)
    ref = od.gradient_descent(loss, jnp.array([1.0]), lr=0.1, n_steps=3)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref))
    with pytest.raises(ValueError, match="`lr` must be finite and >= 0"):
        od.modified_loss(loss, -0.1)
    with pytest.raises(ValueError, match="`modified_lr` must be finite and >= 0"):
        od.gradient_flow(loss, jnp.ones(2), jnp.linspace(0.0, 1.0, 3), modified_lr=-0.1)
