"""Consistency distillation (issue #21, item 4): the parameterisation's boundary condition, the
loss against the exact consistency map of a Gaussian law, a distilled one- and two-step sampler,
and bad input."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest

import sdeml
from sdeml.diffusion import (
    ConsistencyModel,
    consistency_distillation_loss,
    consistency_sampler,
    consistency_scalings,
)

S = 0.5  # data ~ N(0, S^2 I): D(x, sigma) = S^2 / (S^2 + sigma^2) x exactly
SIGMA_MIN = 0.002


def teacher(sigma, x):
    return S**2 / (S**2 + sigma**2) * x


class _Map(eqx.Module):
    """A fixed map with the student's interface: the exact consistency map of N(0, S^2 I), whose
    PF-ODE trajectories are x(sigma) = x(sigma') sqrt(S^2 + sigma^2) / sqrt(S^2 + sigma'^2), or the
    identity."""

    exact: bool = eqx.field(static=True)
    sigma_min: float = eqx.field(static=True, default=SIGMA_MIN)

    def __call__(self, sigma, x):
        if not self.exact:
            return x
        return x * jnp.sqrt(S**2 + SIGMA_MIN**2) / jnp.sqrt(S**2 + sigma**2)


def test_the_model_is_the_identity_at_sigma_min():
    c_skip, c_out, _, _ = consistency_scalings(SIGMA_MIN, 0.5, SIGMA_MIN)
    assert float(c_skip) == 1.0 and float(c_out) == 0.0
    cm = ConsistencyModel(sdeml.nn.TimeMLP(2, width=16, depth=1, key=jr.key(0)), 0.5, SIGMA_MIN)
    x = jr.normal(jr.key(1), (2,))
    assert jnp.array_equal(cm(SIGMA_MIN, x), x)
    assert not jnp.allclose(cm(1.0, x), x)


def test_the_exact_consistency_map_has_no_loss_left_but_the_teachers_step():
    y = S * jr.normal(jr.key(0), (4096, 2))
    exact = consistency_distillation_loss(_Map(True), teacher, y, key=jr.key(1))
    ident = consistency_distillation_loss(_Map(False), teacher, y, key=jr.key(1))
    # what remains for the exact map is the Heun step's local error between adjacent levels
    assert float(exact) < 1e-4 * float(ident), (exact, ident)
    # a PFGM++ teacher's noise through noise_fn: same interface, finite
    kern = sdeml.pfgm.PFGMPPKernel(128.0)
    v = consistency_distillation_loss(_Map(True), teacher, y, noise_fn=kern.noise, key=jr.key(2))
    assert math.isfinite(float(v))


def test_an_ema_target_is_read_at_the_lower_level_and_gets_no_gradient():
    y = S * jr.normal(jr.key(0), (512, 2))
    cm = ConsistencyModel(sdeml.nn.TimeMLP(2, width=16, depth=1, key=jr.key(3)), 0.5, SIGMA_MIN)
    own = consistency_distillation_loss(cm, teacher, y, key=jr.key(1))
    same = consistency_distillation_loss(cm, teacher, y, target=cm, key=jr.key(1))
    assert float(own) == float(same)  # the default target is the student itself
    # with the exact map as the target, the student is pulled towards it: a different loss,
    # and the gradient flows into the student only
    loss = lambda m, t: consistency_distillation_loss(m, teacher, y, target=t, key=jr.key(1))
    assert float(loss(cm, _Map(True))) != float(own)
    g_target = eqx.filter_grad(lambda t: loss(cm, t))(cm)
    assert all(float(jnp.max(jnp.abs(a))) == 0.0 for a in jax.tree.leaves(g_target))


def test_with_ema_target_trains_a_student_through_the_loop():
    # the training loop hands the EMA model to the loss; without an EMA it says what is missing
    cfg = sdeml.train.TrainConfig(steps=40, lr=1e-3, ema_decay=0.95, log_every=20)
    net = sdeml.nn.TimeMLP(2, width=16, depth=1, key=jr.key(0))
    loss_fn = sdeml.train.with_ema_target(
        lambda m, b, key, target: consistency_distillation_loss(
            m, teacher, b, target=target, key=key
        )
    )
    batches = lambda key, step: S * jr.normal(key, (256, 2))
    out = sdeml.train.train_model(
        ConsistencyModel(net, 0.5, SIGMA_MIN), loss_fn, batches, cfg, key=jr.key(1),
        progress=False,
    )  # fmt: skip
    assert math.isfinite(out.stats.last_metrics["loss"]) and out.stats.steps == 40
    with pytest.raises(ValueError, match="needs the state to keep an EMA model"):
        sdeml.train.train_model(
            ConsistencyModel(net, 0.5, SIGMA_MIN), loss_fn, batches,
            cfg.model_copy(update={"ema_decay": None}), key=jr.key(1), progress=False,
        )  # fmt: skip


@pytest.mark.slow
def test_distilled_one_and_two_step_samplers_recover_the_law():
    cm = ConsistencyModel(
        sdeml.nn.TimeMLP(2, width=64, depth=2, embed_scale=1.0, key=jr.key(2)), sigma_data=S
    )
    opt = sdeml.train.standard_promotion(optax.adam(1e-3))  # optax mixes int and float
    state = opt.init(eqx.filter(cm, eqx.is_array))

    @eqx.filter_jit
    def step(cm, state, k):
        k1, k2 = jr.split(k)
        yb = S * jr.normal(k1, (256, 2))
        g = eqx.filter_grad(lambda m: consistency_distillation_loss(m, teacher, yb, key=k2))(cm)
        u, state = opt.update(g, state)
        return eqx.apply_updates(cm, u), state

    for i in range(2000):
        cm, state = step(cm, state, jr.fold_in(jr.key(3), i))
    for sigmas in ((), (0.8,)):
        r = consistency_sampler(cm, (20000, 2), sigma_max=80.0, sigmas=sigmas, key=jr.key(4))
        assert int(r.nfe) == 1 + len(sigmas)
        std, mean = jnp.std(r.x, 0), jnp.mean(r.x, 0)
        assert jnp.all(jnp.abs(std / S - 1.0) < 0.1), (sigmas, std)
        assert jnp.all(jnp.abs(mean) < 0.1), (sigmas, mean)


def test_bad_input_names_the_argument():
    cm = ConsistencyModel(sdeml.nn.TimeMLP(2, width=8, depth=1, key=jr.key(0)))
    y = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="n_levels"):
        consistency_distillation_loss(cm, teacher, y, n_levels=0, key=jr.key(0))
    with pytest.raises(ValueError, match="sigma_min"):
        consistency_distillation_loss(cm, teacher, y, sigma_max=0.001, key=jr.key(0))
    with pytest.raises(ValueError, match="sigmas"):
        consistency_sampler(cm, (4, 2), sigmas=(0.5, 1.0), key=jr.key(0))
    with pytest.raises(ValueError, match="sigmas"):
        consistency_sampler(cm, (4, 2), sigma_max=1.0, sigmas=(2.0,), key=jr.key(0))
    with pytest.raises(ValueError, match="sigma_min"):
        ConsistencyModel(sdeml.nn.TimeMLP(2, width=8, depth=1, key=jr.key(0)), sigma_min=0.0)
    with pytest.raises(TypeError, match="sigma_min"):
        consistency_distillation_loss(lambda s, x: x, teacher, y, key=jr.key(0))


@pytest.mark.parametrize("sigma_max", [-1.0, 0.0, 0.001])
def test_sampler_refuses_a_sigma_max_at_or_below_sigma_min(sigma_max):
    # it used to run: sigma_max <= 0 gave c_noise = log(sigma_max) and NaN samples, and a
    # sigma_max below sigma_min (no `sigmas` to check) read the model outside its range
    cm = ConsistencyModel(sdeml.nn.TimeMLP(2, width=8, depth=1, key=jr.key(0)))
    with pytest.raises(ValueError, match="sigma_max"):
        consistency_sampler(cm, (4, 2), sigma_max=sigma_max, key=jr.key(1))


def test_pfgm_2d_config_refuses_a_mid_sigma_outside_the_grid():
    import importlib

    from pydantic import ValidationError

    # the mapped package (experiments/ installs as sdeml.experiments), imported by name
    Config = importlib.import_module("sdeml.experiments.pfgm_2d").Config

    Config.model_validate({"consistency": {"mid_sigma": 0.8}})
    with pytest.raises(ValidationError, match="consistency.mid_sigma"):
        Config.model_validate({"consistency": {"mid_sigma": 100.0}})
    # disabled distillation: the level is not used, so not checked
    Config.model_validate({"consistency": {"enabled": False, "mid_sigma": 100.0}})
