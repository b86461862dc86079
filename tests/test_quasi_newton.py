"""The core's dense quasi-Newton methods (``lbfgs_minimize(method="bfgs" | "ssbfgs")``): the
update against the textbook product form and the secant condition, convergence, the guards and
bad input. The L-BFGS method's own tests are in ``test_pinn.py``."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from sdeml.core import QuasiNewtonError, lbfgs_minimize
from sdeml.core._lbfgs import MAX_DENSE_PARAMS, _dense_bfgs_init, _dense_bfgs_update


def _pairs(n, k, seed=0):
    """k (s, y) pairs with s.y > 0 from a random SPD Hessian, plus the gradients along the way."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, n))
    hess = q @ q.T / n + np.eye(n)
    xs = [rng.standard_normal(n)]
    for _ in range(k):
        xs.append(xs[-1] + 0.3 * rng.standard_normal(n))
    gs = [hess @ x for x in xs]
    return [jnp.asarray(x) for x in xs], [jnp.asarray(g) for g in gs], hess


def _run(self_scaled, xs, gs):
    state = _dense_bfgs_init(xs[0])
    states, directions = [], []
    for x, g in zip(xs, gs, strict=True):
        d, state = _dense_bfgs_update(g, state, x, self_scaled)
        states.append(state)
        directions.append(d)
    return states, directions


def test_bfgs_update_is_the_textbook_product_form():
    n = 6
    xs, gs, _ = _pairs(n, 4)
    states, directions = _run(False, xs, gs)
    # the first direction is the gradient scaled into the unit ball; H_0 = I
    g0 = np.asarray(gs[0])
    np.testing.assert_allclose(directions[0], g0 / max(1.0, np.linalg.norm(g0)), rtol=1e-14)
    # first update: H_0 = (s.y / y.y) I, then BFGS; later updates: plain BFGS
    h = np.eye(n)
    for k in range(1, len(xs)):
        s = np.asarray(xs[k] - xs[k - 1])
        y = np.asarray(gs[k] - gs[k - 1])
        rho = 1.0 / (s @ y)
        if k == 1:
            h = (s @ y) / (y @ y) * np.eye(n)
        left = np.eye(n) - rho * np.outer(s, y)
        h = left @ h @ left.T + rho * np.outer(s, s)
        np.testing.assert_allclose(states[k].inv_hessian, h, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(directions[k], h @ np.asarray(gs[k]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("self_scaled", [False, True], ids=["bfgs", "ssbfgs"])
def test_dense_update_keeps_the_secant_condition_symmetry_and_definiteness(self_scaled):
    n = 8
    xs, gs, _ = _pairs(n, 6, seed=1)
    # directions as the line search would see them: x_k - x_{k-1} = alpha d_{k-1}, so feed the
    # iterates along the returned directions with step lengths alpha in (0.2, 1.5)
    rng = np.random.default_rng(2)
    _, _, hess = _pairs(n, 0, seed=1)
    x = xs[0]
    state = _dense_bfgs_init(x)
    for k in range(7):
        g = jnp.asarray(hess) @ x
        d, new_state = _dense_bfgs_update(g, state, x, self_scaled)
        if k > 0:
            s, y = x - state.x_prev, g - state.g_prev
            H = np.asarray(new_state.inv_hessian)
            np.testing.assert_allclose(H @ np.asarray(y), np.asarray(s), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(H, H.T, atol=1e-12)
            assert np.linalg.eigvalsh(H).min() > 0
        state = new_state
        x = x - rng.uniform(0.2, 1.5) * d


def test_self_scaling_shrinks_the_old_curvature_by_tau():
    # with s.Bs > s.y (the step saw less curvature than H assumed) tau = s.y / s.Bs < 1 and the
    # non-secant part of H is divided by it; otherwise tau = 1 and SSBFGS is BFGS
    n = 5
    rng = np.random.default_rng(3)
    x0 = jnp.asarray(rng.standard_normal(n))
    hess = np.diag(np.linspace(1.0, 4.0, n))
    g = lambda x: jnp.asarray(hess) @ x
    st_ss, st = _dense_bfgs_init(x0), _dense_bfgs_init(x0)
    _, st_ss = _dense_bfgs_update(g(x0), st_ss, x0, True)
    d0, st = _dense_bfgs_update(g(x0), st, x0, False)
    x = x0 - 0.5 * d0
    # the first update is the same initial scaling in both
    _, st_ss = _dense_bfgs_update(g(x), st_ss, x, True)
    d, st = _dense_bfgs_update(g(x), st, x, False)
    H1 = np.asarray(st.inv_hessian)
    np.testing.assert_allclose(st_ss.inv_hessian, H1, rtol=1e-12)
    # a step along d that sees a *flatter* Hessian than H assumed: y small
    alpha = 0.5
    x_new = x - alpha * d
    g_new = g(x) + 0.05 * jnp.asarray(hess) @ (x_new - x)
    _, new_ss = _dense_bfgs_update(g_new, st_ss, x_new, True)
    _, new = _dense_bfgs_update(g_new, st, x_new, False)
    s, y = np.asarray(x_new - x), np.asarray(g_new - g(x))
    g_old = np.asarray(g(x))
    sBs = alpha**2 * g_old @ H1 @ g_old
    tau = min(1.0, (s @ y) / sBs)
    assert tau < 0.2
    ss = np.outer(s, s) / (s @ y)
    np.testing.assert_allclose(
        np.asarray(new_ss.inv_hessian) - ss, (np.asarray(new.inv_hessian) - ss) / tau, rtol=1e-9
    )


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
@pytest.mark.parametrize("method", ["bfgs", "ssbfgs"])
def test_dense_methods_reach_the_minimum(method):
    rosenbrock = lambda p: jnp.sum(100 * (p[1:] - p[:-1] ** 2) ** 2 + (1 - p[:-1]) ** 2)
    p0 = jnp.full(10, -1.2).at[::2].set(1.0)
    res = lbfgs_minimize(rosenbrock, p0, method=method, gtol=1e-10, max_iter=1000)
    assert res.status == "converged", res.message
    assert res.message.startswith({"bfgs": "BFGS", "ssbfgs": "SSBFGS"}[method])
    np.testing.assert_allclose(res.params, 1.0, atol=1e-8)
    # an ill-conditioned quadratic (condition 1e6) on a pytree: the minimiser is A^-1 b
    a = jnp.logspace(0, 6, 40)
    b = jr.normal(jr.key(0), (40,))
    quad = lambda p: 0.5 * jnp.sum(a * p["u"] ** 2) - jnp.dot(b, p["u"]) + (p["v"] - 2.0) ** 2
    res = lbfgs_minimize(quad, {"u": jnp.zeros(40), "v": jnp.array(0.0)}, method=method,
                         gtol=1e-9, max_iter=2000)  # fmt: skip
    assert res.status == "converged", res.message
    np.testing.assert_allclose(res.params["u"], b / a, rtol=1e-7, atol=1e-12)
    assert abs(float(res.params["v"]) - 2.0) < 1e-9


@pytest.mark.parametrize("method", ["bfgs", "ssbfgs"])
def test_dense_methods_keep_the_guards(method):
    f = lambda p: (-jnp.sum(p**2) * jnp.exp(jnp.sum(p**2)), {})
    with pytest.raises(QuasiNewtonError, match="non-finite"):
        lbfgs_minimize(f, jnp.array([0.5, 0.1]), max_iter=500, log_every=50, method=method)
    res = lbfgs_minimize(
        f, jnp.array([0.5, 0.1]), max_iter=500, log_every=50, raise_on_non_finite=False,
        method=method,
    )  # fmt: skip
    assert res.status == "non_finite" and "kept the parameters" in res.message
    assert bool(jnp.all(jnp.isfinite(res.params)))


def test_dense_methods_refuse_bad_input():
    with pytest.raises(ValueError, match="`method` must be one of lbfgs, bfgs, ssbfgs"):
        lbfgs_minimize(lambda p: jnp.sum(p**2), jnp.ones(2), method="newton")
    big = jax.ShapeDtypeStruct((MAX_DENSE_PARAMS + 1,), jnp.float64)
    with pytest.raises(ValueError, match=r"`method='ssbfgs'` keeps a dense .* use method='lbfgs'"):
        lbfgs_minimize(lambda p: jnp.sum(p**2), jnp.zeros(big.shape), method="ssbfgs")


@pytest.mark.parametrize("method", ["bfgs", "ssbfgs"])
def test_a_converged_stop_returns_the_point_that_met_gtol(method):
    # "converged" promises a gradient norm <= gtol at the returned parameters. The best-iterate
    # rule once swapped in an earlier point whose loss was lower by rounding alone: on this
    # quadratic BFGS and SSBFGS reported "converged" (gtol 1e-10) with a gradient norm of
    # 2.4e-10 and 1.2e-8 at the parameters returned.
    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 6))
    a = jnp.asarray(q @ q.T + 0.5 * np.eye(6))
    b = jnp.asarray(rng.normal(size=6))
    quad = lambda p: 0.5 * p @ a @ p - b @ p
    res = lbfgs_minimize(quad, jnp.zeros(6), gtol=1e-10, method=method)
    assert res.status == "converged", res.message
    assert float(jnp.linalg.norm(jax.grad(quad)(res.params))) <= 1e-10
    assert res.loss == float(quad(res.params))
    np.testing.assert_allclose(res.params, jnp.linalg.solve(a, b), atol=1e-9)
