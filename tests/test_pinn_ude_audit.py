"""Regression tests of the PINN and UDE audit: wrong numbers and argument checks, each against a
reference computed here (closed forms, NumPy in float64)."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest

import sdeml
from sdeml import pinn, ude


@pytest.fixture
def no_jaxtyping(monkeypatch):
    """The functions' own checks, not the annotation checks of the test hook that run first."""
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)


# ------------------------------------------------------------------------------------ PINN


def test_problem_parameters_accept_numpy_and_jax_scalars_and_refuse_bools(no_jaxtyping):
    # np.float32(0.1) and jnp.array(0.1) were refused as "not a finite number", True read as 1
    t, x = jnp.array([0.3, 0.7]), jnp.array([0.25, 0.5])
    for alpha in (np.float32(0.1), jnp.array(0.1), np.float64(0.1)):
        heat = pinn.Heat1D(alpha)
        a = float(np.asarray(alpha))
        expected = np.exp(-a * np.pi**2 * np.asarray(t)) * np.sin(np.pi * np.asarray(x))
        np.testing.assert_allclose(heat.exact(t, x), expected, rtol=1e-12)
    assert pinn.Burgers1D(np.float32(0.05)).nu == pytest.approx(0.05, rel=1e-7)
    assert pinn.Convection1D(np.int64(3)).beta == 3
    nu = np.float32(0.1 / math.pi)
    np.testing.assert_allclose(
        pinn.burgers_cole_hopf(0.5, x, nu), pinn.burgers_cole_hopf(0.5, x, float(nu)), rtol=1e-14
    )
    for make, name in [
        (lambda: pinn.Heat1D(True), "alpha"),
        (lambda: pinn.Burgers1D(nu=np.bool_(True)), "nu"),
        (lambda: pinn.Convection1D(t1=jnp.array(True)), "t1"),
        (lambda: pinn.burgers_cole_hopf(0.5, 0.1, True), "nu"),
        (lambda: pinn.Heat1D(np.float32(-0.1)), "alpha"),
    ]:
        with pytest.raises(ValueError, match=f"`{name}` must be a finite number > 0"):
            make()


def test_pinn_integer_arguments_are_ints(no_jaxtyping):
    key = jr.key(0)
    # harmonics=2.5 was silently truncated to 2; width=True built a network of width 1
    bad = [
        ({"width": True}, "width"),
        ({"width": 2.5}, "width"),
        ({"depth": 0}, "depth"),
        ({"harmonics": 2.5, "x_range": (0.0, 1.0)}, "harmonics"),
        ({"harmonics": True, "x_range": (0.0, 1.0)}, "harmonics"),
        ({"fourier_features": 1.5}, "fourier_features"),
        ({"fourier_scale": np.float32(np.nan), "fourier_features": 2}, "fourier_scale"),
    ]
    for kw, name in bad:
        with pytest.raises(ValueError, match=f"`{name}` must be"):
            sdeml.PINN(**{"width": 4, "depth": 1, **kw}, key=key)
    u = sdeml.PINN(np.int64(4), np.int64(1), key=key, x_range=(0.0, 1.0), harmonics=np.int64(2))
    assert u.harmonics == 2 and type(u.harmonics) is int


def test_pinn_loss_matches_numpy_and_takes_numpy_integer_chunks(no_jaxtyping):
    # np.int64 chunks failed in the slab arithmetic under strict promotion
    heat = pinn.Heat1D(alpha=0.3, t1=2.0)
    pts = pinn.sample_collocation(heat, 200, 30, 40, key=jr.key(0))
    u = lambda t, x: x * (1 - x) + t**2  # residual u_t - alpha u_xx = 2 t + 2 alpha
    loss, parts = pinn.pinn_loss(
        u, heat, pts, weights=(2.0, 3.0, 5.0), causal_chunks=np.int64(4), causal_eps=0.7
    )
    t, xi = np.asarray(pts.t_in), np.asarray(pts.x_init)
    tb, xb = np.asarray(pts.t_bc), np.asarray(pts.x_bc)
    r = 2 * t + 2 * 0.3
    slab = np.minimum((t / 0.5).astype(int), 3)  # four slabs of [0, 2]
    per = np.array([np.mean(r[slab == i] ** 2) for i in range(4)])
    w = np.exp(-0.7 * (np.cumsum(per) - per))
    initial = np.mean((xi * (1 - xi) - np.sin(np.pi * xi)) ** 2)
    boundary = np.mean((xb * (1 - xb) + tb**2) ** 2)
    assert float(loss) == pytest.approx(2 * np.mean(w * per) + 3 * initial + 5 * boundary, 1e-12)
    assert float(parts["causal_weight_min"]) == pytest.approx(w[-1], rel=1e-12)


def test_pinn_loss_refuses_numpy_and_jax_values_that_are_not_finite_or_negative(no_jaxtyping):
    heat = pinn.Heat1D()
    pts = pinn.sample_collocation(heat, 8, 4, 4, key=jr.key(0))
    # only Python numbers were checked: these ran to a NaN or negative-weighted loss
    for w in [(np.float32(-1.0), 1.0, 1.0), (jnp.array(jnp.nan), 1.0, 1.0)]:
        with pytest.raises(ValueError, match="`weights` must be three finite numbers >= 0"):
            pinn.pinn_loss(heat.exact, heat, pts, weights=w)
    with pytest.raises(ValueError, match="`causal_eps` must be a finite number >= 0"):
        pinn.pinn_loss(heat.exact, heat, pts, causal_chunks=2, causal_eps=np.float32(np.nan))
    for chunks in (2.5, True, -1):
        with pytest.raises(ValueError, match="`causal_chunks` must be a non-negative int"):
            pinn.pinn_loss(heat.exact, heat, pts, causal_chunks=chunks)


def test_rad_resample_checks_its_count_and_pool(no_jaxtyping):
    heat = pinn.Heat1D()
    tp, xp = pinn.sample_interior(heat, 16, key=jr.key(0))
    for n in (2.5, True):  # 2.5 failed inside jr.choice; True drew one point
        with pytest.raises(ValueError, match="`n` must be a positive integer"):
            pinn.rad_resample(heat.exact, heat, tp, xp, n, key=jr.key(1))
    t, _ = pinn.rad_resample(heat.exact, heat, tp, xp, np.int64(3), key=jr.key(1))
    assert t.shape == (3,)
    for a, b in [(tp, xp[:5]), (tp[:0], xp[:0])]:  # vmap's / NumPy's messages before
        with pytest.raises(ValueError, match="`t_pool` and `x_pool` must have the same shape"):
            pinn.rad_resample(heat.exact, heat, a, b, 3, key=jr.key(1))
    with pytest.raises(ValueError, match="need finite `k` >= 0"):
        pinn.rad_resample(heat.exact, heat, tp, xp, 3, c=np.float32(-1.0), key=jr.key(1))


def test_reference_integer_arguments_and_finite_times(no_jaxtyping):
    with pytest.raises(ValueError, match="`n_nodes` must be an int >= 3"):
        pinn.burgers_cole_hopf(0.5, 0.1, 0.1, n_nodes=100.5)  # failed inside jnp.linspace
    with pytest.raises(ValueError, match="`n_nodes` must be an int >= 3"):
        pinn.RaissiBurgers(n_nodes=1)  # accepted until the first `reference` call
    with pytest.raises(ValueError, match="`n` must be an int >= 2"):
        pinn.pinn_error(pinn.Heat1D().exact, pinn.Heat1D(), 2.5)
    # NaN passed the range checks and failed in `round`: "cannot convert float NaN to integer"
    for times, t1 in [([0.0, 0.1], math.nan), ([0.1, math.nan], None), ([0.0, math.inf], None)]:
        with pytest.raises(ValueError, match="`times` and `t1` must be finite"):
            pinn.burgers_spectral(0.1, times, n_x=16, n_steps=10, t1=t1)
    for initial in (lambda x: 1.0, lambda x: x[:, None]):
        with pytest.raises(ValueError, match=r"`initial` must return shape \(16,\)"):
            pinn.burgers_spectral(0.1, [0.0, 0.1], n_x=16, n_steps=10, initial=initial)


# ------------------------------------------------------------------------------------- UDE


def _np_stlsq(theta, y, lam, normalize, n_iter=10):
    """STLSQ in float64 NumPy, one column at a time (the reference)."""
    th, y = np.asarray(theta, np.float64), np.asarray(y, np.float64)
    sc = np.sqrt(np.mean(th**2, axis=0)) if normalize else np.ones(th.shape[1])
    a, out = th / sc, np.zeros((th.shape[1], y.shape[1]))
    for j in range(y.shape[1]):
        mask = np.ones(th.shape[1], bool)

        def fit(mask, j=j):
            c = np.zeros(th.shape[1])
            if mask.any():
                c[mask] = np.linalg.lstsq(a[:, mask], y[:, j], rcond=None)[0]
            return c

        c = fit(mask)
        for _ in range(n_iter):
            mask &= np.abs(c) >= lam
            c = fit(mask)
        out[:, j] = np.where(mask & (np.abs(c) >= lam), c, 0.0) / sc
    return out


def test_stlsq_normalize_in_float32_at_large_scales():
    # x^5 ~ 1e20 in float32: its square overflowed, the column's scale was inf and it dropped out
    lo, coef, lam = 1e4, 1e-21, 0.0
    lib = ude.Library(("x",), [(1,), (5,)])
    with jax.enable_x64(False):
        x = jr.uniform(jr.key(0), (200, 1), minval=lo, maxval=3 * lo)
        theta = lib.evaluate(x)
        y = 2.0 * x + coef * x**5
        got = ude.stlsq(theta, y, lam, normalize=True)
    expected = _np_stlsq(theta, y, lam, normalize=True)
    assert (np.asarray(got) != 0).tolist() == (expected != 0).tolist()
    np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=2e-3)


def test_stlsq_ridge_is_checked_and_traceable(no_jaxtyping):
    theta = jr.normal(jr.key(0), (30, 3))
    y = theta @ jnp.array([[1.0], [0.0], [2.0]])
    with pytest.raises(ValueError, match="`ridge` must be finite and >= 0"):
        ude.stlsq(theta, y, 0.1, ridge=math.inf)  # zeroed every coefficient
    with pytest.raises(ValueError, match="`ridge` must be a scalar"):
        ude.stlsq_path(theta, y, jnp.array([0.1]), ridge=jnp.ones(2))
    # a traced ridge failed in float(ridge) (ConcretizationTypeError)
    eager = ude.stlsq(theta, y, 0.1, ridge=0.5)
    traced = jax.jit(lambda r: ude.stlsq(theta, y, 0.1, ridge=r))(0.5)
    np.testing.assert_allclose(traced, eager, rtol=1e-12)
    # the ridge solution of the full support, by the normal equations
    th = np.asarray(theta)
    ridge = np.linalg.solve(th.T @ th + 0.5 * np.eye(3), th.T @ np.asarray(y))
    np.testing.assert_allclose(ude.stlsq(theta, y, 0.0, ridge=0.5), ridge, rtol=1e-10)


def test_information_criterion_checks_and_keeps_the_dtype(no_jaxtyping):
    n, k, p = 12, np.array([1, 4, 7]), 9
    rss = np.array([0.5, 2.0, 3.3])
    log_binom = np.array([math.log(math.comb(p, int(j))) for j in k])
    ebic = n * np.log(rss / n) + k * np.log(n) + 2 * log_binom
    # NumPy integers: np.int64 n_candidates failed under strict promotion
    got = ude.information_criterion(jnp.asarray(rss), n, jnp.asarray(k), "ebic", np.int64(p))
    np.testing.assert_allclose(got, ebic, rtol=1e-12)
    # a float32 RSS: float32 out (np.log(n) made it float64, or failed under strict promotion)
    out = ude.information_criterion(jnp.asarray(rss, jnp.float32), n, jnp.asarray(k), "bic")
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, n * np.log(rss / n) + k * np.log(n), rtol=1e-6)
    # an integer RSS failed under strict promotion
    assert float(ude.information_criterion(2, 10, 3, "aic")) == pytest.approx(
        10 * math.log(0.2) + 6, rel=1e-12
    )
    for rss_bad in (-1.0, 0.0, jnp.array([1.0, jnp.nan])):  # NaN, -inf, NaN before
        with pytest.raises(ValueError, match="`rss` must be > 0"):
            ude.information_criterion(rss_bad, 10, 2, "aic")
    with pytest.raises(ValueError, match="`k` must be >= 0"):
        ude.information_criterion(1.0, 10, -1, "aic")
    for nc in (5.5, True):  # 5.5 gave the binomial of a non-integer count
        with pytest.raises(ValueError, match="`n_candidates` must be a positive integer"):
            ude.information_criterion(1.0, 10, 1, "ebic", n_candidates=nc)


def test_format_equations_refuses_a_bad_precision_and_complex_coefficients(no_jaxtyping):
    lib = ude.polynomial_library(("x", "y"), 1)  # 1, x, y
    for precision in (-1, True):  # "Format specifier missing precision" before
        with pytest.raises(ValueError, match="`precision` must be a non-negative int"):
            ude.format_equations(lib, np.eye(3)[:, :2], precision=precision)
    # 1+1j was printed as "1.414": its modulus, with the sign of nothing
    with pytest.raises(ValueError, match="`coefficients` must be real"):
        ude.format_equations(lib, np.eye(3)[:, :2] * (1 + 1j))
    assert ude.format_equations(lib, -np.eye(3)[:, 1:], precision=np.int64(1)) == [
        "dx/dt = -1.0 x",
        "dy/dt = -1.0 y",
    ]


def test_lotka_volterra_with_integer_times_and_checked_dtype(no_jaxtyping):
    # integer times made the initial state integer: (0.44, 4.63) read as (0, 4), then refused
    ys = ude.lotka_volterra_truth(jnp.arange(3))
    np.testing.assert_allclose(ys, ude.lotka_volterra_truth(jnp.arange(3.0)), rtol=1e-12)
    np.testing.assert_allclose(ys[0], np.array(ude.LV_Y0), rtol=1e-12)
    with pytest.raises(ValueError, match="`dtype` must be a floating dtype"):
        ude.lotka_volterra_data(jr.key(0), n_obs=5, dtype=jnp.int32)


def test_interaction_report_refuses_coefficients_of_another_library(no_jaxtyping):
    truth = jnp.zeros((6, 2)).at[4].set(jnp.array([-0.9, 0.8]))  # over 1, x, y, x^2, x y, y^2
    # read over the 10 terms of degree 3 it reported the exact terms and zero error
    with pytest.raises(ValueError, match=r"`coefficients` must have shape \(10, 2\)"):
        ude.interaction_report(ude.polynomial_library(("x", "y"), 3), truth)
    with pytest.raises(ValueError, match=r"`coefficients` must have shape \(6, 2\)"):
        ude.interaction_report(ude.polynomial_library(("x", "y"), 2), jnp.zeros((6, 3)))


def test_finite_differences_integer_samples_and_repeated_times(no_jaxtyping):
    ts = np.array([0, 1, 3, 4, 7])
    ys = np.stack([ts**2, 3 * ts + 1], axis=1)
    # NumPy's second-order gradient on the same nonuniform grid (exact for quadratics)
    expected = np.gradient(ys.astype(float), ts.astype(float), axis=0, edge_order=2)
    np.testing.assert_allclose(
        ude.finite_differences(jnp.asarray(ts), jnp.asarray(ys)), expected, rtol=1e-12
    )
    # a repeated time divided by zero: +-inf rates without an error
    with pytest.raises(ValueError, match="`ts` must be strictly increasing"):
        ude.finite_differences(jnp.array([0.0, 1.0, 1.0, 2.0]), jnp.ones((4, 1)))


def test_trajectory_loss_checks_its_scale_and_takes_integer_observations(no_jaxtyping):
    ts = jnp.linspace(0.0, 2.0, 5)
    model = ude.TrajectoryModel(lambda t, y, args: -0.5 * y, jnp.array([1.0, 2.0]))
    # scale 0 gave inf (read as a failed solve), a negative one passed, (3,) failed in broadcasting
    for scale, match in [
        (jnp.array([0.0, 1.0]), "finite and > 0"),
        (jnp.array([-1.0, 1.0]), "finite and > 0"),
        (jnp.ones(3), r"shape \(2,\)"),
    ]:
        with pytest.raises(ValueError, match=f"`scale` must be .*{match}"):
            ude.trajectory_loss(model, ts, jnp.ones((5, 2)), scale)
    counts = jnp.array([[1, 2]] * 5)  # integer observations failed against the float solution
    exact = np.exp(-0.5 * np.asarray(ts))[:, None] * np.array([1.0, 2.0])
    expected = np.mean(((exact - np.array([1.0, 2.0])) / np.array([0.5, 2.0])) ** 2)
    got = ude.trajectory_loss(model, ts, counts, jnp.array([0.5, 2.0]))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_trajectory_criterion_checks_the_observations_shape(no_jaxtyping):
    lib = ude.polynomial_library(("x",), 2)
    ts = jnp.linspace(0.0, 1.0, 6)
    path = jnp.zeros((1, 3, 1)).at[0, 1, 0].set(-0.5)
    for ys in (jnp.ones(6), jnp.ones((4, 1))):  # "not enough values to unpack" / broadcasting
        with pytest.raises(ValueError, match=r"`ys` must have shape \(6, 1\)"):
            ude.trajectory_criterion(None, lib, path, jnp.array([1.0]), ts, ys)


@pytest.mark.parametrize(
    "kw",
    [{"max_candidates": 2.5}, {"max_candidates": True}, {"max_small": 0}, {"max_swap_refits": 1.5}],
)
def test_select_by_refit_limits_are_ints(kw, no_jaxtyping):
    # max_candidates=2.5 never equalled the count of candidates: every one was refitted
    lib = ude.polynomial_library(("x",), 1)
    ts = jnp.linspace(0.0, 1.0, 5)
    name = next(iter(kw))
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        ude.select_by_refit(None, lib, jnp.ones((1, 2, 1)), jnp.ones(1), ts, jnp.ones((5, 1)), **kw)


def test_polynomial_library_enumerates_the_monomials_directly():
    # every exponent tuple of total degree <= D exactly once, in the documented order (degree,
    # then first state's power decreasing), as math.comb(d + D, D) terms; 10 states at degree 5
    # took 8 s when the tuples were filtered from all (D + 1)^d
    import itertools
    import time

    for d, D in [(1, 3), (2, 4), (3, 3), (4, 2)]:
        names = tuple("abcd"[:d])
        exps = ude.polynomial_library(names, D).exponents
        ref = [
            c
            for total in range(D + 1)
            for c in sorted(itertools.product(range(total + 1), repeat=d), reverse=True)
            if sum(c) == total
        ]
        assert list(exps) == ref and len(exps) == math.comb(d + D, D)
    t0 = time.perf_counter()
    lib = ude.polynomial_library(tuple("abcdefghij"), 5, constant=False)
    assert lib.n_terms == math.comb(15, 5) - 1 and time.perf_counter() - t0 < 2.0
