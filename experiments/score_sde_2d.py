"""Score-based generative modelling of a 2-D toy through a VP, sub-VP or VE SDE.

Trains a `TimeMLP` noise predictor with denoising score matching (through `sdeml.train`),
samples with reverse-SDE Euler-Maruyama, predictor-corrector, the probability-flow ODE and
DPM-Solver, and scores every sampler by the median-ratio MMD protocol of issue #7 (median over
seeds of MMD(generated, held-out) / median of MMD(data, data)); plots samples beside data, the
denoising trajectory, the learned density (PF-ODE likelihood on a grid) and the loss curve.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import Field, PositiveFloat, PositiveInt  # noqa: E402

import sdeml  # noqa: E402
from sdeml.run import ExperimentConfig, ExperimentError, Run, Section, TrainConfig, register  # noqa: E402
from sdeml.train import init_state, make_optimizer, make_step  # noqa: E402


class DataConfig(Section):
    name: Literal["8gaussians", "moons", "swissroll", "checkerboard", "circles", "mixture"] = (
        "moons"
    )


class SDEConfig(Section):
    name: Literal["vp", "subvp", "ve"] = "vp"
    beta_min: PositiveFloat = 0.1
    beta_max: PositiveFloat = 20.0
    sigma_min: PositiveFloat = 0.01
    sigma_max: PositiveFloat = 8.0
    eps: float = Field(1e-5, gt=0.0, lt=1.0)  # training cut-off


class ModelConfig(Section):
    width: PositiveInt = 256
    depth: PositiveInt = 3
    embed_scale: PositiveFloat = 4.0


class EvalConfig(Section):
    n_samples: PositiveInt = 2000
    n_seeds: PositiveInt = 3
    em_steps: PositiveInt = 1000
    pc_steps: PositiveInt = 500
    dpm_steps: PositiveInt = 6
    density_grid: int = Field(40, ge=0)  # 0: skip the PF-ODE density plot


class Config(ExperimentConfig):
    experiment: Literal["score_sde"] = "score_sde"
    data: DataConfig = DataConfig()
    sde: SDEConfig = SDEConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig(
        steps=6000,
        batch_size=512,
        lr=2e-3,
        schedule="cosine",
        ema_decay=0.999,
        log_every=200,
        ckpt_every=2000,
    )
    eval: EvalConfig = EvalConfig()


def _sde(cfg: SDEConfig):
    if cfg.name == "ve":
        return sdeml.get_sde("ve", sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)
    return sdeml.get_sde(cfg.name, beta_min=cfg.beta_min, beta_max=cfg.beta_max)


@register(
    "score_sde",
    Config,
    "score SDE on a 2-D toy: train, sample (EM/PC/ODE/DPM), MMD",
    smoke=(
        "train.steps=20",
        "train.log_every=10",
        "train.ckpt_every=20",
        "eval.n_samples=200",
        "eval.n_seeds=1",
        "eval.em_steps=20",
        "eval.pc_steps=10",
        "eval.density_grid=0",
        "model.width=32",
    ),
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    k_model, k_train, k_eval = jr.split(jr.key(cfg.seed), 3)
    try:
        sde = _sde(cfg.sde)
    except ValueError as e:
        raise ExperimentError(str(e)) from None
    net = sdeml.nn.TimeMLP(
        2, cfg.model.width, cfg.model.depth, embed_scale=cfg.model.embed_scale, key=k_model
    )
    model = sdeml.ScoreModel(net, sde, "eps")
    optimizer = make_optimizer(cfg.train)
    state = init_state(model, optimizer, k_train, ema_decay=cfg.train.ema_decay)

    def loss_fn(model, batch, key):
        return sdeml.dsm_loss(model, sde, batch, eps=cfg.sde.eps, key=key)

    def batch_fn(key, step):  # fresh i.i.d. data every step
        return sdeml.data.toy(cfg.data.name, cfg.train.batch_size, key=key)

    step_fn = make_step(loss_fn, optimizer, batch_fn, ema_decay=cfg.train.ema_decay)
    state = run.train(state, step_fn, cfg.train)
    model = state.ema_model if state.ema_model is not None else state.model

    n, ev = cfg.eval.n_samples, cfg.eval
    ref = [sdeml.data.toy(cfg.data.name, n, key=jr.fold_in(k_eval, 1000 + i)) for i in range(10)]
    bw = sdeml.metrics.median_bandwidth(ref[0]) * jnp.asarray(
        sdeml.metrics.DEFAULT_BANDWIDTH_FACTORS
    )

    def mmd(a, b):
        return sdeml.metrics.mmd(a, b, bw)

    floor = float(jnp.median(jnp.stack([mmd(ref[i], ref[i + 5]) for i in range(5)])))
    methods = {
        "em": dict(method="em", n_steps=ev.em_steps),
        "pc": dict(method="pc", n_steps=ev.pc_steps),
        "ode": dict(method="ode"),
        "dpm": dict(method="dpm", n_steps=ev.dpm_steps),
    }
    results: dict[str, float] = {"mmd_floor": floor}
    samples = {}
    for name, kw in run.progress(methods.items(), "sampling", total=len(methods)):
        # the model is an argument, not a closed-over constant (XLA would constant-fold it)
        draw = eqx.filter_jit(lambda m, k, kw=kw: sdeml.sample(m, sde, (n, 2), key=k, **kw))
        gen, nfe = [], 0
        for s in range(ev.n_seeds):
            r = draw(model, jr.fold_in(k_eval, s))
            gen.append(r.x)
            nfe = int(r.nfe)
        vals = [float(mmd(g, ref[i])) for i, g in enumerate(gen)]
        value = float(jnp.median(jnp.asarray(vals)))
        results[f"mmd_{name}"] = value
        results[f"mmd_ratio_{name}"] = value / floor
        results[f"nfe_{name}"] = nfe
        samples[name] = gen[0]
        run.log(
            cfg.train.steps, {f"mmd_ratio_{name}": value / floor, f"nfe_{name}": nfe}, tag="eval"
        )

    run.save_arrays("samples", data=ref[0], **samples)
    fig, axs = plt.subplots(1, 1 + len(samples), figsize=(3.2 * (1 + len(samples)), 3.2))
    lim = float(jnp.max(jnp.abs(ref[0]))) * 1.15
    for ax, (title, x) in zip(axs, [("data", ref[0])] + list(samples.items()), strict=True):
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=title, aspect="equal")
    run.savefig(fig, "samples")

    traj = eqx.filter_jit(
        lambda m, k: sdeml.sample(
            m, sde, (300, 2), method="em", n_steps=ev.em_steps, n_saves=6, key=k
        )
    )(model, jr.fold_in(k_eval, 99))
    fig, axs = plt.subplots(1, traj.path.shape[0], figsize=(2.6 * traj.path.shape[0], 2.6))
    for ax, x, t in zip(axs, traj.path, traj.ts, strict=True):
        ax.scatter(x[:, 0], x[:, 1], s=1)
        ax.set(title=f"t = {float(t):.2f}", aspect="equal")
    run.savefig(fig, "denoising")

    if ev.density_grid:
        g = jnp.linspace(-lim, lim, ev.density_grid)
        pts = jnp.stack(jnp.meshgrid(g, g), -1).reshape(-1, 2)
        loglik = eqx.filter_jit(
            jax.vmap(
                lambda m, x: sdeml.log_likelihood(m, sde, x, eps=1e-3, rtol=1e-4, atol=1e-4).logp,
                in_axes=(None, 0),
            )
        )
        ll = loglik(model, pts)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(
            jnp.exp(ll).reshape(len(g), len(g)), origin="lower", extent=(-lim, lim, -lim, lim)
        )
        ax.set_title("learned density (PF-ODE)")
        run.savefig(fig, "density")
        results["nll_nats"] = float(-jnp.mean(loglik(model, ref[0][:200])))
        results["bits_per_dim"] = float(sdeml.metrics.bits_per_dim(results["nll_nats"], 2))
    return results
