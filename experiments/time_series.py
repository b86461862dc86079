"""Fit a trajectory from irregular, noisy observations; extrapolate to twice the training window.

Data: one trajectory of a classic system (Lotka–Volterra by default; also the damped oscillator
and the spiral) observed at ``n_obs`` random times in [0, T] with Gaussian noise. Two models are
trained on random windows of consecutive observations with the same loss and loop: a
`NeuralODE` (autonomous MLP field) and a discrete baseline, `StepModel` (a residual step
y_{k+1} = y_k + g(y_k, Δt_k)). Both are rolled out from the first observation to 2T on a regular
grid; the relative error on (T, 2T] measures extrapolation.
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import equinox as eqx  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt  # noqa: E402

import sdeml  # noqa: E402
from sdeml.run import ExperimentConfig, Run, Section, register  # noqa: E402
from sdeml.train import TrainConfig, train_model  # noqa: E402

SYSTEMS = {
    "lotka_volterra": (
        sdeml.dynamics.LotkaVolterra(alpha=1.5, beta=1.0, gamma=3.0, delta=1.0),
        (1.0, 1.0),
    ),
    "damped_oscillator": (sdeml.dynamics.DampedOscillator(omega=2.0, zeta=0.1), (1.0, 0.0)),
    "spiral": (sdeml.neural_ode.spiral_field, (2.0, 0.0)),
}


class DataConfig(Section):
    system: Literal["lotka_volterra", "damped_oscillator", "spiral"] = "lotka_volterra"
    t_train: PositiveFloat = 5.0  # observations in [0, t_train]; extrapolation to 2 t_train
    n_obs: int = Field(default=100, ge=4)
    irregular: bool = True
    noise_std: NonNegativeFloat = 0.02
    window: int = Field(default=10, ge=2)
    n_eval: PositiveInt = 199  # regular grid on [0, 2 t_train]; spacing = the mean training gap


class ModelConfig(Section):
    width: PositiveInt = 64
    depth: PositiveInt = 2
    solver: Literal["tsit5", "dopri5", "bosh3"] = "tsit5"
    rtol: PositiveFloat = 1e-5
    atol: PositiveFloat = 1e-6


class Config(ExperimentConfig):
    experiment: Literal["time_series"] = "time_series"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig(
        steps=1500, batch_size=16, lr=3e-3, schedule="cosine", log_every=100, ckpt_every=500
    )


def build_model(cfg: Config, key) -> dict[str, eqx.Module]:
    """The two models compared: a neural ODE and a discrete step model of the same width."""
    m = cfg.model
    k_node, k_base = jr.split(key)
    node = sdeml.NeuralODE(
        sdeml.MLPField(2, m.width, m.depth, time_dependent=False, key=k_node),
        solver=m.solver,
        rtol=m.rtol,
        atol=m.atol,
    )
    return {
        "neural_ode": node,
        "baseline": sdeml.neural_ode.StepModel(2, m.width, m.depth, key=k_base),
    }


@register(
    "time_series",
    Config,
    "neural ODE vs a discrete step model on irregular noisy data, extrapolated to 2x the window",
    smoke=("train.steps=4", "train.log_every=2", "data.n_obs=20", "data.n_eval=40"),
    build_model=build_model,
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    d = cfg.data
    k_t, k_noise, k_model, k_train = jr.split(jr.key(cfg.seed), 4)
    field, y0 = SYSTEMS[d.system]
    y0 = jnp.asarray(y0)
    if d.irregular:
        ts = sdeml.neural_ode.irregular_times(0.0, d.t_train, d.n_obs, dtype=y0.dtype, key=k_t)
    else:
        ts = jnp.linspace(0.0, d.t_train, d.n_obs, dtype=y0.dtype)
    clean = sdeml.neural_ode.integrate(field, y0, ts)
    obs = sdeml.neural_ode.add_noise(clean, d.noise_std, key=k_noise)
    t_eval = jnp.linspace(0.0, 2 * d.t_train, d.n_eval, dtype=y0.dtype)
    truth = sdeml.neural_ode.integrate(field, y0, t_eval)

    def batch_fn(key, step):
        return sdeml.neural_ode.sample_windows(ts, obs, cfg.train.batch_size, d.window, key=key)

    def loss_fn(model, batch, key):
        return sdeml.neural_ode.window_loss(model, *batch)

    results, preds = {}, {}
    for name, model in build_model(cfg, k_model).items():
        trained = train_model(model, loss_fn, batch_fn, cfg.train, key=k_train, run=run, name=name)
        pred = eqx.filter_jit(lambda mdl: mdl(t_eval, obs[0]))(trained.model)
        extra = t_eval > d.t_train
        preds[name] = pred
        results[f"{name}_train_rel_error"] = float(
            sdeml.neural_ode.relative_error(pred[~extra], truth[~extra])
        )
        results[f"{name}_extrap_rel_error"] = float(
            sdeml.neural_ode.relative_error(pred[extra], truth[extra])
        )
    results["node_beats_baseline"] = float(
        results["neural_ode_extrap_rel_error"] < results["baseline_extrap_rel_error"]
    )

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, ax in enumerate(axes):
        ax.plot(t_eval, truth[:, i], "k-", lw=1, label="truth")
        ax.plot(ts, obs[:, i], "k.", ms=3, label="observations")
        ax.plot(t_eval, preds["neural_ode"][:, i], "b--", label="neural ODE")
        ax.plot(t_eval, preds["baseline"][:, i], "r:", label="step model")
        ax.axvline(d.t_train, color="grey", lw=0.8)
        ax.set(xlabel="t", title=f"{d.system}: component {i}")
    axes[0].legend(fontsize=8)
    run.savefig(fig, "extrapolation")
    run.save_arrays("rollouts", t=t_eval, truth=truth, ts_obs=ts, obs=obs, **preds)
    return results
