"""The classic neural-ODE spiral demo: learn dy/dt = (y^3) A from windows of one trajectory.

Data: one trajectory of the spiral (``sdeml.neural_ode.spiral_field``) from y0 = (2, 0) on [0, 25]
(1000 points). A `NeuralODE` with the demo's field (MLP 2 -> 50 -> 2, tanh, on y^3) is trained on
random windows with the shared loop (RMSprop), then solved over the whole interval; a gradient
audit of the trained model compares the checkpointed and backsolve adjoints with finite
differences.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import Field, PositiveFloat, PositiveInt  # noqa: E402

import sdeml  # noqa: E402
from sdeml.run import ExperimentConfig, Run, Section, register  # noqa: E402
from sdeml.train import TrainConfig, train_model  # noqa: E402


class DataConfig(Section):
    n_points: PositiveInt = 1000
    t1: PositiveFloat = 25.0
    window: int = Field(default=10, ge=2)


class ModelConfig(Section):
    width: PositiveInt = 50
    solver: Literal[
        "euler", "heun", "midpoint", "ralston", "bosh3", "tsit5", "dopri5", "dopri8"
    ] = "dopri5"
    adjoint: Literal["checkpoint", "backsolve", "direct"] = "checkpoint"
    rtol: PositiveFloat = 1e-7
    atol: PositiveFloat = 1e-9
    max_steps: PositiveInt = 4096


class AuditConfig(Section):
    enabled: bool = True
    n_windows: PositiveInt = 2
    n_directions: PositiveInt = 4
    rtol: PositiveFloat = 1e-8  # the audit setting (float64 where x64 is on)


class Config(ExperimentConfig):
    experiment: Literal["neural_ode_spiral"] = "neural_ode_spiral"
    data: DataConfig = DataConfig()
    x64: bool = True  # accuracy claims (the audit, tight tolerances) are made in float64
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig(
        steps=1000, batch_size=20, lr=1e-3, optimizer="rmsprop", log_every=50, ckpt_every=500
    )
    audit: AuditConfig = AuditConfig()


def build_model(cfg: Config, key) -> sdeml.NeuralODE:
    """A neural ODE whose field is an MLP of y^3 (the spiral's drift is cubic), autonomous."""
    m = cfg.model
    field = sdeml.MLPField(2, m.width, 1, power=3, time_dependent=False, key=key)
    return sdeml.NeuralODE(
        field, solver=m.solver, adjoint=m.adjoint, rtol=m.rtol, atol=m.atol, max_steps=m.max_steps
    )


@register(
    "neural_ode_spiral",
    Config,
    "the torchdiffeq spiral demo: a neural ODE fitted to windows of dy/dt = (y^3) A",
    smoke=("train.steps=4", "train.log_every=2", "data.n_points=200", "audit.enabled=false"),
    build_model=build_model,
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    k_model, k_train, k_audit = jr.split(jr.key(cfg.seed), 3)
    ts = jnp.linspace(0.0, cfg.data.t1, cfg.data.n_points)
    ys = sdeml.neural_ode.integrate(sdeml.neural_ode.spiral_field, jnp.array([2.0, 0.0]), ts)

    def batch_fn(key, step):
        return sdeml.neural_ode.sample_windows(
            ts, ys, cfg.train.batch_size, cfg.data.window, key=key
        )

    def loss_fn(model, batch, key):
        return sdeml.neural_ode.window_loss(model, *batch)

    node = build_model(cfg, k_model)
    model = train_model(node, loss_fn, batch_fn, cfg.train, key=k_train, run=run).model
    sol = eqx.filter_jit(lambda m: m.solve(ts, ys[0]))(model)
    rel = float(sdeml.neural_ode.relative_error(sol.ys, ys))
    mae = float(jnp.mean(jnp.abs(sol.ys - ys)))

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(ys[:, 0], ys[:, 1], "g-", label="true")
    ax[0].plot(sol.ys[:, 0], sol.ys[:, 1], "b--", label="neural ODE")
    ax[0].set(xlabel="y1", ylabel="y2", title="phase portrait")
    ax[0].legend()
    ax[1].plot(ts, ys, "g-")
    ax[1].plot(ts, sol.ys, "b--")
    ax[1].set(xlabel="t", title="trajectories (green: true, blue: learnt)")
    run.savefig(fig, "spiral")
    run.save_arrays("trajectory", ts=ts, true=ys, pred=sol.ys)
    out = {"full_trajectory_mae": mae, "full_trajectory_rel_error": rel, "nfe": float(sol.nfe)}

    if cfg.audit.enabled:
        audit_node = sdeml.NeuralODE(
            model.func, solver="dopri5", rtol=cfg.audit.rtol, atol=cfg.audit.rtol, max_steps=100_000
        )
        tw, yw = sdeml.neural_ode.sample_windows(
            ts, ys, cfg.audit.n_windows, cfg.data.window, key=k_audit
        )
        audit = sdeml.neural_ode.gradient_audit(
            lambda mdl: sdeml.neural_ode.window_loss(mdl, tw, yw),
            audit_node,
            n_directions=cfg.audit.n_directions,
            key=k_audit,
        )
        run.summary["gradient_audit"] = audit.table()
        for name, r in audit.adjoints.items():
            out[f"audit_{name}_fd_rel_error"] = r.fd_rel_error
            out[f"audit_{name}_ms_per_grad"] = 1e3 * r.time_s
            if r.peak_bytes is not None:
                out[f"audit_{name}_peak_kib"] = r.peak_bytes / 1024
        out["audit_checkpoint_vs_backsolve"] = audit.pairwise[("checkpoint", "backsolve")]
    return out
