"""The classic neural-ODE spiral demo: learn dy/dt = (y^3) A from windows of one trajectory.

Data: one trajectory of the spiral (``sdeml.neural_ode.spiral_field``) from y0 = (2, 0) on [0, 25]
(1000 points). A `NeuralODE` with the demo's field (MLP 2 -> 50 -> 2, tanh, on y^3) is trained on
random windows with the shared loop (RMSprop), then solved over the whole interval; a gradient
audit of the trained model compares the checkpointed and backsolve adjoints with finite
differences.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, Setup, register
from sdeml.train import TrainConfig


class DataConfig(Section):
    n_points: PositiveInt = 1000
    t1: PositiveFloat = 25.0
    window: int = Field(default=10, ge=2)

    @model_validator(mode="after")
    def _window_fits(self):
        return self.require_at_most("window", "n_points", "a window is that many points")


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

    # `seed` (the keys), `train.lr` (a leaf of the optimiser state) and the data's time span
    # `data.t1` (the grid's end, a fixed number of points) enter as arrays (issue #19). Not
    # sweepable: the solver, adjoint and tolerances (static fields of `NeuralODE`), sizes.
    sweep_keys: ClassVar[tuple[str, ...]] = ("seed", "train.lr", "data.t1")

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        Each window is solved from its first point with up to 7 solver stages of the field's
        activations; backpropagation keeps about sqrt(2 x model.max_steps) checkpoints per window
        (binomial checkpointing) and recomputes one step's stages at a time.
        """
        b = 8 if self.x64 else 4
        d, m, tr, au = self.data, self.model, self.train, self.audit
        per_point = (m.width * 2 + 2 * 7) * b  # hidden layer and its tanh, 7 stages of the state
        checkpoints = math.sqrt(2 * m.max_steps)
        out: dict[str, float] = {
            "trajectories: data, solve, rollout, plot copies (data.n_points x 2 x 8 B x 4)": (
                d.n_points * 2 * 8 * 4
            ),
            "training windows (train.batch_size x data.window x model.width x 2 x 7 stages "
            "x B x 3)": (tr.batch_size * d.window * per_point * 7 * 3),
            "backprop checkpoints (train.batch_size x sqrt(2 x model.max_steps) x 8 x B)": (
                tr.batch_size * checkpoints * 8 * b
            ),
            "parameters, gradients, RMSprop state (4 x model.width x B x 4)": 4 * m.width * b * 4,
        }
        if au.enabled:
            out[
                "gradient audit windows (audit.n_windows x data.window x model.width x 2 x 7 "
                "stages x B x 3)"
            ] = au.n_windows * d.window * per_point * 7 * 3
            out[
                "gradient audit directions (audit.n_directions x (5 x model.width + 2) parameters "
                "x 8 B x 2)"
            ] = au.n_directions * (5 * m.width + 2) * 8 * 2
        return out


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
def main(cfg: Config, run: Run) -> dict[str, Any]:
    # a sweep's grid points train as one vmapped program (issue #19), then each is evaluated
    return run.evaluate_points(_evaluate, run.train_grid(_setup, _objective, cfg.train).model)


def _data(cfg: Config):
    """The true spiral on its time grid (``data.t1`` may be a traced array)."""
    import jax.numpy as jnp

    ts = jnp.linspace(0.0, cfg.data.t1, cfg.data.n_points)
    return ts, sdeml.neural_ode.integrate(sdeml.neural_ode.spiral_field, jnp.array([2.0, 0.0]), ts)


def _setup(cfg: Config) -> Setup:
    import jax.random as jr

    k_model, k_train, _ = jr.split(jr.key(cfg.seed), 3)
    return Setup(build_model(cfg, k_model), k_train, _data(cfg))


def _objective(cfg: Config, data):
    ts, ys = data

    def batch_fn(key, step):
        return sdeml.neural_ode.sample_windows(
            ts, ys, cfg.train.batch_size, cfg.data.window, key=key
        )

    def loss_fn(model, batch, key):
        return sdeml.neural_ode.window_loss(model, *batch)

    return loss_fn, batch_fn


def _evaluate(cfg: Config, run: Run, model) -> dict[str, float]:
    """One grid point's trained model: full-trajectory errors, plots and the gradient audit."""
    import equinox as eqx
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib.pyplot as plt

    k_audit = jr.split(jr.key(cfg.seed), 3)[2]
    ts, ys = _data(cfg)
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
