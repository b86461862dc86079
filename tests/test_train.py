"""The training loop: vmap over seeds and learning rates, NaN guard, exact resume, checkpoints,
the warmed-up EMA configured in one place, every optimiser and schedule compiled and vmapped."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import sdeml
from sdeml.train import (
    CheckpointDir,
    TrainConfig,
    TrainingError,
    fit,
    init_state,
    load_checkpoint,
    make_optimizer,
    make_step,
    save_checkpoint,
    set_learning_rate,
    train_model,
    train_step,
    train_sweep,
)

CFG = TrainConfig(steps=60, batch_size=32, lr=1e-2, log_every=10, ckpt_every=20)


def _problem(cfg=CFG, poison_at=None):
    optimizer = make_optimizer(cfg)

    def loss_fn(model, batch, key):
        x, step = batch
        noise = 0.01 * jr.normal(key, x.shape)  # uses the loss key, so key handling is tested
        loss = jnp.mean((jax.vmap(model)(x + noise) - jnp.sin(3 * x)) ** 2)
        if poison_at is not None:
            loss = jnp.where(step + 1 == poison_at, jnp.nan, loss)
        return loss, {"x_mean": jnp.mean(x)}

    def batch_fn(key, step):
        return jr.uniform(key, (cfg.batch_size, 1), minval=-2, maxval=2), step

    def new_state(seed):
        k_model, k_train = jr.split(jr.key(seed))
        model = eqx.nn.MLP(1, 1, 16, 2, activation=jnp.tanh, key=k_model)
        return init_state(model, optimizer, k_train, ema_decay=0.9)

    return new_state, make_step(loss_fn, optimizer, batch_fn)


def _params(state):
    return jax.tree.leaves(eqx.filter(state.model, eqx.is_inexact_array))


@pytest.mark.slow  # 7-13 s: moved from the default run (12-07: default run < 10 min)
def test_vmap_over_seeds_matches_separate_runs():
    new_state, step_fn = _problem()
    seeds = jnp.arange(4)
    batched = eqx.filter_vmap(new_state)(seeds)
    batched, _ = fit(batched, eqx.filter_vmap(step_fn), CFG.steps, log_every=10, progress=False)
    for i in range(4):
        single, _ = fit(new_state(i), step_fn, CFG.steps, log_every=10, progress=False)
        for a, b in zip(_params(single), _params(batched), strict=True):
            # float64: batched and unbatched matmuls differ only in rounding (~1e-16 per op)
            np.testing.assert_allclose(b[i], a, rtol=1e-9, atol=1e-12)


@pytest.mark.slow  # the seeds version stays in the default run
def test_vmap_over_learning_rates_matches_separate_runs():
    new_state, step_fn = _problem()
    lrs = jnp.array([1e-3, 3e-3, 1e-2])

    def with_lr(lr):
        s = new_state(0)
        return eqx.tree_at(lambda s: s.opt_state.hyperparams["learning_rate"], s, lr)

    batched, _ = fit(eqx.filter_vmap(with_lr)(lrs), eqx.filter_vmap(step_fn), 30, progress=False)
    for i, lr in enumerate([1e-3, 3e-3, 1e-2]):
        cfg = CFG.model_copy(update={"lr": lr})
        new_i, step_i = _problem(cfg)
        single, _ = fit(new_i(0), step_i, 30, progress=False)
        for a, b in zip(_params(single), _params(batched), strict=True):
            np.testing.assert_allclose(b[i], a, rtol=1e-9, atol=1e-12)


def test_loss_decreases_and_stats(tmp_path):
    new_state, step_fn = _problem()
    logged = []
    state, stats = fit(
        new_state(0),
        step_fn,
        CFG.steps,
        log_every=10,
        progress=False,
        on_log=lambda s, m: logged.append((s, m)),
    )
    assert [s for s, _ in logged] == [10, 20, 30, 40, 50, 60]
    assert logged[-1][1]["loss"] < 0.7 * logged[0][1]["loss"]
    assert set(logged[0][1]) == {"loss", "grad_norm", "x_mean"}
    assert int(state.step) == CFG.steps and stats.steps == CFG.steps
    assert stats.compile_time_s > 0 and stats.step_time_s > 0


def test_resume_is_bit_identical(tmp_path):
    new_state, step_fn = _problem()
    kw = dict(log_every=10, ckpt_every=20, progress=False)
    full, _ = fit(new_state(0), step_fn, CFG.steps, ckpt_dir=tmp_path / "a", **kw)
    # "Interrupted" run: stops at 40 (a checkpoint), then a fresh process-like restart resumes.
    fit(new_state(0), step_fn, 40, ckpt_dir=tmp_path / "b", **kw)
    resumed, stats = fit(
        new_state(0), step_fn, CFG.steps, ckpt_dir=tmp_path / "b", resume=True, **kw
    )
    assert stats.start_step == 40 and stats.steps == 20
    leaves = lambda s: jax.tree.leaves(eqx.filter(s, eqx.is_array))
    for a, b in zip(leaves(full), leaves(resumed), strict=True):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jr.key_data(a), jr.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


class _Scaled(eqx.Module):
    w: jax.Array
    scale: float  # a non-array field: part of the compiled program, not of its inputs

    def __call__(self, x):
        return self.scale * self.w * x


@pytest.mark.slow  # 11 s: moved from the default run (12-07, later: default run < 10 min)
def test_fit_reuses_its_program_only_for_the_same_step_and_kind_of_state():
    opt = optax.sgd(0.1)
    step_fn = make_step(lambda m, x, key: jnp.mean((m(x) - 2.0 * x) ** 2), opt, lambda k, s: 1.0)
    state = lambda scale, w=None: init_state(
        _Scaled(jnp.ones(3) if w is None else w, scale), opt, jr.key(0)
    )
    first, s1 = fit(state(1.0), step_fn, 7, log_every=3, progress=False)
    again, s2 = fit(state(1.0), step_fn, 7, log_every=3, progress=False)
    fresh, s3 = fit(state(1.0), lambda s: step_fn(s), 7, log_every=3, progress=False)
    assert (s1.compiled, s2.compiled, s3.compiled) == (True, False, True)
    assert s2.compile_time_s < 0.1 * s1.compile_time_s
    for other in (again, fresh):
        np.testing.assert_array_equal(np.asarray(other.model.w), np.asarray(first.model.w))
    # a run continued from the returned state (placed by the program) reuses it too
    _, s4 = fit(first, step_fn, 14, log_every=3, progress=False)
    assert not s4.compiled
    # a process crowded with compiled programs frees fit's too (sdeml.core._memory)
    from sdeml.core._memory import release_compiled_if_crowded

    assert release_compiled_if_crowded(fraction=0.0)
    assert fit(state(1.0), step_fn, 7, log_every=3, progress=False)[1].compiled
    # what the program depends on compiles anew: a non-array field, a shape, a dtype, the chunk
    other_scale, s5 = fit(state(0.5), step_fn, 7, log_every=3, progress=False)
    _, s6 = fit(state(1.0, jnp.ones(4)), step_fn, 7, log_every=3, progress=False)
    _, s7 = fit(state(1.0, jnp.ones(3, jnp.float32)), step_fn, 7, log_every=3, progress=False)
    _, s8 = fit(state(1.0), step_fn, 7, log_every=7, progress=False)
    assert all(s.compiled for s in (s5, s6, s7, s8))
    expected = np.ones(3)  # SGD on the mean of (0.5 w_i x - 2 x)^2 over i = 1..3, at x = 1
    for _ in range(7):
        expected = expected - 0.1 * (2 / 3) * 0.5 * (0.5 * expected - 2.0)
    np.testing.assert_allclose(np.asarray(other_scale.model.w), expected, rtol=1e-12)


def test_nan_guard_names_step_and_keeps_last_checkpoint(tmp_path):
    new_state, step_fn = _problem(poison_at=47)
    with pytest.raises(TrainingError, match="non-finite loss at step 47") as info:
        fit(
            new_state(0),
            step_fn,
            CFG.steps,
            log_every=10,
            ckpt_every=20,
            ckpt_dir=tmp_path,
            progress=False,
        )
    assert info.value.step == 47 and info.value.checkpoint_step == 40
    ckpts = CheckpointDir(tmp_path)
    assert ckpts.latest() == 40 and ckpts.steps() == [20, 40]
    good = ckpts.load(40, new_state(0))
    assert int(good.step) == 40
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in _params(good))


def test_solver_failure_inside_step_stops_cleanly():
    import diffrax

    optimizer = optax.sgd(1e-3)

    def loss_fn(model, batch, key):  # a stiff solve that cannot finish in 8 steps
        term = diffrax.ODETerm(lambda t, y, a: -1e4 * model * (y - jnp.cos(t)))
        sol = diffrax.diffeqsolve(
            term,
            diffrax.Tsit5(),
            0.0,
            10.0,
            1e-3,
            jnp.ones(()),
            stepsize_controller=diffrax.PIDController(1e-8, 1e-8),
            max_steps=8,
        )
        return (sol.ys[-1] - 1.0) ** 2

    state = init_state(jnp.ones(()), optimizer, jr.key(0))
    step_fn = make_step(loss_fn, optimizer, lambda k, s: None)
    with pytest.raises(TrainingError, match="training failed in steps 1-5.*max_steps|maximum"):
        fit(state, step_fn, 5, log_every=5, progress=False)


def _ema_params(state):
    return jax.tree.leaves(eqx.filter(state.ema_model, eqx.is_inexact_array))


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
def test_ema_is_the_warmed_up_moving_average():
    # the decay given once, to init_state, is what the step uses: d_t = min(0.9, (1+t)/(10+t))
    new_state, step_fn = _problem()
    state = new_state(0)
    assert state.ema_decay == 0.9
    for t in range(12):
        new, _ = step_fn(state)
        d = min(0.9, (1 + t) / (10 + t))
        for e0, p1, e1 in zip(_ema_params(state), _params(new), _ema_params(new), strict=True):
            # the weight is computed in float32 (a scalar shared by every leaf)
            np.testing.assert_allclose(e1, d * e0 + (1 - d) * p1, rtol=1e-6, atol=1e-9)
        state = new
    assert float(sdeml.train.ema_weight(0.9, 0)) == pytest.approx(0.9)  # 1 - min(0.9, 1/10)
    assert float(sdeml.train.ema_weight(0.9, 10**6)) == pytest.approx(0.1, rel=1e-6)


def test_ema_configured_in_one_place():
    # issue 17: the decay had to be given to init_state AND make_step (to one only: no EMA or
    # an error), and TrainConfig.ema_decay was read by neither
    optimizer = optax.sgd(0.1)
    loss_fn = lambda m, b, k: jnp.sum((m - 1.0) ** 2)
    state = init_state(jnp.zeros(3), optimizer, jr.key(0), ema_decay=0.5)
    state, _ = fit(state, make_step(loss_fn, optimizer, lambda k, s: None), 5, progress=False)
    assert state.ema_model is not None
    assert not np.allclose(state.ema_model, state.model)  # updated, and lagging the model
    assert np.all(np.asarray(state.ema_model) > 0.0)

    cfg = TrainConfig(steps=5, lr=0.1, optimizer="sgd", ema_decay=0.5, log_every=5)
    out = train_model(jnp.zeros(3), loss_fn, lambda k, s: None, cfg, key=jr.key(0), progress=False)
    assert out.state.ema_decay == 0.5 and out.state.ema_model is not None
    np.testing.assert_array_equal(out.model, out.state.ema_model)  # the EMA model by default
    raw = train_model(
        jnp.zeros(3), loss_fn, lambda k, s: None, cfg, key=jr.key(0), ema=False, progress=False
    )
    np.testing.assert_array_equal(raw.model, out.state.model)
    none = cfg.model_copy(update={"ema_decay": None})
    plain = train_model(
        jnp.zeros(3), loss_fn, lambda k, s: None, none, key=jr.key(0), progress=False
    )
    assert plain.state.ema_model is None and plain.state.ema_decay is None
    with pytest.raises(ValueError, match="ema_decay"):
        init_state(jnp.zeros(3), optimizer, jr.key(0), ema_decay=1.0)


def _regression(cfg):
    """A fixed small regression problem: y = sin(3x) + noise with an MLP; returns (train, test)."""
    x_test = jnp.linspace(-2.0, 2.0, 512)[:, None]

    def test_loss(model):
        return float(jnp.mean((jax.vmap(model)(x_test) - jnp.sin(3 * x_test)) ** 2))

    def loss_fn(model, batch, key):
        x, y = batch
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    def batch_fn(key, step):
        kx, kn = jr.split(key)
        x = jr.uniform(kx, (cfg.batch_size, 1), minval=-2, maxval=2)
        return x, jnp.sin(3 * x) + 0.1 * jr.normal(kn, x.shape)

    model = eqx.nn.MLP(1, 1, 32, 2, activation=jnp.tanh, key=jr.key(0))
    return train_model(model, loss_fn, batch_fn, cfg, key=jr.key(1), progress=False), test_loss


@pytest.mark.parametrize("decay", [0.99, 0.999])
def test_short_run_ema_model_is_as_good_as_raw(decay):
    # issue 17: with the EMA started at the initial weights and never warmed up or debiased, a
    # 200-step run at decay 0.999 kept 82% of the random initial weights in its "EMA model"
    cfg = TrainConfig(steps=200, batch_size=64, lr=1e-2, ema_decay=decay, log_every=200)
    out, test_loss = _regression(cfg)
    ema, raw = test_loss(out.model), test_loss(out.state.model)
    init = test_loss(eqx.nn.MLP(1, 1, 32, 2, activation=jnp.tanh, key=jr.key(0)))
    assert raw < 0.2 * init, (raw, init)  # the problem is learnt in 200 steps
    assert ema <= 1.05 * raw, (ema, raw)


def test_train_step_signature_and_jit():
    optimizer = optax.adam(1e-2)
    model = eqx.nn.Linear(2, 1, key=jr.key(0))
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    step = eqx.filter_jit(train_step(lambda m, b, k: jnp.mean(jax.vmap(m)(b) ** 2), optimizer))
    batch = jnp.ones((8, 2))
    model2, opt_state2, metrics = step(model, opt_state, batch, jr.key(1))
    assert set(metrics) == {"loss", "grad_norm"}
    assert float(jnp.mean(jax.vmap(model2)(batch) ** 2)) < float(metrics["loss"])


def test_checkpoint_roundtrip_and_mismatch(tmp_path):
    new_state, _ = _problem()
    state = new_state(3)
    save_checkpoint(tmp_path / "c.eqx", state)
    back = load_checkpoint(tmp_path / "c.eqx", new_state(4))
    np.testing.assert_array_equal(jr.key_data(back.key), jr.key_data(state.key))
    for a, b in zip(_params(state), _params(back), strict=True):
        np.testing.assert_array_equal(a, b)
    other = init_state(
        eqx.nn.MLP(1, 1, 8, 2, key=jr.key(0)), make_optimizer(CFG), jr.key(0), ema_decay=0.9
    )
    with pytest.raises(ValueError, match="shape"):
        load_checkpoint(tmp_path / "c.eqx", other)


def test_checkpoint_roundtrip_of_bfloat16_numpy_scalars_and_keys(tmp_path):
    # bfloat16 leaves (stored by NumPy as raw "|V2" bytes) were refused as a dtype mismatch, a
    # NumPy scalar came back as a 0-d array (refused by equinox), and key data of another shape
    # or implementation failed with no word of what differed
    tree = {
        "w": jnp.array([1.5, -2.25, 3.0], jnp.bfloat16),
        "s": np.float32(2.5),
        "k": jr.split(jr.key(7), 2),
    }
    save_checkpoint(tmp_path / "c.eqx", tree)
    like = {"w": jnp.zeros(3, jnp.bfloat16), "s": np.float32(0), "k": jr.split(jr.key(0), 2)}
    back = load_checkpoint(tmp_path / "c.eqx", like)
    assert back["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(back["w"], np.float32), [1.5, -2.25, 3.0])
    assert type(back["s"]) is np.float32 and back["s"] == 2.5
    np.testing.assert_array_equal(jr.key_data(back["k"]), jr.key_data(tree["k"]))
    with pytest.raises(ValueError, match=r"dtype \|V2, expected \(3,\) and float16"):
        load_checkpoint(tmp_path / "c.eqx", dict(like, w=jnp.zeros(3, jnp.float16)))
    with pytest.raises(ValueError, match=r"key data of shape \(2, 2\)"):
        load_checkpoint(tmp_path / "c.eqx", dict(like, k=jr.key(0)))
    with pytest.raises(ValueError, match="implementation rbg"):
        load_checkpoint(tmp_path / "c.eqx", dict(like, k=jr.split(jr.key(0, impl="rbg"), 2)))


def test_sweep_members_take_jr_key_of_any_int_seed():
    # a negative seed, or one past 2**32, failed with NumPy's OverflowError (a uint32 array)
    # although `init_states` promises init(jr.key(seed)) and a single run takes any int
    seeds = [-1, 2**32 + 3, 7]
    states = sdeml.train.init_states(lambda k: jr.key_data(k), seeds)
    np.testing.assert_array_equal(states, np.stack([jr.key_data(jr.key(s)) for s in seeds]))
    cfg = TrainConfig(steps=2, optimizer="sgd", lr=0.25, log_every=2)
    loss_fn = lambda w, batch, key: jnp.sum((w - 1.0) ** 2)
    out = train_sweep(
        lambda k: jr.normal(k, (2,)), loss_fn, lambda k, s: None, cfg, seeds=[-3], progress=False
    )
    one = train_model(
        jr.normal(jr.split(jr.key(-3))[0], (2,)), loss_fn, lambda k, s: None, cfg,
        key=jr.split(jr.key(-3))[1], progress=False,
    )  # fmt: skip
    np.testing.assert_array_equal(out.model[0], one.model)
    for bad in ([], [1.5], [[0, 1]]):
        with pytest.raises(ValueError, match="`seeds` must be a non-empty list of ints"):
            sdeml.train.init_states(lambda k: jr.key_data(k), bad)
    # traced seeds (a sweep's jitted init) give the same keys, also as int64 under x64, where a
    # cast to uint32 dropped the high word: -1 became 2**32 - 1's key
    with jax.enable_x64(True):
        seeds64 = jnp.asarray([-1, 2**32 + 3, 7], jnp.int64)
        traced = jax.jit(lambda s: sdeml.train.init_states(lambda k: jr.key_data(k), s))(seeds64)
        expect = np.stack([jr.key_data(jr.key(int(s))) for s in seeds64])
    np.testing.assert_array_equal(traced, expect)
    with pytest.raises(ValueError, match="`seeds` must be a 1-D integer array"):
        jax.jit(lambda s: sdeml.train.init_states(lambda k: jr.key_data(k), s))(jnp.ones(2))


OPTIMIZERS = ["adam", "adamw", "sgd", "rmsprop"]
SCHEDULES = ["constant", "cosine", "warmup_cosine"]


# Every optimizer and every schedule in the default run (a diagonal of the grid), the full grid in
# the slow run.
_DEFAULT_GRID = {
    ("adam", "constant"),
    ("adamw", "cosine"),
    ("sgd", "constant"),
    ("rmsprop", "warmup_cosine"),
}


@pytest.mark.parametrize(
    "name,schedule",
    [
        pytest.param(n, s, marks=() if (n, s) in _DEFAULT_GRID else pytest.mark.slow)
        for n in OPTIMIZERS
        for s in SCHEDULES
    ],
)
@pytest.mark.slow  # 16 compiles, ~45 s in all
def test_every_optimizer_and_schedule_compiled_and_vmapped(name, schedule):
    # issue 17: warmup_cosine raised TracerBoolConversionError once compiled (CLI, fit, sweeps)
    cfg = TrainConfig(
        optimizer=name,
        schedule=schedule,
        warmup_steps=3,
        steps=12,
        lr=1e-2,
        batch_size=8,
        momentum=0.5 if name in ("sgd", "rmsprop") else 0.0,
        weight_decay=1e-4 if name == "adamw" else 0.0,
        grad_clip=1.0,
        log_every=4,
    )
    opt = make_optimizer(cfg)
    loss_fn = lambda m, x, k: jnp.mean((jax.vmap(m)(x) - jnp.sin(x)) ** 2)
    batch_fn = lambda k, s: jr.normal(k, (cfg.batch_size, 1))
    model = eqx.nn.MLP(1, 1, 8, 1, key=jr.key(0))
    state = init_state(model, opt, jr.key(1))
    single, _ = fit(state, make_step(loss_fn, opt, batch_fn), cfg.steps, progress=False)
    changed = [
        not np.array_equal(a, b) for a, b in zip(_params(state), _params(single), strict=True)
    ]
    assert all(changed) and all(bool(jnp.all(jnp.isfinite(p))) for p in _params(single))

    # a learning-rate sweep: one vmapped program; member i equals the single run at lrs[i]
    lrs = [1e-2, 3e-3]
    swept = train_sweep(
        lambda k: eqx.nn.MLP(1, 1, 8, 1, key=jr.key(0)),
        loss_fn,
        batch_fn,
        cfg,
        seeds=[5, 5],
        lrs=lrs,
        progress=False,
    )
    for i, lr in enumerate(lrs):
        one = train_model(
            eqx.nn.MLP(1, 1, 8, 1, key=jr.key(0)),
            loss_fn,
            batch_fn,
            cfg.model_copy(update={"lr": lr}),
            key=jr.split(jr.key(5))[1],
            progress=False,
        )
        for a, b in zip(_params(one.state), _params(swept.state), strict=True):
            np.testing.assert_allclose(b[i], a, rtol=1e-9, atol=1e-12)


def test_warmup_cosine_values():
    cfg = TrainConfig(schedule="warmup_cosine", warmup_steps=4, steps=12, lr=0.5)
    state = make_optimizer(cfg).init({"w": jnp.ones(2)})
    sched = sdeml.train.warmup_cosine(0.5, 4, 12)
    got = jax.jit(jax.vmap(sched))(jnp.arange(14))
    want = [0.5 * s / 4 for s in range(4)] + [
        0.25 * (1 + np.cos(np.pi * min(s - 4, 8) / 8)) for s in range(4, 14)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # the peak is traced (a state leaf); under jit the schedule gives the same values
    peak = state.hyperparams["learning_rate"]  # pyright: ignore[reportAttributeAccessIssue]
    traced = jax.jit(lambda p, c: sdeml.train.warmup_cosine(p, 4, 12)(c))(peak, 6)
    np.testing.assert_allclose(traced, want[6], rtol=1e-6)
    swept = set_learning_rate(
        eqx.filter_vmap(lambda k: init_state(jnp.ones(2), make_optimizer(cfg), k))(
            jr.split(jr.key(0), 2)
        ),
        [0.5, 0.25],
    )
    assert swept.opt_state.hyperparams["learning_rate"].shape == (2,)


def test_optimizer_choices():
    for name in ["adam", "adamw", "sgd", "rmsprop"]:
        for schedule in ["constant", "cosine", "warmup_cosine"]:
            cfg = TrainConfig(
                optimizer=name, schedule=schedule, warmup_steps=5, steps=20, grad_clip=1.0
            )
            opt = make_optimizer(cfg)
            params = {"w": jnp.ones(3)}
            opt_state = opt.init(params)
            for _ in range(2):  # warmup_cosine starts from a learning rate of 0
                updates, opt_state = opt.update({"w": jnp.ones(3)}, opt_state, params)
            assert bool(jnp.all(updates["w"] < 0)), (name, schedule)  # pyright: ignore
    with pytest.raises(ValueError, match="weight_decay"):
        make_optimizer(TrainConfig(optimizer="adam", weight_decay=0.1))


def test_make_optimizer_refuses_an_unknown_schedule_and_a_warmup_past_the_end():
    from types import SimpleNamespace

    # "anything with the same fields": a misspelt schedule was built as warmup_cosine, silently
    # (a learning rate of 0 at the first step)
    fields = dict(optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, steps=10,
                  warmup_steps=0, grad_clip=None)  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown schedule 'cosin'; valid: constant, cosine, "):
        make_optimizer(SimpleNamespace(schedule="cosin", **fields))
    # a warm-up longer than the run: the rate climbed to 0.45 of `lr` at the last step and never
    # reached the peak the config names
    late = dict(fields, schedule="warmup_cosine", lr=1.0, warmup_steps=20)
    with pytest.raises(ValueError, match=r"`warmup_steps` \(20\) must be < `steps` \(10\)"):
        make_optimizer(SimpleNamespace(**late))
    # TrainConfig refuses it itself, so `sdeml check` does, before a run directory exists
    with pytest.raises(ValueError, match=r"warmup_steps=20 must be < steps=10 with schedule "):
        TrainConfig(**late)
    # the rates of the schedules that are built, at every step (plain SGD: update = -rate)
    for schedule, want in [
        ("cosine", [0.5 * (1 + np.cos(np.pi * min(s, 10) / 10)) for s in range(12)]),
        ("warmup_cosine", [s / 4 if s < 4 else 0.5 * (1 + np.cos(np.pi * min(s - 4, 6) / 6))
                           for s in range(12)]),
    ]:  # fmt: skip
        cfg = TrainConfig(optimizer="sgd", lr=1.0, schedule=schedule, warmup_steps=4, steps=10)
        opt = make_optimizer(cfg)
        state, got = opt.init(jnp.zeros(1)), []
        for _ in range(12):
            updates, state = opt.update(jnp.ones(1), state)
            got.append(-float(updates[0]))
        # 1e-7: optax's linear warm-up divides the int32 step count in float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)


def test_public_namespace():
    assert sdeml.train.fit is fit
    assert hasattr(sdeml.run, "register")
    assert sdeml.train.TrainConfig is TrainConfig
    assert not hasattr(sdeml.run, "TrainConfig")  # the CLI's config layer is not its home


def test_jit_step_matches_filter_jit_and_recompiles_for_a_new_layout():
    from sdeml.train import init_state, jit_step, make_step

    opt = optax.adam(0.1)
    model = eqx.nn.MLP(2, 1, 8, 1, activation=jnp.tanh, key=jr.key(0))
    loss = lambda m, b, k: jnp.mean((jax.vmap(m)(b) - 1.0) ** 2)
    step = make_step(loss, opt, lambda k, i: jr.normal(k, (16, 2)))
    fast, slow = jit_step(step), eqx.filter_jit(step)
    a = b = init_state(model, opt, jr.key(1))
    for _ in range(3):
        (a, ma), (b, mb) = fast(a), slow(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.inexact):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert float(ma["loss"]) == pytest.approx(float(mb["loss"]), rel=1e-6)
    # another static leaf (the activation) is another program, not the cached one
    relu = eqx.tree_at(lambda s: s.model.activation, a, jax.nn.relu)
    out, _ = fast(relu)
    assert out.model.activation is jax.nn.relu and int(out.step) == 4
    # a non-array leaf is compiled in: an unhashable one is refused with a message
    with pytest.raises(TypeError, match="hashable; the state holds set"):
        jit_step(lambda s: s)((jnp.ones(2), {1, 2}))
