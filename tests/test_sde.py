"""SDE engine: analytic moments, exact paths, composability, the diffrax bridge, bad input."""

from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import sdeml

F64 = jnp.float64
GBM = sdeml.GeometricBrownianMotion(mu=0.5, sigma=0.8)
OU = sdeml.OrnsteinUhlenbeck(theta=1.5, mu=0.5, sigma=0.7)


def _moment_check(x, mean, var):
    """Sample mean and variance within 4 standard errors of the exact values.

    SE(mean) = s / sqrt(N); SE(var) = sqrt((m4 - s^4) / N) from the sample's fourth central
    moment (exact for the sample variance up to O(1/N^2)). 4 SE: a false alarm has probability
    ~6e-5 per check under a normal approximation, so the bands are tight but not flaky.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    m, v = x.mean(0), x.var(0, ddof=1)
    m4 = ((x - m) ** 4).mean(0)
    se_m, se_v = np.sqrt(v / n), np.sqrt((m4 - v**2) / n)
    assert np.all(np.abs(m - mean) < 4 * se_m), (m, mean, se_m)
    assert np.all(np.abs(v - var) < 4 * se_v), (v, var, se_v)


# Itô solvers integrate the Itô SDE; stochastic Heun (Stratonovich) integrates its Stratonovich
# form, which has the same solution. SRA1 is additive-noise only, so it is checked on OU.
@pytest.mark.parametrize(
    "method, name",
    [
        (m, p)
        for p in ("ou", "gbm")
        for m in ("euler_maruyama", "milstein", "stochastic_heun", "sra1")
        if (m, p) != ("sra1", "gbm")
    ],
)
def test_terminal_moments(method, name):
    sde, x0 = (OU, jnp.array([0.0, 2.0])) if name == "ou" else (GBM, jnp.array([1.0]))
    if method == "stochastic_heun":
        sde = sdeml.sde.ito_to_stratonovich(sde)
    # 200 steps: the O(h) bias of the mean (GBM EM: x0 e^mu mu^2/(2n) ~ 1e-3) is < 0.1 SE here
    paths = sdeml.simulate(
        sde, x0, n_steps=200, n_paths=20_000, method=method, dtype=F64, key=jr.key(3)
    )
    base = OU if name == "ou" else GBM
    _moment_check(paths.xs[:, -1], base.mean(1.0, x0), base.variance(1.0, x0))


def test_zoo_brownian_and_sine_moments():
    bm = sdeml.BrownianMotion(sigma=0.3)
    p = sdeml.simulate(
        bm, jnp.zeros(3), t1=2.0, n_steps=10, n_paths=20_000, dtype=F64, key=jr.key(0)
    )
    _moment_check(p.xs[:, -1], bm.mean(2.0, jnp.zeros(3)), bm.variance(2.0, jnp.zeros(3)))
    sine = sdeml.sde.SineForcedSDE()
    p = sdeml.simulate(
        sine, jnp.ones(()), n_steps=400, n_paths=20_000, method="sra1", dtype=F64, key=jr.key(1)
    )
    _moment_check(p.xs[:, -1], sine.mean(1.0, 1.0), sine.variance(1.0, 1.0))


def test_sine_mean_is_the_ode_solution():
    """E a_t solves the noise-free ODE a' = 0.5 a - 4 sin 10t (checked against Tsit5)."""
    sine = sdeml.sde.SineForcedSDE()
    ts = jnp.linspace(0.0, 2.0, 9, dtype=F64)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, a: sine.drift(t, y, a)),
        diffrax.Tsit5(),
        0.0,
        2.0,
        0.01,
        jnp.asarray(1.0, F64),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10),
    )
    np.testing.assert_allclose(sol.ys, sine.mean(ts, 1.0), rtol=1e-8, atol=1e-8)


def test_exact_paths_of_gbm_and_scalar_noise():
    """With a fine grid, EM/Milstein paths approach the exact GBM path on the same Brownian path."""
    ts = jnp.linspace(0.0, 1.0, 2**12 + 1, dtype=F64)
    dw = sdeml.sde.sample_increments(jnp.diff(ts), (1,), key=jr.key(0))
    exact = GBM.exact_solution(jnp.ones(1, F64), ts, dw)
    y_mil = sdeml.sde.solve_increments(sdeml.Milstein(), GBM, jnp.ones(1, F64), ts, dw)[-1]
    # Milstein strong error ~ C h with C ~ 1 for these parameters: 2.4e-4 at h = 2^-12
    np.testing.assert_allclose(y_mil, exact, rtol=5e-3)
    # scalar noise: one W drives both components, X_i = x0_i exp((mu - s^2/2)t + s W)
    sde = sdeml.SDE(lambda t, y, a: 0.5 * y, lambda t, y, a: 0.8 * y, noise="scalar")
    x0 = jnp.array([1.0, 2.0], F64)
    dw1 = dw[:, 0]
    y = sdeml.sde.solve_increments(sdeml.Milstein(), sde, x0, ts, dw1)[-1]
    np.testing.assert_allclose(y, x0 * exact[0], rtol=5e-3)


def test_general_noise_matches_diagonal():
    """General noise with a diagonal matrix g is the same SDE as diagonal noise."""
    s = jnp.array([0.8, 0.3], F64)
    diag = sdeml.SDE(lambda t, y, a: 0.5 * y, lambda t, y, a: s * y, noise="diagonal")
    gen = sdeml.SDE(
        lambda t, y, a: 0.5 * y, lambda t, y, a: jnp.diag(s * y), noise="general", brownian_dim=2
    )
    ts = jnp.linspace(0.0, 1.0, 65, dtype=F64)
    dw = sdeml.sde.sample_increments(jnp.diff(ts), (2,), key=jr.key(1))
    x0 = jnp.array([1.0, 0.5], F64)
    for solver in (sdeml.EulerMaruyama(), sdeml.Milstein(), sdeml.StochasticHeun()):
        a = sdeml.sde.solve_increments(solver, diag, x0, ts, dw)
        b = sdeml.sde.solve_increments(solver, gen, x0, ts, dw)
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_normal_pair_is_both_words_of_jax_threefry():
    from jax.extend.random import threefry2x32_p
    from scipy import stats

    from sdeml.core._normals import _bits_to_normal, normal_pair

    key, n = jr.key(11), 200_001
    # the two words are those of JAX's own hash: their XOR is `jax.random.bits`, and the
    # bits -> normal transform is that of `jax.random.normal`, bit for bit
    kd = jr.key_data(key)
    c = jax.lax.iota(np.uint32, n)
    w0, w1 = threefry2x32_p.bind(kd[0], kd[1], jnp.zeros_like(c), c)
    with jax.threefry_partitionable(True):
        np.testing.assert_array_equal(w0 ^ w1, jr.bits(key, (n,), jnp.uint32))
        np.testing.assert_array_equal(
            _bits_to_normal(w0 ^ w1, jnp.float32), jr.normal(key, (n,), jnp.float32)
        )
    z0, z1 = (np.asarray(z, np.float64) for z in normal_pair(key, n, jnp.float32))
    np.testing.assert_array_equal(z0, np.asarray(_bits_to_normal(w0, jnp.float32)))
    for z in (z0, z1):
        assert stats.kstest(z, "norm").pvalue > 1e-4
    assert abs(np.corrcoef(z0, z1)[0, 1]) < 4 / np.sqrt(n)
    # float64, other key types: one `jax.random.normal` draw split in two
    a, b = normal_pair(key, 5, F64)
    np.testing.assert_array_equal(np.concatenate([a, b]), jr.normal(key, (10,), F64))


@pytest.mark.parametrize("method", ["euler_maruyama", "milstein", "stochastic_heun", "sra1"])
def test_float32_paths_drawing_two_normals_per_hash(method):
    # float32 with a Threefry key takes two steps' normals from each hash (even blocks); SRA1
    # takes dW and the independent part of its time integral from the two words.
    sde = sdeml.sde.ito_to_stratonovich(OU) if method == "stochastic_heun" else OU
    x0 = jnp.array([0.0, 2.0])
    p = sdeml.simulate(sde, x0, n_steps=200, n_paths=40_000, method=method, key=jr.key(4))
    assert p.xs.dtype == jnp.float32
    _moment_check(p.xs[:, -1], OU.mean(1.0, x0), OU.variance(1.0, x0))
    # Brownian motion saved every 2 steps runs in blocks of 2 (one hash per pair of steps): the
    # increments over disjoint pairs are uncorrelated with variance 2h, so within-pair
    # correlation (which would change the variance) or reuse across pairs would show
    bm = sdeml.BrownianMotion(1.0)
    q = sdeml.simulate(bm, jnp.zeros(1), n_steps=20, n_paths=40_000, save_every=2, key=jr.key(5))
    d = np.diff(np.asarray(q.xs[:, :, 0], np.float64), axis=1, prepend=0.0)
    _moment_check(d, np.zeros(10), np.full(10, 0.1))
    corr = np.corrcoef(d.T)[np.triu_indices(10, 1)]
    assert np.all(np.abs(corr) < 4 / np.sqrt(40_000))
    # in chunks, the streams are numbered (chunk, block): no chunk may repeat another's noise
    r = sdeml.simulate(
        bm, jnp.zeros(1), n_steps=20, n_paths=40_000, chunk_size=10_000, key=jr.key(5)
    )
    w = np.asarray(r.xs[:, -1, 0], np.float64).reshape(4, 10_000)
    _moment_check(w.ravel(), 0.0, 1.0)
    corr = np.corrcoef(w)[np.triu_indices(4, 1)]
    assert np.all(np.abs(corr) < 4 / np.sqrt(10_000))


@pytest.mark.slow  # 7 s: moved from the default run (12-07, later: default run < 10 min)
def test_save_modes_and_chunking():
    key = jr.key(0)
    p = sdeml.simulate(OU, jnp.zeros(2), n_steps=100, n_paths=7, save_every=10, key=key)
    assert p.xs.shape == (7, 10, 2) and p.xs.dtype == jnp.float32
    np.testing.assert_allclose(p.ts, np.linspace(0.1, 1.0, 10), rtol=1e-6)
    p = sdeml.simulate(
        OU, jnp.zeros(2), n_steps=100, n_paths=7, save_every=30, include_t0=True, key=key
    )
    np.testing.assert_allclose(p.ts, [0.0, 0.3, 0.6, 0.9, 1.0], rtol=1e-6)
    assert p.xs.shape == (7, 5, 2) and np.all(p.xs[:, 0] == 0)
    # save times off the grid are added to it
    p = sdeml.simulate(OU, jnp.zeros(2), n_steps=10, n_paths=3, save_at=[0.0, 0.25, 1.0], key=key)
    np.testing.assert_allclose(p.ts, [0.0, 0.25, 1.0], rtol=1e-6)
    # noise-free OU: every saving mode, chunking and block padding must reproduce the closed-form
    # Euler recursion y_n = mu + (1 - theta h)^n (y_0 - mu) exactly (up to rounding)
    quiet = sdeml.OrnsteinUhlenbeck(theta=1.5, mu=0.5, sigma=0.0)
    h = 1.0 / 37
    em = 0.5 + (1 - 1.5 * h) ** np.arange(1, 38) * (1.0 - 0.5)
    a = sdeml.simulate(
        quiet, jnp.ones(1), n_steps=37, n_paths=1001, chunk_size=100, dtype=F64, key=key
    )
    assert a.xs.shape == (1001, 1, 1)
    np.testing.assert_allclose(a.xs[:, -1, 0], em[-1], rtol=1e-12)
    b = sdeml.simulate(
        quiet, jnp.ones(1), n_steps=37, n_paths=5, save_every=5, block_size=3, dtype=F64, key=key
    )
    np.testing.assert_allclose(b.xs[0, :, 0], em[[4, 9, 14, 19, 24, 29, 34, 36]], rtol=1e-12)
    # float32 with even blocks (two steps per hash): the same recursion
    e = sdeml.simulate(quiet, jnp.ones(1), n_steps=36, n_paths=3, save_every=6, key=key)
    em36 = 0.5 + (1 - 1.5 / 36) ** np.arange(1, 37) * (1.0 - 0.5)
    np.testing.assert_allclose(e.xs[0, :, 0], em36[5::6], rtol=1e-5)
    # explicit non-uniform ts
    ts = jnp.array([0.0, 0.1, 0.5, 0.6, 1.0])
    c = sdeml.simulate(GBM, jnp.ones(1), ts=ts, n_paths=4, save_every=1, key=key)
    np.testing.assert_allclose(c.ts, ts[1:])


def test_float64_on_request_and_reproducible():
    a = sdeml.simulate(OU, jnp.zeros(1), n_steps=20, n_paths=50, dtype=F64, key=jr.key(5))
    b = sdeml.simulate(OU, jnp.zeros(1), n_steps=20, n_paths=50, dtype=F64, key=jr.key(5))
    assert a.xs.dtype == F64
    np.testing.assert_array_equal(a.xs, b.xs)


def test_jit_vmap_equals_loop_and_per_path_args():
    def drift(t, y, a):
        return a["theta"] * (a["mu"] - y)

    def diffusion(t, y, a):
        return a["sigma"] * jnp.ones_like(y)

    sde = sdeml.SDE(drift, diffusion, noise="additive")
    ts = jnp.linspace(0.0, 1.0, 33, dtype=F64)
    x0 = jnp.zeros(2, F64)
    args = {
        "theta": jnp.array([0.5, 1.0, 2.0], F64),
        "mu": jnp.array([1.0, -1.0, 0.0], F64),
        "sigma": jnp.array([0.1, 0.2, 0.3], F64),
    }
    keys = jr.split(jr.key(0), 3)
    run = lambda a, k: sdeml.euler_maruyama(sde, x0, ts, args=a, key=k)
    batched = jax.jit(jax.vmap(run))(args, keys)
    for i in range(3):
        one = run(jax.tree.map(lambda v, i=i: v[i], args), keys[i])
        np.testing.assert_allclose(batched[i], one, rtol=1e-12, atol=1e-14)
    # per-path parameters inside simulate: noise-free, so every path is its own deterministic EM
    quiet = dict(args, sigma=jnp.zeros(3, F64))
    p = sdeml.simulate(
        sde, x0, n_steps=32, n_paths=3, args=quiet, args_per_path=True, dtype=F64, key=jr.key(1)
    )
    for i in range(3):
        a = jax.tree.map(lambda v, i=i: v[i], quiet)
        y = x0
        for k in range(32):
            y = y + drift(ts[k], y, a) * (1 / 32)
        np.testing.assert_allclose(p.xs[i, -1], y, rtol=1e-12)
    # vmap over simulate itself (e.g. a sweep over initial values) equals a loop
    x0s = jnp.array([[0.0, 1.0], [2.0, 3.0]], F64)
    f = lambda x: sdeml.simulate(OU, x, n_steps=10, n_paths=5, dtype=F64, key=jr.key(2)).xs
    out = jax.jit(jax.vmap(f))(x0s)
    for i in range(2):
        np.testing.assert_allclose(out[i], f(x0s[i]), rtol=1e-12)


def test_no_retrace_when_arrays_change():
    n_traces = []

    def drift(t, y, a):
        n_traces.append(1)  # a Python side effect runs only while tracing
        return -a * y

    sde = sdeml.SDE(drift, lambda t, y, a: 0.3 * jnp.ones_like(y), noise="additive")
    kw: dict[str, Any] = dict(n_steps=20, n_paths=8, dtype=F64)
    sdeml.simulate(sde, jnp.zeros(2), args=jnp.asarray(1.0, F64), t1=1.0, key=jr.key(0), **kw)
    first = len(n_traces)
    sdeml.simulate(sde, jnp.ones(2), args=jnp.asarray(2.0, F64), t1=3.0, key=jr.key(1), **kw)
    sdeml.simulate(sde, -jnp.ones(2), args=jnp.asarray(0.5, F64), t0=0.5, key=jr.key(2), **kw)
    assert len(n_traces) == first  # new x0, args, t0, t1 and key: no new trace

    @eqx.debug.assert_max_traces(max_traces=1)
    def user_fn(x0, theta, key):
        return sdeml.simulate(sde, x0, args=theta, key=key, **kw).xs.mean()

    jitted = jax.jit(user_fn)
    for i in range(3):
        jitted(jnp.full(2, float(i), F64), jnp.asarray(1.0 + i, F64), jr.key(i))


def test_grad_through_simulate():
    """Pathwise derivative d/dmu E[X_1] = x0 e^mu for GBM, through the simulation loop."""

    def mean_terminal(mu):
        sde = sdeml.SDE(lambda t, y, a: a * y, lambda t, y, a: 0.8 * y, noise="diagonal")
        p = sdeml.simulate(
            sde, jnp.ones(1), n_steps=200, n_paths=20_000, args=mu, dtype=F64, key=jr.key(0)
        )
        return p.xs[:, -1, 0].mean(), p.xs[:, -1, 0]

    g, xs = jax.grad(mean_terminal, has_aux=True)(jnp.asarray(0.5, F64))
    # the pathwise derivative of each path is ~ X_1 (1 + O(h)), so its SE is std(X_1)/sqrt(N)
    se = np.std(np.asarray(xs)) / np.sqrt(xs.shape[0])
    assert abs(float(g) - np.exp(0.5)) < 4 * se + 5e-3  # + O(h) bias of EM, e^.5 .25/400 ~ 1e-3


def test_diffrax_bridge_same_path_as_euler():
    """sdeml EM and diffrax Euler agree to float tolerance on the same Brownian increments."""
    x0 = jnp.array([1.0, 0.5], F64)
    n, t1 = 64, 1.0
    bm = sdeml.sde.virtual_brownian_tree(GBM, x0.shape, 0.0, t1, tol=1e-4, dtype=F64, key=jr.key(0))
    terms = sdeml.to_diffrax(GBM, bm)
    ts = jnp.linspace(0.0, t1, n + 1, dtype=F64)
    sol = diffrax.diffeqsolve(
        terms, diffrax.Euler(), 0.0, t1, t1 / n, x0, saveat=diffrax.SaveAt(ts=ts), max_steps=n + 1
    )
    dw = jax.vmap(bm.evaluate)(ts[:-1], ts[1:])
    ours = sdeml.sde.solve_increments(sdeml.EulerMaruyama(), GBM, x0, ts, dw)
    np.testing.assert_allclose(ours, sol.ys, rtol=1e-10, atol=1e-12)


def test_diffrax_bridge_adaptive_matches_exact_gbm():
    """Adaptive diffrax Heun on the Stratonovich form reaches the exact GBM value on the tree."""
    x0 = jnp.ones(1, F64)
    bm = sdeml.sde.virtual_brownian_tree(
        GBM, x0.shape, 0.0, 1.0, tol=1e-6, dtype=F64, key=jr.key(2)
    )
    terms = sdeml.to_diffrax(sdeml.sde.ito_to_stratonovich(GBM), bm)
    sol = diffrax.diffeqsolve(
        terms,
        diffrax.Heun(),
        0.0,
        1.0,
        1e-2,
        x0,
        max_steps=100_000,
        stepsize_controller=diffrax.PIDController(rtol=1e-4, atol=1e-6),
    )
    w1 = bm.evaluate(0.0, 1.0)
    exact = GBM.exact_solution(x0, jnp.array([0.0, 1.0], F64), w1[None])
    # Heun (strong order 1 for this commutative noise), rtol 1e-4: a few 1e-3 relative error
    np.testing.assert_allclose(sol.ys[-1], exact, rtol=2e-2)


def test_coarsened_time_integrals_have_exact_law():
    """Summing fine (dW, dZ) gives coarse pairs with Var dZ = H^3/3, Cov(dW, dZ) = H^2/2."""
    n, f, h = 20_000, 8, 0.1
    dts = jnp.full(f, h / f, F64)
    keys = jr.split(jr.key(0), n)
    dw, dz = jax.vmap(
        lambda k: sdeml.sde.coarsen_increments(
            sdeml.sde.sample_increments(dts, (), time_integral=True, key=k), f, dts
        )
    )(keys)
    H = h
    cov = np.cov(np.stack([np.asarray(dw[:, 0]), np.asarray(dz[:, 0])]))
    # relative SE of a sample (co)variance from 2e4 normals is ~ sqrt(2/N) = 1%; 5% band
    np.testing.assert_allclose(cov[0, 0], H, rtol=0.05)
    np.testing.assert_allclose(cov[1, 1], H**3 / 3, rtol=0.05)
    np.testing.assert_allclose(cov[0, 1], H**2 / 2, rtol=0.05)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(t0=1.0, t1=1.0), "t1"),
        (dict(t0=2.0, t1=1.0), "t1"),
        (dict(n_steps=0), "n_steps"),
        (dict(n_steps=-3), "n_steps"),
        (dict(save_at=[0.5, 0.2]), "save_at"),
        (dict(save_at=[0.5, 1.5]), "save_at"),
        (dict(method="runge_kutta_9"), "unknown solver"),
        (dict(n_paths=0), "n_paths"),
        (dict(dtype=jnp.int32), "dtype"),
        (dict(save_every=0), "save_every"),
        # non-finite times: inf passed the `t1 > t0` check and every path came back NaN
        (dict(t1=float("inf")), "`t1` must be finite"),
        (dict(t0=-float("inf")), "`t0` must be finite"),
        (dict(n_steps=None, ts=jnp.array([0.0, 1.0, jnp.inf])), "`ts` must be finite"),
        (dict(save_at=[0.5, float("nan")]), "`save_at` must be finite"),
        (dict(save_at=[0.5, 0.5 + 1e-13]), "`save_at` holds times closer"),
        (dict(x0=jnp.ones(0)), "`x0` must hold at least one number"),
    ],
)
def test_bad_input(kwargs, match):
    base = dict(x0=jnp.zeros(2), n_steps=10, n_paths=4, key=jr.key(0))
    with pytest.raises(ValueError, match=match):
        sdeml.simulate(OU, **{**base, **kwargs})


def test_traced_non_finite_times_fail_at_run_time():
    run = lambda t1: sdeml.simulate(OU, jnp.zeros(2), t1=t1, n_steps=4, n_paths=2, key=jr.key(0))
    with pytest.raises(jax.errors.JaxRuntimeError, match="`t1` must be finite"):
        jax.jit(lambda t1: run(t1).xs)(jnp.asarray(jnp.inf, F64))
    run_ts = lambda ts: sdeml.simulate(OU, jnp.zeros(2), ts=ts, n_paths=2, key=jr.key(0)).xs
    with pytest.raises(jax.errors.JaxRuntimeError, match="`ts` must be finite"):
        jax.jit(run_ts)(jnp.array([0.0, 1.0, jnp.inf], F64))


@pytest.fixture
def no_jaxtyping(monkeypatch):
    """The suite's jaxtyping hook answers a wrongly typed argument (a key array, a function for
    `sde`, a float `brownian_dim`) with its own TypeError before the function runs; users run
    without it, so these tests switch it off to reach sdeml's own checks."""
    import jaxtyping

    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)


def test_simulate_names_a_non_sde_and_a_key_array(no_jaxtyping):
    base = dict(n_steps=4, n_paths=3)
    with pytest.raises(ValueError, match="`sde` must be an sdeml.AbstractSDE"):
        sdeml.simulate(lambda t, y, a: -y, jnp.ones(1), **base, key=jr.key(0))  # type: ignore
    for keys in (jr.split(jr.key(0), 3), jr.split(jr.PRNGKey(0), 3)):  # typed and legacy
        with pytest.raises(ValueError, match=r"`key` must be a single PRNG key.*shape \(3,\)"):
            sdeml.simulate(OU, jnp.ones(1), **base, key=keys)
    with pytest.raises(ValueError, match="`key` must be a PRNG key"):
        sdeml.simulate(OU, jnp.ones(1), **base, key=3)  # type: ignore
    # simulate_path shares the check
    with pytest.raises(ValueError, match=r"`key` must be a single PRNG key.*shape \(3,\)"):
        sdeml.sde.simulate_path(OU, jnp.ones(1), n_steps=4, key=jr.split(jr.key(0), 3))


@pytest.mark.parametrize("m", [2.5, True, "3", 0, -1])
def test_brownian_dim_must_be_a_positive_int(m, no_jaxtyping):
    g = lambda t, y, a: jnp.ones((2, 2))
    with pytest.raises(ValueError, match="`brownian_dim` must be a positive int or None"):
        sdeml.SDE(lambda t, y, a: -y, g, noise="general", brownian_dim=m)


def test_brownian_dim_accepts_numpy_ints(no_jaxtyping):
    sde = sdeml.SDE(
        lambda t, y, a: -y,
        lambda t, y, a: jnp.ones((2, 3)),
        noise="general",
        brownian_dim=np.int64(3),
    )
    assert sde.brownian_shape((2,)) == (3,)


def test_time_dependent_drift_saved_times_and_include_t0_with_save_at():
    """dX = t dt: Euler-Maruyama gives the left Riemann sum sum_k t_k h_k exactly, so the saved
    states show at which times the drift was evaluated and whether `ts` labels them rightly.
    `include_t0` with `save_at` was silently ignored (the initial state was not saved)."""
    sde = sdeml.SDE(lambda t, y, a: t * jnp.ones_like(y), lambda t, y, a: 0 * y, noise="additive")
    ts = np.array([0.5, 0.6, 1.0, 1.1, 2.0])  # non-uniform, t0 != 0
    left = lambda grid: np.concatenate([[0.0], np.cumsum(grid[:-1] * np.diff(grid))])
    kw = dict(ts=ts, dtype=F64, key=jr.key(0))
    p = sdeml.simulate(sde, jnp.zeros(1), n_paths=2, save_every=2, include_t0=True, **kw)
    np.testing.assert_array_equal(p.ts, ts[[0, 2, 4]])
    np.testing.assert_allclose(p.xs[:, :, 0], np.tile(left(ts)[[0, 2, 4]], (2, 1)), rtol=1e-14)
    # 0.8 is added to the grid (0.6 -> 0.8 -> 1.0); t0 saved on request
    merged = np.array([0.5, 0.6, 0.8, 1.0, 1.1, 2.0])
    want = left(merged)[[0, 2, 5]]
    p = sdeml.simulate(sde, jnp.zeros(1), n_paths=2, save_at=[0.8, 2.0], include_t0=True, **kw)
    np.testing.assert_allclose(p.ts, [0.5, 0.8, 2.0], rtol=1e-15)
    np.testing.assert_allclose(p.xs[:, :, 0], np.tile(want, (2, 1)), rtol=1e-14)
    one = sdeml.sde.simulate_path(sde, jnp.zeros(1), save_at=[0.8, 2.0], include_t0=True, **kw)
    np.testing.assert_allclose(one[:, 0], want, rtol=1e-14)
    # listing t0 in `save_at` as well saves it once
    p = sdeml.simulate(sde, jnp.zeros(1), n_paths=1, save_at=[0.5, 2.0], include_t0=True, **kw)
    np.testing.assert_allclose(p.ts, [0.5, 2.0], rtol=1e-15)
    # a uniform grid from t0 = 1, in float32 (two steps' normals per hash)
    grid = np.linspace(1.0, 2.0, 5)
    p = sdeml.simulate(
        sde, jnp.zeros(1), t0=1.0, t1=2.0, n_steps=4, n_paths=2, save_every=1, include_t0=True,
        key=jr.key(0),
    )  # fmt: skip
    np.testing.assert_allclose(p.ts, grid, rtol=1e-7)
    np.testing.assert_allclose(p.xs[0, :, 0], left(grid), rtol=1e-6)


def test_save_at_only_t0_returns_the_initial_state():
    """`save_at=[t0]` (it crashed: no segment of steps to lay out) saves the initial state
    alone, shape (n_paths, 1, *S), in every single-path and batched front end."""
    x0 = jnp.array([1.0, -2.0])
    p = sdeml.simulate(OU, x0, n_steps=10, n_paths=3, save_at=jnp.array([0.0]), key=jr.key(0))
    np.testing.assert_array_equal(p.ts, [0.0])
    np.testing.assert_array_equal(p.xs, jnp.broadcast_to(x0, (3, 1, 2)).astype(p.xs.dtype))
    # per-path x0 on an explicit grid that starts at 0.5
    x0s = jnp.arange(6.0).reshape(3, 2)
    ts = jnp.array([0.5, 0.75, 1.0])
    p = sdeml.simulate(
        OU, x0s, ts=ts, n_paths=3, save_at=[0.5], x0_per_path=True, dtype=F64, key=jr.key(0)
    )
    np.testing.assert_array_equal(p.ts, [0.5])
    np.testing.assert_array_equal(p.xs, x0s[:, None])
    one = lambda x, k: sdeml.sde.simulate_path(OU, x, n_steps=10, save_at=[0.0], key=k)
    np.testing.assert_array_equal(one(x0, jr.key(0)), x0[None])
    for scheme in (sdeml.sde.euler_maruyama, sdeml.sde.milstein, sdeml.sde.sra1):
        out = scheme(OU, x0, n_steps=10, save=jnp.array([0.0]), key=jr.key(0))
        np.testing.assert_array_equal(out, x0[None])
    # under vmap and grad: x_{t0} = x0, so d x_{t0} / d x0 = 1
    xs = jax.vmap(lambda k: one(x0, k))(jr.split(jr.key(1), 5))
    np.testing.assert_array_equal(xs, jnp.broadcast_to(x0, (5, 1, 2)))
    np.testing.assert_array_equal(jax.grad(lambda x: one(x, jr.key(0)).sum())(x0), jnp.ones(2))


def test_increments_refuse_negative_steps_and_decreasing_times():
    em, x0 = sdeml.sde.EulerMaruyama(), jnp.ones(1)
    with pytest.raises(ValueError, match="`dts` must be finite and >= 0"):
        sdeml.sde.sample_increments(jnp.array([0.1, -0.1]), (1,), key=jr.key(0))
    with pytest.raises(ValueError, match="`dts` must be finite and >= 0"):
        sdeml.sde.sample_increments(jnp.array([0.1, jnp.inf]), (1,), key=jr.key(0))
    with pytest.raises(jax.errors.JaxRuntimeError, match="`dts` must be finite and >= 0"):
        jax.jit(lambda d: sdeml.sde.sample_increments(d, (1,), key=jr.key(0)))(-jnp.ones(2))
    dw = jnp.zeros((2, 1))
    for ts in (jnp.array([0.0, 1.0, 0.5]), jnp.array([1.0, 0.5, 0.0])):
        with pytest.raises(ValueError, match="`ts` must be strictly increasing"):
            sdeml.sde.solve_increments(em, OU, x0, ts, dw)
    with pytest.raises(ValueError, match="`ts` must be finite"):
        sdeml.sde.solve_increments(em, OU, x0, jnp.array([0.0, 1.0, jnp.inf]), dw)
    solve = jax.jit(lambda ts: sdeml.sde.solve_increments(em, OU, x0, ts, dw))
    with pytest.raises(jax.errors.JaxRuntimeError, match="`ts` must be finite and strictly"):
        solve(jnp.array([1.0, 0.5, 0.0]))
    # dw = 0: the Euler recursion y_n = mu + (1 - theta h)^n (y_0 - mu), theta = 1.5, mu = 0.5
    np.testing.assert_allclose(solve(jnp.array([0.0, 0.5, 1.0]))[-1], [0.5 + 0.25**2 * 0.5])


def test_bad_shapes_and_noise():
    wrong_drift = sdeml.SDE(lambda t, y, a: y[:1], lambda t, y, a: y)
    with pytest.raises(ValueError, match=r"drift returned shape \(1,\).*\(3,\)"):
        sdeml.simulate(wrong_drift, jnp.ones(3), n_steps=5, key=jr.key(0))
    wrong_diff = sdeml.SDE(
        lambda t, y, a: y, lambda t, y, a: jnp.ones((3, 2)), noise="general", brownian_dim=4
    )
    with pytest.raises(ValueError, match=r"diffusion returned shape \(3, 2\).*\(3, 4\)"):
        sdeml.simulate(wrong_diff, jnp.ones(3), n_steps=5, key=jr.key(0))
    with pytest.raises(ValueError, match="noise"):
        sdeml.SDE(lambda t, y, a: y, lambda t, y, a: y, noise="multiplicative")
    with pytest.raises(ValueError, match="brownian_dim"):
        sdeml.SDE(lambda t, y, a: y, lambda t, y, a: y, noise="general")
    with pytest.raises(ValueError, match="SRA1 supports noise types"):
        sdeml.simulate(GBM, jnp.ones(1), n_steps=5, method="sra1", key=jr.key(0))
    with pytest.raises(ValueError, match="strictly increasing"):
        sdeml.simulate(GBM, jnp.ones(1), ts=jnp.array([0.0, 0.5, 0.4]), key=jr.key(0))
    with pytest.raises(ValueError, match="x0_per_path"):
        sdeml.simulate(GBM, jnp.ones((3, 1)), n_steps=5, n_paths=4, x0_per_path=True, key=jr.key(0))


def test_traced_times_under_jit():
    """t0/t1 may be traced (e.g. a sweep over horizons): same numbers as concrete times."""
    run = lambda t1: sdeml.simulate(
        OU, jnp.zeros(2), t1=t1, n_steps=10, n_paths=4, save_every=5, dtype=F64, key=jr.key(0)
    )
    traced = jax.jit(lambda t1: run(t1).xs)(jnp.asarray(2.0, F64))
    np.testing.assert_allclose(traced, run(2.0).xs, rtol=1e-12)


def test_default_chunks_follow_the_platform(monkeypatch):
    """The default chunk is the CPU's cache-sized one on a CPU; on an accelerator all paths run as
    one chunk while they fit 2^24 components and 1 GiB (each chunk runs after the last: 123
    chunks made 1e6 x d=16 8x slower than one scan on an H200), with a mesh an equal share."""
    from types import SimpleNamespace

    from sdeml.core import _simulate as sim

    solver = sim.get_solver("euler_maruyama", kind="sde")
    plan = sim._plan(0.0, 1.0, 1000, None, None, None, False, None, jnp.float32, True)

    def chunk(n, d, mesh=None):
        return sim._chunking(solver, (d,), (d,), jnp.float32, plan, n, None, mesh)

    assert -(-(10**6) // chunk(10**6, 16)) == 123  # 2^17 / 16 = 8192 paths per chunk at most
    monkeypatch.setattr(sim.jax, "default_backend", lambda: "gpu")
    assert chunk(10**6, 16) == 10**6 and chunk(10**6, 1) == 10**6
    assert chunk(10**7, 64) < 10**7  # over the budget: several chunks, each within it
    fake = SimpleNamespace(devices=np.array([SimpleNamespace(platform="gpu")] * 4), size=4)
    assert chunk(10**6, 16, fake) == 250_000
    cpu_mesh = SimpleNamespace(devices=np.array([SimpleNamespace(platform="cpu")] * 4), size=4)
    assert -(-(10**6) // chunk(10**6, 16, cpu_mesh)) == 123  # the mesh's platform decides


def test_milstein_evaluates_the_diffusion_once_per_step():
    # the diffusion was evaluated for the JVP's tangent and again inside jax.jvp (2 per step,
    # against 1 for Euler-Maruyama); linearised once now. Counted as traces of one step.
    calls = []

    class Counting(sdeml.core.AbstractSDE):
        noise: ClassVar[str] = "diagonal"

        @property
        def brownian_dim(self):
            return 3

        def drift(self, t, y, args=None):
            return -y

        def diffusion(self, t, y, args=None):
            calls.append(1)
            return 0.5 * jnp.sin(y)

    state = sdeml.core.SolverState(jnp.asarray(0.0), jnp.ones(3))
    jax.make_jaxpr(lambda s: sdeml.core.Milstein().step(Counting(), s, 0.1, 0.1 * jnp.ones(3)))(
        state
    )
    assert len(calls) == 1


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_normals_are_unbiased(dtype):
    # JAX draws bfloat16/float16 normals from a uniform of their own few bits: 4e6 bfloat16
    # draws had mean -0.011 (22 standard errors). sdeml draws them in float32 and rounds, so
    # a bfloat16 Brownian motion's X_1 over 100 steps had mean -0.11 (about 35 standard errors)
    # before and has mean 0 now
    from sdeml.core._normals import standard_normal

    dt = jnp.dtype(dtype)
    z = standard_normal(jr.key(0), (4_000_000,), dt)
    assert z.dtype == dt
    assert abs(float(z.astype(jnp.float32).mean())) < 5 / 2000  # 5 standard errors
    n = 100_000
    paths = sdeml.simulate(
        sdeml.sde.BrownianMotion(sigma=1.0), jnp.zeros(1, dt), t1=1.0, n_steps=100,
        n_paths=n, dtype=dt, key=jr.key(1),
    )  # fmt: skip
    x1 = paths.xs[:, -1, 0].astype(jnp.float32)
    assert paths.xs.dtype == dt
    assert abs(float(x1.mean())) < 5 / np.sqrt(n), float(x1.mean())


def test_normal_draws_go_through_one_helper():
    # the class of the bias above: every normal draw in the library is `standard_normal`
    # (float32 and float64 draws are jax.random.normal's own, bit for bit)
    import pathlib
    import re

    from sdeml.core._normals import standard_normal

    root = pathlib.Path(sdeml.__file__).parent
    pattern = re.compile(r"\b(?:jr|jax\.random|random)\.normal\(")
    offenders = [
        f"{p.relative_to(root)}:{i}"
        for p in sorted(root.rglob("*.py"))
        if p.name != "_normals.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line) and ">>>" not in line and not line.lstrip().startswith("...")
    ]
    assert offenders == [], offenders
    for dtype in (jnp.float32, jnp.float64):
        np.testing.assert_array_equal(
            standard_normal(jr.key(2), (5,), dtype), jr.normal(jr.key(2), (5,), dtype)
        )
