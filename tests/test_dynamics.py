"""Tests of sdeml.dynamics: zoo stability classes, invariants, Jacobians, Lyapunov, portraits."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sdeml

f64 = jnp.float64

ZOO = [
    sdeml.dynamics.ExponentialGrowth(0.5),
    sdeml.dynamics.ExponentialGrowth(-0.5),
    sdeml.dynamics.HarmonicOscillator(2.0),
    sdeml.dynamics.DampedOscillator(1.0, 0.1),
    sdeml.dynamics.DampedOscillator(1.0, 2.0),
    sdeml.dynamics.VanDerPol(1.0),
    sdeml.dynamics.VanDerPol(1000.0),
    sdeml.dynamics.LotkaVolterra(),
    sdeml.dynamics.SIR(0.3, 0.1),
    sdeml.dynamics.SIR(0.05, 0.1),
    sdeml.dynamics.Lorenz(),
    sdeml.dynamics.Lorenz(rho=10.0),
    sdeml.dynamics.Lorenz(rho=1.2),
    # sigma < beta + 1: no Hopf bifurcation, C+- stable spirals at any rho (the Hopf formula is
    # negative there, and a comparison with it had called them saddle-foci)
    sdeml.dynamics.Lorenz(sigma=2.0, rho=28.0),
    sdeml.dynamics.Lorenz(sigma=3.0, rho=100.0),
    sdeml.dynamics.Lorenz(rho=0.5),
]


@pytest.mark.parametrize("system", ZOO, ids=lambda s: type(s).__name__)
def test_zoo_equilibria_match_textbook_classes(system):
    points, labels = system.textbook_equilibria()
    assert points.shape[1] == system.dim
    for point, label in zip(points, labels, strict=True):
        # Start Newton off the point so that the root finder does real work.
        eq = sdeml.dynamics.find_equilibrium(system, point + 0.01)
        assert bool(eq.converged) and float(eq.residual) < 1e-10
        if not isinstance(
            system, sdeml.dynamics.SIR
        ):  # SIR's equilibria form a line: any nearby one
            np.testing.assert_allclose(eq.y, point, atol=1e-8)
        assert eq.label == label, (type(system).__name__, point, eq.eigenvalues)
        # The class at the textbook point itself, from the autodiff Jacobian.
        lam = jnp.linalg.eigvals(sdeml.dynamics.jacobian(system, point))
        assert sdeml.dynamics.stability_name(sdeml.dynamics.classify_equilibrium(lam)) == label


@pytest.mark.parametrize("system", ZOO, ids=lambda s: type(s).__name__)
def test_zoo_fields_keep_a_float32_state_float32(system):
    # float64 parameters (x64 on) made the field of a float32 state float64, and solve_ode
    # failed deep inside the solver step ("cond branches must have equal output types"); only
    # Van der Pol cast its parameter to the state's dtype.
    y = jnp.linspace(0.5, 1.5, system.dim, dtype=jnp.float32)
    assert system(0.0, y).dtype == jnp.float32
    if isinstance(system, sdeml.dynamics.HarmonicOscillator):
        sol = sdeml.solve_ode(system, jnp.array([1.0, 0.0], jnp.float32), 0.0, jnp.pi / 2)
        assert sol.ys.dtype == jnp.float32
        np.testing.assert_allclose(sol.ys[-1], [-1.0, 0.0], atol=1e-4)  # omega = 2: half a turn


def test_lorenz_at_the_pitchfork_is_non_hyperbolic():
    # rho = 1: the origin's eigenvalues are -11, 0, -8/3 (Newton converges only slowly onto a
    # degenerate root, so the class is read at the point itself)
    lorenz = sdeml.dynamics.Lorenz(rho=1.0)
    points, labels = lorenz.textbook_equilibria()
    lam = jnp.linalg.eigvals(sdeml.dynamics.jacobian(lorenz, points[0]))
    assert labels == ("non-hyperbolic",)
    assert sdeml.dynamics.stability_name(sdeml.dynamics.classify_equilibrium(lam)) == labels[0]
    assert float(sdeml.dynamics.Lorenz(sigma=2.0).rho_hopf) == float("inf")


def test_jacobian_matches_hand_derivatives():
    mu, y = 3.0, jnp.array([0.5, -1.0], f64)
    # d/dy of (v, mu (1 - x^2) v - x) = [[0, 1], [-2 mu x v - 1, mu (1 - x^2)]]
    want = jnp.array([[0.0, 1.0], [-2 * mu * 0.5 * -1.0 - 1, mu * (1 - 0.25)]])
    np.testing.assert_allclose(
        sdeml.dynamics.jacobian(sdeml.dynamics.VanDerPol(mu), y), want, atol=1e-14
    )
    s, r, b = 10.0, 28.0, 8.0 / 3.0
    p = jnp.array([1.0, 2.0, 3.0], f64)
    want = jnp.array([[-s, s, 0.0], [r - 3.0, -1.0, -1.0], [2.0, 1.0, -b]])
    np.testing.assert_allclose(
        sdeml.dynamics.jacobian(sdeml.dynamics.Lorenz(), p), want, atol=1e-14
    )


@pytest.mark.parametrize(
    ("eigs", "name"),
    [
        ([-1.0, -2.0], "stable node"),
        ([-1 + 2j, -1 - 2j], "stable spiral"),
        ([1.0, 3.0], "unstable node"),
        ([0.5 + 1j, 0.5 - 1j], "unstable spiral"),
        ([-1.0, 2.0], "saddle"),
        ([-2.0, 0.1 + 3j, 0.1 - 3j], "saddle-focus"),
        ([2j, -2j], "centre"),
        ([0.0, 0.0, 0.2], "unstable non-hyperbolic"),
        ([0.0, -1.0], "non-hyperbolic"),
    ],
)
def test_classify_equilibrium_every_class(eigs, name):
    code = jax.jit(sdeml.dynamics.classify_equilibrium)(jnp.asarray(eigs, jnp.complex128))
    assert sdeml.dynamics.stability_name(code) == name


def test_classify_matches_trace_determinant_plane():
    # 2x2: det < 0 saddle; det > 0, tr < 0 stable (spiral iff tr^2 < 4 det); tr > 0 unstable.
    rng = np.random.default_rng(0)
    mats = rng.normal(size=(200, 2, 2))
    codes = jax.vmap(lambda m: sdeml.dynamics.classify_equilibrium(jnp.linalg.eigvals(m)))(
        jnp.asarray(mats)
    )
    for m, c in zip(mats, np.asarray(codes), strict=True):
        tr, det = np.trace(m), np.linalg.det(m)
        if det < 0:
            want = "saddle"
        else:
            kind = "spiral" if tr**2 < 4 * det else "node"
            want = ("stable " if tr < 0 else "unstable ") + kind
        assert sdeml.dynamics.stability_name(c) == want


def test_find_equilibrium_vmaps_over_guesses():
    lv = sdeml.dynamics.LotkaVolterra()
    guesses = jnp.array([[0.1, 0.2], [3.0, 1.5]], f64)
    eqs = jax.vmap(lambda g: sdeml.dynamics.find_equilibrium(lv, g))(guesses)
    np.testing.assert_allclose(eqs.y, jnp.array([[0.0, 0.0], [4.0, 2.0]]), atol=1e-10)
    assert [sdeml.dynamics.stability_name(c) for c in eqs.stability] == ["saddle", "centre"]


def test_find_equilibrium_bad_input():
    with pytest.raises(ValueError, match="`y_guess` must have shape"):
        sdeml.dynamics.find_equilibrium(sdeml.dynamics.LotkaVolterra(), jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="`f` must return the shape"):
        sdeml.dynamics.find_equilibrium(sdeml.dynamics.LotkaVolterra(), jnp.ones(3))
    with pytest.raises(ValueError, match="floating"):
        sdeml.dynamics.find_equilibrium(sdeml.dynamics.LotkaVolterra(), jnp.array([1, 2]))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        # zeta = 0 is a centre and zeta < 0 unstable; both were labelled "stable spiral"
        (lambda: sdeml.dynamics.DampedOscillator(1.0, 0.0), "`zeta`"),
        (lambda: sdeml.dynamics.DampedOscillator(1.0, -0.1), "`zeta`"),
        (lambda: sdeml.dynamics.VanDerPol(-1.0), "`mu`"),  # a stable spiral, was "unstable"
        (lambda: sdeml.dynamics.HarmonicOscillator(0.0), "`omega`"),  # solution(): NaN
        (lambda: sdeml.dynamics.LotkaVolterra(delta=0.0), "`delta`"),  # equilibrium at inf
        (lambda: sdeml.dynamics.SIR(gamma=0.0), "`gamma`"),
    ],
)
def test_zoo_refuses_parameters_outside_its_stated_range(make, match):
    with pytest.raises(ValueError, match=match):
        make()
    # a swept (traced) parameter is the caller's to check; mu = 0 (a centre) is allowed
    ws = jnp.array([1.0, 2.0], f64)
    fields = jax.vmap(lambda w: sdeml.dynamics.HarmonicOscillator(w)(0.0, jnp.ones(2, f64)))(ws)
    np.testing.assert_allclose(fields, [[1.0, -1.0], [1.0, -4.0]])
    assert sdeml.dynamics.VanDerPol(0.0).textbook_equilibria()[1] == ("centre",)


# ---------------------------------------------------------------- invariants and closed forms

TOL8 = {"rtol": 1e-8, "atol": 1e-10}


def test_sir_conserves_population():
    sir = sdeml.dynamics.SIR(beta=0.3, gamma=0.1)
    ts = jnp.linspace(0.0, 160.0, 81, dtype=f64)
    sol = sdeml.solve_ode(sir, jnp.array([0.99, 0.01, 0.0], f64), 0.0, 160.0, ts=ts, **TOL8)
    total = sol.ys.sum(-1)
    # The field's components sum to zero exactly, so each RK stage preserves S + I + R up to
    # round-off: the issue asks 1e-6, measured 3.3e-16.
    assert float(jnp.max(jnp.abs(total - 1.0))) < 1e-6
    # R0 = 3: an epidemic takes off and most are infected (final size 1 - S_inf ~ 0.94).
    assert float(sol.ys[-1, 2]) > 0.9


def test_lotka_volterra_conserves_first_integral():
    lv = sdeml.dynamics.LotkaVolterra()
    ts = jnp.linspace(0.0, 30.0, 121, dtype=f64)
    sol = sdeml.solve_ode(lv, jnp.array([1.0, 1.0], f64), 0.0, 30.0, ts=ts, **TOL8)
    h = lv.first_integral(sol.ys)
    # Local error control at rtol 1e-8 keeps the drift of H at 2.6e-8 (measured) over 30 time units;
    # the band is 1e-6.
    assert float(jnp.max(jnp.abs(h - h[0]))) < 1e-6


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_zoo_closed_form_solutions():
    ts = jnp.linspace(0.0, 5.0, 11, dtype=f64)
    y2 = jnp.array([1.0, -0.5], f64)
    cases = [
        (sdeml.dynamics.ExponentialGrowth(-0.7), jnp.array([2.0], f64)),
        (sdeml.dynamics.HarmonicOscillator(2.0), y2),
        (sdeml.dynamics.DampedOscillator(1.5, 0.3), y2),
    ]
    for system, y0 in cases:
        sol = sdeml.solve_ode(system, y0, 0.0, 5.0, ts=ts, rtol=1e-10, atol=1e-12)
        # Tsit5 at rtol 1e-10 over a few periods: global error ~1e-10 (band 1e-8).
        np.testing.assert_allclose(sol.ys, system.solution(y0, ts), atol=1e-8)
    # Energy of the harmonic oscillator is the textbook invariant.
    ho = sdeml.dynamics.HarmonicOscillator(2.0)
    np.testing.assert_allclose(ho.energy(ho.solution(y2, ts)), ho.energy(y2), rtol=1e-12)
    # The damped oscillator's matrix closed form equals the textbook underdamped formula.
    w, z = 1.5, 0.3
    wd = w * np.sqrt(1 - z**2)
    x = np.exp(-z * w * ts) * (
        y2[0] * np.cos(wd * ts) + (y2[1] + z * w * y2[0]) / wd * np.sin(wd * ts)
    )
    np.testing.assert_allclose(
        sdeml.dynamics.DampedOscillator(w, z).solution(y2, ts)[:, 0], x, atol=1e-12
    )


def test_defective_double_eigenvalues_are_classified_by_their_mean():
    # A double eigenvalue with one eigenvector is computed as a pair split by O(sqrt(eps)), real
    # or complex at random: the critically damped x'' + 6x' + 9x = 0 (-3 +- 3.7e-8 i) was a
    # "stable spiral"; of the 200 conjugates Q J Q^-1 below, 55 nilpotent ones were "saddle" or
    # "centre", and 22 and 29 of the lambda = -3 and 2 ones spirals (the old rule, re-run).
    osc = sdeml.dynamics.DampedOscillator(3.0, 1.0)
    eq = sdeml.dynamics.find_equilibrium(osc, jnp.array([0.1, 0.1], f64))
    assert eq.label == osc.textbook_equilibria()[1][0] == "stable node"
    assert (
        sdeml.dynamics.find_equilibrium(sdeml.dynamics.DampedOscillator(13.0, 1.0), eq.y).label
        == "stable node"
    )
    rng = np.random.default_rng(0)
    qs = rng.normal(size=(200, 2, 2))
    for lam, want in ((0.0, "non-hyperbolic"), (-3.0, "stable node"), (2.0, "unstable node")):
        jordan = np.array([[lam, 1.0], [0.0, lam]])
        mats = jnp.asarray(qs @ jordan @ np.linalg.inv(qs))
        codes = jax.vmap(lambda m: sdeml.dynamics.classify_equilibrium(jnp.linalg.eigvals(m)))(mats)
        assert {sdeml.dynamics.stability_name(c) for c in codes} == {want}


# ---------------------------------------------------------------- Lyapunov


def test_quadratic_lyapunov_solves_equation():
    np.testing.assert_allclose(
        sdeml.dynamics.quadratic_lyapunov(-jnp.eye(2, dtype=f64)), 0.5 * jnp.eye(2)
    )
    A = sdeml.dynamics.DampedOscillator(1.0, 0.2).matrix
    Q = jnp.array([[2.0, 0.5], [0.5, 1.0]], f64)
    P = sdeml.dynamics.quadratic_lyapunov(A, Q)
    np.testing.assert_allclose(A.T @ P + P @ A, -Q, atol=1e-12)
    assert bool(jnp.all(jnp.linalg.eigvalsh(P) > 0))  # A Hurwitz, Q > 0  =>  P > 0


@pytest.mark.parametrize(
    "A",
    [
        sdeml.dynamics.HarmonicOscillator(3.0).matrix,  # a centre: +-3i
        jnp.array([[0.3, 2.0], [1.0, -0.3]], f64),  # a saddle: +-1.446
        jnp.array([[-1.0, 0.0], [0.0, 0.0]], f64),  # a zero eigenvalue
    ],
)
def test_quadratic_lyapunov_refuses_a_singular_equation(A):
    # lambda_i + lambda_j = 0: A^T P + P A = -Q has no unique solution; P was all NaN/inf.
    with pytest.raises(eqx.EquinoxRuntimeError, match="no unique solution"):
        sdeml.dynamics.quadratic_lyapunov(A)
    with pytest.raises(jax.errors.JaxRuntimeError, match="no unique solution"):
        jax.jit(sdeml.dynamics.quadratic_lyapunov)(A)


def test_check_lyapunov_on_oscillators():
    pts = jax.random.uniform(jax.random.key(0), (500, 2), f64, minval=-2.0, maxval=2.0)
    origin = jnp.zeros(2, f64)
    osc = sdeml.dynamics.DampedOscillator(1.0, 0.2)
    # Energy: dE/dt = -2 zeta omega v^2 <= 0, zero on the axis v = 0: Lyapunov, not strict.
    res = sdeml.dynamics.check_lyapunov(osc.energy, osc, origin, pts)
    assert bool(res.is_lyapunov)
    assert not bool(
        sdeml.dynamics.check_lyapunov(
            osc.energy, osc, origin, jnp.array([[1.0, 0.0]]), strict=True
        ).decreasing
    )
    # x^T P x from the Lyapunov equation: dV/dt = -x^T x < 0, strict.
    P = sdeml.dynamics.quadratic_lyapunov(osc.matrix)
    V = lambda y: y @ P @ y
    assert bool(sdeml.dynamics.check_lyapunov(V, osc, origin, pts, strict=True).is_lyapunov)
    vdot = jax.vmap(lambda y: sdeml.dynamics.lyapunov_derivative(V, osc, y))(pts)
    np.testing.assert_allclose(vdot, -jnp.sum(pts**2, -1), atol=1e-12)
    # Van der Pol (mu > 0) pumps energy in near the origin: dE/dt = mu (1 - x^2) v^2 > 0.
    vdp = sdeml.dynamics.VanDerPol(1.0)
    bad = sdeml.dynamics.check_lyapunov(
        sdeml.dynamics.HarmonicOscillator(1.0).energy, vdp, origin, pts
    )
    assert not bool(bad.decreasing) and float(bad.max_vdot) > 0
    with pytest.raises(ValueError, match="`points` must have shape"):
        sdeml.dynamics.check_lyapunov(osc.energy, osc, origin, jnp.ones((4, 3)))


# ---------------------------------------------------------------- phase portraits


def test_phase_portrait_writes_png(tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "vdp.png"
    fig = sdeml.dynamics.phase_portrait(
        sdeml.dynamics.VanDerPol(1.0),
        (-3.0, 3.0),
        (-3.0, 3.0),
        x0s=jnp.array([[0.1, 0.0], [3.0, 3.0]], f64),
        t1=10.0,
        n_grid=9,
        n_save=50,
        equilibrium_guesses=jnp.array([[0.2, 0.1]], f64),
        path=path,
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "unstable spiral" in labels and "trajectories" in labels
    plt.close(fig)
    with pytest.raises(ValueError, match="planar"):
        sdeml.dynamics.phase_portrait(sdeml.dynamics.Lorenz(), (-1.0, 1.0), (-1.0, 1.0))
    with pytest.raises(ValueError, match="`xlim`"):
        sdeml.dynamics.phase_portrait(sdeml.dynamics.VanDerPol(1.0), (1.0, -1.0), (-1.0, 1.0))
    # one guess given as (2,) was vmapped as two scalar guesses: "`y_guess` must have shape (d,)".
    # The function itself (under the test run's jaxtyping hook its annotation refuses first)
    portrait = getattr(sdeml.dynamics.phase_portrait, "__wrapped__", sdeml.dynamics.phase_portrait)
    msg = r"`equilibrium_guesses` must have shape \(k, 2\), got \(2,\)"
    with pytest.raises(ValueError, match=msg):
        guess = jnp.array([0.2, 0.1])
        portrait(sdeml.dynamics.VanDerPol(1.0), (-1.0, 1.0), (-1.0, 1.0), equilibrium_guesses=guess)


def test_zero_growth_rate_is_labelled_non_hyperbolic():
    # rate 0: every point is an equilibrium and the linearisation decides nothing; it was
    # labelled "stable node" while find_equilibrium's classification said non-hyperbolic
    system = sdeml.dynamics.ExponentialGrowth(0.0)
    points, labels = system.textbook_equilibria()
    lam = jnp.linalg.eigvals(sdeml.dynamics.jacobian(system, points[0]))
    assert labels == (sdeml.dynamics.stability_name(sdeml.dynamics.classify_equilibrium(lam)),)
    assert labels == ("non-hyperbolic",)
