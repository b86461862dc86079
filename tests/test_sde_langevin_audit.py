"""Regression tests of the SDE/Langevin audit: wrong numbers and argument checks, each against a
reference derived here (hand-computed steps, closed forms in float64 NumPy)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest

from sdeml.langevin import (
    MALA,
    em_chain_bin_probabilities,
    fokker_planck_1d,
    gibbs_bin_probabilities,
    histogram_chains,
    laplace_approximation,
    ula_gaussian_stationary_cov,
    ula_invariant_bin_probabilities,
)
from sdeml.sde import (
    EulerMaruyama,
    GeometricBrownianMotion,
    OrnsteinUhlenbeck,
    SineForcedSDE,
    coarsen_increments,
    sample_increments,
    solve_increments,
    strong_order,
    weak_order,
)


def test_solve_increments_integer_y0_is_not_truncated():
    # an int y0 set the dtype of ts and dw: ts [0, 0.5, 1] read [0, 0, 1], dw read 0
    ou = OrnsteinUhlenbeck(theta=1.0, mu=0.0, sigma=0.5)
    ts, dw = jnp.array([0.0, 0.5, 1.0]), jnp.array([[0.3], [0.2]])
    ys = solve_increments(EulerMaruyama(), ou, jnp.array([1]), ts, dw)
    # by hand: y1 = 1 - 1 * 0.5 + 0.5 * 0.3 = 0.65, y2 = 0.65 - 0.65 * 0.5 + 0.5 * 0.2 = 0.425
    assert jnp.issubdtype(ys.dtype, jnp.floating)
    np.testing.assert_allclose(np.asarray(ys[:, 0]), [1.0, 0.65, 0.425], rtol=1e-12)


def test_solver_init_integer_y0_keeps_t0():
    state = EulerMaruyama().init(OrnsteinUhlenbeck(), 0.5, jnp.array([1, 2]))
    assert float(state.t) == 0.5  # was 0: t0 cast to the integer dtype of y0
    assert jnp.issubdtype(state.y.dtype, jnp.floating)


def test_sample_increments_integer_dts_and_dtype_check():
    dw, dz = sample_increments(jnp.full(20_000, 2), (), time_integral=True, key=jr.key(0))
    assert jnp.issubdtype(dw.dtype, jnp.floating)
    # Var dW = h = 2: the sample variance has standard error 2 sqrt(2 / n) = 0.02; 5 sigma
    assert abs(float(jnp.var(dw)) - 2.0) < 0.1
    with pytest.raises(ValueError, match="`dtype` must be a floating dtype"):
        sample_increments(jnp.ones(3), (), dtype=jnp.int32, key=jr.key(0))


def test_coarsen_increments_checks_dts_shape():
    dts = jnp.full(8, 0.1)
    incs = sample_increments(dts, (1,), time_integral=True, key=jr.key(0))
    with pytest.raises(ValueError, match="`dts` must have shape"):
        coarsen_increments(incs, 2, dts[:4])


def test_zoo_variances_float32_small_rates():
    # 1 - exp(-x) and exp(x) - 1 cancelled in float32: OU read 1.3 % high, GBM read 0
    with jax.enable_x64(False):
        ou = OrnsteinUhlenbeck(theta=jnp.float32(1e-6), mu=0.0, sigma=jnp.float32(1.0))
        v_ou = float(ou.variance(jnp.float32(1.0), jnp.float32(0.0)))
        gbm = GeometricBrownianMotion(mu=jnp.float32(0.0), sigma=jnp.float32(1e-4))
        v_gbm = float(gbm.variance(jnp.float32(1.0), jnp.float32(1.0)))
    np.testing.assert_allclose(v_ou, -np.expm1(-2e-6) / 2e-6, rtol=1e-5)
    np.testing.assert_allclose(v_gbm, np.expm1(np.float64(np.float32(1e-4)) ** 2), rtol=1e-5)


@pytest.mark.parametrize("kw", [{"step_size": jnp.array([0.1, 0.2])}, {"temperature": jnp.ones(2)}])
def test_ula_stationary_cov_refuses_array_parameters(kw, monkeypatch):
    # a (d,) step size was broadcast against the eigenvalues: a wrong matrix, no error
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    args = {"step_size": 0.1, "temperature": 1.0, **kw}
    with pytest.raises(ValueError, match=f"`{next(iter(kw))}` must be a scalar"):
        ula_gaussian_stationary_cov(jnp.eye(2), **args)


def test_langevin_scalar_parameter_checks(monkeypatch):
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    U = lambda x: 0.5 * jnp.sum(x**2)
    with pytest.raises(ValueError, match="`step_size` must be a scalar"):
        ula_invariant_bin_probabilities(U, jnp.array([0.1, 0.2]), -4.0, 4.0, 40)
    with pytest.raises(ValueError, match="`temperature` must be a scalar"):
        gibbs_bin_probabilities(U, -3.0, 3.0, 30, temperature=jnp.ones(2))
    with pytest.raises(ValueError, match="`d` must be 1 or 2, got True"):
        gibbs_bin_probabilities(U, -3.0, 3.0, 30, d=True)
    p, _ = gibbs_bin_probabilities(U, -3.0, 3.0, 30, d=np.int64(1))
    assert p.shape == (30,)
    with pytest.raises(ValueError, match="`diffusion` must be a scalar"):
        em_chain_bin_probabilities(lambda x: -x, jnp.ones(2), lambda x: x, -6.0, 6.0, 6, 0.1, 1, 1)
    with pytest.raises(ValueError, match="`hi` must be a finite scalar"):
        em_chain_bin_probabilities(lambda x: -x, 1.0, lambda x: x, -6.0, np.inf, 6, 0.1, 1, 1)
    f, g = lambda t, x: -x, lambda t, x: jnp.ones_like(x)
    with pytest.raises(ValueError, match="`lo` must be a finite scalar"):
        fokker_planck_1d(f, g, jnp.ones(10), -np.inf, 1.0, 0.0, 1.0, 4)
    with pytest.raises(ValueError, match="`t1` must be a finite scalar"):
        fokker_planck_1d(f, g, jnp.ones(10), -1.0, 1.0, 0.0, np.inf, 4)


@pytest.mark.parametrize("n_newton", [-1, 2.5, True])
def test_laplace_n_newton_checked(n_newton, monkeypatch):
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    with pytest.raises(ValueError, match="`n_newton` must be"):
        laplace_approximation(lambda x: x @ x, jnp.ones(2), n_newton)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"n_fine": 0}, "n_fine"),
        ({"n_fine": -8}, "n_fine"),
        ({"n_steps": (2.5, 4)}, "n_steps"),  # int() read 2.5 as 2 and reported h = 1 / 2.5
        ({"n_steps": (True, 4)}, "n_steps"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"n_bootstrap": 0}, "n_bootstrap"),
        ({"confidence": 2.0}, "confidence"),
        ({"t1": float("inf")}, "t1"),
    ],
)
@pytest.mark.parametrize("fn", [strong_order, weak_order])
def test_order_argument_checks(fn, kw, name, monkeypatch):
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    args = {"n_steps": (2, 4), "n_paths": 4, "n_bootstrap": 5, **kw}
    with pytest.raises(ValueError, match=f"`{name}`"):
        fn("em", GeometricBrownianMotion(), jnp.ones(1), key=jr.key(0), **args)


def test_order_accepts_numpy_integers(monkeypatch):
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)  # the hook refuses np.int64
    gbm = GeometricBrownianMotion()
    res = strong_order(
        "em",
        gbm,
        jnp.ones(1),
        n_steps=(np.int64(2), np.int64(4)),
        n_fine=np.int64(8),
        n_paths=np.int64(4),
        n_bootstrap=np.int64(5),
        chunk_size=np.int64(2),
        key=jr.key(0),
    )
    np.testing.assert_allclose(np.asarray(res.dts), [0.5, 0.25])


def test_mala_acceptance_float32_small_step():
    # MALA on N(0, 1) at h = 1e-4 in float32: log q(x|y) - log q(y|x) as a difference of two
    # nearly equal squares read the rejection rate 3x too high (6.6e-7 against 2.2e-7). The
    # reference is the exact Metropolis-Hastings probability of the very moves x -> y taken
    # (float32 positions), computed in float64; the rejection rates of the same chains then
    # differ by rounding only (float32 U(y) - U(x): about 1e-8 of the 2.2e-7 mean).
    h, n = 1e-4, 200_000
    with jax.enable_x64(False):
        mala = MALA(lambda x: 0.5 * jnp.sum(x**2), step_size=h)
        state = mala.init(jr.normal(jr.key(1), (n, 1)))
        new, info = mala.step(state, key=jr.key(2))
        x, y = np.asarray(state.position[:, 0], np.float64), np.asarray(new.position[:, 0])
        alpha, accepted = np.asarray(info.acceptance_rate, np.float64), np.asarray(info.is_accepted)
    x, y, alpha = x[accepted], y[accepted].astype(np.float64), alpha[accepted]
    assert accepted.mean() > 0.999
    log_q = lambda b, a: -((b - (1 - h) * a) ** 2) / (4 * h)  # q(b | a) = N(b; a - h a, 2h)
    log_alpha = (x**2 - y**2) / 2 + log_q(x, y) - log_q(y, x)
    reject_ref = np.mean(1 - np.exp(np.minimum(log_alpha, 0.0)))
    assert 1.5e-7 < reject_ref < 3e-7
    assert abs(np.mean(1 - alpha) - reject_ref) < 0.1 * reject_ref


def test_linear_sde_variances_at_a_zero_rate():
    # theta = 0 (OU) and lam = 0 (sine-forced) are Brownian motion, variance sigma^2 tau; the
    # closed forms (1 - e^{-2 theta tau}) / (2 theta) read 0/0 = nan there. Gradient in theta at
    # 0: d/dtheta sigma^2 (1 - e^{-2 theta tau}) / (2 theta) -> -sigma^2 tau^2.
    sigma, tau = 2.0, 3.0
    np.testing.assert_allclose(
        OrnsteinUhlenbeck(theta=0.0, sigma=sigma).variance(tau, 0.0), sigma**2 * tau, rtol=1e-15
    )
    np.testing.assert_allclose(
        SineForcedSDE(lam=0.0, sigma=sigma).variance(1.0 + tau, 0.0, 1.0), sigma**2 * tau
    )
    g = jax.grad(lambda th: OrnsteinUhlenbeck(theta=th, sigma=sigma).variance(tau, 0.0))(0.0)
    np.testing.assert_allclose(g, -(sigma**2) * tau**2, rtol=1e-12)
    # away from 0 the closed forms, and an array of rates with a zero among them
    th = jnp.array([0.0, 0.5, -0.25, 2.0])
    v = OrnsteinUhlenbeck(theta=th, sigma=sigma).variance(tau, jnp.zeros(4))
    ref = [sigma**2 * tau] + [sigma**2 * -np.expm1(-2 * t * tau) / (2 * t) for t in (0.5, -0.25, 2)]
    np.testing.assert_allclose(v, ref, rtol=1e-14)
    lam = 0.5
    np.testing.assert_allclose(
        SineForcedSDE(lam=lam, sigma=sigma).variance(tau, 0.0),
        sigma**2 * np.expm1(2 * lam * tau) / (2 * lam),
        rtol=1e-14,
    )


def test_histogram_chains_counts_never_wrap(monkeypatch):
    # a cell may hold every sample: past 2^31 - 1 int32 counts wrap. Under x64 the counts are
    # int64 (shapes and dtypes only: eval_shape runs nothing); without, one clear error
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    mala = MALA(lambda x: 0.5 * jnp.sum(x**2), step_size=0.5)
    state = mala.init(jnp.zeros((2**16, 1)))
    small = histogram_chains(mala, mala.init(jnp.zeros((4, 1))), 3, -9.0, 9.0, 4, key=jr.key(0))
    assert small[1].dtype == jnp.int32 and int(small[1].sum()) == 12
    out = jax.eval_shape(
        lambda s: histogram_chains(mala, s, 2**15 + 1, -1.0, 1.0, 4, key=jr.key(0)), state
    )
    assert out[1].dtype == jnp.int64 and out[1].shape == (4,)
    with jax.enable_x64(False):
        state32 = mala.init(jnp.zeros((2**16, 1), jnp.float32))
        with pytest.raises(ValueError, match="overflow int32"):
            histogram_chains(mala, state32, 2**15 + 1, -1.0, 1.0, 4, key=jr.key(0))


def test_em_chain_bin_probabilities_refuses_a_matrix_past_its_memory_limit(monkeypatch):
    # cells of s / 4 over [-6, 6] at dt = 1e-6: 48000 points, an 18 GiB dense matrix; refused
    # before anything is allocated, naming the step's noise scale
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    from scipy.stats import norm

    with pytest.raises(ValueError, match=r"48000 x 48000 .* 17\.2 GiB .* 0\.001"):
        em_chain_bin_probabilities(lambda x: -x, 1.0, norm.pdf, -6.0, 6.0, 60, 1e-6, 1, 1)
