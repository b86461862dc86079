"""Solve the heat or Burgers equation with a physics-informed network, against the exact one."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import PositiveFloat, PositiveInt

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, Setup, register
from sdeml.train import TrainConfig


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


# `seed` (the keys) and `train.lr` (a leaf of the optimiser state) enter as arrays (issue #19).
# Not sweepable: the PDE's coefficients `problem.alpha`, `problem.nu`, `problem.t1` (checked in
# Python by `Heat1D` / `Burgers1D`), the problem, sizes.
SWEEP_KEYS = ("seed", "train.lr")


def build_model(cfg: Config, key) -> sdeml.PINN:
    return sdeml.PINN(cfg.pinn.width, cfg.pinn.depth, key=key)


def memory(cfg: Config) -> dict[str, float]:
    """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

    The PDE residual needs u_t, u_x and u_xx at every interior point: the network's activations
    with their first- and second-order tangents (about 4 copies), kept for the backward pass
    with their cotangents (x2); initial and boundary points need u alone.
    """
    b = 8 if cfg.x64 else 4
    c = cfg.pinn
    act = c.width * (c.depth + 1) * b  # one point's activations
    return {
        "residual activations (pinn.n_interior x pinn.width x (pinn.depth + 1) x 4 x B x 2)": (
            c.n_interior * act * 4 * 2
        ),
        "initial-condition activations (pinn.n_initial x pinn.width x (pinn.depth + 1) x B x 2)": (
            c.n_initial * act * 2
        ),
        "boundary activations (2 walls x pinn.n_boundary x pinn.width x (pinn.depth + 1) x B x "
        "2)": 2 * c.n_boundary * act * 2,
        "error grid (128^2 x pinn.width x (pinn.depth + 1) x B)": 128**2 * act,
        "parameters, gradients, Adam moments (pinn.width^2 x pinn.depth x B x 4)": (
            c.width**2 * c.depth * b * 4
        ),
    }


@register(
    "pinn",
    Config,
    "PINN for the heat or Burgers equation, against the exact solution",
    smoke=("train.steps=30", "train.log_every=10", "train.ckpt_every=10", "pinn.n_interior=64"),
    sweep_keys=SWEEP_KEYS,
    build_model=build_model,
    memory=memory,
)
def main(cfg: Config, run: Run) -> dict[str, Any]:
    # Every grid point of a `sweep:` is one member of a batched state, trained by one vmapped
    # program (issue #19); each point's trained PINN is then evaluated.
    models, _, stats = run.train_grid(_setup, _objective, cfg.train)
    final = stats.last_metrics  # per metric: a float, or one entry per grid point
    rows = []
    for i, c in enumerate(run.points()):
        last = {k: v[i] if run.sweep else v for k, v in final.items()}
        rows.append(_evaluate(c, run.at(i), run.member(models, i), last))
    return run.collect(rows)


def _problem(p: ProblemConfig):
    return (
        sdeml.pinn.Heat1D(p.alpha, p.t1) if p.name == "heat" else sdeml.pinn.Burgers1D(p.nu, p.t1)
    )


def _setup(cfg: Config) -> Setup:
    import jax.random as jr

    k_model, k_train = jr.split(jr.key(cfg.seed))
    return Setup(build_model(cfg, k_model), k_train)


def _objective(cfg: Config, data: None):
    problem, c = _problem(cfg.problem), cfg.pinn

    def batch_fn(key, step):
        return sdeml.pinn.sample_collocation(
            problem, c.n_interior, c.n_initial, c.n_boundary, key=key
        )

    loss_fn = lambda u, points, key: sdeml.pinn.pinn_loss(u, problem, points)
    return loss_fn, batch_fn


def _evaluate(cfg: Config, run: Run, u, final: dict[str, float]) -> dict[str, float]:
    """One grid point's errors against the exact solution, and its plot."""
    import jax.numpy as jnp
    import matplotlib.pyplot as plt

    p = cfg.problem
    problem = _problem(p)
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
    return {
        "rel_l2_error": float(err["rel_l2"]),
        "max_abs_error": float(err["max_abs"]),
        "final_loss": float(final["loss"]),
        "final_residual": float(final["residual"]),
    }
