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


def test_classify_and_stability_name_refuse_bad_input():
    eigs = jnp.array([-1.0, -2.0], jnp.complex128)
    # tol < 0 had made [-1, -2] a "stable spiral" (-tol * s > 0 read the zero imaginary parts
    # as complex)
    for tol in (-1.0, 1.0, float("nan")):
        with pytest.raises(ValueError, match="`tol` must be a number in"):
            sdeml.dynamics.classify_equilibrium(eigs, tol)
    with pytest.raises(ValueError, match="`scale`"):
        sdeml.dynamics.classify_equilibrium(eigs, scale=-1.0)
    # NaN eigenvalues were "non-hyperbolic": concrete ones are refused, traced ones are named
    with pytest.raises(ValueError, match="`eigenvalues` must be finite"):
        sdeml.dynamics.classify_equilibrium(jnp.array([jnp.nan, -2.0], jnp.complex128))
    code = jax.jit(sdeml.dynamics.classify_equilibrium)(jnp.array([jnp.nan, -2.0], jnp.complex128))
    assert sdeml.dynamics.stability_name(code) == "non-finite"
    eq = sdeml.dynamics.find_equilibrium(lambda t, y, args: jnp.sqrt(y), jnp.array([0.5], f64))
    assert eq.label == "non-finite" and not bool(eq.converged)  # J = inf at the root 0
    # stability_name(-1) was STABILITY_CLASSES[-1]
    for bad in (-1, len(sdeml.dynamics.STABILITY_CLASSES)):
        with pytest.raises(ValueError, match="`code` must be in"):
            sdeml.dynamics.stability_name(bad)
    name = getattr(sdeml.dynamics.stability_name, "__wrapped__", sdeml.dynamics.stability_name)
    with pytest.raises(ValueError, match="`code` must be a single integer"):
        name(2.5)  # was int(2.5) = 2


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


class TimeScaled(eqx.Module):
    """The field c f: the same system with time measured in units 1/c."""

    system: sdeml.dynamics.AbstractODESystem
    c: jax.Array

    def __call__(self, t, y, args=None):
        return self.c.astype(y.dtype) * self.system(t, y, args)


def test_find_equilibrium_converges_where_the_field_is_large():
    # The residual test had an absolute floor (10 eps = 1.2e-6 in float32), but Lorenz's terms
    # at C+- are ~240 and cancel to a rounding residual of 1.7e-6, 6.5e-6, 1.9e-5 at rho = 10,
    # 28, 100: converged was False (and throw=True raised). The floor now scales as
    # 10 eps max_i sum_j |J_ij| |y_j| (~3e-4 at rho = 28).
    for rho in (10.0, 28.0, 100.0):
        lorenz = sdeml.dynamics.Lorenz(rho=rho)
        c = float(np.sqrt(8.0 / 3.0 * (rho - 1)))
        guess = jnp.array([c + 0.5, c + 0.5, rho - 2.0], jnp.float32)
        eq = sdeml.dynamics.find_equilibrium(lorenz, guess, throw=True)
        assert bool(eq.converged), (rho, float(eq.residual))
        np.testing.assert_allclose(eq.y, [c, c, rho - 1], rtol=1e-6)
        assert eq.label == lorenz.textbook_equilibria()[1][-1]  # C-'s class is C+'s
    # float64 too, with the field in fast time (c = 1e8: terms ~2e10, residual 1.3e-6)
    fast = TimeScaled(sdeml.dynamics.Lorenz(), jnp.asarray(1e8, f64))
    eq = sdeml.dynamics.find_equilibrium(fast, jnp.array([8.0, 8.0, 26.0], f64))
    assert bool(eq.converged) and eq.label == "saddle-focus"
    # The floor is a rounding floor: two Newton steps from the guess (residual 1.6e-3) are not
    # converged.
    eq = sdeml.dynamics.find_equilibrium(
        sdeml.dynamics.Lorenz(), jnp.array([8.0, 8.0, 26.0], jnp.float32), max_steps=2
    )
    assert not bool(eq.converged)
    # Components of very different sizes (root (1e4, 1e-4)): one floor for all of them keeps
    # the SVD step's conditioning (per-component weights had dropped a direction: stuck at the
    # guess)
    f = lambda t, y, args: jnp.stack([y[0] ** 2 - 1e8, y[0] * y[1] - 1.0])
    eq = sdeml.dynamics.find_equilibrium(f, jnp.array([9e3, 1e-3], jnp.float32))
    assert bool(eq.converged)
    np.testing.assert_allclose(eq.y, [1e4, 1e-4], rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_classification_does_not_depend_on_the_unit_of_time(dtype):
    # The zero tolerance was measured against max(1, max|lambda|): slow systems came out
    # non-hyperbolic. Lotka-Volterra with rates 1e-3 (all four rates x c is the field x c)
    # was ['non-hyperbolic', 'non-hyperbolic'] for ('saddle', 'centre').
    for c in (1e-3, 1.0, 1e3):
        for system in (
            sdeml.dynamics.LotkaVolterra(alpha=c, beta=0.5 * c, gamma=c, delta=0.25 * c),
            sdeml.dynamics.SIR(beta=0.3 * c, gamma=0.1 * c),  # non-hyperbolic: zeros stay zero
        ):
            points, labels = system.textbook_equilibria()
            got = [
                sdeml.dynamics.find_equilibrium(system, (p * 1.01 + 0.001).astype(dtype)).label
                for p in points
            ]
            assert tuple(got) == labels, (c, type(system).__name__)
    # omega = 1e-3 (time in units 1e3 and v in units 1e-3): in float32 the eigenvalues
    # -1e-4 +- 1e-3 i were averaged into one "stable node" (their gap 2e-3 was below
    # sqrt(tol) max(1, max|lambda|) = 3.5e-3)
    osc = sdeml.dynamics.DampedOscillator(omega=1e-3, zeta=0.1)
    eq = sdeml.dynamics.find_equilibrium(osc, jnp.array([0.1, 0.1], dtype))
    assert eq.label == osc.textbook_equilibria()[1][0] == "stable spiral"
    # From the eigenvalues alone: a slow saddle, a slow centre; a zero eigenvalue (rounding
    # level relative to the others) is still non-hyperbolic.
    cdtype = jnp.complex64 if dtype == jnp.float32 else jnp.complex128
    classify = lambda lam: sdeml.dynamics.stability_name(
        sdeml.dynamics.classify_equilibrium(jnp.asarray(lam, cdtype))
    )
    assert classify([1e-5, -1e-5]) == "saddle"
    assert classify(jnp.array([1e-3j, -1e-3j])) == "centre"
    assert classify([1e-3 * float(jnp.finfo(dtype).eps), -1e-3]) == "non-hyperbolic"


def test_classification_is_invariant_under_scaling_the_eigenvalues():
    # The trace-determinant plane's random matrices, times c: the class of c J is J's.
    mats = jnp.asarray(np.random.default_rng(1).normal(size=(100, 2, 2)))
    lams = jax.vmap(jnp.linalg.eigvals)(mats)
    want = jax.vmap(sdeml.dynamics.classify_equilibrium)(lams)
    for c in (1e-6, 1e-3, 1e3, 1e6):
        np.testing.assert_array_equal(jax.vmap(sdeml.dynamics.classify_equilibrium)(c * lams), want)


@pytest.mark.slow  # ~30 s per dtype: every zoo system, three units of time
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_zoo_classes_in_any_unit_of_time(dtype):
    cs = jnp.array([1e-3, 1.0, 1e3], f64)
    for system in ZOO:
        if dtype == jnp.float32 and isinstance(system, sdeml.dynamics.VanDerPol):
            if float(system.mu) > 100:
                # eigenvalues 1e-3 and 1e3: in float32 the small one comes out as 1.04e-3, at
                # rounding level (1e-6) relative to the large one, below tol = 100 eps = 1.2e-5:
                # non-hyperbolic, in every unit of time
                continue
        points, labels = system.textbook_equilibria()
        for point, label in zip(points, labels, strict=True):
            guess = (point + 0.01).astype(dtype)
            eqs = jax.vmap(
                lambda c, g=guess, s=system: sdeml.dynamics.find_equilibrium(TimeScaled(s, c), g)
            )(cs)
            assert bool(jnp.all(eqs.converged)), (type(system).__name__, point)
            got = [sdeml.dynamics.stability_name(k) for k in eqs.stability]
            assert got == [label] * 3, (type(system).__name__, point, eqs.eigenvalues)


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
        sdeml.dynamics.find_equilibrium(lambda t, y, args: y[:2], jnp.ones(3))
    # a zoo field refuses a state of the wrong length itself (it had clamped the index)
    with pytest.raises(ValueError, match=r"`y` must have shape \(2,\) for LotkaVolterra"):
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
        # Lorenz had no checks: beta < 0 put C+- at sqrt(< 0) (NaN points), sigma < 0 gave wrong
        # classes, rho < 0 can make the origin a stable spiral (the textbook says node)
        (lambda: sdeml.dynamics.Lorenz(beta=-1.0), "`beta`"),
        (lambda: sdeml.dynamics.Lorenz(sigma=-1.0), "`sigma`"),
        (lambda: sdeml.dynamics.Lorenz(rho=-5.0), "`rho`"),
        (lambda: sdeml.dynamics.Lorenz(sigma=float("nan")), "`sigma`"),
        (lambda: sdeml.dynamics.ExponentialGrowth(float("nan")), "`rate`"),  # had no check
        (lambda: sdeml.dynamics.ExponentialGrowth(float("inf")), "`rate`"),
        (lambda: sdeml.dynamics.HarmonicOscillator(float("inf")), "`omega`"),
        (lambda: sdeml.dynamics.LotkaVolterra(alpha=float("nan")), "`alpha`"),
        (lambda: sdeml.dynamics.SIR(n=float("inf")), "`n`"),
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
    rhos = jnp.array([-1.0, 28.0], f64)  # traced: not checked
    fields = jax.vmap(lambda r: sdeml.dynamics.Lorenz(rho=r)(0.0, jnp.ones(3, f64)))(rhos)
    np.testing.assert_allclose(fields[:, 1], [-3.0, 26.0])


@pytest.mark.parametrize("system", [s for s in ZOO if s.dim > 1], ids=lambda s: type(s).__name__)
def test_zoo_fields_refuse_a_state_of_the_wrong_shape(system):
    # The fields index y[0], y[1], ...; JAX clamps an index past the end and a short state gave
    # garbage: Lorenz()(0, ones(2)) was [0, 26, -1.67], a long one ignored the extra entries.
    d = system.dim
    for shape in ((d - 1,), (d + 1,), (1, d)):
        with pytest.raises(ValueError, match=rf"`y` must have shape \({d},\) for"):
            system(0.0, jnp.ones(shape, f64))
    assert system(0.0, jnp.ones(d, f64)).shape == (d,)


def test_zoo_methods_refuse_a_state_of_the_wrong_shape():
    ts = jnp.linspace(0.0, 1.0, 3, dtype=f64)
    ho, damped = sdeml.dynamics.HarmonicOscillator(2.0), sdeml.dynamics.DampedOscillator()
    for system in (ho, damped):
        # HarmonicOscillator.solution ignored the third entry of y0
        with pytest.raises(ValueError, match=r"`y0` must have shape \(2,\)"):
            system.solution(jnp.ones(3, f64), ts)
        with pytest.raises(ValueError, match=r"must have shape \(\.\.\., 2\)"):
            system.energy(jnp.ones((4, 3), f64))
        assert system.solution(jnp.ones(2, f64), ts).shape == (3, 2)
    with pytest.raises(ValueError, match=r"must have shape \(\.\.\., 2\)"):
        sdeml.dynamics.LotkaVolterra().first_integral(jnp.ones(3, f64))
    with pytest.raises(ValueError, match=r"`y` must have shape \(2,\) for SIR.reduced"):
        sdeml.dynamics.SIR().reduced(0.0, jnp.ones(3, f64))
    # ExponentialGrowth's field is elementwise, right for any shape: allowed
    np.testing.assert_allclose(sdeml.dynamics.ExponentialGrowth(2.0)(0.0, jnp.ones(3, f64)), 2.0)


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


def _linear(t, y, m):
    return m @ y


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
        # The nilpotent ones' eigenvalues are noise (+-1e-8) that, alone, cannot be told from a
        # genuine slow saddle (the class no longer depends on the unit of time): measured
        # against the matrix's size, passed as `scale` (find_equilibrium passes the Jacobian's)
        codes = jax.vmap(
            lambda m: sdeml.dynamics.classify_equilibrium(
                jnp.linalg.eigvals(m), scale=jnp.linalg.norm(m)
            )
        )(mats)
        assert {sdeml.dynamics.stability_name(c) for c in codes} == {want}
        eqs = jax.vmap(
            lambda m: sdeml.dynamics.find_equilibrium(_linear, jnp.zeros(2, f64), args=m)
        )(mats)
        assert {sdeml.dynamics.stability_name(c) for c in eqs.stability} == {want}


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


def test_quadratic_lyapunov_refuses_a_non_symmetric_q():
    # A^T P + P A is symmetric for symmetric P: a non-symmetric Q has no symmetric solution, and
    # a symmetrised P had come back that solved the equation for (Q + Q^T) / 2 instead
    A = jnp.array([[-1.0, 0.3], [0.0, -2.0]], f64)
    Q = jnp.array([[1.0, 1.0], [0.0, 1.0]], f64)
    with pytest.raises(ValueError, match="`Q` must be symmetric"):
        sdeml.dynamics.quadratic_lyapunov(A, Q)
    # asymmetry at rounding level passes, and P solves the equation
    Q = jnp.array([[2.0, 0.5], [0.5 * (1 + 1e-15), 1.0]], f64)
    P = sdeml.dynamics.quadratic_lyapunov(A, Q)
    np.testing.assert_allclose(A.T @ P + P @ A, -Q, atol=1e-12)


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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # these had complained about `ts` (an internal name), or raised a TypeError
        ({"n_save": 0}, "`n_save` must be an int >= 2"),
        ({"n_save": 1}, "`n_save` must be an int >= 2"),
        ({"t1": -1.0}, "`t1` must be finite and > 0"),
        ({"t1": float("nan")}, "`t1` must be finite and > 0"),
        ({"n_grid": 2.5}, "`n_grid` must be an int >= 2"),
        ({"n_grid": 1}, "`n_grid` must be an int >= 2"),
        ({"xlim": (0.0, float("inf"))}, "`xlim` must be finite"),
        ({"ylim": 3.0}, "`ylim` must be finite"),
    ],
)
def test_phase_portrait_names_a_bad_argument(kwargs, match):
    # the function itself: under the test run's jaxtyping hook the annotations refuse a float
    # n_grid first
    portrait = getattr(sdeml.dynamics.phase_portrait, "__wrapped__", sdeml.dynamics.phase_portrait)
    kwargs = {"xlim": (-1.0, 1.0), "ylim": (-1.0, 1.0), **kwargs}
    with pytest.raises(ValueError, match=match):
        portrait(sdeml.dynamics.VanDerPol(1.0), x0s=jnp.ones((1, 2), f64), **kwargs)


def test_zero_growth_rate_is_labelled_non_hyperbolic():
    # rate 0: every point is an equilibrium and the linearisation decides nothing; it was
    # labelled "stable node" while find_equilibrium's classification said non-hyperbolic
    system = sdeml.dynamics.ExponentialGrowth(0.0)
    points, labels = system.textbook_equilibria()
    lam = jnp.linalg.eigvals(sdeml.dynamics.jacobian(system, points[0]))
    assert labels == (sdeml.dynamics.stability_name(sdeml.dynamics.classify_equilibrium(lam)),)
    assert labels == ("non-hyperbolic",)
