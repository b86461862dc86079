"""CNFs and flow matching against closed forms (linear fields, Gaussian-to-Gaussian flows)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.experimental import io_callback
from scipy.integrate import quad
from scipy.linalg import expm

import sdeml
from sdeml.core import solver_info, solver_names
from sdeml.flows import (
    CNF,
    cfm_loss,
    cnf_loss,
    conditional_path,
    ot_permutation,
    reflow_pairs,
    sample_flow,
    straightness,
)
from sdeml.neural_ode import MLPField

A = jnp.array([[0.3, 0.5], [-0.2, -0.4]], jnp.float64)


class Linear(eqx.Module):
    """f(t, z, args) = A z: z(1) = expm(A) z(0) and log det = tr(A), in closed form."""

    A: jax.Array

    def __call__(self, t, z, args=None):
        return self.A @ z


def exact_logp(x, A=A):
    z0 = jax.scipy.linalg.expm(-A) @ x
    return -0.5 * z0 @ z0 - jnp.log(2 * jnp.pi) - jnp.trace(A)


# Off-diagonal entries of opposite sign: e^T A e = tr(A) for every Rademacher probe e, so the
# Hutchinson estimate is exact and the field is evaluated once per augmented evaluation.
A_SKEW = jnp.array([[0.3, 0.5], [-0.5, -0.4]], jnp.float64)


class Counting(eqx.Module):
    """A z, and one host call per evaluation (ordered, so none is dropped or reordered)."""

    A: jax.Array
    calls: list = eqx.field(static=True)

    def __call__(self, t, z, args=None):
        io_callback(lambda: self.calls.append(1), None, ordered=True)
        return self.A @ z


RTOL = {1: 1e-6, 2: 1e-5, 3: 1e-8, 4: 1e-10, 5: 1e-10, 8: 1e-10}
H = 1 / 64  # constant step of the solvers without error estimate (euler, rk4)


@pytest.mark.parametrize("name", solver_names("ode"))
def test_cnf_every_registered_solver(name):
    # The registry decides adaptivity (RK4 and Euler take constant steps: issue 16); nfe equals
    # a host count of the field's evaluations (implicit solvers: count_evals); log p matches
    # the closed form within the solver's band: adaptive 100 rtol (implicit 1000 rtol: Newton
    # stops at the same tolerance; implicit Euler's O(h) error estimate: measured 7e-4);
    # constant steps h^p (measured: Euler 0.16 h, RK4 1e-4 h^4).
    info = solver_info(name)
    if info.adaptive:
        rtol = RTOL[int(info.order)]
        kw = dict(rtol=rtol, atol=1e-12, count_evals=info.implicit)
        band = 2e-3 if name == "implicit_euler" else (1000 if info.implicit else 100) * rtol
    else:
        kw, band = dict(dt0=H), H ** int(info.order)
    calls = []
    cnf = CNF(Counting(A_SKEW, calls), divergence="hutchinson", solver=name, **kw)
    assert cnf.adaptive == info.adaptive
    x = X[0]
    out = cnf.log_prob_and_stats(x, key=jr.key(0), jacobian_norm=False)
    jax.block_until_ready(out.log_prob)
    jax.effects_barrier()
    assert int(out.nfe) == len(calls) > 0
    if not info.adaptive:
        assert int(out.nfe) == info.nfe(round(1 / H))
    np.testing.assert_allclose(out.log_prob, exact_logp(x, A_SKEW), rtol=0, atol=band)


def test_cnf_rk4_takes_constant_steps_regression_issue_16():
    # At 911051b the CNF, like NeuralODE, ran RK4 under a PID controller on its zero error
    # estimate (two steps for the whole interval). The field takes `args` optionally so that
    # this test also runs (and fails) there.
    cnf = CNF(Linear(A), solver=sdeml.RK4(), dt0=0.05)
    out = cnf.log_prob_and_stats(X[0])
    # RK4 with h = 0.05: error 8e-11 measured (at 911051b, two PID steps: 6e-7)
    np.testing.assert_allclose(out.log_prob, exact_logp(X[0]), atol=1e-8)
    assert int(out.nfe) == 4 * 20
    with pytest.raises(ValueError, match="dt0"):
        CNF(Linear(A), solver=sdeml.RK4())


def test_cnf_args_reach_the_field():
    # f(t, z, a) = a A z: log p with A replaced by a A.
    cnf = CNF(lambda t, z, a: a * (A @ z), rtol=1e-10, atol=1e-10)
    lp = cnf.log_prob(X[0], args=jnp.asarray(0.5, jnp.float64))
    np.testing.assert_allclose(lp, exact_logp(X[0], 0.5 * A), atol=1e-8)


X = jnp.array([[0.7, -1.2], [0.1, 0.4], [-2.0, 0.3]], jnp.float64)


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_cnf_exact_log_prob_sampling_and_rnode_integrals():
    cnf = CNF(Linear(A), rtol=1e-10, atol=1e-10)
    out = jax.vmap(cnf.log_prob_and_stats)(X)
    # tolerance 1e-10 per step; the log-density error is a few 1e-10.
    np.testing.assert_allclose(out.log_prob, jax.vmap(exact_logp)(X), atol=1e-8)
    # Jacobian norm: ||A||_F^2 at every t; kinetic energy: ∫ ||A expm(A (t - 1)) x||^2 dt.
    np.testing.assert_allclose(out.jacobian, jnp.sum(A**2), rtol=1e-8)
    An = np.asarray(A)
    for x, ke in zip(np.asarray(X), np.asarray(out.kinetic), strict=True):
        f = lambda t, x=x: float(np.sum((An @ expm(An * (t - 1)) @ x) ** 2))
        np.testing.assert_allclose(ke, quad(f, 0.0, 1.0, epsabs=1e-12)[0], rtol=1e-7)
    # Sampling pushes z0 forward to expm(A) z0 with the same log-density.
    xs, lp = cnf.sample(4, 2, dtype=jnp.float64, key=jr.key(0))
    np.testing.assert_allclose(lp, jax.vmap(exact_logp)(xs), atol=1e-8)


@pytest.mark.slow  # over 10 s; CI runs it after the default suite
def test_joint_batch_solve_matches_per_point_solves():
    cnf = CNF(Linear(A), rtol=1e-10, atol=1e-10)
    joint = cnf.batch_log_prob_and_stats(X)
    np.testing.assert_allclose(joint.log_prob, jax.vmap(exact_logp)(X), atol=1e-8)
    np.testing.assert_allclose(joint.jacobian, jnp.sum(A**2), rtol=1e-8)
    per_point = jax.vmap(cnf.log_prob_and_stats)(X)
    np.testing.assert_allclose(joint.kinetic, per_point.kinetic, rtol=1e-7)
    np.testing.assert_allclose(joint.z0, per_point.z0, atol=1e-8)
    assert joint.nfe.shape == ()
    # the loss's joint and per-point modes give the same value and gradient
    lj, gj = eqx.filter_value_and_grad(lambda m: cnf_loss(m, X, kinetic=0.1)[0])(cnf)
    lp, gp = eqx.filter_value_and_grad(lambda m: cnf_loss(m, X, kinetic=0.1, joint=False)[0])(cnf)
    np.testing.assert_allclose(lj, lp, atol=1e-8)
    np.testing.assert_allclose(gj.func.A, gp.func.A, atol=1e-7)
    with pytest.raises(ValueError, match=r"shape \(b, d\)"):
        cnf.batch_log_prob_and_stats(X[0])


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(probe):
    cnf = CNF(Linear(A), divergence="hutchinson", probe=probe, rtol=1e-8, atol=1e-8)
    x = X[0]
    n = 2000
    lps = jax.vmap(lambda k: cnf.log_prob(x, key=k))(jr.split(jr.key(1), n))
    se = jnp.std(lps) / jnp.sqrt(n)
    # Unbiased estimator: the mean is within 3 standard errors (fixed seed).
    assert abs(float(jnp.mean(lps) - exact_logp(x))) < 3 * float(se)
    assert float(jnp.std(lps)) > 0  # the probe varies between solves


@pytest.mark.slow  # over 10 s; CI runs it after the default suite
def test_cnf_loss_gradients_agree_across_adjoints():
    cnf = CNF(Linear(A), rtol=1e-9, atol=1e-9)
    grad = lambda c: eqx.filter_grad(lambda m: cnf_loss(m, X, kinetic=0.1, jacobian=0.1)[0])(c)
    g1 = grad(cnf).func.A
    g2 = grad(sdeml.neural_ode.with_adjoint(cnf, "backsolve"))
    np.testing.assert_allclose(g1, g2.func.A, atol=1e-6)  # solves at 1e-9 agree to ~1e-7
    loss, aux = cnf_loss(cnf, X)
    np.testing.assert_allclose(aux["nll"], -jnp.mean(jax.vmap(exact_logp)(X)), atol=1e-7)


def test_cnf_bad_input():
    with pytest.raises(ValueError, match="exact, hutchinson"):
        CNF(Linear(A), divergence="trace")
    with pytest.raises(ValueError, match="rademacher, gaussian"):
        CNF(Linear(A), divergence="hutchinson", probe="uniform")
    with pytest.raises(ValueError, match="key"):
        CNF(Linear(A), divergence="hutchinson").log_prob(X[0])
    with pytest.raises(ValueError, match=r"shape \(d,\)"):
        CNF(Linear(A)).log_prob(X)
    with pytest.raises(ValueError, match="vector field"):
        CNF(Linear(A)).log_prob(jnp.ones(3, jnp.float64))
    with pytest.raises(ValueError, match=r"func\(t, y, args\)"):  # the signature, named
        CNF(lambda t, z: A @ z)
    with pytest.raises(ValueError, match="adaptive"):
        CNF(Linear(A), solver="euler", dt0=0.1, adaptive=True)


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
@pytest.mark.parametrize("power, time_dependent", [(1, True), (3, False)])
def test_mlp_field_batch_divergence_is_the_jacobian_trace(depth, power, time_dependent):
    f = MLPField(
        3, 16, depth, power=power, time_dependent=time_dependent, dtype=jnp.float64, key=jr.key(1)
    )
    h = jr.normal(jr.key(7), (9, 3), jnp.float64)
    jac = jax.vmap(jax.jacfwd(lambda y: f(0.3, y)))(h)
    for frobenius in (False, True):  # both the collapsed trace and the carried columns
        out, div, frob = f.batch_divergence(0.3, h, frobenius=frobenius)
        np.testing.assert_allclose(out, jax.vmap(lambda y: f(0.3, y))(h), atol=1e-13)
        np.testing.assert_allclose(div, jnp.trace(jac, axis1=1, axis2=2), atol=1e-13)
        if frobenius:
            np.testing.assert_allclose(frob, jnp.sum(jac**2, axis=(1, 2)), atol=1e-13)
        else:
            assert frob is None
    with pytest.raises(ValueError, match=r"shape \(b, 3\)"):
        f.batch_divergence(0.3, h[0])


class Opaque(eqx.Module):
    """An MLPField seen only through its call (no written-out trace): the autodiff path."""

    field: MLPField

    def __call__(self, t, z, args=None):
        return self.field(t, z, args)


@pytest.mark.slow  # over 10 s; CI runs it after the default suite
def test_cnf_written_out_trace_matches_autodiff_path():
    f = MLPField(2, 16, 2, dtype=jnp.float64, key=jr.key(3))
    fast, slow = CNF(f, rtol=1e-9, atol=1e-9), CNF(Opaque(f), rtol=1e-9, atol=1e-9)
    for jac in (0.0, 0.1):
        loss = lambda m, jac=jac: cnf_loss(m, X, kinetic=0.1, jacobian=jac)
        (lf, af), gf = eqx.filter_value_and_grad(loss, has_aux=True)(fast)
        (ls, as_), gs = eqx.filter_value_and_grad(loss, has_aux=True)(slow)
        np.testing.assert_allclose(lf, ls, rtol=1e-10)
        assert ("jacobian" in af) == (jac > 0) == ("jacobian" in as_)
        for a, b in zip(jax.tree.leaves(gf.func), jax.tree.leaves(gs.func.field), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)
    out = fast.batch_log_prob_and_stats(X, jacobian_norm=False)
    assert out.jacobian is None


# Gaussian source N(0, I) -> Gaussian target N(m, s^2 I) under the independent coupling.
M, S = jnp.array([1.0, -2.0], jnp.float64), 0.5


def v_star(t, x):
    """E[x1 - x0 | x_t = x] in closed form (x_t is jointly Gaussian with x1 - x0)."""
    var = (1 - t) ** 2 + t**2 * S**2
    return M + (t * S**2 - (1 - t)) / var * (x - t * M)


@pytest.mark.slow  # 8 s: an order measurement over several step counts
def test_cfm_sampler_order_and_exact_endpoint():
    x0 = jr.normal(jr.key(0), (64, 2), jnp.float64)
    exact = M + S * x0  # the flow of v* is linear: x(1) = m + s x0
    for solver, order in [("euler", 1), ("heun", 2)]:
        errs = [
            float(jnp.mean(jnp.abs(sample_flow(v_star, x0, n_steps=n, solver=solver) - exact)))
            for n in (20, 40, 80)
        ]
        slope = np.polyfit(np.log([20, 40, 80]), np.log(errs), 1)[0]
        assert abs(slope + order) < 0.15, (solver, slope)


def test_cfm_loss_is_minimised_by_the_marginal_field():
    # L(v* + c) - L(v*) = |c|^2 + 2 c·E[v* - u]; the second term is 0 in expectation
    # (E[u | x_t] = v*), and with n = 200k its Monte Carlo error is ~1e-2 |c|.
    c = jnp.array([0.3, -0.2], jnp.float64)
    x1 = M + S * jr.normal(jr.key(1), (200_000, 2), jnp.float64)
    base = cfm_loss(v_star, x1, key=jr.key(2))
    shifted = cfm_loss(lambda t, x: v_star(t, x) + c, x1, key=jr.key(2))
    np.testing.assert_allclose(shifted - base, jnp.sum(c**2), rtol=0.1)


def test_ot_coupling_sorts_in_1d_and_lowers_cost():
    x0 = jr.normal(jr.key(3), (32, 1), jnp.float64)
    x1 = 3 + jr.normal(jr.key(4), (32, 1), jnp.float64)
    perm = jax.jit(ot_permutation)(x0, x1)
    # In 1-D the quadratic-cost OT plan is monotone: sorted x0 is matched with sorted x1.
    np.testing.assert_array_equal(jnp.argsort(x0[:, 0]), jnp.argsort(x1[perm][:, 0]))
    x0b = jr.normal(jr.key(5), (3, 16, 2), jnp.float64)
    x1b = jr.normal(jr.key(6), (3, 16, 2), jnp.float64)
    perms = jax.vmap(ot_permutation)(x0b, x1b)
    for i in range(3):
        loop = ot_permutation(x0b[i], x1b[i])
        np.testing.assert_array_equal(perms[i], loop)
        ot_cost = jnp.sum((x0b[i] - x1b[i][perms[i]]) ** 2)
        assert ot_cost <= jnp.sum((x0b[i] - x1b[i]) ** 2)
    loss = cfm_loss(v_star, x1b[0], coupling="ot", key=jr.key(7))
    assert jnp.isfinite(loss)
    with pytest.raises(ValueError, match="independent, ot"):
        cfm_loss(v_star, x1b[0], coupling="sinkhorn", key=jr.key(7))


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_reflow_straightens_the_gaussian_flow():
    z0, z1 = reflow_pairs(
        v_star, 256, 2, n_steps=200, solver="heun", dtype=jnp.float64, key=jr.key(8)
    )
    np.testing.assert_allclose(
        z1, M + S * z0, atol=1e-4
    )  # Heun, h = 1/200: max error 2e-5 measured

    def v_reflow(t, x):  # the marginal field of the coupling x1 = m + s x0: straight paths
        x0 = (x - t * M) / (1 + t * (S - 1))
        return M + (S - 1) * x0

    x0 = jr.normal(jr.key(9), (256, 2), jnp.float64)
    assert float(straightness(v_star, x0)) > 1e-2
    assert float(straightness(v_reflow, x0)) < 1e-20
    one_step = sample_flow(v_reflow, x0, n_steps=1, solver="euler")
    np.testing.assert_allclose(one_step, M + S * x0, atol=1e-12)


def test_straightness_and_conditional_path_refuse_bad_shapes_and_steps(monkeypatch):
    # straightness(n_steps=-1) used to return NaN (an empty Euler grid), a 1-D x0 a number for
    # a batch of scalars; conditional_path with one scalar t failed inside JAX's indexing.
    # Users run without the suite's jaxtyping hook, which would answer the shapes first.
    import jaxtyping

    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    x0, x1 = jnp.zeros((3, 2)), jnp.ones((3, 2))
    for n in (-1, 0):
        with pytest.raises(ValueError, match="n_steps"):
            straightness(lambda t, x: -x, x0, n_steps=n)
    with pytest.raises(ValueError, match=r"\(b, d\)"):
        straightness(lambda t, x: -x, jnp.ones(2))
    for t in (jnp.asarray(0.5), jnp.ones(2)):
        with pytest.raises(ValueError, match=r"\(b,\)"):
            conditional_path(x0, x1, t)


def test_conditional_path_velocity_is_the_time_derivative():
    x0, x1 = jr.normal(jr.key(0), (5, 3)), jr.normal(jr.key(1), (5, 3)) + 2.0
    t, h = jnp.linspace(0.1, 0.9, 5), 1e-6
    (xp, _), (xm, _) = conditional_path(x0, x1, t + h), conditional_path(x0, x1, t - h)
    _, u = conditional_path(x0, x1, t)
    # central difference of a linear path: exact up to rounding (about 1e-16 / 1e-6)
    np.testing.assert_allclose((xp - xm) / (2 * h), u, atol=1e-8)


def test_a_velocity_model_of_the_wrong_shape_is_refused():
    # a model returning (1,) for 2-D points broadcast silently: cfm_loss trained against the
    # wrong residuals and sample_flow moved both coordinates by one velocity
    bad = lambda t, x: -jnp.sum(x, keepdims=True)
    x = jnp.ones((4, 2))
    msg = r"velocity model maps a sample of shape \(2,\) to shape \(1,\)"
    with pytest.raises(ValueError, match=msg):
        cfm_loss(bad, x, key=jr.key(0))
    with pytest.raises(ValueError, match=msg):
        sample_flow(bad, x, n_steps=2)
    with pytest.raises(ValueError, match=r"does not accept samples of shape \(3,\)"):
        sample_flow(lambda t, x: x @ jnp.ones((2, 2)), jnp.ones((4, 3)), n_steps=2)


@pytest.mark.parametrize("bad", [float("nan"), -1.0])
def test_flow_matching_refuses_a_bad_path_noise(bad):
    # NaN passed `sigma < 0` and acted as 0 in cfm_loss; conditional_path took -1 as 0
    x1 = jr.normal(jr.key(0), (8, 2))
    with pytest.raises(ValueError, match="`sigma` must be finite and >= 0"):
        cfm_loss(lambda t, x: x, x1, sigma=bad, key=jr.key(1))
    with pytest.raises(ValueError, match="`sigma` must be finite and >= 0"):
        conditional_path(x1, x1, jnp.full(8, 0.5), sigma=bad, key=jr.key(1))


def test_flow_helpers_take_integer_points_and_check_their_counts():
    # integer data failed inside jr.normal / the Euler scan; NaN penalties made the loss NaN;
    # reflow_pairs(n=0) raised IndexError, dim=-1 an MLIR error
    x1 = jnp.array([[1, 2], [3, 4], [0, 1]])
    as_float = x1.astype(jnp.result_type(float))
    a = cfm_loss(lambda t, x: x, x1, key=jr.key(1))
    b = cfm_loss(lambda t, x: x, as_float, key=jr.key(1))
    assert float(a) == float(b)
    s_int = sdeml.flows.straightness(lambda t, x: -x, x1, n_steps=10)
    assert float(s_int) == float(sdeml.flows.straightness(lambda t, x: -x, as_float, n_steps=10))
    cnf = CNF(lambda t, x, args: -x)
    loss, _ = cnf_loss(cnf, np.array([[0, 1]]))  # a NumPy integer batch too
    assert np.isfinite(float(loss))
    with pytest.raises(ValueError, match="`kinetic` must be finite and >= 0"):
        cnf_loss(cnf, as_float, kinetic=float("nan"))
    for kw, name in (({"n": 0, "dim": 2}, "n"), ({"n": 4, "dim": -1}, "dim")):
        with pytest.raises(ValueError, match=f"`{name}` must be a positive integer"):
            sdeml.flows.reflow_pairs(lambda t, x: -x, **kw, key=jr.key(0))
