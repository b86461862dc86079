"""Neural ODEs: analytic solutions, convergence orders, adjoints, ResNet <-> Euler, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import sdeml
from sdeml.neural_ode import (
    EulerResNet,
    MLPField,
    NeuralODE,
    StepModel,
    gradient_audit,
    integrate,
    irregular_times,
    resnet_limit,
    sample_windows,
    spiral_field,
    window_loss,
    with_adjoint,
)

A = jnp.array([[-0.3, 1.0], [-1.0, -0.2]], jnp.float64)


class Linear(eqx.Module):
    """f(t, y) = A y: y(t) = expm(A t) y0 in closed form."""

    A: jax.Array

    def __call__(self, t, y):
        return self.A @ y


def test_matches_expm_at_all_times():
    node = NeuralODE(Linear(A), solver="dopri5", rtol=1e-11, atol=1e-12)
    ts = jnp.linspace(0.0, 2.0, 7, dtype=jnp.float64)
    y0 = jnp.array([1.0, -0.5], jnp.float64)
    exact = jnp.stack([jax.scipy.linalg.expm(A * t) @ y0 for t in ts])
    # rtol = 1e-11 local tolerance; the global error over t <= 2 stays within ~100x of it.
    np.testing.assert_allclose(node(ts, y0), exact, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("solver", "order"), [("euler", 1), ("heun", 2)])
def test_fixed_step_convergence_order(solver, order):
    y0 = jnp.array([1.0, -0.5], jnp.float64)
    exact = jax.scipy.linalg.expm(A) @ y0
    ns = [32, 64, 128]
    errs = []
    for n in ns:
        node = NeuralODE(Linear(A), solver=solver, dt0=1.0 / n, adaptive=False)
        errs.append(float(jnp.linalg.norm(node(jnp.array([0.0, 1.0]), y0)[-1] - exact)))
    slope = np.polyfit(np.log(ns), np.log(errs), 1)[0]
    # Asymptotic regime on a smooth linear problem: slopes land within 0.1 of -order.
    assert abs(slope + order) < 0.15, (solver, slope, errs)


def test_nfe_matches_a_host_counter():
    calls = []

    class Counting(eqx.Module):
        A: jax.Array

        def __call__(self, t, y):
            jax.debug.callback(lambda: calls.append(1))
            return self.A @ y

    y0 = jnp.array([1.0, -0.5], jnp.float64)
    for kw in [dict(solver="tsit5", dt0=0.05), dict(solver="heun", dt0=0.1, adaptive=False)]:
        calls.clear()
        sol = NeuralODE(Counting(A), rtol=1e-6, atol=1e-8, **kw).solve(jnp.array([0.0, 3.0]), y0)
        jax.block_until_ready(sol.ys)
        # The formula counts stages; diffrax may add up to two evaluations picking dt0.
        assert abs(int(sol.nfe) - len(calls)) <= 2, (kw, int(sol.nfe), len(calls))
        assert int(sol.num_steps) > 0


def test_jit_vmap_matches_loop_and_single_trace():
    node = NeuralODE(Linear(A), solver="tsit5", rtol=1e-8, atol=1e-8)
    ts = jnp.linspace(0.0, 1.0, 4, dtype=jnp.float64)
    y0s = jr.normal(jr.key(0), (5, 2), jnp.float64)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def batched(m, y):
        return jax.vmap(lambda yi: m(ts, yi))(y)

    out = batched(node, y0s)
    loop = jnp.stack([node(ts, y) for y in y0s])
    np.testing.assert_allclose(out, loop, rtol=1e-12, atol=1e-12)
    batched(node, y0s + 1.0)  # same shapes: no retrace


@pytest.mark.parametrize("adjoint", ["checkpoint", "backsolve"])
def test_gradient_matches_expm_gradient(adjoint):
    ts = jnp.array([0.0, 0.5, 1.0], jnp.float64)
    y0 = jnp.array([1.0, -0.5], jnp.float64)
    node = NeuralODE(Linear(A), solver="dopri5", adjoint=adjoint, rtol=1e-10, atol=1e-10)
    g = eqx.filter_grad(lambda m: jnp.sum(m(ts, y0) ** 2))(node).func.A
    exact = jax.grad(lambda a: sum(jnp.sum((jax.scipy.linalg.expm(a * t) @ y0) ** 2) for t in ts))(
        A
    )
    # Tolerance 1e-10 on the forward and adjoint solves: agreement to ~1e-8.
    np.testing.assert_allclose(g, exact, atol=1e-7)


@pytest.mark.slow
def test_gradient_audit_spiral():
    # The audit: spiral model, float64, rtol = atol = 1e-8; adjoints agree with each other
    # and with central finite differences to 1e-4 relative.
    ts = jnp.linspace(0.0, 25.0, 1000, dtype=jnp.float64)
    ys = integrate(spiral_field, jnp.array([2.0, 0.0], jnp.float64), ts)
    field = MLPField(2, 50, 1, power=3, time_dependent=False, dtype=jnp.float64, key=jr.key(0))
    node = NeuralODE(field, solver="dopri5", rtol=1e-8, atol=1e-8)
    tw, yw = sample_windows(ts, ys, 2, 10, key=jr.key(1))
    audit = gradient_audit(lambda m: window_loss(m, tw, yw), node, n_directions=2, key=jr.key(2))
    assert audit.pairwise[("checkpoint", "backsolve")] < 1e-4
    for name in ("checkpoint", "backsolve"):
        assert audit.adjoints[name].fd_rel_error < 1e-4, audit.table()
        assert audit.adjoints[name].time_s > 0
    assert "backsolve" in audit.table()


def test_euler_resnet_is_euler_and_converges():
    field = MLPField(2, 16, 1, dtype=jnp.float64, key=jr.key(3))
    h0 = jr.normal(jr.key(4), (8, 2), jnp.float64)
    net = EulerResNet(field, 10)
    euler = NeuralODE(field, solver="euler", dt0=0.1, adaptive=False)
    np.testing.assert_allclose(
        jax.vmap(net)(h0),
        jax.vmap(lambda h: euler(jnp.array([0.0, 1.0]), h)[-1])(h0),
        atol=1e-12,
    )
    errs, slope = resnet_limit(field, h0, [8, 16, 32, 64])
    assert np.all(np.diff(errs) < 0)
    assert abs(slope + 1) < 0.15  # the band: Euler's global order 1


def test_time_series_helpers():
    osc = sdeml.DampedOscillator(omega=2.0, zeta=0.1)  # from sdeml.dynamics
    ts = jnp.linspace(0.0, 5.0, 50, dtype=jnp.float64)
    y0 = jnp.array([1.0, 0.0], jnp.float64)
    np.testing.assert_allclose(integrate(osc, y0, ts), osc.solution(y0, ts), atol=1e-8)
    ti = irregular_times(0.0, 5.0, 30, key=jr.key(0))
    assert ti.shape == (30,) and bool(jnp.all(jnp.diff(ti) > 0)) and ti[0] == 0.0
    tw, yw = sample_windows(ts, osc.solution(y0, ts), 6, 5, key=jr.key(1))
    assert tw.shape == (6, 5) and yw.shape == (6, 5, 2)
    base = StepModel(2, 8, 1, dtype=jnp.float64, key=jr.key(2))
    assert base(ti, y0).shape == (30, 2)


def test_bad_input():
    node = NeuralODE(Linear(A), solver="tsit5")
    y0 = jnp.ones(2, jnp.float64)
    with pytest.raises(ValueError, match="strictly increasing"):
        node(jnp.array([0.0, 1.0, 0.5]), y0)
    with pytest.raises(Exception, match="strictly increasing"):
        eqx.filter_jit(lambda t: node(t, y0))(jnp.array([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="shape"):
        node(jnp.array([0.0, 1.0]), jnp.ones(3, jnp.float64))
    with pytest.raises(ValueError, match="valid names: euler, heun"):
        NeuralODE(Linear(A), solver="rk45")
    with pytest.raises(ValueError, match="checkpoint, backsolve, direct"):
        NeuralODE(Linear(A), adjoint="adjoint")
    with pytest.raises(ValueError, match="dt0"):
        NeuralODE(Linear(A), solver="euler")
    with pytest.raises(ValueError, match="adaptive"):
        NeuralODE(Linear(A), solver="euler", dt0=0.1, adaptive=True)
    with pytest.raises(ValueError, match="contains no NeuralODE"):
        with_adjoint(Linear(A), "backsolve")


def test_max_steps_during_training_is_a_clear_error(tmp_path):
    node = NeuralODE(Linear(A), solver="tsit5", rtol=1e-10, atol=1e-10, max_steps=3)
    ts = jnp.linspace(0.0, 5.0, 3, dtype=jnp.float64)
    y0 = jnp.ones(2, jnp.float64)
    opt = sdeml.train.make_optimizer(sdeml.run.TrainConfig(steps=2, lr=1e-3))
    state = sdeml.train.init_state(node, opt, jr.key(0))
    step = sdeml.train.make_step(lambda m, b, k: jnp.sum(m(ts, y0) ** 2), opt, lambda k, s: None)
    with pytest.raises(sdeml.train.TrainingError, match="max"):
        sdeml.train.fit(state, step, 2, progress=False, ckpt_dir=tmp_path)
