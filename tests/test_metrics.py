"""sdeml.metrics against closed forms."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import sdeml
from sdeml import metrics
from sdeml.metrics._two_sample import _kernel_sum


def _pop_mmd2(mu1, s1, mu2, s2, h, d):
    """Population MMD^2 of N(mu1, s1^2 I), N(mu2, s2^2 I) for the RBF kernel of bandwidth h:
    E exp(-|x-y|^2/(2h^2)) = (h^2/(h^2+a+b))^{d/2} exp(-|m|^2/(2(h^2+a+b)))."""

    def ek(a, b, m2):
        v = h**2 + a + b
        return (h**2 / v) ** (d / 2) * math.exp(-m2 / (2 * v))

    m2 = float(np.sum((np.asarray(mu1) - np.asarray(mu2)) ** 2))
    return ek(s1**2, s1**2, 0.0) + ek(s2**2, s2**2, 0.0) - 2 * ek(s1**2, s2**2, m2)


def test_unbiased_mmd_matches_population_value():
    d, n, h = 2, 3000, 1.0
    mu2 = jnp.array([0.5, 0.0])
    vals = []
    for s in range(4):
        kx, ky = jr.split(jr.key(s))
        x = jr.normal(kx, (n, d), jnp.float64)
        y = mu2 + 1.5 * jr.normal(ky, (n, d), jnp.float64)
        vals.append(float(metrics.mmd(x, y, jnp.array([h]), biased=False)))
    exact = _pop_mmd2(jnp.zeros(2), 1.0, mu2, 1.5, h, d)
    # the unbiased estimator's sd at n=3000 is ~0.003 here; the mean of 4 is within 0.005
    assert abs(np.mean(vals) - exact) < 0.005, (vals, exact)


def test_biased_mmd_floor_positive_and_identical_zero():
    x = jr.normal(jr.key(0), (500, 2), jnp.float64)
    y = jr.normal(jr.key(1), (500, 2), jnp.float64)
    bw = jnp.array([0.5, 1.0, 2.0])
    assert float(metrics.mmd(x, x, bw)) == pytest.approx(0.0, abs=1e-12)
    assert float(metrics.mmd(x, y, bw)) > 0.0
    # blocking does not change the value
    assert jnp.allclose(metrics.mmd(x, y, bw, block=64), metrics.mmd(x, y, bw), rtol=1e-10)


def test_sliced_wasserstein_of_a_shift():
    # two copies shifted by v: every projection is shifted by <theta, v>, so
    # SW_2^2 = E<theta, v>^2 = |v|^2 / d; with 4000 directions the estimate is within ~3%
    x = jr.normal(jr.key(0), (400, 2), jnp.float64)
    v = jnp.array([3.0, 4.0])
    sw = metrics.sliced_wasserstein(x, x + v, n_projections=4000, key=jr.key(1))
    assert abs(float(sw) - 5.0 / math.sqrt(2)) < 0.12


def test_median_ratio_near_one_for_same_law():
    bw = jnp.array([0.25, 0.5, 1.0, 2.0])
    d = [jr.normal(jr.key(i), (400, 2), jnp.float64) for i in range(15)]
    r = metrics.median_ratio(lambda a, b: metrics.mmd(a, b, bw), d[:5], d[5:10], d[10:])
    # a perfect sampler: single ratios spread 0.7-1.3x; medians of 5 land within ~0.5-2
    assert 0.4 < r["ratio"] < 2.5 and r["floor"] > 0


_MMD = jax.jit(metrics.mmd)
F32 = jnp.float32


_KSUM = jax.jit(lambda a, b, bw: _kernel_sum(a, b, bw, 1024))


def _protocol_ratios(gens, bw, rep, n=2000):
    """score_sde_2d's protocol for each generator in `gens`: median of 5 MMD(generated, data)
    over the median of 5 data-vs-data (the same data sets and floor for every generator). The
    biased MMD from kernel sums, each data set's own sum computed once (35 sums, not 45)."""
    k = jr.key(rep)
    ref = [sdeml.data.eight_gaussians(n, key=jr.fold_in(k, 100 + i), dtype=F32) for i in range(10)]
    own = [float(_KSUM(r, r, bw)) for r in ref]

    def mmd(a, a_own, i):  # MMD^2(a, ref[i]) with n = m
        return (a_own + own[i] - 2.0 * float(_KSUM(a, ref[i], bw))) / n**2

    floor = np.median([mmd(ref[i + 5], own[i + 5], i) for i in range(5)])
    out = []
    for gen in gens:
        xs = [gen(jr.fold_in(k, i)) for i in range(5)]
        out.append(np.median([mmd(x, float(_KSUM(x, x, bw)), i) for i, x in enumerate(xs)]))
        if rep == 0:  # the same number as the library's mmd
            assert mmd(xs[0], float(_KSUM(xs[0], xs[0], bw)), 0) == pytest.approx(
                float(_MMD(xs[0], ref[0], bw)), rel=1e-4
            )
    return [v / floor for v in out]


@pytest.mark.slow
def test_default_bandwidths_steady_for_a_perfect_sampler_and_sensitive_to_width():
    # samples of the 8-Gaussians law itself must stay under issue #7's 1.5x in every one of 8
    # replications (with the older factors 1/8..4 one in ten went over), and components 10% too
    # wide must score above the exact law in the median
    ref0 = sdeml.data.eight_gaussians(2000, key=jr.key(999), dtype=F32)
    bw = metrics.median_bandwidth(ref0) * jnp.asarray(metrics.DEFAULT_BANDWIDTH_FACTORS, F32)
    gens = (
        lambda k: sdeml.data.eight_gaussians(2000, key=k, dtype=F32),
        lambda k: sdeml.data.eight_gaussians(2000, key=k, std=0.22, dtype=F32),
    )
    ratios = np.array([_protocol_ratios(gens, bw, r) for r in range(8)])  # (8, 2)
    exact, wide = list(ratios[:, 0]), list(ratios[:, 1])
    assert max(exact) < 1.5, exact
    assert 0.8 < np.median(exact) < 1.2, exact
    assert np.median(wide) > np.median(exact) + 0.1, (wide, exact)


def test_bits_per_dim_and_gaussian_nll():
    assert float(metrics.bits_per_dim(64 * math.log(2), 64)) == pytest.approx(1.0)
    # 8-bit data in [0,1]: a uniform density on [0,1]^d has NLL 0 and costs exactly 8 bits/dim
    assert float(metrics.bits_per_dim(0.0, 3, n_levels=256, data_range=1.0)) == pytest.approx(8.0)
    assert float(metrics.gaussian_nll(jnp.zeros(2))) == pytest.approx(math.log(2 * math.pi))


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 3))
    b = 2.0 * rng.standard_normal((20000, 3)) + 1.0
    # |mu|^2 + tr(I + 4I - 2*2I) = 3 + 3 = 6; sampling error ~0.05
    assert abs(metrics.frechet_distance(a, b) - 6.0) < 0.15


def test_nearest_neighbour_distances():
    ref = jnp.array([[0.0, 0.0], [10.0, 0.0]])
    x = jnp.array([[1.0, 0.0], [7.0, 0.0]])
    assert jnp.allclose(metrics.nearest_neighbour_distances(x, ref), jnp.array([1.0, 3.0]))


def test_metric_errors():
    with pytest.raises(ValueError, match="sample shape"):
        metrics.mmd(jnp.zeros((3, 2)), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="equal lengths"):
        metrics.median_ratio(lambda a, b: 0.0, [1], [1, 2], [1])


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_mmd_ratio_to_floor_protocol():
    # same law: the ratio is about 1; a shifted law: far above; and the numbers are the
    # protocol's (floor pairs (R_i, R_{k+i}), set s against R_s, bandwidths from R_0)
    n = 400
    ref = [jr.normal(jr.key(i), (n, 2)) for i in range(10)]
    same = [jr.normal(jr.key(100 + i), (n, 2)) for i in range(3)]
    shifted = [g + jnp.array([0.5, 0.0]) for g in same]
    r = metrics.mmd_ratio_to_floor(same, ref)
    bws = metrics.median_bandwidth(ref[0]) * jnp.asarray(metrics.DEFAULT_BANDWIDTH_FACTORS)
    floors = [float(metrics.mmd(ref[i], ref[5 + i], bws)) for i in range(5)]
    values = [float(metrics.mmd(g, ref[s], bws)) for s, g in enumerate(same)]
    np.testing.assert_allclose(r["floors"], floors, rtol=1e-9)
    np.testing.assert_allclose(r["values"], values, rtol=1e-9)
    assert r["floor"] == pytest.approx(np.median(floors), rel=1e-9)
    assert r["ratio"] == pytest.approx(np.median(values) / np.median(floors), rel=1e-9)
    assert r["ratios"] == pytest.approx([v / r["floor"] for v in values], rel=1e-12)
    assert 0.4 < r["ratio"] < 2.5  # perfect sampler: 0.5-2x for one set, median of 3
    far = metrics.mmd_ratio_to_floor(shifted, ref, floors=r["floors"])
    assert far["floor"] == r["floor"] and far["ratio"] > 5.0
    assert metrics.mmd_ratio_to_floor(same, ref, n_floor=2)["floors"] == pytest.approx(
        [float(metrics.mmd(ref[i], ref[2 + i], bws)) for i in range(2)], rel=1e-9
    )
    with pytest.raises(ValueError, match="n_floor"):
        metrics.mmd_ratio_to_floor(same, ref, n_floor=6)
    with pytest.raises(ValueError, match="generated sets"):
        metrics.mmd_ratio_to_floor(same * 4, ref)
    with pytest.raises(ValueError, match="floors"):
        metrics.mmd_ratio_to_floor(same, ref, floors=[1.0])


@pytest.mark.slow  # over 10 s; CI runs it after the default suite
def test_digits_scores_takes_its_classifier():
    clf = metrics.DigitsClassifier(key=jr.key(0))  # untrained: the metric does not train one
    x = sdeml.data.load_digits().x_test[:8]
    s = metrics.digits_scores(x, clf)
    conf, hist = s["confidence"], s["class_hist"]
    assert isinstance(conf, float) and isinstance(hist, list)
    assert 0.0 < conf <= 1.0 and len(hist) == 10
    with pytest.raises(TypeError, match="digits_classifier"):
        metrics.digits_scores(x, None)  # pyright: ignore[reportArgumentType]  (the wrong type)


def test_mmd_of_integer_samples():
    # integer samples cast the bandwidths to integers (0.5 -> 0): MMD^2 was NaN
    x, y, bw = np.array([[0], [1], [2]]), np.array([[0], [1], [3]]), np.array([0.5, 1.0])

    def k(a, b) -> np.ndarray:  # the sum of RBF kernels, by hand
        d2 = (a[:, None, 0] - b[None, :, 0]).astype(float) ** 2
        return np.sum([np.exp(-d2 / (2 * h**2)) for h in bw], axis=0)

    exact = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
    got = metrics.mmd(jnp.asarray(x), jnp.asarray(y), jnp.asarray(bw))
    assert got.dtype == jnp.result_type(float) and float(got) == pytest.approx(exact, rel=1e-12)
    assert jnp.isfinite(metrics.mmd(jnp.asarray(x), jnp.asarray(y)))  # median-heuristic bandwidths


def test_median_bandwidth_of_coinciding_points_is_positive():
    # over half the points equal: the median distance was 0, so mmd's default bandwidths were
    # 0 and MMD^2 against these points NaN (exp(-0/0))
    y = jnp.concatenate([jnp.zeros((5, 2)), jnp.ones((2, 2))])  # 11 of 21 pairs at distance 0
    d2 = np.array([0.0] * (10 + 1) + [2.0] * 10)  # 10 + 1 coinciding pairs, 10 at sqrt(2)
    assert float(metrics.median_bandwidth(y)) == pytest.approx(math.sqrt(d2.mean()))
    assert float(metrics.median_bandwidth(jnp.zeros((4, 2)))) == 1.0


@pytest.mark.parametrize("bad", [0.0, -1.0, (1.0, float("nan")), (1.0, float("inf"))])
def test_a_bandwidth_that_is_not_positive_is_refused(bad):
    # a zero bandwidth made MMD^2 NaN, a negative one a number of no meaning, silently
    x, y = jnp.zeros((8, 2)), jnp.ones((8, 2))
    with pytest.raises(ValueError, match="`bandwidths` must be finite and > 0"):
        metrics.mmd(x, y, jnp.asarray(bad))
    with pytest.raises(ValueError, match="1-D"):
        metrics.mmd(x, y, jnp.ones((2, 2)))


def _exact_wp_pp(a, b, p):
    """W_p^p between two 1-D empirical laws by brute force: the quantile functions on a fine
    common grid of u (every step of both lies on the grid 1 / (n m))."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    n, m = len(a), len(b)
    u = (np.arange(n * m) + 0.5) / (n * m)
    qa, qb = a[np.floor(u * n).astype(int)], b[np.floor(u * m).astype(int)]
    return np.mean(np.abs(qa - qb) ** p)


@pytest.mark.parametrize(("n", "m", "p"), [(1000, 1, 1), (37, 100, 2), (64, 48, 1)])
def test_sliced_wasserstein_of_unequal_sizes_is_exact(n, m, p):
    # 1-D: every projection is +-x, so SW_p is the exact W_p of the empirical laws; scipy's
    # wasserstein_distance is an independent W_1. Interpolating both at min(n, m) levels (the
    # earlier method) read 0.03 for 1000 normals against one point (exact E|x| ~ 0.8).
    from scipy.stats import wasserstein_distance

    x = np.asarray(jr.normal(jr.key(n), (n, 1)), np.float64)
    y = np.asarray(0.8 * jr.t(jr.key(m + 1), 3.0, (m, 1)) + 0.5, np.float64)
    sw = float(metrics.sliced_wasserstein(x, y, p=p, n_projections=8, key=jr.key(0)))
    exact = _exact_wp_pp(x[:, 0], y[:, 0], p) ** (1 / p)
    assert sw == pytest.approx(exact, rel=1e-9)
    if p == 1:
        assert sw == pytest.approx(wasserstein_distance(x[:, 0], y[:, 0]), rel=1e-9)
    # dropping one point of many barely moves it (the interpolation jumped 0.89 -> 0.80)
    if n > 2 * m:
        less = float(metrics.sliced_wasserstein(x[:-1], y, p=p, n_projections=8, key=jr.key(0)))
        assert less == pytest.approx(sw, rel=0.02)
    with pytest.raises(ValueError, match="n_projections"):
        metrics.sliced_wasserstein(x, y, n_projections=0, key=jr.key(0))


def test_mmd_of_float32_data_far_from_the_origin():
    # d > 8 uses |a|^2 + |b|^2 - 2ab; centred first, data at 1000 +- 0.5 keep their spread
    # (biased MMD^2 read 0.026 against 0.031, the unbiased one half its value)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 64)) * 0.5 + 1000
    b = rng.normal(size=(200, 64)) * 0.5 + 1000.05
    bw = [1.0, 2.0, 4.0]
    for biased in (True, False):
        ref = float(metrics.mmd(a - 1000, b - 1000, jnp.asarray(bw), biased=biased))  # float64
        with jax.enable_x64(False):
            a32, b32, bw32 = (jnp.asarray(v, jnp.float32) for v in (a, b, bw))
            got = metrics.mmd(a32, b32, bw32, biased=biased)
        assert got.dtype == jnp.float32
        assert float(got) == pytest.approx(ref, rel=0.02, abs=2e-5)
    with pytest.raises(ValueError, match="need at least 2"):
        metrics.mmd(jnp.ones((4, 2)), jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="median heuristic needs at least 2"):
        metrics.median_bandwidth(jnp.ones((1, 3)))
    with pytest.raises(ValueError, match="block"):
        metrics.mmd(a, b, np.asarray(bw), block=0)


def test_gaussian_nll_and_nearest_neighbours_of_integer_data(monkeypatch):
    # bits_per_dim(dim=2.5) is refused by the suite's jaxtyping hook before the function's own
    # check: off here, as for a user
    import jaxtyping
    from scipy.stats import norm

    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)

    # integer x: std 2.5 was cast to x's dtype (2) before the log
    got = float(metrics.gaussian_nll(jnp.array([0, 1, 2]), 0.0, 2.5))
    assert got == pytest.approx(-norm.logpdf([0, 1, 2], 0, 2.5).sum(), rel=1e-6)
    # a mean of more samples than x summed five densities silently
    with pytest.raises(ValueError, match=r"`mean` must broadcast to the sample's shape \(2,\)"):
        metrics.gaussian_nll(jnp.ones(2), jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match="`std` must be finite and > 0"):
        metrics.gaussian_nll(jnp.ones(2), 0.0, jnp.array([1.0, -1.0]))
    # integer x: ref was truncated to integers (0.4 -> 0)
    d = metrics.nearest_neighbour_distances(jnp.array([[0], [1]]), jnp.array([[0.4], [0.6]]))
    np.testing.assert_allclose(np.asarray(d), [0.4, 0.4], rtol=1e-6)
    with pytest.raises(ValueError, match="`dim` must be a positive integer"):
        metrics.bits_per_dim(1.0, 2.5)
    with pytest.raises(ValueError, match="`n_levels` must be an int >= 2"):
        metrics.bits_per_dim(1.0, 4, n_levels=1)
    with pytest.raises(ValueError, match="`a` needs at least 2 samples"):
        metrics.frechet_distance(np.ones((1, 3)), np.ones((5, 3)))
