"""Regression tests of the metrics, dynamics and data audit: wrong numbers and argument checks,
each against a reference computed here (closed forms, NumPy/SciPy in float64)."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest
import scipy.linalg as sla
import scipy.stats as ss
from scipy.spatial.distance import cdist, pdist

from sdeml import data, dynamics, metrics

F32 = jnp.float32


@pytest.fixture
def no_jaxtyping(monkeypatch):
    """The functions' own checks, not the annotation checks of the test hook that run first."""
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)


def _mmd_loop(x, y, bws, biased):
    """MMD^2 with a sum of RBF kernels by an explicit double loop (float64 NumPy)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)

    def k(a, b):
        return sum(math.exp(-np.sum((a - b) ** 2) / (2 * h * h)) for h in bws)

    n, m = len(x), len(y)
    kxx = [[k(x[i], x[j]) for j in range(n)] for i in range(n)]
    kyy = [[k(y[i], y[j]) for j in range(m)] for i in range(m)]
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    if biased:
        return np.sum(kxx) / n**2 + np.sum(kyy) / m**2 - 2 * kxy
    off = lambda K: np.sum(K) - np.trace(K)  # noqa: E731
    return off(np.array(kxx)) / (n * (n - 1)) + off(np.array(kyy)) / (m * (m - 1)) - 2 * kxy


# ---------------------------------------------------------------------------------- metrics


def test_median_bandwidth_is_the_median_pairwise_distance():
    # it was the root of the median squared distance: with an even number of pairs the two
    # middle values were averaged as squares (distances 1, 2, 3, 4, 6, 7 gave 3.54 for 3.5)
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    assert float(metrics.median_bandwidth(x)) == pytest.approx(np.median(pdist(x)), rel=1e-14)
    x = np.random.default_rng(0).normal(size=(20, 3))  # 190 pairs
    got = jax.jit(metrics.median_bandwidth)(x)
    assert float(got) == pytest.approx(np.median(pdist(x)), rel=1e-12)
    # coinciding points (distance 0) leave the gradient finite
    y = jnp.array([[0.0], [0.0], [1.0], [2.0], [4.0]])
    assert bool(jnp.all(jnp.isfinite(jax.jit(jax.grad(metrics.median_bandwidth))(y))))


@pytest.mark.parametrize("d", [1, 3, 12])
def test_mmd_matches_a_double_loop_for_mixed_dtypes(d):
    # a float32 set against a float64 one (or an integer one) failed under strict promotion
    rng = np.random.default_rng(d)
    x = rng.normal(size=(9, d)).astype(np.float32)
    y = rng.normal(size=(7, d)) + 0.4
    bws = [0.5, 1.0, 3.0]
    for biased in (True, False):
        got = metrics.mmd(jnp.asarray(x), jnp.asarray(y), jnp.asarray(bws), biased=biased)
        assert got.dtype == jnp.float64
        assert float(got) == pytest.approx(_mmd_loop(x, y, bws, biased), rel=1e-10, abs=1e-14)
    xi = rng.integers(0, 4, size=(6, d))
    got = metrics.mmd(jnp.asarray(xi), jnp.asarray(x), jnp.asarray(bws, F32))
    assert got.dtype == jnp.float32  # the integer side takes the float32 side's dtype
    assert float(got) == pytest.approx(_mmd_loop(xi, x, bws, True), rel=1e-4, abs=1e-6)


def test_mmd_argument_checks(no_jaxtyping):
    x, y = jnp.zeros((4, 2)), jnp.ones((4, 2))
    with pytest.raises(ValueError, match="`bandwidths` must be numbers"):
        metrics.mmd(x, y, True)  # had read as a bandwidth of 1
    with pytest.raises(ValueError, match="`biased` must be a bool"):
        metrics.mmd(x, y, 1.0, biased="False")  # a truthy string: the biased form
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="`max_points` must be an int >= 2"):
            metrics.median_bandwidth(y, bad)  # -1 had dropped the last point silently


def test_mmd_ratio_to_floor_of_integer_data_sets(no_jaxtyping):
    # the default bandwidth factors were cast to the integer data's dtype (1/32..1/2 -> 0):
    # every MMD^2 was NaN
    rng = np.random.default_rng(0)
    sets = [rng.integers(0, 5, size=(30, 2)) for _ in range(5)]
    got = metrics.mmd_ratio_to_floor([jnp.asarray(s) for s in sets[:1]], sets[1:])
    bw = np.median(pdist(sets[1].astype(float))) * np.asarray(metrics.DEFAULT_BANDWIDTH_FACTORS)
    floors = [_mmd_loop(sets[1 + i], sets[3 + i], bw, True) for i in range(2)]
    np.testing.assert_allclose(got["floors"], floors, rtol=1e-10)
    assert got["value"] == pytest.approx(_mmd_loop(sets[0], sets[1], bw, True), rel=1e-10)
    for bad in (True, 1.0):  # True had read as one floor pair, 1.0 failed in range()
        with pytest.raises(ValueError, match="`n_floor` must be a positive integer"):
            metrics.mmd_ratio_to_floor(sets[:1], sets[1:], n_floor=bad)


def test_sliced_wasserstein_mixed_dtypes_and_order_checks(no_jaxtyping):
    # 1-D: every direction is +-1, so SW_1 is scipy's W_1 of the two empirical laws
    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 1)).astype(np.float32)
    b = 2.0 * rng.normal(size=(25, 1)) + 1.0
    sw = metrics.sliced_wasserstein(jnp.asarray(a), jnp.asarray(b), p=1, key=jr.key(0))
    assert float(sw) == pytest.approx(ss.wasserstein_distance(a[:, 0], b[:, 0]), rel=1e-10)
    for bad in (True, math.inf, math.nan, 0.5):  # True was p = 1, inf returned 1, NaN NaN
        with pytest.raises(ValueError, match="`p` must be a finite number >= 1"):
            metrics.sliced_wasserstein(a, a, p=bad, key=jr.key(0))


def test_distances_keep_float32_and_accept_integers(no_jaxtyping):
    p32 = jnp.array([0.2, 0.3, 0.5], F32)
    q32 = jnp.array([0.3, 0.3, 0.4], F32)
    tv = metrics.total_variation(p32, q32)
    assert tv.dtype == jnp.float32  # was float64 under x64
    assert float(tv) == pytest.approx(0.1, rel=1e-6)
    # integer probabilities (a point mass) failed in expected_tv_iid and ks_distance
    probs = np.array([1, 0, 0])
    exact = 0.5 * np.sum(np.sqrt(2 * probs * (1 - probs) / (np.pi * 50)))
    assert float(metrics.expected_tv_iid(jnp.asarray(probs), 50)) == pytest.approx(exact, abs=0)
    got = metrics.ks_distance(jnp.asarray(probs), jnp.array([0.5, 0.25, 0.25]))
    assert float(got) == pytest.approx(0.5, rel=1e-14)
    sample = np.array([0, 1, 1, 2, -3])
    got = metrics.ks_distance(jnp.asarray(sample), jax.scipy.stats.norm.cdf)
    assert float(got) == pytest.approx(ss.kstest(sample, "norm").statistic, rel=1e-12)
    for bad, match in [(0, "finite and > 0"), (-5, "finite and > 0"), (True, "boolean")]:
        with pytest.raises(ValueError, match=f"`n_samples` must be .*{match}"):
            metrics.expected_tv_iid(jnp.full(2, 0.5), bad)  # 0 gave inf, -5 NaN
    with pytest.raises(ValueError, match="at least one sample"):
        metrics.ks_distance(jnp.zeros(0), jax.scipy.stats.norm.cdf)


def test_nearest_neighbours_of_mixed_float_dtypes_and_frechet_sign():
    rng = np.random.default_rng(2)
    x, ref = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(9, 3))
    got = metrics.nearest_neighbour_distances(jnp.asarray(x), jnp.asarray(ref))  # had failed
    np.testing.assert_allclose(got, cdist(x.astype(np.float64), ref).min(1), rtol=1e-12)
    # a squared distance: rounding had made it -1e-13 for equal sets (seeds 2 and 3)
    for seed in (2, 3):
        a = 10 * np.random.default_rng(seed).normal(size=(50, 4))
        assert metrics.frechet_distance(a, a) >= 0.0


# --------------------------------------------------------------------------------- dynamics


def test_zoo_fields_and_jacobians_at_integer_states():
    # an integer state failed against the float parameters; jacobian refused it in jacfwd
    cases = [
        (dynamics.HarmonicOscillator(2.0), [1, 0], [0.0, -4.0]),
        (dynamics.DampedOscillator(1.0, 0.3), [1, 1], [1.0, -1.6]),
        (dynamics.VanDerPol(1.5), [2, 1], [1.0, 1.5 * (1 - 4) * 1 - 2]),
        (dynamics.LotkaVolterra(), [2, 3], [2 - 0.5 * 6, 0.25 * 6 - 3]),
        (dynamics.SIR(0.3, 0.1, 10.0), [6, 2, 2], [-0.36, 0.36 - 0.2, 0.2]),
        (dynamics.Lorenz(), [1, 2, 3], [10.0, 25.0 - 2, 2 - 8.0]),
        (dynamics.ExponentialGrowth(0.5), [2, 4], [1.0, 2.0]),
    ]
    for system, y, expected in cases:
        np.testing.assert_allclose(system(0.0, jnp.asarray(y)), expected, rtol=1e-14)
    jac = dynamics.jacobian(dynamics.Lorenz(), jnp.array([1, 2, 3]))
    by_hand = [[-10.0, 10.0, 0.0], [28.0 - 3, -1.0, -1.0], [2.0, 1.0, -8 / 3]]
    np.testing.assert_allclose(jac, by_hand, rtol=1e-14)
    assert jac.dtype == jnp.float64
    np.testing.assert_allclose(dynamics.SIR(n=10.0).reduced(0.0, jnp.array([6, 2])), [-0.36, 0.16])


def test_zoo_solutions_invariants_keep_the_dtype_and_shape():
    ts64 = np.linspace(0.0, 2.0, 5)
    y0 = np.array([1.0, -0.5])
    osc = dynamics.HarmonicOscillator(2.0)
    # float32 inputs: the float64 parameters had made them float64 (or failed, strictly)
    got = osc.solution(jnp.asarray(y0, F32), jnp.asarray(ts64, F32))
    x = y0[0] * np.cos(2 * ts64) + y0[1] / 2 * np.sin(2 * ts64)
    v = -2 * y0[0] * np.sin(2 * ts64) + y0[1] * np.cos(2 * ts64)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, np.stack([x, v], -1), rtol=1e-5, atol=1e-6)
    e = osc.energy(jnp.asarray(y0, F32))
    assert e.dtype == jnp.float32 and float(e) == pytest.approx(0.5 * (0.25 + 4), rel=1e-6)
    damped = dynamics.DampedOscillator(1.5, 0.2)
    A = np.array([[0.0, 1.0], [-2.25, -0.6]])
    got = damped.solution(jnp.asarray(y0, F32), jnp.asarray(ts64, F32))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, [sla.expm(A * t) @ y0 for t in ts64], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(  # an integer y0 had failed
        osc.solution(jnp.array([1, 0]), ts64),
        np.stack([np.cos(2 * ts64), -2 * np.sin(2 * ts64)], -1),
    )
    lv = dynamics.LotkaVolterra()
    h = lv.first_integral(jnp.array([2.0, 3.0], F32))
    exact = 0.25 * 2 - math.log(2) + 0.5 * 3 - math.log(3)
    assert h.dtype == jnp.float32 and float(h) == pytest.approx(exact, rel=1e-6)
    # exponential growth: (n, *y0.shape) for any y0 (a scalar gave (n, 1), a 2-D y0 failed)
    growth = dynamics.ExponentialGrowth(0.5)
    np.testing.assert_allclose(growth.solution(jnp.array(2.0), ts64), 2 * np.exp(0.5 * ts64))
    y2 = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(
        growth.solution(jnp.asarray(y2), ts64), np.exp(0.5 * ts64)[:, None, None] * y2
    )


def test_lyapunov_tools_at_integer_inputs_and_their_checks(no_jaxtyping):
    V, f = (lambda y: y @ y), (lambda t, y, args: -y)
    assert float(dynamics.lyapunov_derivative(V, f, jnp.array([1, 2]))) == -10.0  # had failed
    chk = dynamics.check_lyapunov(V, f, jnp.array([0, 0]), jnp.array([[1, 2], [0, 3]]))
    assert bool(chk.is_lyapunov) and float(chk.max_vdot) == -10.0
    A = np.array([[-1, 2], [0, -3]])
    P = dynamics.quadratic_lyapunov(jnp.asarray(A))  # integer A had failed
    np.testing.assert_allclose(P, sla.solve_continuous_lyapunov(A.T, -np.eye(2)), rtol=1e-12)
    P = dynamics.quadratic_lyapunov(jnp.asarray(A, F32), jnp.eye(2))  # float32 A, float64 Q
    np.testing.assert_allclose(P, sla.solve_continuous_lyapunov(A.T, -np.eye(2)), rtol=1e-6)
    with pytest.raises(ValueError, match="`strict` must be a bool"):
        dynamics.check_lyapunov(V, f, jnp.zeros(2), jnp.ones((3, 2)), strict="False")
    with pytest.raises(ValueError, match="`tol` must be finite and >= 0"):
        dynamics.check_lyapunov(V, f, jnp.zeros(2), jnp.ones((3, 2)), tol=-1.0)


@pytest.mark.slow  # one batched solve and a Newton solve compiled: a few seconds
def test_phase_portrait_of_integer_starts_and_guesses():
    # integer starts made the saved times integers (0, 0, ..., 1) and integer guesses were
    # refused by Newton
    fig = dynamics.phase_portrait(
        dynamics.HarmonicOscillator(1.0),
        (-2, 2),
        (-2, 2),
        x0s=jnp.array([[1, 0]]),
        t1=1.0,
        n_save=11,
        nullclines=False,
        equilibrium_guesses=jnp.array([[0, 0]]),
    )
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "trajectories"]
    ts = np.linspace(0.0, 1.0, 11)
    np.testing.assert_allclose(line.get_xdata(), np.cos(ts), atol=1e-5)
    np.testing.assert_allclose(line.get_ydata(), -np.sin(ts), atol=1e-5)
    assert "centre" in [ln.get_label() for ln in fig.axes[0].lines]
    import matplotlib.pyplot as plt

    plt.close(fig)


# ------------------------------------------------------------------------------------- data


def test_mixture_log_prob_and_score_at_integer_and_float32_points(no_jaxtyping):
    gm = data.gaussian_mixture_2d()
    w = [0.5, 0.3, 0.2]
    mu = [[-1.5, 0.0], [1.0, 1.0], [1.0, -1.5]]
    s = np.array([[0.3, 0.6], [0.5, 0.25], [0.4, 0.4]])
    comps = [ss.multivariate_normal(m, np.diag(sk**2)) for m, sk in zip(mu, s, strict=True)]
    for point in (jnp.array([1, 0]), jnp.array([1.0, 0.0], F32)):
        y = np.asarray(point, np.float64)
        dens = [wk * c.pdf(y) for wk, c in zip(w, comps, strict=True)]
        lp = jax.jit(lambda z: gm.log_prob(z))(point)
        assert lp.dtype == (F32 if point.dtype == F32 else jnp.float64)
        assert float(lp) == pytest.approx(np.log(sum(dens)), rel=1e-6)
        score = sum(dk * (np.array(m) - y) / sk**2 for dk, m, sk in zip(dens, mu, s, strict=True))
        got = jax.jit(lambda z: gm.score(z))(point)
        np.testing.assert_allclose(got, score / sum(dens), rtol=1e-5)
    for bad in (True, 2.0, 0):  # True drew one point, 2.0 failed inside jr.choice
        with pytest.raises(ValueError, match="`n` must be a positive integer"):
            gm.sample(bad, key=jr.key(0))
    with pytest.raises(ValueError, match="`weights` must be numbers"):
        data.GaussianMixture(jnp.array([True, True]), jnp.zeros((2, 1)), jnp.ones(2))


def test_data_set_argument_checks(no_jaxtyping):
    with pytest.raises(ValueError, match="`dtype` must be a floating dtype"):
        data.load_digits(dtype=jnp.int32)  # images truncated to -1, 0, 1
    with pytest.raises(ValueError, match="`dtype` must be a floating dtype"):
        data.load_breast_cancer(dtype=jnp.int32)
    with pytest.raises(ValueError, match="`dtype` must be a floating dtype"):
        data.two_moons(4, key=jr.key(0), dtype=jnp.int32)
    with pytest.raises(ValueError, match="empty split"):
        data.load_digits(test_fraction=1e-4)  # round(0.18) = 0 test images, silently
    for bad in (1.7, True, -1):  # 1.7 had been read as seed 1
        with pytest.raises(ValueError, match="`split_seed` must be a non-negative int"):
            data.load_digits(split_seed=bad)
    for toy in (data.two_moons, data.swiss_roll, data.circles):
        with pytest.raises(ValueError, match="`noise` must be finite and >= 0"):
            toy(4, key=jr.key(0), noise=-0.1)
    with pytest.raises(ValueError, match="`std` must be a number"):
        data.eight_gaussians(4, key=jr.key(0), std=True)  # had read as std 1
    # a NumPy float64 noise scale keeps float32 points float32
    x = data.two_moons(4, key=jr.key(0), noise=np.float64(0.1), dtype=F32)
    assert x.dtype == jnp.float32
    gm = data.eight_gaussians_mixture(np.float64(3.0), dtype=F32)  # had been float64 (or failed)
    assert gm.means.dtype == jnp.float32
    np.testing.assert_allclose(gm.means[2], [0.0, 3.0], atol=1e-6)
