"""Score-based generative modelling of the scikit-learn 8x8 digits with a small U-Net.

Trains `UNet8` (noise parameterisation, dropout, EMA) by denoising score matching through
`sdeml.train`, samples with the reverse-SDE Euler-Maruyama or predictor-corrector sampler, and
scores the samples with the cached digits classifier (`sdeml.train.digits_classifier`, through
`sdeml.metrics.digits_scores`): mean confidence, class histogram and its total variation to
uniform, Fréchet distance on classifier features (beside the train-vs-test value of real images)
and the nearest-neighbour memorisation ratio. Also reports bits/dim of test images through the
PF-ODE (Hutchinson).
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, register
from sdeml.train import TrainConfig


class SDEConfig(Section):
    name: Literal["vp", "subvp", "ve"] = "vp"
    beta_min: PositiveFloat = 0.1
    beta_max: PositiveFloat = 20.0
    sigma_min: PositiveFloat = 0.01
    sigma_max: PositiveFloat = 16.0
    eps: float = Field(default=1e-3, gt=0.0, lt=1.0)


class ModelConfig(Section):
    width: PositiveInt = 32
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    dequantise: bool = True  # augmentation: uniform noise within a pixel level


class EvalConfig(Section):
    n_samples: PositiveInt = 1000
    sampler: Literal["em", "pc"] = "em"
    n_steps: PositiveInt = 500
    n_likelihood: NonNegativeInt = 64  # test images for bits/dim (0: skip)


class Config(ExperimentConfig):
    experiment: Literal["score_sde_digits"] = "score_sde_digits"
    sde: SDEConfig = SDEConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig(
        steps=4000,
        batch_size=128,
        lr=2e-3,
        schedule="cosine",
        warmup_steps=0,
        ema_decay=0.999,
        log_every=200,
        ckpt_every=1000,
    )
    eval: EvalConfig = EvalConfig()

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        `UNet8` holds about 30 feature maps of width x 8 x 8 per image (the 4x4 and 2x2 levels have
        twice the channels on a quarter of the pixels) and about 560 x width^2 parameters.
        """
        b = 8 if self.x64 else 4
        w, ev = self.model.width, self.eval
        act = w * 8 * 8 * 30 * b  # one image's activations
        return {
            "training activations (train.batch_size x model.width x 8 x 8 x 30 maps x B x 3)": (
                self.train.batch_size * act * 3
            ),
            "sampler activations and samples (eval.n_samples x (model.width x 8 x 8 x 30 + 64 x 4) "
            "x B)": ev.n_samples * (act + 64 * 4 * b),
            "nearest-neighbour distances (eval.n_samples x 1797 digits x B x 2)": (
                ev.n_samples * 1797 * b * 2
            ),
            "likelihood solves (eval.n_likelihood x 4 probes x model.width x 8 x 8 x 30 maps x B x "
            "7 stages)": ev.n_likelihood * 4 * act * 7,
            "parameters, gradients, Adam moments, EMA (560 x model.width^2 x B x 5)": (
                560 * w**2 * b * 5
            ),
        }


def _sde(cfg: SDEConfig):
    if cfg.name == "ve":
        return sdeml.VESDE(cfg.sigma_min, cfg.sigma_max)
    return sdeml.diffusion.get_sde(cfg.name, beta_min=cfg.beta_min, beta_max=cfg.beta_max)


def build_model(cfg: Config, key) -> sdeml.diffusion.ScoreModel:
    """A `UNet8` noise predictor (with dropout) inside a `ScoreModel` for the configured SDE."""
    net = sdeml.nn.UNet8(1, cfg.model.width, dropout=cfg.model.dropout, key=key)
    return sdeml.diffusion.ScoreModel(net, _sde(cfg.sde), "eps")


@register(
    "score_sde_digits",
    Config,
    "score SDE on 8x8 digits: U-Net, classifier metrics",
    smoke=(
        "train.steps=4",
        "train.log_every=2",
        "train.ckpt_every=4",
        "model.width=8",
        "eval.n_samples=20",
        "eval.n_steps=4",
        "eval.n_likelihood=0",
    ),
    build_model=build_model,
    per_point=True,
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib.pyplot as plt

    from sdeml.train import digits_classifier, train_model

    k_model, k_train, k_eval = jr.split(jr.key(cfg.seed), 3)
    sde = _sde(cfg.sde)
    digits = sdeml.data.load_digits()  # the default float dtype, as the network
    level = 2.0 / 16.0

    def batch_fn(key, step):
        kb, ku = jr.split(key)
        x = sdeml.data.minibatch(digits.x_train, kb, cfg.train.batch_size)
        if cfg.model.dequantise:  # x + U[-1/2, 1/2) level: the dequantised density
            x = x + level * (jr.uniform(ku, x.shape, x.dtype) - 0.5)
        return x

    def loss_fn(model, batch, key):
        return sdeml.dsm_loss(model, sde, batch, eps=cfg.sde.eps, key=key)

    model = build_model(cfg, k_model)
    model = train_model(model, loss_fn, batch_fn, cfg.train, key=k_train, run=run).model

    ev = cfg.eval
    # the model is an argument, not a closed-over constant (XLA would constant-fold it)
    res = eqx.filter_jit(
        lambda m, k: sdeml.sample(
            m,
            sde,
            (ev.n_samples, 1, 8, 8),
            method=ev.sampler,
            n_steps=ev.n_steps,
            eps=cfg.sde.eps,
            key=k,
        )
    )(model, k_eval)
    x = jnp.clip(res.x, -1.0, 1.0)
    scores = sdeml.metrics.digits_scores(x, digits_classifier())
    run.save_arrays("samples", x=x)
    out: dict[str, float] = {k: v for k, v in scores.items() if not isinstance(v, list)}
    out["frechet_over_test"] = out["frechet"] / out["frechet_test"]
    out["nfe"] = int(res.nfe)
    run.save_json("class_hist", {"class_hist": scores["class_hist"]})

    fig, axs = plt.subplots(8, 8, figsize=(6, 6))
    for i, ax in enumerate(axs.ravel()):  # up to 64 samples; empty cells when fewer
        if i < len(x):
            ax.imshow(x[i, 0], cmap="gray_r", vmin=-1, vmax=1)
        ax.axis("off")
    run.savefig(fig, "samples")

    path = run.dir / "metrics.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r.get("tag") == run.point_name("model")]  # this point's
        steps = [r["step"] for r in rows if "loss" in r]
        if steps:
            fig, ax = plt.subplots(figsize=(4, 3))
            ax.plot(steps, [r["loss"] for r in rows if "loss" in r])
            ax.set(xlabel="step", ylabel="DSM loss", yscale="log")
            run.savefig(fig, "loss")

    if ev.n_likelihood:
        xs = digits.x_test[: ev.n_likelihood]
        keys = jr.split(jr.fold_in(k_eval, 1), ev.n_likelihood)
        ll = eqx.filter_jit(
            jax.vmap(
                lambda m, x, k: (
                    sdeml.log_likelihood(
                        m,
                        sde,
                        x,
                        divergence="hutchinson",
                        n_probes=4,
                        eps=cfg.sde.eps,
                        rtol=1e-3,
                        atol=1e-3,
                        key=k,
                    ).logp
                ),
                in_axes=(None, 0, 0),
            )
        )(model, xs, keys)
        nll = float(-jnp.mean(ll))
        out["nll_nats"] = nll
        out["bits_per_dim"] = float(
            sdeml.metrics.bits_per_dim(nll, 64, n_levels=17, data_range=17 * level)
        )
    return out
