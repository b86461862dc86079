"""Regression tests of the audit of the deterministic core (the ODE front, the solver table, the
linear closed forms, L-BFGS, minibatch draws): wrong numbers and argument checks, each against a
reference computed here (SciPy's expm, closed forms, published Butcher tableaux, SciPy's
L-BFGS-B)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest
import scipy.linalg as sl
import scipy.optimize as so

import sdeml
from sdeml.core import get_solver, integrate_ode, lbfgs_minimize, solver_info
from sdeml.core._minibatch import sample_indices
from sdeml.ode import linear_ode_solution, linear_ode_solution_eig

F32, F64, BF16, F16 = jnp.float32, jnp.float64, jnp.bfloat16, jnp.float16
ROTATION = np.array([[0.0, 1.0], [-1.0, 0.0]])  # y = (cos t, -sin t) from (1, 0)


@pytest.fixture
def no_jaxtyping(monkeypatch):
    """The functions' own checks, not the annotation checks of the test hook that run first."""
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)


def _decay(t, y, args):
    return -y


def _oscillator(t, y, args):
    return jnp.stack([y[1], -y[0]])


# ------------------------------------------------------------------- linear closed forms


def test_linear_solution_matches_scipy_expm_between_powers_of_two():
    # jax's expm scaled by 2^floor(log2(|M|/theta)), leaving the Pade approximant a norm up to
    # 2 theta: the rotation at t = 10.6 was 1.3e-8 off (float64), at t = 7.5 1.0e-3 (float32)
    ts = np.array([8.0, 10.6, 21.0, 1000.0])
    ref = np.stack([sl.expm(ROTATION * t)[:, 0] for t in ts])
    ys = linear_ode_solution(jnp.asarray(ROTATION), jnp.array([1.0, 0.0]), jnp.asarray(ts))
    err = np.abs(np.asarray(ys) - ref).max(axis=1)
    assert np.all(err < 1e-13 * np.maximum(ts, 10.0)), err  # the angle's rounding: t eps
    with jax.enable_x64(False):
        ts32 = jnp.array([3.0, 7.5, 15.0], F32)
        ys32 = linear_ode_solution(jnp.asarray(ROTATION, F32), jnp.array([1.0, 0.0], F32), ts32)
    ref32 = np.stack([sl.expm(ROTATION * float(t))[:, 0] for t in ts32])
    np.testing.assert_allclose(np.asarray(ys32, np.float64), ref32, rtol=0, atol=2e-6)


def test_linear_solution_of_a_stiff_system_over_a_long_time_is_finite():
    # |tA|_1 > 3.5e5 needs more than jax's 16 squarings: it returned NaN
    A = np.array([[-1000.0, 1.0], [0.0, -1e-3]])
    ts = np.array([0.0, 1.0, 1e3, 1e5])
    ref = np.stack([sl.expm(A * t) @ np.ones(2) for t in ts])
    for solve in (linear_ode_solution, linear_ode_solution_eig):
        ys = np.asarray(solve(jnp.asarray(A), jnp.ones(2), jnp.asarray(ts)))
        np.testing.assert_allclose(ys, ref, rtol=1e-8, atol=0)
    # the affine case, by Duhamel: y = e^{At} y0 + A^{-1} (e^{At} - I) b
    b = np.array([1.0, -2.0])
    t = 2e3
    E = sl.expm(A * t)
    ref_b = E @ np.ones(2) + np.linalg.solve(A, (E - np.eye(2)) @ b)
    ys = linear_ode_solution(jnp.asarray(A), jnp.ones(2), jnp.array([t]), jnp.asarray(b))
    np.testing.assert_allclose(ys[0], ref_b, rtol=1e-8)


@pytest.mark.slow  # ~11 s: gradient and vmap compiles
def test_linear_solution_gradient_and_vmap_through_the_extra_squarings():
    # d/dlam e^{lam t} = t e^{lam t} for the slow mode of a system that needs 22 squarings
    def slow_mode(lam):
        A = jnp.array([[lam, 0.0], [0.0, -1e3]])
        return linear_ode_solution(A, jnp.ones(2), jnp.array([1e3]))[0, 0]

    lam = -1e-3
    np.testing.assert_allclose(jax.grad(slow_mode)(lam), 1e3 * np.exp(lam * 1e3), rtol=1e-9)
    rates = jnp.array([[[-1e3]], [[-1.0]], [[0.5]]])
    ys = jax.vmap(lambda a: linear_ode_solution(a, jnp.ones(1), jnp.array([1e3, 1.0])))(rates)
    ref = np.exp(np.array([-1e3, -1.0, 0.5])[:, None] * np.array([1e3, 1.0]))
    np.testing.assert_allclose(ys[..., 0], ref, rtol=1e-12)


@pytest.mark.slow  # ~6 s: three dtypes, three compiles
def test_linear_solution_keeps_the_inputs_float_dtype():
    # under x64 float32 inputs came back float64 (the default float always took part)
    A32, y32, t32 = jnp.asarray(ROTATION, F32), jnp.array([1.0, 0.0], F32), jnp.array([1.0], F32)
    assert linear_ode_solution(A32, y32, t32).dtype == F32
    assert jax.eval_shape(linear_ode_solution_eig, A32, y32, t32, jnp.zeros(2, F32)).dtype == F32
    ys = linear_ode_solution(
        jnp.asarray(ROTATION, BF16), jnp.array([1.0, 0.0], BF16), jnp.array([1.0], BF16)
    )
    assert ys.dtype == BF16  # computed in float32 (expm has no bfloat16 kernel), cast back
    ref = [np.cos(1.0), -np.sin(1.0)]
    np.testing.assert_allclose(np.asarray(ys, np.float64)[0], ref, atol=4e-3)
    # integer inputs: the default float
    ys = linear_ode_solution(np.array([[0, 1], [-1, 0]]), np.array([1, 0]), np.array([0, 2]))
    assert ys.dtype == F64
    np.testing.assert_allclose(ys[1], [np.cos(2.0), -np.sin(2.0)], rtol=1e-13)


# -------------------------------------------------------------------- half-precision states


@pytest.mark.parametrize(("dtype", "tol"), [(BF16, 2e-2), (F16, 3e-3)])
def test_half_precision_states_are_integrated_in_float32(dtype, tol):
    # bfloat16's tolerance floor was 100 eps = 0.78: the oscillator's amplitude came out 104 at
    # t = 10 (float16: 0.52 off)
    ts = jnp.linspace(0.0, 10.0, 6)
    sol = sdeml.solve_ode(_oscillator, jnp.array([1.0, 0.0], dtype), 0.0, 10.0, ts=ts)
    assert sol.ys.dtype == dtype and sol.y_final.dtype == dtype and sol.ts.dtype == dtype
    t = np.asarray(sol.ts, np.float64)
    ref = np.stack([np.cos(t), -np.sin(t)], axis=1)
    np.testing.assert_allclose(np.asarray(sol.ys, np.float64), ref, rtol=0, atol=tol)


@pytest.mark.slow  # ~8 s: three compiled solves
@pytest.mark.parametrize(("dtype", "tol"), [(BF16, 2e-2), (F16, 3e-3)])
def test_half_precision_decay_and_pytree_backwards(dtype, tol):
    # y' = -y at t = 1 was 0.0149 off in bfloat16 (4 ulps); now within half an ulp
    one = sdeml.solve_ode(_decay, jnp.ones(1, dtype), 0.0, 1.0)
    spacing = float(jnp.finfo(dtype).eps) / 2  # of the values in [0.25, 0.5)
    assert abs(float(one.ys[-1, 0]) - np.exp(-1.0)) <= spacing
    # a pytree of half-precision leaves: each leaf keeps its dtype; backwards in time too
    y0 = {"a": jnp.ones(2, dtype), "b": jnp.full((), 2.0, dtype)}
    back = integrate_ode(lambda t, y, a: {"a": -y["a"], "b": y["b"]}, y0, 1.0, 0.0)
    assert back.ys["a"].dtype == dtype and back.ys["b"].dtype == dtype
    np.testing.assert_allclose(np.asarray(back.y_final["a"], np.float64), np.e, rtol=tol)
    np.testing.assert_allclose(float(back.y_final["b"]), 2.0 / np.e, rtol=tol)


def test_half_precision_field_sees_its_own_dtypes():
    # the float32 carry is the solver's: the field is called with the state and the time in the
    # caller's bfloat16, so a bfloat16 model's parameters meet bfloat16 inputs (strict promotion,
    # on in the tests, refuses bfloat16 x float32), and its compiled solve is reused
    seen = []
    w = jnp.asarray(-1.0, BF16)

    def field(t, y, args):
        seen.append((t.dtype, y.dtype))
        return w * y

    ts = jnp.array([0.5, 1.0])
    sol = sdeml.solve_ode(field, jnp.ones(2, BF16), 0.0, 1.0, ts=ts)
    assert sol.ys.dtype == BF16 and set(seen) == {(jnp.dtype(BF16), jnp.dtype(BF16))}
    np.testing.assert_allclose(np.asarray(sol.ys, np.float64)[:, 0], np.exp(-ts), atol=4e-3)
    n_traces = len(seen)
    sdeml.solve_ode(field, jnp.full(2, 2.0, BF16), 0.0, 1.0, ts=ts)
    # one trace by the front's check of the field's output, as for a float32 state; not the
    # ~16 of compiling the solve again
    assert len(seen) == n_traces + 1


def test_float32_state_stays_float32_under_x64():
    sol = sdeml.solve_ode(_decay, jnp.ones(2, F32), 0, 2, ts=jnp.array([0, 1, 2]))
    assert sol.ys.dtype == F32 and sol.ts.dtype == F32
    np.testing.assert_allclose(sol.ys[:, 0], np.exp(-np.arange(3.0)), rtol=3e-5)


# ------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dt0": float("inf")}, "`dt0` must be finite"),  # one step over the whole interval
        ({"dt0": float("inf"), "solver": "rk4"}, "`dt0` must be finite"),
        ({"dt0": True}, "`dt0` must be a real number"),
        ({"dt0": jnp.array([0.1, 0.2])}, "`dt0` must be a real number"),
        ({"rtol": True}, "`rtol` must be a real number"),  # read as a tolerance of 100 %
        ({"atol": True}, "`atol` must be a real number"),
        ({"rtol": jnp.array([1e-3, 1e-3])}, "`rtol` must be a real number"),  # a TypeError
        ({"atol": -1.0}, "`atol` must be finite and >= 0"),
        ({"dtmin": True}, "`dtmin` must be a real number"),
        ({"dtmin": float("inf")}, "`dtmin` must be finite"),
        ({"t0": False, "t1": True}, "`t0` and `t1` must be numbers"),
    ],
)
def test_solve_ode_refuses_bad_numbers(no_jaxtyping, kwargs, match):
    call = {"t0": 0.0, "t1": 1.0} | kwargs
    with pytest.raises(ValueError, match=match):
        sdeml.solve_ode(_decay, jnp.ones(1), call.pop("t0"), call.pop("t1"), **call)


def test_solve_ode_reads_the_size_of_dt0_only(no_jaxtyping):
    # documented: the sign of dt0 is ignored (time runs from t0 to t1)
    sol = sdeml.solve_ode(_decay, jnp.ones(1), 0.0, 1.0, solver="rk4", dt0=-0.1)
    assert int(sol.num_steps) == 10
    np.testing.assert_allclose(sol.ys[-1, 0], np.exp(-1.0), rtol=1e-5)


def test_integrate_ode_takes_a_step_size_of_either_sign_but_not_an_infinite_one(no_jaxtyping):
    sol = integrate_ode(_decay, jnp.ones(1), 1.0, 0.0, solver="rk4", dt0=-0.1, adaptive=False)
    assert int(sol.num_steps) == 10
    np.testing.assert_allclose(sol.ys[-1, 0], np.e, rtol=1e-5)
    with pytest.raises(ValueError, match="`dt0` must be finite and nonzero"):
        integrate_ode(_decay, jnp.ones(1), 1.0, 0.0, dt0=-float("inf"))


def test_traced_tolerances_are_checked_at_run_time():
    # a traced rtol of -1 was floored to 100 eps and solved silently
    solve = jax.jit(lambda r: sdeml.solve_ode(_decay, jnp.ones(1), 0.0, 1.0, rtol=r).ys)
    np.testing.assert_allclose(solve(1e-8)[-1, 0], np.exp(-1.0), rtol=1e-7)
    # (raised through a host callback: a JaxRuntimeError, a ValueError under this test hook)
    with pytest.raises((jax.errors.JaxRuntimeError, ValueError), match="`rtol` must be finite"):
        jax.block_until_ready(solve(-1.0))


# -------------------------------------------------------------------------- solver table

# Published tableaux, (c, A rows, b): Euler; Heun (1900); midpoint (Runge 1895); Ralston (1962);
# Bogacki & Shampine (1989); Kutta's classical RK4 (1901); Dormand & Prince (1980).
_PUBLISHED = {
    "heun": ([1.0], [[1.0]], [1 / 2, 1 / 2]),
    "midpoint": ([1 / 2], [[1 / 2]], [0.0, 1.0]),
    "ralston": ([2 / 3], [[2 / 3]], [1 / 4, 3 / 4]),
    "bosh3": (
        [1 / 2, 3 / 4, 1.0],
        [[1 / 2], [0, 3 / 4], [2 / 9, 1 / 3, 4 / 9]],
        [2 / 9, 1 / 3, 4 / 9, 0],
    ),
    "rk4": ([1 / 2, 1 / 2, 1.0], [[1 / 2], [0, 1 / 2], [0, 0, 1]], [1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    "dopri5": (
        [1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0],
        [
            [1 / 5],
            [3 / 40, 9 / 40],
            [44 / 45, -56 / 15, 32 / 9],
            [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
            [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
            [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
        ],
        [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
    ),
    # Tsitouras 2011, Table 1 (c and b; its A rows satisfy sum_j a_ij = c_i)
    "tsit5": (
        [0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0],
        None,
        [
            0.09646076681806523,
            0.01,
            0.4798896504144996,
            1.379008574103742,
            -3.290069515436081,
            2.324710524099774,
            0.0,
        ],  # fmt: skip
    ),
}


@pytest.mark.parametrize("name", sorted(_PUBLISHED))
def test_tableaux_are_the_published_ones_and_the_table_reads_them(name):
    c, rows, b = _PUBLISHED[name]
    tab = get_solver(name).tableau
    np.testing.assert_allclose(tab.c, c, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(tab.b_sol, b, rtol=1e-14, atol=1e-16)
    for i, (row, ci) in enumerate(zip(tab.a_lower, c, strict=True)):
        if rows is not None:
            np.testing.assert_allclose(row, rows[i], rtol=1e-14, atol=1e-16)
        assert abs(float(np.sum(row)) - ci) < 1e-14
    info = solver_info(name)
    fsal = name in ("bosh3", "tsit5", "dopri5")
    assert (info.stages, info.fsal, info.adaptive) == (len(b), fsal, name != "rk4")
    assert info.nfe(10) == (len(b) - fsal) * 10 + fsal


# ------------------------------------------------------------------------------ minibatch


def test_minibatch_without_replacement_draws_distinct_indices_and_all_of_them_at_b_eq_n():
    idx = np.asarray(sample_indices(10, 10, 3, False, key=jr.key(0)))
    assert idx.shape == (3, 10) and all(sorted(r) == list(range(10)) for r in idx)
    idx = np.asarray(sample_indices(50, 20, 64, False, key=jr.key(1)))
    assert idx.shape == (64, 20) and all(len(set(r)) == 20 for r in idx)
    assert idx.min() >= 0 and idx.max() < 50
    counts = np.bincount(idx.ravel(), minlength=50)  # uniform: 64 * 20 / 50 = 25.6 each
    assert counts.min() > 5 and counts.max() < 50


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((10, 11, 1, False), "`b` must be <= n = 10"),  # came back with 10 columns, not 11
        ((0, 1, 1, True), "`n` must be a positive integer"),  # index 0 into no data
        ((10, 0, 1, True), "`b` must be a positive integer"),
        ((10, -1, 1, True), "`b` must be a positive integer"),
        ((10, 2.5, 1, True), "`b` must be a positive integer"),
        ((True, 1, 1, True), "`n` must be a positive integer"),
        ((10, 2, -1, True), "`n_chains` must be a non-negative int"),
        ((10, 2, 1, 1), "`replace` must be a bool"),
    ],
)
def test_minibatch_argument_checks(no_jaxtyping, args, match):
    with pytest.raises(ValueError, match=match):
        sample_indices(*args, key=jr.key(0))


# ---------------------------------------------------------------------------------- L-BFGS


def _rosenbrock(p):
    return jnp.sum(100.0 * (p[1:] - p[:-1] ** 2) ** 2 + (1.0 - p[:-1]) ** 2)


@pytest.mark.slow  # ~10 s: the compiled chunk with its zoom line search
def test_lbfgs_reaches_scipy_s_minimum_of_rosenbrock():
    x0 = np.array([-1.2, 1.0, -0.5, 0.3])
    ref = so.minimize(
        lambda p: float(_rosenbrock(jnp.asarray(p))),
        x0,
        jac=lambda p: np.asarray(jax.grad(_rosenbrock)(jnp.asarray(p))),
        method="L-BFGS-B",
        options={"gtol": 1e-12, "ftol": 1e-16, "maxiter": 5000},
    )
    res = lbfgs_minimize(_rosenbrock, jnp.asarray(x0), gtol=1e-9, max_iter=2000)
    assert res.status == "converged"
    np.testing.assert_allclose(res.params, ref.x, atol=1e-5)
    np.testing.assert_allclose(res.params, np.ones(4), atol=1e-8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gtol": True}, "`gtol` must be a number"),  # read as 1.0
        ({"ftol": float("inf")}, "`ftol` must be finite"),  # every iteration "no progress"
        ({"time_limit_s": True}, "`time_limit_s` must be a number"),
        ({"gtol": float("nan")}, "`gtol` must be finite"),
    ],
)
def test_lbfgs_refuses_bad_tolerances(no_jaxtyping, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lbfgs_minimize(lambda p: jnp.sum((p - 3.0) ** 2), jnp.zeros(2), **kwargs)


def test_lbfgs_refuses_aux_metrics_named_as_the_history_columns():
    # an aux "loss" replaced the history's loss column (and "grad_norm", "iteration" theirs)
    from sdeml.core import lbfgs_minimize

    def loss_fn(p, name):
        val = jnp.sum((p - 3.0) ** 2)
        return val, {name: 2 * val}

    res = lbfgs_minimize(loss_fn, jnp.zeros(2), "twice", max_iter=50)
    np.testing.assert_allclose(res.params, 3.0, atol=1e-6)
    assert all(row["twice"] == pytest.approx(2 * row["loss"]) for row in res.history)
    for name in ("loss", "grad_norm", "iteration"):
        with pytest.raises(ValueError, match=rf"\['{name}'\] would replace"):
            lbfgs_minimize(loss_fn, jnp.zeros(2), name, max_iter=5)


# ---------------------------------------------------------------- a blow-up is not called stiff


def _square(t, y, args):  # y' = y^2 from y0 > 0 blows up at t = 1 / y0
    return y**2


@pytest.mark.parametrize("y0", [1.0, 1e3, 1e-3])
def test_a_finite_time_blowup_is_diagnosed_as_such(y0):
    # It used to be called stiff ("use an implicit solver"): its h * rho grows with the state.
    # From y0 = 1e-3 the pole (t = 1000) lies past t1 = 2: no failure at all.
    t1 = 2.0
    sol = sdeml.solve_ode(_square, jnp.array([y0], F64), 0.0, t1, throw=False)
    if 1.0 / y0 > t1:
        assert bool(sol.ok)
        np.testing.assert_allclose(sol.y_final, [y0 / (1 - y0 * t1)], rtol=1e-6)
        return
    assert sol.result_name == "blowup"
    assert float(sol.t_final) == pytest.approx(1.0 / y0, rel=1e-6)
    with pytest.raises(sdeml.ODESolveError, match=r"blows up.*not stiffness.*max\|y\|"):
        sdeml.solve_ode(_square, jnp.array([y0], F64), 0.0, t1)
    with pytest.raises(jax.errors.JaxRuntimeError, match="blows up"):
        jax.block_until_ready(
            jax.jit(lambda y: sdeml.solve_ode(_square, y, 0.0, t1).y_final)(jnp.array([y0], F64))
        )


def test_blowup_under_vmap_and_for_an_implicit_solver():
    y0s = jnp.array([[0.1], [1.0]], F64)  # only the second member's pole lies before t1 = 2
    sols = jax.vmap(lambda y: sdeml.solve_ode(_square, y, 0.0, 2.0, throw=False))(y0s)
    np.testing.assert_array_equal(sols.result == sdeml.ODEResult.successful, [True, False])
    np.testing.assert_array_equal(sols.result == sdeml.ODEResult.blowup, [False, True])
    sol = sdeml.solve_ode(_square, jnp.ones(1, F64), 0.0, 2.0, solver="kvaerno5", throw=False)
    assert sol.result_name == "blowup"


def test_stiffness_and_plain_step_limits_are_not_called_a_blowup():
    # stiff, with a state that grows 1e7-fold to its equilibrium: h * rho stays at the
    # stability boundary, so it is still stiff
    big = lambda t, y, a: -1e4 * (y - 1e7)
    sol = sdeml.solve_ode(big, jnp.zeros(1, F64), 0.0, 1.0, max_steps=200, throw=False)
    assert sol.result_name == "stiff"
    assert 1.0 <= float(sol.stiffness) < 10.0
    # fast exponential growth with too few steps: out of steps, neither stiff nor a blow-up
    grow = lambda t, y, a: 30.0 * y
    sol = sdeml.solve_ode(grow, jnp.ones(1, F64), 0.0, 1.0, max_steps=20, throw=False)
    assert sol.result_name == "max_steps_reached"
