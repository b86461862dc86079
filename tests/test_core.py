"""Tests of the core: the one solver registry and the one ODE front, through every entry point.

Solver facts (adaptive, evaluations per step) are read from the registry; each is checked here
against the thing itself: a counting callback inside the vector field for evaluation counts, an
analytic solution for the answer, the tableau for adaptivity.
"""

import math
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.experimental import io_callback

import sdeml
from sdeml.core import get_solver, integrate_ode, solver_info, solver_names

F64 = jnp.float64
A = jnp.array([[-0.5, 2.0], [-2.0, -0.5]], F64)
Y0 = jnp.array([1.0, 0.5], F64)
EXPLICIT = [n for n in solver_names("ode") if not solver_info(n).implicit]
IMPLICIT = [n for n in solver_names("ode") if solver_info(n).implicit]


class Counter:
    """Counts vector-field evaluations on the host (ordered callbacks keep program order)."""

    def __init__(self):
        self.n = 0

    def bump(self):
        self.n += 1

    def read(self) -> int:
        jax.effects_barrier()
        n, self.n = self.n, 0
        return n


def counted_linear(counter):
    def f(t, y, args):
        io_callback(counter.bump, None, ordered=True)
        return A @ y

    return f


# ---------------------------------------------------------------- the registry


def test_registry_facts_come_from_the_tableau():
    for name in solver_names("ode"):
        info, solver = solver_info(name), get_solver(name)
        tableau = getattr(solver, "tableau", None)
        if isinstance(tableau, diffrax.ButcherTableau):
            assert info.adaptive == bool(np.any(np.asarray(tableau.b_error) != 0)), name
        assert info.implicit == isinstance(solver, diffrax.AbstractImplicitSolver), name
    assert not solver_info("rk4").adaptive and not solver_info("euler").adaptive
    assert solver_info(sdeml.RK4()).stages == 4 and not solver_info("rk4").fsal
    assert solver_info("heun").adaptive and solver_info("heun").stages == 2
    assert solver_info("dopri8").stages == 14 and solver_info("dopri8").fsal
    assert solver_info("tsit5").order == 5 and solver_info("kvaerno5").implicit
    assert solver_info("milstein").kind == "sde" and solver_info("em").name == "euler_maruyama"
    # an unregistered tableau method is described from its tableau all the same
    assert solver_info(diffrax.Midpoint()).nfe(10) == 20


def test_names_are_unique_across_kinds_and_wrong_kind_says_which():
    assert not set(solver_names("ode")) & set(solver_names("sde"))
    with pytest.raises(ValueError, match="stochastic_heun"):
        get_solver("heun", kind="sde")
    with pytest.raises(ValueError, match="euler_maruyama"):
        sdeml.simulate(
            sdeml.BrownianMotion(), jnp.zeros(1), n_steps=4, method="euler", key=jr.key(0)
        )
    with pytest.raises(ValueError, match="valid names"):
        get_solver("rk45")
    assert isinstance(get_solver("em", kind="sde"), sdeml.EulerMaruyama)


UNROLLED = [
    n
    for n in EXPLICIT
    if isinstance(getattr(get_solver(n), "tableau", None), diffrax.ButcherTableau)
]


def _nonlinear(t, y, args):
    # a pytree state, time-dependent, with a parameter: every path of the step is exercised
    x, v = y["x"], y["v"]
    return {"x": v, "v": -args * jnp.sin(x) - 0.1 * v + 0.3 * jnp.cos(2.0 * t)}


# Every method in the slow run: the dopri5 case was the default run's slowest test (58.8 s in a
# run with other work beside it; compile-bound: five programs), and the default run had reached
# 10 min 1 s on the 2-core Xeon of 12-05 (9 min 13 s without it); the default run still
# solves with the written-out dopri5 throughout (evaluation counts, gradients against closed
# forms, the jump test below).
@pytest.mark.slow
@pytest.mark.parametrize("name", UNROLLED)
def test_written_out_stages_agree_with_diffrax_to_rounding(name):
    # the registry's explicit RK methods write their stages out (for reverse mode); the values,
    # the dense output, the step counts and the gradients are diffrax's own method's, to rounding
    ours = get_solver(name)
    base = type(ours).__bases__[1]
    if base is diffrax.AbstractERK:  # sdeml's RK4: the same tableau in diffrax's stage loop

        class LoopedRK4(diffrax.AbstractERK):
            tableau = sdeml.RK4.tableau
            interpolation_cls = sdeml.RK4.interpolation_cls

            def order(self, terms):
                return 4

        base = LoopedRK4
    theirs = base()
    assert type(ours) is not base and isinstance(ours, diffrax.AbstractERK)
    y0 = {"x": jnp.array([0.3, -1.0], F64), "v": jnp.array([0.5, 0.2], F64)}
    adaptive = solver_info(name).adaptive
    rtol = 1e-7 if solver_info(name).order >= 3 else 1e-5  # low orders: within max_steps
    control = diffrax.PIDController(rtol, 1e-2 * rtol) if adaptive else diffrax.ConstantStepSize()
    ts = jnp.linspace(2.0, 0.25, 7, dtype=F64)  # backwards in time: diffrax wraps the term

    def solve(solver, k, dense=False):
        return diffrax.diffeqsolve(
            diffrax.ODETerm(_nonlinear), solver, 2.0, 0.0, -0.05, y0, args=k,
            saveat=diffrax.SaveAt(ts=ts, dense=dense), stepsize_controller=control,
        )  # fmt: skip

    a, b = solve(ours, 1.3, True), solve(theirs, 1.3, True)
    assert int(a.stats["num_steps"]) == int(b.stats["num_steps"])
    assert int(a.stats["num_rejected_steps"]) == int(b.stats["num_rejected_steps"])
    for leaf_a, leaf_b in zip(jax.tree.leaves(a.ys), jax.tree.leaves(b.ys), strict=True):
        np.testing.assert_allclose(leaf_a, leaf_b, rtol=1e-12, atol=1e-13)
    for t in (1.9, 1.234, 0.6):
        for leaf_a, leaf_b in zip(
            jax.tree.leaves(a.evaluate(t)), jax.tree.leaves(b.evaluate(t)), strict=True
        ):
            np.testing.assert_allclose(leaf_a, leaf_b, rtol=1e-12, atol=1e-13)

    def loss(solver, k):
        return jnp.sum(solve(solver, k).ys["x"] ** 2)

    g_ours = jax.grad(loss, argnums=1)(ours, jnp.asarray(1.3, F64))
    g_theirs = jax.grad(loss, argnums=1)(theirs, jnp.asarray(1.3, F64))
    np.testing.assert_allclose(g_ours, g_theirs, rtol=1e-10)
    # under vmap (a batch of parameters), with its FSAL first stage evaluated on the first step
    ks = jnp.array([0.5, 1.3, 2.0], F64)
    vg = jax.vmap(jax.grad(loss, argnums=1), in_axes=(None, 0))(ours, ks)
    np.testing.assert_allclose(vg[1], g_theirs, rtol=1e-10)


def test_written_out_stages_after_a_jump_re_evaluate_the_first_stage():
    # a controller told of a jump at t = 0.7 must not reuse the stored last stage across it
    f = lambda t, y, args: jnp.where(t < 0.7, -y, 2.0 - y)
    control = diffrax.PIDController(rtol=1e-8, atol=1e-10, jump_ts=jnp.array([0.7], F64))
    sols = [
        diffrax.diffeqsolve(
            diffrax.ODETerm(f), s, 0.0, 1.5, 0.1, jnp.ones(1, F64), stepsize_controller=control
        ).ys[-1, 0]
        for s in (get_solver("dopri5"), diffrax.Dopri5())
    ]
    exact = 2.0 - (2.0 - math.exp(-0.7)) * math.exp(-0.8)
    np.testing.assert_allclose(sols[0], exact, rtol=1e-7)
    np.testing.assert_allclose(sols[0], sols[1], rtol=1e-12)


# ---------------------------------------------------------------- solve_ode, every solver


@pytest.mark.parametrize("name", EXPLICIT)
def test_every_explicit_solver_nfe_matches_a_counting_callback(name):
    counter = Counter()
    f = counted_linear(counter)
    # constant steps forwards; adaptive backwards in time from a first step far too large, so
    # that FSAL methods re-evaluate their first stage over several leading rejections
    cases: list[tuple[tuple[float, float], dict[str, Any]]] = [((0.0, 2.0), {"n_steps": 40})]
    if solver_info(name).adaptive:
        cases.append(((2.0, 0.5), {"dt0": 1.0}))
    for (t0, t1), kw in cases:
        sol = integrate_ode(f, Y0, t0, t1, solver=name, rtol=1e-6, atol=1e-9, **kw)
        assert int(sol.nfe) == counter.read(), (name, kw)
        assert int(sol.num_steps) == int(sol.num_accepted_steps + sol.num_rejected_steps)
    if solver_info(name).adaptive:
        assert int(sol.num_rejected_steps) > 0  # the large first step was rejected


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n == "kvaerno5" else pytest.mark.slow) for n in IMPLICIT]
)
def test_implicit_solver_nfe_is_counted_on_request(name):
    counter = Counter()
    f = counted_linear(counter)
    sol = sdeml.solve_ode(f, Y0, 0.0, 2.0, solver=name, rtol=1e-6, atol=1e-9)
    counter.read()
    assert int(sol.nfe) == -1  # diffrax does not report Newton iterations
    counted = sdeml.solve_ode(f, Y0, 0.0, 2.0, solver=name, rtol=1e-6, atol=1e-9, count_evals=True)
    assert int(counted.nfe) == counter.read() > int(counted.num_steps)


# observed global errors at these settings are 5-100x below each bound
ACCURACY = {"euler": 2e-2, "heun": 2e-5, "midpoint": 2e-5, "ralston": 2e-5, "bosh3": 1e-6}


@pytest.mark.parametrize("name", solver_names("ode"))
def test_every_solver_answers_a_linear_ode(name):
    info = solver_info(name)
    ts = jnp.linspace(0.0, 2.0, 5, dtype=F64)
    exact = sdeml.ode.linear_ode_solution(A, Y0, ts)
    if info.adaptive:
        rtol = 1e-8 if info.order >= 3 else 1e-6  # low orders: fewer than ~10^4 steps
        sol = sdeml.solve_ode(
            lambda t, y, a: A @ y, Y0, 0.0, 2.0, solver=name, ts=ts, rtol=rtol, atol=1e-3 * rtol
        )
        # a modest multiple of rtol * |y|; implicit Euler's local error control (against an
        # explicit Euler step) is first order: measured 9e-4
        bound = 5e-3 if info.order < 2 else 100 * rtol
    else:
        n = 4000 if name == "euler" else 200
        sol = sdeml.solve_ode(lambda t, y, a: A @ y, Y0, 0.0, 2.0, solver=name, ts=ts, n_steps=n)
        bound = ACCURACY.get(name, 1e-7)
    err = float(jnp.max(jnp.abs(sol.ys - exact)))
    assert err < bound, (name, err)


def test_rk4_neural_ode_regression_is_not_adaptive():
    # Issue #16: RK4 was run under a step-size controller on an always-zero error estimate.
    with pytest.raises(ValueError, match="cannot adapt|constant steps"):
        integrate_ode(lambda t, y, a: -y, jnp.ones(1, F64), 0.0, 10.0, solver="rk4", adaptive=True)
    sol = sdeml.solve_ode(
        lambda t, y, a: -y, jnp.ones(1, F64), 0.0, 10.0, solver="rk4", n_steps=100
    )
    assert float(sol.y_final[0]) == pytest.approx(np.exp(-10.0), rel=1e-4)


# ---------------------------------------------------------------- failures are never silent


def blow_up(t, y, args):  # y' = y^2, y(0) = 1 blows up at t = 1
    return y**2


def test_failure_under_jit_is_raised_whatever_output_is_kept():
    # Issue #17: a jitted function returning only `y_final` dropped the check as dead code.
    for keep in (lambda s: s.y_final, lambda s: s.nfe, lambda s: s.t_final):
        fn = jax.jit(lambda y0, keep=keep: keep(sdeml.solve_ode(blow_up, y0, 0.0, 2.0)))
        with pytest.raises(jax.errors.JaxRuntimeError, match="ODESolveError"):
            jax.block_until_ready(fn(jnp.ones(1, F64)))


def test_failure_under_grad_and_vmap_is_raised():
    loss = lambda y0: sdeml.solve_ode(blow_up, y0, 0.0, 2.0).y_final.sum()
    with pytest.raises((sdeml.ODESolveError, jax.errors.JaxRuntimeError), match="blows up"):
        jax.block_until_ready(jax.grad(loss)(jnp.ones(1, F64)))
    with pytest.raises(jax.errors.JaxRuntimeError, match="ODESolveError"):
        y0s = jnp.array([[0.1], [1.0]], F64)  # the second member blows up
        jax.block_until_ready(
            jax.jit(jax.vmap(lambda y: sdeml.solve_ode(blow_up, y, 0.0, 2.0).y_final))(y0s)
        )


def test_nonfinite_initial_value_is_refused():
    nan = jnp.array([jnp.nan, 1.0], F64)
    with pytest.raises(ValueError, match="`y0` contains NaN"):
        sdeml.solve_ode(lambda t, y, a: -y, nan, 0.0, 1.0)
    with pytest.raises(jax.errors.JaxRuntimeError, match="`y0`"):
        jax.block_until_ready(
            jax.jit(lambda y: sdeml.solve_ode(lambda t, y, a: -y, y, 0.0, 1.0).y_final)(nan)
        )
    sol = jax.jit(lambda y: sdeml.solve_ode(lambda t, y, a: -y, y, 0.0, 1.0, throw=False))(nan)
    assert sol.result == sdeml.ODEResult.nonfinite_input


def test_dense_and_pytree_states():
    sol = sdeml.solve_ode(
        lambda t, y, a: (-y[0], 2.0 * y[1]),
        (jnp.ones(2, F64), jnp.ones((), F64)),
        0.0,
        1.0,
        dense=True,
    )
    np.testing.assert_allclose(sol.y_final[0], np.exp(-1.0) * np.ones(2), rtol=1e-6)
    np.testing.assert_allclose(sol.evaluate(jnp.array([0.5]))[1], [np.exp(1.0)], rtol=1e-6)


# ---------------------------------------------------------------- diffusion entry points


def gaussian_score(counter):
    # data ~ N(0, s0^2 I): p_t = N(0, (alpha^2 s0^2 + sigma^2) I) under VP; score = -x / var
    sde, s0 = sdeml.VPSDE(), 0.5

    def score(t, x):
        io_callback(counter.bump, None, ordered=True)
        var = sde.alpha(t) ** 2 * s0**2 + sde.sigma(t) ** 2
        return -x / var

    return sde, s0, score


@pytest.mark.parametrize("name", EXPLICIT)
def test_probability_flow_sampler_every_solver(name):
    # Issue #16: with diffrax.Heun() it reported 147 evaluations where 292 were made.
    counter = Counter()
    sde, s0, score = gaussian_score(counter)
    n_steps = 400 if name == "euler" else 60
    kw: dict[str, Any] = {} if solver_info(name).adaptive else {"n_steps": n_steps}
    r = sdeml.diffusion.probability_flow_sampler(
        score, sde, (2000, 2), solver=name, rtol=1e-5, atol=1e-5, dtype=F64, key=jr.key(0), **kw
    )
    # the score is evaluated once per batch evaluation (the batch is one state)
    assert int(r.nfe) == counter.read(), name
    # N(0, s0^2) at eps (to within the prior mismatch and sampling error: 4 SE of the variance)
    var = float(jnp.var(r.x))
    target = float(sde.alpha(1e-3) ** 2 * s0**2 + sde.sigma(1e-3) ** 2)
    assert abs(var - target) < 4 * target * np.sqrt(2 / 4000) + (5e-3 if name == "euler" else 0)


@pytest.mark.parametrize("name", ["heun", "bosh3", "tsit5", "dopri8", "rk4"])
def test_log_likelihood_every_solver(name):
    counter = Counter()
    sde, s0, score = gaussian_score(counter)
    x = jnp.array([0.3, -0.4], F64)
    var = lambda t: sde.alpha(t) ** 2 * s0**2 + sde.sigma(t) ** 2
    gauss = lambda z, v: -0.5 * jnp.sum(z**2) / v - z.size / 2 * jnp.log(2 * jnp.pi * v)
    kw: dict[str, Any] = {} if solver_info(name).adaptive else {"n_steps": 200}
    res = sdeml.log_likelihood(
        score, sde, x, eps=1e-3, solver=name, prior_logp=lambda z: gauss(z, var(1.0)), **kw
    )
    # exact divergence: one primal + d tangent evaluations of the score per field evaluation;
    # the callback fires once per traced call, so per evaluation of the augmented field once
    assert int(res.nfe) == counter.read(), name
    assert float(res.logp) == pytest.approx(float(gauss(x, var(1e-3))), abs=1e-4)


def test_simulate_reuses_the_plan_of_a_repeated_call_and_gives_the_same_paths():
    # issue #18: the host-side layout of a uniform grid given by Python numbers is made once
    from sdeml.core import _simulate

    ou = sdeml.SDE(lambda t, y, a: -y, lambda t, y, a: 0.5 * jnp.ones_like(y), noise="diagonal")
    kw = dict(t0=0.0, t1=0.7, n_steps=40, n_paths=64, save_every=5, key=jr.key(3))
    _simulate._PLAN_CACHE.clear()
    a = sdeml.simulate(ou, jnp.ones(2), **kw)
    assert len(_simulate._PLAN_CACHE) == 1
    plan = next(iter(_simulate._PLAN_CACHE.values()))
    b = sdeml.simulate(ou, jnp.ones(2), **kw)
    assert len(_simulate._PLAN_CACHE) == 1 and next(iter(_simulate._PLAN_CACHE.values())) is plan
    np.testing.assert_array_equal(a.xs, b.xs)
    np.testing.assert_array_equal(a.ts, b.ts)
    # another grid is another plan, and array-valued times are never cached
    c = sdeml.simulate(ou, jnp.ones(2), **{**kw, "n_steps": 45})
    assert len(_simulate._PLAN_CACHE) == 2 and c.ts.shape == (9,)
    sdeml.simulate(ou, jnp.ones(2), **{**kw, "t1": jnp.asarray(0.7)})
    assert len(_simulate._PLAN_CACHE) == 2


def test_simulate_refuses_a_grid_its_dtype_cannot_resolve():
    # float32 spaces times near 1e8 8 apart: t0 = 1e8, t1 = 1e8 + 1 in 4 steps ran with steps of
    # 0 (the paths did not move) and reported t = 1e8 throughout
    bm, k, f32 = sdeml.BrownianMotion(), jr.key(0), jnp.float32
    with pytest.raises(ValueError, match=r"steps 0 and 1 .* same time in float32.* 8 apart"):
        sdeml.simulate(bm, jnp.zeros(1), t0=1e8, t1=1e8 + 1, n_steps=4, dtype=f32, key=k)
    ts = np.array([0.0, 1.0, 1.0 + 1e-9])  # distinct in float64, one number in float32
    with pytest.raises(ValueError, match="steps 1 and 2 of the grid"):
        sdeml.simulate(bm, jnp.zeros(1), ts=ts, dtype=f32, key=k)
    paths = sdeml.simulate(bm, jnp.zeros(1), ts=ts, dtype=jnp.float64, key=k)  # fine in float64
    assert bool(jnp.all(jnp.isfinite(paths.xs)))
