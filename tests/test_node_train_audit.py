"""Audit regressions of sdeml.neural_ode, sdeml.train and the config overrides: wrong numbers
(logged means, the EMA in float64, integer states, YAML 1.1 numbers) and argument checks, each
against a reference derived here (hand recursions, NumPy loops)."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import optax
import pytest

from sdeml.neural_ode import (
    EulerResNet,
    NeuralODE,
    StepModel,
    add_noise,
    check_times,
    gradient_audit,
    irregular_times,
    relative_error,
    spiral_field,
    window_loss,
)
from sdeml.run import ConfigError
from sdeml.run._config import apply_overrides, parse_override, validate
from sdeml.train import (
    CheckpointDir,
    TrainConfig,
    TrainingError,
    fit,
    init_state,
    make_step,
    warmup_cosine,
)

B = np.array([1.0, 3.0])


def _sgd_problem():
    """SGD at 0.1 on L(w) = |w - b|^2 from w = 0, and its losses and gradient norms by hand."""
    opt = optax.sgd(0.1)
    step_fn = make_step(lambda w, b, key: jnp.sum((w - b) ** 2), opt, lambda k, s: jnp.asarray(B))
    w, losses, norms = np.zeros(2), [], []
    for _ in range(12):
        losses.append(np.sum((w - B) ** 2))
        norms.append(np.linalg.norm(2 * (w - B)))  # the gradient 2 (w - b), its global L2 norm
        w = w - 0.1 * 2 * (w - B)
    return init_state(jnp.zeros(2), opt, jr.key(0)), step_fn, losses, norms


@pytest.mark.parametrize("ckpt_every", [0, 2, 3])
def test_fit_logs_the_mean_over_log_every_steps(tmp_path, ckpt_every):
    # ckpt_every 2 or 3 makes the compiled chunks (gcd with log_every = 4) shorter than log_every:
    # the logged value was the mean over the last chunk only (2.42 off at step 4)
    state, step_fn, losses, norms = _sgd_problem()
    logged = []
    fit(
        state, step_fn, 12, log_every=4, ckpt_every=ckpt_every,
        ckpt_dir=tmp_path if ckpt_every else None, progress=False,
        on_log=lambda step, m: logged.append((step, m)),
    )  # fmt: skip
    assert [s for s, _ in logged] == [4, 8, 12]
    for s, m in logged:
        np.testing.assert_allclose(m["loss"], np.mean(losses[s - 4 : s]), rtol=1e-13)
        np.testing.assert_allclose(m["grad_norm"], np.mean(norms[s - 4 : s]), rtol=1e-13)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(n_steps=2.5), "n_steps"),
        (dict(n_steps=True), "n_steps"),
        (dict(n_steps=-1), "n_steps"),
        (dict(log_every=True), "log_every"),
        (dict(log_every=2.5), "log_every"),
        (dict(log_every=0), "log_every"),
        (dict(ckpt_every=1.5), "ckpt_every"),
        (dict(ckpt_every=-1), "ckpt_every"),
    ],
)
def test_fit_refuses_counts_that_are_not_ints(kw, name):
    state, step_fn, _, _ = _sgd_problem()
    kw = {"n_steps": 3, **kw}
    with pytest.raises(ValueError, match=f"`{name}`"):
        fit(state, step_fn, kw.pop("n_steps"), progress=False, **kw)


def test_fit_refuses_checkpoint_options_without_a_folder():
    # both ran without a word: no checkpoint written, or a run started over instead of resuming
    state, step_fn, _, _ = _sgd_problem()
    with pytest.raises(ValueError, match="`ckpt_every=2` needs `ckpt_dir`"):
        fit(state, step_fn, 4, ckpt_every=2, progress=False)
    with pytest.raises(ValueError, match="`resume=True` needs `ckpt_dir`"):
        fit(state, step_fn, 4, resume=True, progress=False)


def test_fit_takes_numpy_ints():
    state, step_fn, _, _ = _sgd_problem()
    out, stats = fit(state, step_fn, np.int64(3), log_every=np.int32(2), progress=False)
    assert int(out.step) == 3 and stats.steps == 3


def test_fit_does_not_claim_a_checkpoint_it_never_wrote():
    # a state passed in at step 3 without `resume`: no checkpoint exists, but the message named
    # "the last good checkpoint is at step 3"
    state, step_fn, _, _ = _sgd_problem()
    state, _ = fit(state, step_fn, 3, progress=False)
    bad = make_step(lambda w, b, key: jnp.sum(w) * jnp.nan, optax.sgd(0.1), lambda k, s: None)
    with pytest.raises(TrainingError, match="no checkpoint had been written yet") as e:
        fit(state, bad, 6, progress=False)
    assert e.value.checkpoint_step is None and e.value.step == 4


def test_fit_stops_on_a_nan_gradient_with_a_finite_loss(tmp_path):
    # sqrt(c w) with c = 0 from step index 4 on: the loss stays finite (sqrt(0) = 0), its
    # gradient is inf * 0 = NaN
    def loss_fn(w, b, key):
        c = jnp.where(b >= 4, 0.0, 1.0)
        return jnp.sum((w - 1.0) ** 2) + 1e-3 * jnp.sum(jnp.sqrt(c * w))

    step_fn = make_step(loss_fn, optax.sgd(0.1), lambda key, s: s)
    state = init_state(jnp.full(2, 2.0), optax.sgd(0.1), jr.key(0))
    with pytest.raises(TrainingError, match="non-finite grad_norm at step 5") as e:
        fit(state, step_fn, 10, log_every=2, ckpt_every=2, ckpt_dir=tmp_path, progress=False)
    assert e.value.step == 5 and e.value.checkpoint_step == 4
    assert CheckpointDir(tmp_path).steps() == [2, 4]


def test_warmup_cosine_values_and_its_int_checks(monkeypatch):
    schedule = warmup_cosine(2.0, 10, 110)
    for s in (0, 3, 10, 47, 110, 150):  # the docstring's formula, then 0 after T
        ref = 2.0 * s / 10 if s < 10 else 1.0 * (1 + math.cos(math.pi * min(s - 10, 100) / 100))
        assert math.isclose(float(schedule(s)), ref, rel_tol=1e-12, abs_tol=1e-15)
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    # warmup_steps=2.5 ran as 2 (int() truncated it)
    for kw, name in ((dict(warmup_steps=2.5), "warmup_steps"), (dict(steps=True), "steps")):
        with pytest.raises(ValueError, match=f"`{name}`"):
            warmup_cosine(1.0, **{"warmup_steps": 2, "steps": 10, **kw})


def test_ema_follows_its_recursion_in_float64():
    # the decay was read in float32 (0.999 -> 0.99900001): 3.7e-10 off after 30 steps
    opt = optax.sgd(0.1)
    step_fn = make_step(lambda w, b, key: jnp.sum((w - b) ** 2), opt, lambda k, s: jnp.asarray(B))
    state = init_state(jnp.zeros(2), opt, jr.key(0), ema_decay=0.999)
    w, ema = np.zeros(2), np.zeros(2)
    for t in range(30):
        state, _ = step_fn(state)
        w = w - 0.1 * 2 * (w - B)
        d = min(0.999, (1 + t) / (10 + t))  # the warmed-up decay of `ema_weight`
        ema = d * ema + (1 - d) * w
    np.testing.assert_allclose(np.asarray(state.ema_model), ema, rtol=1e-14)


def test_checkpoint_dir_refuses_a_negative_keep():
    # keep=-1 deleted every checkpoint, the one just written too
    for keep in (-1, 1.5):
        with pytest.raises(ValueError, match="`keep`"):
            CheckpointDir("unused", keep=keep)


def test_check_times_refuses_nan_and_inf():
    for bad in ([0.0, np.nan, 1.0], [0.0, np.inf], [np.nan]):
        with pytest.raises(ValueError, match="`ts` must be finite"):
            check_times(jnp.asarray(bad))
    with pytest.raises(Exception, match="finite and strictly increasing"):
        jax.jit(check_times)(jnp.array([0.0, np.nan, 1.0])).block_until_ready()


def test_spiral_field_of_an_integer_state(monkeypatch):
    # an integer state truncated A to [[0, 2], [-2, 0]]: (0, 2) instead of the first row of A
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    assert spiral_field(0.0, jnp.array([1, 0])).tolist() == [-0.1, 2.0]


def test_add_noise_checks_sigma_and_takes_integer_observations(monkeypatch):
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    ys = jnp.zeros((3, 2))
    for bad in (float("nan"), -0.1, float("inf")):
        with pytest.raises(ValueError, match="`sigma`"):
            add_noise(ys, bad, key=jr.key(0))
    with pytest.raises(ValueError, match="`sigma` must be a scalar"):
        add_noise(ys, jnp.array([0.1, 0.2, 0.3]), key=jr.key(0))
    ints = add_noise(jnp.zeros((3, 2), jnp.int32), 0.5, key=jr.key(0))
    np.testing.assert_array_equal(ints, add_noise(ys, 0.5, key=jr.key(0)))


def test_euler_resnet_is_an_euler_loop_and_takes_integer_inputs(monkeypatch):
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    f = lambda t, h, args: jnp.sin(t) * h + args
    net = EulerResNet(f, 7, 0.3, 1.1)
    h, a = np.array([1.0, -2.0]), np.array([0.1, 0.2])
    dt, hs = 0.8 / 7, [h]
    for k in range(7):  # h_{k+1} = h_k + dt f(t_k, h_k), t_k = t0 + k dt
        h = h + dt * (np.sin(0.3 + k * dt) * h + a)
        hs.append(h)
    np.testing.assert_allclose(net.trajectory(jnp.array([1.0, -2.0]), a), hs, rtol=1e-14)
    # an integer input failed inside the scan with a TypeError about its carry
    np.testing.assert_allclose(net(jnp.array([1, -2]), a), hs[-1], rtol=1e-14)
    with pytest.raises(ValueError, match="`t1`"):
        EulerResNet(f, 4, 0.0, float("inf"))


def test_shape_checks_of_the_time_series_helpers(monkeypatch):
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    # (n, d) against (n, 1) broadcast to a relative error of 0
    with pytest.raises(ValueError, match="same shape"):
        relative_error(jnp.ones((5, 2)), jnp.ones((5, 1)))
    tw, yw = jnp.tile(jnp.arange(3.0), (2, 1)), jnp.ones((2, 3, 2))
    with pytest.raises(ValueError, match="predicts windows of shape"):
        window_loss(lambda t, y0: jnp.ones((3, 1)), tw, yw)
    with pytest.raises(ValueError, match="`dim`"):
        StepModel(2.5, key=jr.key(0))  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="`t1`"):
        irregular_times(0.0, float("inf"), 5, key=jr.key(0))


def test_neural_ode_refuses_an_infinite_dt0():
    with pytest.raises(ValueError, match="`dt0`"):
        NeuralODE(lambda t, y, args: -y, solver="rk4", dt0=float("inf"))


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(adjoints="backsolve"), "adjoints"),
        (dict(adjoints=("checkpoint", "checkpoint")), "adjoints"),
        (dict(n_directions=2.5), "n_directions"),
        (dict(n_directions=True), "n_directions"),
        (dict(repeats=0), "repeats"),
        (dict(fd_eps=0.0), "fd_eps"),
        (dict(fd_eps=float("nan")), "fd_eps"),
    ],
)
def test_gradient_audit_argument_checks(monkeypatch, kw, name):
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
    node = NeuralODE(lambda t, y, args: -y)
    with pytest.raises(ValueError, match=f"`{name}`"):
        gradient_audit(lambda m: jnp.sum(m(jnp.array([0.0, 1.0]), jnp.ones(1))), node,
                       key=jr.key(0), **kw)  # fmt: skip


@pytest.mark.parametrize(
    "text, value",
    [
        ("train.lr=1e-3", 1e-3),  # YAML 1.1: the string '1e-3'
        ("train.lr=-1e-3", -1e-3),
        ("train.lr=+2E-4", 2e-4),
        ("seed=010", 10),  # YAML 1.1: octal 8
        ("seed=1:30", "1:30"),  # YAML 1.1: sexagesimal 90
        ("seed=-7", -7),
        ("sweep={train.lr: [1e-3, 3e-3]}", {"train.lr": [1e-3, 3e-3]}),
        ("x64=true", True),
        ("a.b=[1, 2.5]", [1, 2.5]),
    ],
)
def test_override_values_are_read_as_yaml_1_2(text, value):
    key, got = parse_override(text)
    assert key == text.partition("=")[0] and got == value and type(got) is type(value)


def test_overrides_reach_the_config_with_their_types():
    from sdeml.run import _registry

    _registry.load_builtin()
    Config = _registry.get("quickstart_ode").config
    raw = {"experiment": "quickstart_ode"}
    cfg = validate(Config, apply_overrides(raw, ["train.steps=010", "seed=3"]), "x")
    assert cfg.train.steps == 10 and cfg.seed == 3  # 8 with YAML 1.1
    cfg = validate(Config, apply_overrides(raw, ["train.steps=1e3"]), "x")
    assert cfg.train.steps == 1000
    for bad in ("seed=1:30", "train.steps=1e10", "train.steps=2.5"):
        key = bad.partition("=")[0]
        with pytest.raises(ConfigError, match=f"{key}:"):
            validate(Config, apply_overrides(raw, [bad]), "x")


def test_train_config_refuses_a_float_beyond_int32_for_an_int_key():
    # 1.0e10 for `steps` became the int 10**10 past the int32 check (issue #17)
    with pytest.raises(ValueError, match="out of range"):
        TrainConfig(steps=1e10)  # pyright: ignore[reportArgumentType]
    assert TrainConfig(steps=1000.0).steps == 1000  # pyright: ignore[reportArgumentType]
    assert math.isclose(TrainConfig(lr=1e3).lr, 1e3)  # a float key keeps its floats


def test_step_refuses_aux_metrics_that_hide_its_own():
    # an aux "loss" replaced the loss in the logged metrics (and "grad_norm" the norm), silently
    opt = optax.sgd(0.1)
    batch = lambda k, s: jnp.asarray(B)

    def run(aux):
        step = make_step(lambda w, b, key: (jnp.sum((w - b) ** 2), aux(w)), opt, batch)
        return step(init_state(jnp.zeros(2), opt, jr.key(0)))

    _, metrics = run(lambda w: {"mean_w": jnp.mean(w)})
    assert float(metrics["loss"]) == 10.0 and float(metrics["mean_w"]) == 0.0
    for name in ("loss", "grad_norm"):
        with pytest.raises(ValueError, match=f"\\['{name}'\\] would replace"):
            run(lambda w, name=name: {name: jnp.sum(w)})
    with pytest.raises(ValueError, match="must be a dict"):
        run(lambda w: jnp.sum(w))
    with pytest.raises(ValueError, match="must be scalars"):
        run(lambda w: {"w": w})
