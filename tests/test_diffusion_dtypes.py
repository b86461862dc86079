"""The diffusion samplers' dtype rule: the state keeps the dtype the caller asked for (``dtype``,
else ``x_T``'s) whatever dtype the model computes in; the model's output is cast to it. Before,
a float32 model with bfloat16 or float16 samples made a `lax.scan` carry change dtype (a crash)
or came back as float32 samples, and under the strict promotion of these tests every sampler
raised."""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import sdeml
import sdeml.diffusion as dif

F32, F64 = jnp.float32, jnp.float64
SDE = sdeml.VPSDE(0.1, 20.0)
N = 4000  # samples per run


class _InDtype(eqx.Module):
    """A model that computes in `dtype` whatever the state's (a float32 network, say)."""

    model: Callable[[Any, Any], Any]
    dtype: Any = eqx.field(static=True)

    def __call__(self, t, x):
        return self.model(jnp.asarray(t, self.dtype), x.astype(self.dtype))


class _Models(NamedTuple):
    score: Callable[[Any, Any], Any]
    denoiser: Callable[[Any, Any], Any]
    consistency: dif.ConsistencyModel


def _models(dtype) -> _Models:
    gm = sdeml.data.gaussian_mixture_2d(dtype)
    # an untrained network, the same weights at every dtype (the test compares runs, not a
    # law); `ConsistencyModel` adds its output to the state, c_skip x + c_out F, under the
    # caller's promotion
    net = sdeml.nn.TimeMLP(2, width=16, depth=1, embed_scale=1.0, key=jr.key(2), dtype=F32)
    net = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, net)
    return _Models(
        _InDtype(dif.MixtureScore(gm, SDE), dtype),
        _InDtype(dif.MixtureDenoiser(gm), dtype),
        dif.ConsistencyModel(_InDtype(net, dtype)),
    )


def _prior(shape, sigma_max, *, dtype, key):
    # the same starting draws at every dtype (drawn in float32, then rounded): the deterministic
    # samplers' runs then differ by the state's rounding only, not by Monte Carlo
    return dif.gaussian_prior(shape, sigma_max, dtype=F32, key=key).astype(dtype)


def _x_T(dtype):
    return SDE.prior_sample((N, 2), key=jr.key(1), dtype=F32).astype(dtype)


# name -> (run(models, dtype) -> SampleResult, stochastic); every affected entry point
SAMPLERS: dict[str, tuple[Callable[..., dif.SampleResult], bool]] = {
    "em": (
        lambda m, dt: dif.euler_maruyama_sampler(
            m.score, SDE, (N, 2), n_steps=50, n_saves=3, dtype=dt, key=jr.key(0)
        ),
        True,
    ),
    "em_one_sample": (
        lambda m, dt: dif.SampleResult(
            jax.vmap(
                lambda k: dif.euler_maruyama_sample(m.score, SDE, (2,), n_steps=50, dtype=dt, key=k)
            )(jr.split(jr.key(0), N)),
            jnp.asarray(51),
        ),
        True,
    ),
    "pc": (
        lambda m, dt: dif.pc_sampler(
            m.score, SDE, (N, 2), n_steps=50, n_saves=3, dtype=dt, key=jr.key(0)
        ),
        True,
    ),
    "ode": (
        lambda m, dt: dif.probability_flow_sampler(
            m.score, SDE, (N, 2), solver="heun", n_steps=40, n_saves=3, x_T=_x_T(dt), key=jr.key(0)
        ),
        False,
    ),
    "dpm": (
        lambda m, dt: dif.dpm_solver_sampler(
            m.score, SDE, (N, 2), n_steps=10, x_T=_x_T(dt), key=jr.key(0)
        ),
        False,
    ),
    "dpm_singlestep": (
        lambda m, dt: dif.dpm_solver_sampler(
            m.score, SDE, (N, 2), n_steps=6, multistep=False, x_T=_x_T(dt), key=jr.key(0)
        ),
        False,
    ),
    "unipc": (
        lambda m, dt: dif.unipc_sampler(
            m.score, SDE, (N, 2), n_steps=10, x_T=_x_T(dt), key=jr.key(0)
        ),
        False,
    ),
    "edm_heun": (
        lambda m, dt: dif.edm_heun_sampler(
            m.score, SDE, (N, 2), n_steps=10, x_T=_x_T(dt), key=jr.key(0)
        ),
        False,
    ),
    "edm": (
        lambda m, dt: dif.edm_sampler(
            m.denoiser, (N, 2), n_steps=10, sigma_max=20.0, prior=_prior, dtype=dt, key=jr.key(0)
        ),
        False,
    ),
    "edm_churn": (
        lambda m, dt: dif.edm_sampler(
            m.denoiser,
            (N, 2),
            n_steps=10,
            sigma_max=20.0,
            s_churn=5.0,
            prior=_prior,
            dtype=dt,
            key=jr.key(0),
        ),
        True,
    ),
    "unipc_edm": (
        lambda m, dt: dif.unipc_edm_sampler(
            m.denoiser, (N, 2), n_steps=10, sigma_max=20.0, prior=_prior, dtype=dt, key=jr.key(0)
        ),
        False,
    ),
    "edm_probability_flow": (
        lambda m, dt: dif.edm_probability_flow(
            m.denoiser, _prior((N, 2), 20.0, dtype=dt, key=jr.key(0)), 20.0, 0.01, n_steps=20
        ),
        False,
    ),
    "consistency": (
        lambda m, dt: dif.consistency_sampler(
            m.consistency, (N, 2), sigmas=(1.0,), prior=_prior, dtype=dt, key=jr.key(0)
        ),
        True,
    ),
}


def _check(r: dif.SampleResult, dtype) -> tuple[np.ndarray, np.ndarray]:
    # every returned state (the samples, the path, its times) has the state's dtype, finite
    for a in (r.x, r.path, r.ts):
        if a is not None:
            assert a.dtype == dtype, (a.dtype, dtype)
            assert bool(jnp.all(jnp.isfinite(a)))
    x = np.asarray(r.x, np.float64).reshape(-1, 2)
    return x.mean(0), x.std(0)


def _run(name: str, dtype, model_dtype=F32) -> tuple[np.ndarray, np.ndarray]:
    # `ConsistencyModel` adds its float32 network's output to the state itself: under strict
    # promotion it cannot take a half-precision state, under the default one it returns float32
    promotion = "standard" if name == "consistency" else "strict"
    with jax.numpy_dtype_promotion(promotion):
        return _check(SAMPLERS[name][0](_models(model_dtype), dtype), jnp.dtype(dtype))


@functools.cache
def _reference(name: str) -> tuple[np.ndarray, np.ndarray]:
    return _run(name, F32)


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.slow  # 5-7 s a sampler and dtype
def test_half_precision_samples_of_a_float32_model(name, dtype):
    ref, sd = _reference(name)
    mean, _ = _run(name, dtype)
    # The deterministic samplers start from the same draws at every dtype, so the means differ
    # by rounding only: bfloat16 keeps 8 significant bits (float16 11), and the state, |x| <~ 3,
    # is rounded at each of 10-50 steps on a grid of rounded times; the largest difference
    # measured over 3 seeds was 0.022 (singlestep DPM-Solver, float16 0.015), others < 0.01.
    # The stochastic ones draw their noise in the state's dtype, independent of the float32
    # run's: add 4 standard errors of the difference of two means of N samples. (JAX's bfloat16
    # normals have mean -0.011, 20 standard errors from 0 at 4e6 draws: over the reverse SDE
    # this shifts the bfloat16 EM/PC samples' mean by ~-0.1, inside this band at these seeds.)
    mc = 4.0 * np.sqrt(2.0 / N) * sd if SAMPLERS[name][1] else 0.0
    np.testing.assert_array_less(np.abs(mean - ref), 0.03 + mc)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_float32_samples_of_a_float64_model(name):
    # x64: a float64 model's output is cast to the float32 state; the noise draws are those of
    # the float32 run, so the two runs differ by the model's rounding only (float32: 24 bits)
    ref, _ = _reference(name)
    mean, _ = _run(name, F32, model_dtype=F64)
    np.testing.assert_allclose(mean, ref, atol=1e-4)


@pytest.mark.slow  # ~8 s
def test_log_likelihood_of_float32_samples_under_a_float64_model():
    # the likelihood computes in the sample's dtype too (its flow is the probability-flow ODE,
    # the score cast to the state); before, the float64 score's output crashed diffrax's solve
    x = jnp.array([0.5, -0.5], F32)
    r = dif.log_likelihood(_models(F64).score, SDE, x)
    ref = dif.log_likelihood(_models(F32).score, SDE, x)
    assert r.logp.dtype == F32 and r.x_T.dtype == F32
    np.testing.assert_allclose(r.logp, ref.logp, atol=1e-4)  # float32 solves at rtol 1e-6
