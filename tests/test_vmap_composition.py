"""Issue #23: `jax.vmap` of the single-path functions runs the engine with vmap semantics.

Element i of a vmapped call equals the unbatched call with the i-th inputs (the same normals,
values to rounding), for every scheme, in float32 and float64; paths stream (memory O(state +
saves)); gradients of expectations over vmapped paths match closed forms; jit(vmap) does not
retrace; nested vmaps fold into one engine call; bad input gets the engine's messages.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import sdeml
from sdeml.core import _single, simulate_path
from sdeml.diffusion._samplers import euler_maruyama_sample
from sdeml.langevin._single_chain import mala_chain, ula_chain

F32, F64 = jnp.float32, jnp.float64
GBM = sdeml.GeometricBrownianMotion(mu=0.5, sigma=0.8)
OU = sdeml.OrnsteinUhlenbeck(theta=1.5, mu=0.5, sigma=0.7)
# vmapped and unbatched calls hash the same counters (identical normals); the arithmetic is the
# same operations on arrays of other shapes, which XLA may round differently in the last bit
RTOL = {F32: 1e-6, F64: 1e-13}
SCHEMES = ["euler_maruyama", "milstein", "stochastic_heun", "sra1"]


@pytest.fixture(autouse=True)
def _strict():  # the core is strict-promotion clean (see conftest)
    with jax.numpy_dtype_promotion("strict"):
        yield


def _loop(f, *batched):
    """The unbatched calls, one per element (jitted once: one compilation for the loop)."""
    f = jax.jit(f)
    return jnp.stack([f(*xs) for xs in zip(*batched, strict=True)])


def _close(a, b, dtype):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("method", SCHEMES)
def test_vmapped_equals_per_key_calls(method, dtype):
    sde, x0 = (OU, jnp.array([0.0, 2.0], dtype)) if method == "sra1" else (GBM, jnp.ones(2, dtype))
    f = lambda k: simulate_path(sde, x0, n_steps=30, method=method, save_every=7, key=k)
    keys = jr.split(jr.key(0), 5)
    out = jax.jit(jax.vmap(f))(keys)
    assert out.shape == (5, 5, 2) and out.dtype == dtype
    _close(out, _loop(f, keys), dtype)
    # times off the uniform grid (added to it): the grid is then read from arrays
    at = jnp.array([0.1, 0.33, 1.0])
    g = lambda k: simulate_path(sde, x0, n_steps=30, method=method, save_at=at, key=k)
    _close(jax.jit(jax.vmap(g))(keys), _loop(g, keys), dtype)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("method", SCHEMES)
def test_identical_noise(method, dtype):
    # W itself (zero drift, unit additive noise) is the running sum of the drawn increments:
    # equal sums, step by step, mean the same normals
    bm = sdeml.SDE(lambda t, y, a: jnp.zeros_like(y), lambda t, y, a: jnp.ones_like(y), "additive")
    f = lambda k: simulate_path(
        bm, jnp.zeros(3, dtype), n_steps=16, method=method, save_every=1, key=k
    )
    keys = jr.split(jr.key(1), 4)
    out, ref = jax.vmap(f)(keys), _loop(f, keys)
    np.testing.assert_array_equal(
        np.diff(np.asarray(out), axis=1), np.diff(np.asarray(ref), axis=1)
    )


@pytest.mark.parametrize("dtype", [F32, F64])
def test_the_path_does_not_depend_on_what_is_saved(dtype):
    # the normals of step k depend on the key and k only: terminal, snapshots, every step and
    # any block size run the same path
    x0, key = jnp.ones(3, dtype), jr.key(2)
    run = lambda **kw: simulate_path(OU, x0, n_steps=40, key=key, **kw)
    every = run(save_every=1)
    _close(run()[0], every[-1], dtype)
    _close(run(save_every=5), every[4::5], dtype)
    _close(
        run(save_every=3),
        every[jnp.array([2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38, 39])],
        dtype,
    )
    _close(run(block_size=5)[0], every[-1], dtype)
    _close(
        sdeml.euler_maruyama(OU, x0, jnp.linspace(0, 1, 41, dtype=dtype), key=key)[1:], every, dtype
    )


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_scheme_functions_and_their_saving():
    ts, x0, key = jnp.linspace(0.0, 1.0, 21, dtype=F64), jnp.ones(1, F64), jr.key(3)
    for fn, method in [
        (sdeml.core.euler_maruyama, "euler_maruyama"),
        (sdeml.core.milstein, "milstein"),
        (sdeml.core.stochastic_heun, "stochastic_heun"),
    ]:
        full = fn(GBM, x0, ts, key=key)
        assert full.shape == (21, 1) and full[0] == 1.0  # the old default: every step, t0 first
        assert fn(GBM, x0, ts, save="final", key=key).shape == (1,)
        np.testing.assert_allclose(fn(GBM, x0, ts, save="final", key=key), full[-1], rtol=1e-13)
        np.testing.assert_allclose(fn(GBM, x0, ts, save=4, key=key), full[4::4], rtol=1e-13)
        at = fn(GBM, x0, ts, save=jnp.array([0.25, 0.5, 1.0]), key=key)
        np.testing.assert_allclose(at, full[jnp.array([5, 10, 20])], rtol=1e-13)
        ref = simulate_path(GBM, x0, ts=ts, method=method, key=key)
        np.testing.assert_allclose(ref[0], full[-1], rtol=1e-13)
    assert sdeml.core.sra1(OU, x0, n_steps=10, save="final", key=key).shape == (1,)
    with pytest.raises(ValueError, match="`save`"):
        sdeml.core.euler_maruyama(GBM, x0, ts, save="last", key=key)


def test_vmap_over_x0_args_parameters_and_closures():
    keys = jr.split(jr.key(4), 6)
    x0s = jnp.linspace(0.0, 1.0, 6, dtype=F64)[:, None] * jnp.ones(2, F64)
    f = lambda x, k: simulate_path(OU, x, n_steps=20, save_every=5, key=k)
    _close(jax.vmap(f)(x0s, keys), _loop(f, x0s, keys), F64)
    # a key shared by every element: every element draws the same noise (vmap semantics)
    g = lambda x: f(x, keys[0])
    _close(jax.vmap(g)(x0s), _loop(g, x0s), F64)
    # per-element args, some leaves batched and some not
    sde = sdeml.SDE(
        lambda t, y, a: a["th"] * (a["mu"] - y),
        lambda t, y, a: a["s"] * jnp.ones_like(y),
        noise="additive",
    )
    ths = jnp.linspace(0.5, 2.0, 6, dtype=F64)
    h = lambda th, k: simulate_path(
        sde,
        jnp.ones(2, F64),
        n_steps=20,
        args={"th": th, "mu": jnp.asarray(0.1, F64), "s": jnp.asarray(0.3, F64)},
        key=k,
    )
    _close(jax.vmap(h)(ths, keys), _loop(h, ths, keys), F64)

    # a parameter closed over by a lambda drift, and one that is an SDE module's field
    def closed(th, k):
        s = sdeml.SDE(lambda t, y, a: -th * y, lambda t, y, a: 0.3 * jnp.ones_like(y), "additive")
        return simulate_path(s, jnp.ones(2, F64), n_steps=20, key=k)

    _close(jax.vmap(closed)(ths, keys), _loop(closed, ths, keys), F64)
    field = lambda th, k: simulate_path(
        sdeml.OrnsteinUhlenbeck(th, 0.5, 0.7), jnp.ones(2, F64), n_steps=20, key=k
    )
    _close(jax.vmap(field)(ths, keys), _loop(field, ths, keys), F64)


def test_nested_vmap_is_one_engine_call(monkeypatch):
    calls = []
    run = _single._run
    monkeypatch.setattr(_single, "_run", lambda st, n, *a: calls.append(n) or run(st, n, *a))
    ths, keys = jnp.array([0.5, 1.0, 2.0], F64), jr.split(jr.key(5), 4)

    def path(th, k):  # a lambda drift closing over the swept parameter
        s = sdeml.SDE(lambda t, y, a: -th * y, lambda t, y, a: 0.3 * jnp.ones_like(y), "additive")
        return simulate_path(s, jnp.ones(1, F64), n_steps=20, key=k)

    sweep = jax.jit(jax.vmap(jax.vmap(path, in_axes=(None, 0)), in_axes=(0, None)))
    out = sweep(ths, keys)
    # 3 parameters x 4 paths: one engine run of 12 paths (the smaller calls are `custom_vmap`
    # tracing the unbatched functions, which the batching rules then replace)
    assert max(calls) == 12 and calls.count(12) == 1, calls
    ref = jnp.stack([_loop(lambda k, th=th: path(th, k), keys) for th in ths])
    _close(out, ref, F64)


def test_jit_vmap_does_not_retrace():
    traces = []

    @jax.jit
    @jax.vmap
    def batch(x0, k):
        traces.append(1)
        return simulate_path(OU, x0, n_steps=20, key=k)

    for seed in range(3):
        batch(jnp.full((8, 2), float(seed), F64), jr.split(jr.key(seed), 8))
    assert len(traces) == 1

    @eqx.debug.assert_max_traces(max_traces=1)
    def inner(k):
        return simulate_path(OU, jnp.ones(2, F64), n_steps=20, key=k)

    f = jax.jit(jax.vmap(inner))
    for seed in range(3):
        f(jr.split(jr.key(seed), 4))


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_gradients_match_closed_forms():
    # Euler-Maruyama's own closed forms (h = T / N), so the comparison is free of the
    # discretisation error: GBM E[X_N] = x0 (1 + mu h)^N; OU dX_N / dx0 = (1 - theta h)^N on
    # every path (additive noise), E[X_N] = m + (x0 - m)(1 - theta h)^N
    n, N, T = 4000, 32, 1.0
    h = T / N
    keys = jr.split(jr.key(6), n)

    def gbm_mean(mu, x0):
        sde = sdeml.GeometricBrownianMotion(mu=mu, sigma=0.8)
        return jnp.mean(jax.vmap(lambda k: simulate_path(sde, x0, n_steps=N, key=k)[-1, 0])(keys))

    mu, x0 = jnp.asarray(0.5, F64), jnp.ones(1, F64)
    dmu, dx0 = jax.jit(jax.grad(gbm_mean, argnums=(0, 1)))(mu, x0)
    # exact on these paths: a central difference on the same keys
    fd = (gbm_mean(mu + 1e-6, x0) - gbm_mean(mu - 1e-6, x0)) / 2e-6
    np.testing.assert_allclose(dmu, fd, rtol=1e-6)
    # and the expectation: within 4 standard errors of d/dmu x0 (1 + mu h)^N
    per_path = jax.vmap(
        jax.grad(
            lambda m, k: simulate_path(
                sdeml.GeometricBrownianMotion(mu=m, sigma=0.8), x0, n_steps=N, key=k
            )[-1, 0]
        ),
        in_axes=(None, 0),
    )(mu, keys)
    np.testing.assert_allclose(per_path.mean(), dmu, rtol=1e-12)  # vmap(grad) == grad(vmap)
    se = float(jnp.std(per_path)) / np.sqrt(n)
    assert abs(float(dmu) - N * h * (1 + 0.5 * h) ** (N - 1)) < 4 * se
    assert abs(float(dx0[0]) - (1 + 0.5 * h) ** N) < 4 * se

    def ou_mean(theta, x0):
        sde = sdeml.OrnsteinUhlenbeck(theta=theta, mu=0.5, sigma=0.7)
        return jnp.mean(jax.vmap(lambda k: simulate_path(sde, x0, n_steps=N, key=k)[-1, 0])(keys))

    th, x2 = jnp.asarray(1.5, F64), jnp.full(1, 2.0, F64)
    dth, dx = jax.grad(ou_mean, argnums=(0, 1))(th, x2)
    np.testing.assert_allclose(dx[0], (1 - 1.5 * h) ** N, rtol=1e-12)  # pathwise, exact
    # d/dtheta E[X_N] = -(x0 - m) N h (1 - theta h)^(N-1), within 4 standard errors
    per_path = jax.vmap(
        jax.grad(
            lambda t, k: simulate_path(
                sdeml.OrnsteinUhlenbeck(theta=t, mu=0.5, sigma=0.7), x2, n_steps=N, key=k
            )[-1, 0]
        ),
        in_axes=(None, 0),
    )(th, keys)
    np.testing.assert_allclose(per_path.mean(), dth, rtol=1e-12)
    se = float(jnp.std(per_path)) / np.sqrt(n)
    assert abs(float(dth) + (2.0 - 0.5) * N * h * (1 - 1.5 * h) ** (N - 1)) < 4 * se


@pytest.mark.slow  # > 10 s
def test_gradient_modes_compose():
    keys = jr.split(jr.key(7), 5)

    def one(theta, k):  # a closure parameter, differentiated
        s = sdeml.SDE(lambda t, y, a: -theta * y, lambda t, y, a: 0.4 * y, "diagonal")
        return simulate_path(s, jnp.ones(1, F64), n_steps=16, method="milstein", key=k)[-1, 0]

    th = jnp.asarray(0.7, F64)
    per_key = _loop(lambda k: jax.grad(one)(th, k), keys)
    np.testing.assert_allclose(
        jax.vmap(jax.grad(one), in_axes=(None, 0))(th, keys), per_key, rtol=1e-12
    )
    total = jax.grad(lambda t: jnp.sum(jax.vmap(one, in_axes=(None, 0))(t, keys)))(th)
    np.testing.assert_allclose(total, per_key.sum(), rtol=1e-12)
    fwd = jax.jacfwd(lambda t: jnp.sum(jax.vmap(one, in_axes=(None, 0))(t, keys)))(th)
    np.testing.assert_allclose(fwd, total, rtol=1e-12)
    # a time grid per element (vmap over t1) has no common grid: plain vmap, same semantics
    t1s = jnp.array([0.5, 1.0, 1.5, 2.0, 2.5], F64)
    ou = lambda t, t1, k: simulate_path(
        sdeml.OrnsteinUhlenbeck(t, 0.5, 0.7), jnp.ones(1, F64), t1=t1, n_steps=8, key=k
    )[-1, 0]
    g = jax.grad(lambda t: jnp.sum(jax.vmap(ou, in_axes=(None, 0, 0))(t, t1s, keys)))(th)
    ref = sum(jax.grad(ou)(th, t1, k) for t1, k in zip(t1s, keys, strict=True))
    np.testing.assert_allclose(g, ref, rtol=1e-12)
    with pytest.raises(ValueError, match="time grid"):
        jax.grad(
            lambda t1: simulate_path(OU, jnp.ones(1, F64), t1=t1, n_steps=4, key=keys[0])[0, 0]
        )(jnp.asarray(1.0, F64))


def test_memory_is_o_state_plus_saves_and_at_most_twice_simulate():
    # per path, the vmapped call holds its state and a block of increments: no O(steps) buffer
    # (the old single-path function drew all 20 000 increments up front: 80 kB a path)
    x0 = jnp.ones(1, F32)
    f = jax.jit(jax.vmap(lambda k: simulate_path(OU, x0, n_steps=20_000, key=k)[-1]))
    temp = lambda n: f.lower(jr.split(jr.key(0), n)).compile().memory_analysis().temp_size_in_bytes
    per_path = (temp(4096) - temp(2048)) / 2048
    assert per_path < 256, per_path
    # 10^4 paths x 1000 steps, terminal: the vmapped call's working memory is the engine's
    n = 10_000
    x0 = jnp.ones(1, F32)
    vm = jax.jit(jax.vmap(lambda k: simulate_path(OU, x0, n_steps=1000, key=k)[-1]))
    sim = jax.jit(lambda k: sdeml.simulate(OU, x0, n_steps=1000, n_paths=n, key=k).xs)
    total = lambda m: m.temp_size_in_bytes + m.output_size_in_bytes + m.argument_size_in_bytes
    m_vm = vm.lower(jr.split(jr.key(0), n)).compile().memory_analysis()
    m_sim = sim.lower(jr.key(0)).compile().memory_analysis()
    assert total(m_vm) <= 2 * total(m_sim), (total(m_vm), total(m_sim))


def test_bad_input_names_the_argument():
    key = jr.key(0)
    x0 = jnp.ones(1, F64)
    with pytest.raises(ValueError, match="`n_steps`"):
        simulate_path(OU, x0, n_steps=-3, key=key)
    with pytest.raises(ValueError, match="`t1`"):
        simulate_path(OU, x0, t0=1.0, t1=0.5, n_steps=3, key=key)
    with pytest.raises(ValueError, match="`x0`"):
        simulate_path(OU, jnp.array([jnp.nan]), n_steps=3, key=key)
    # (under the test suite's jaxtyping hook the annotation check answers first, naming `key`)
    with pytest.raises((ValueError, TypeError), match="key"):
        simulate_path(OU, x0, n_steps=3, key=jr.split(key, 4))
    with pytest.raises(ValueError, match="unknown solver"):
        simulate_path(OU, x0, n_steps=3, method="rk45", key=key)
    with pytest.raises(ValueError, match="SRA1 supports noise types"):
        simulate_path(GBM, x0, n_steps=3, method="sra1", key=key)
    with pytest.raises(ValueError, match="`save_every`"):
        simulate_path(OU, x0, n_steps=3, save_every=0, key=key)
    with pytest.raises(ValueError, match="`ts`"):
        sdeml.euler_maruyama(OU, x0, jnp.array([0.0, 0.5, 0.4], F64), key=key)
    bad = sdeml.SDE(lambda t, y, a: y[:1], lambda t, y, a: y, "diagonal")
    with pytest.raises(ValueError, match="drift returned shape"):
        simulate_path(bad, jnp.ones(2, F64), n_steps=3, key=key)
    # the same checks inside jit and vmap: static ones at trace time, traced values at run time
    keys = jr.split(key, 3)
    with pytest.raises(ValueError, match="`n_steps`"):
        jax.vmap(lambda k: simulate_path(OU, x0, n_steps=0, key=k))(keys)
    with pytest.raises(jax.errors.JaxRuntimeError, match="`x0` contains NaN"):
        jax.jit(jax.vmap(lambda x, k: simulate_path(OU, x, n_steps=3, key=k)))(
            jnp.array([[1.0], [jnp.nan], [0.0]], F64), keys
        )
    with pytest.raises(jax.errors.JaxRuntimeError, match="`t1` must be greater than `t0`"):
        jax.jit(jax.vmap(lambda t1, k: simulate_path(OU, x0, t1=t1, n_steps=3, key=k)))(
            jnp.array([1.0, -1.0, 2.0], F64), keys
        )


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.slow  # 5-6 s a dtype
def test_langevin_chains_vmap_to_per_key_chains(dtype):
    U = lambda x: 0.5 * jnp.sum(x**2) + 0.1 * jnp.sum(x**4)
    keys = jr.split(jr.key(8), 5)
    x0 = jnp.zeros(2, dtype)
    ula = lambda k: ula_chain(U, x0, 40, step_size=0.1, thin=10, key=k)
    _close(jax.jit(jax.vmap(ula))(keys), _loop(ula, keys), dtype)
    mala = jax.jit(lambda k: mala_chain(U, x0, 40, step_size=0.5, key=k))
    xs, acc = jax.vmap(mala)(keys)
    ref = [mala(k) for k in keys]
    _close(xs, jnp.stack([r[0] for r in ref]), dtype)
    _close(acc, jnp.stack([r[1] for r in ref]), dtype)
    # a sweep over step sizes keeps one grid (the step size is a parameter of the SDE in steps)
    hs = jnp.array([0.05, 0.1, 0.2], dtype)
    sweep = lambda h, k: ula_chain(U, x0, 20, step_size=h, key=k)
    _close(jax.vmap(sweep)(hs, keys[:3]), _loop(sweep, hs, keys[:3]), dtype)


def test_ula_and_mala_chains_sample_the_gaussian():
    # U = x^2 / 2: ULA's invariant variance is 1 / (1 - h/2) (Roberts & Tweedie), MALA's is 1
    keys = jr.split(jr.key(9), 4000)
    x = jax.jit(
        jax.vmap(
            lambda k: ula_chain(lambda x: 0.5 * x @ x, jnp.zeros(1, F64), 200, step_size=0.2, key=k)
        )
    )(keys)[:, 0]
    v, se = float(jnp.var(x)), float(jnp.var(x)) * np.sqrt(2 / x.shape[0])
    assert abs(v - 1 / (1 - 0.1)) < 4 * se
    y, acc = jax.jit(
        jax.vmap(
            lambda k: mala_chain(
                lambda x: 0.5 * x @ x, jnp.zeros(1, F64), 200, step_size=0.5, key=k
            )
        )
    )(keys)
    assert abs(float(jnp.var(y[:, 0])) - 1.0) < 4 * se and 0.8 < float(jnp.mean(acc)) < 1.0
    with pytest.raises(ValueError, match="`x0` must have shape"):
        ula_chain(lambda x: 0.5 * x @ x, jnp.zeros((3, 1)), 10, step_size=0.1, key=keys[0])
    with pytest.raises(ValueError, match="`thin`"):
        mala_chain(lambda x: 0.5 * x @ x, jnp.zeros(1), 10, step_size=0.1, thin=3, key=keys[0])


def test_diffusion_sample_vmaps_to_per_key_samples():
    score = sdeml.MixtureScore(sdeml.data.gaussian_mixture_2d(), sdeml.VPSDE())
    one = lambda k: euler_maruyama_sample(score, score.sde, (2,), n_steps=50, dtype=F64, key=k)
    keys = jr.split(jr.key(10), 4)
    out = jax.jit(jax.vmap(one))(keys)
    assert out.shape == (4, 2)
    _close(out, _loop(one, keys), F64)
    with pytest.raises(ValueError, match="`sample_shape`"):
        euler_maruyama_sample(score, score.sde, (), key=keys[0])
