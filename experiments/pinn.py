"""Solve the heat or Burgers equation with a physics-informed network, against the exact one."""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import PositiveFloat, PositiveInt  # noqa: E402

import sdeml  # noqa: E402
from sdeml.run import ExperimentConfig, Run, Section, register  # noqa: E402
from sdeml.train import TrainConfig, train_model  # noqa: E402


class ProblemConfig(Section):
    name: Literal["heat", "burgers"] = "heat"
    alpha: PositiveFloat = 0.1  # heat: diffusivity
    nu: PositiveFloat = 0.05  # burgers: viscosity
    t1: PositiveFloat = 1.0


class PinnConfig(Section):
    width: PositiveInt = 32
    depth: PositiveInt = 3
    n_interior: PositiveInt = 1024  # fresh collocation points every step
    n_initial: PositiveInt = 128
    n_boundary: PositiveInt = 128


class Config(ExperimentConfig):
    experiment: Literal["pinn"] = "pinn"
    problem: ProblemConfig = ProblemConfig()
    pinn: PinnConfig = PinnConfig()
    train: TrainConfig = TrainConfig(
        steps=5000, lr=3e-3, schedule="cosine", log_every=100, ckpt_every=1000
    )


def build_model(cfg: Config, key) -> sdeml.PINN:
    return sdeml.PINN(cfg.pinn.width, cfg.pinn.depth, key=key)


@register(
    "pinn",
    Config,
    "PINN for the heat or Burgers equation, against the exact solution",
    smoke=("train.steps=30", "train.log_every=10", "train.ckpt_every=10", "pinn.n_interior=64"),
    build_model=build_model,
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    p = cfg.problem
    problem = (
        sdeml.pinn.Heat1D(p.alpha, p.t1) if p.name == "heat" else sdeml.pinn.Burgers1D(p.nu, p.t1)
    )
    k_model, k_train = jr.split(jr.key(cfg.seed))

    def batch_fn(key, step):
        c = cfg.pinn
        return sdeml.pinn.sample_collocation(
            problem, c.n_interior, c.n_initial, c.n_boundary, key=key
        )

    loss_fn = lambda u, points, key: sdeml.pinn.pinn_loss(u, problem, points)
    model = build_model(cfg, k_model)
    u, _, stats = train_model(model, loss_fn, batch_fn, cfg.train, key=k_train, run=run)

    err = sdeml.pinn.pinn_error(u, problem, n=128)
    run.save_arrays("solution", t=err["t"], x=err["x"], u=err["u"], exact=err["exact"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    extent = (float(err["x"][0]), float(err["x"][-1]), 0.0, p.t1)
    for ax, field, title in [
        (axes[0], err["exact"], "exact u(t, x)"),
        (axes[1], err["u"], "PINN u(t, x)"),
    ]:
        im = ax.imshow(field, origin="lower", extent=extent, aspect="auto", cmap="viridis")
        ax.set(title=title, xlabel="x", ylabel="t")
        fig.colorbar(im, ax=ax)
    im = axes[2].imshow(
        jnp.abs(err["u"] - err["exact"]), origin="lower", extent=extent, aspect="auto", cmap="magma"
    )
    axes[2].set(title=f"|error|, relative L2 = {float(err['rel_l2']):.2e}", xlabel="x", ylabel="t")
    fig.colorbar(im, ax=axes[2])
    run.savefig(fig, "solution")
    final = stats.last_metrics
    return {
        "rel_l2_error": float(err["rel_l2"]),
        "max_abs_error": float(err["max_abs"]),
        "final_loss": float(final["loss"]),
        "final_residual": float(final["residual"]),
    }
