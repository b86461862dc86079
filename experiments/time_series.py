"""Fit a trajectory from irregular, noisy observations; extrapolate to twice the training window.

Data: one trajectory of a classic system (Lotka–Volterra by default; also the damped oscillator
and the spiral) observed at ``n_obs`` random times in [0, T] with Gaussian noise. Two models are
trained on random windows of consecutive observations with the same loss and loop: a
`NeuralODE` (autonomous MLP field) and a discrete baseline, `StepModel` (a residual step
y_{k+1} = y_k + g(y_k, Δt_k)). Both are rolled out from the first observation to 2T on a regular
grid; the relative error on (T, 2T] measures extrapolation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, Setup, register
from sdeml.train import TrainConfig

if TYPE_CHECKING:  # annotations only: the module loads when a run starts
    import equinox as eqx


def _systems() -> dict[str, tuple[Any, tuple[float, float]]]:
    """The systems (built when a run starts, not at import) and their initial states."""
    return {
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

    @model_validator(mode="after")
    def _window_fits(self):
        return self.require_at_most("window", "n_obs", "a window is that many observations")


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

    # `seed` (the keys) and `train.lr` (a leaf of the optimiser state) enter as arrays (issue #19).
    # Not sweepable: `data.noise_std` and `data.t_train` (`add_noise` and `irregular_times` check
    # them in Python), the system, solver and tolerances (static fields of `NeuralODE`), sizes.
    sweep_keys: ClassVar[tuple[str, ...]] = ("seed", "train.lr")

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        Each training window is solved from its first point (up to 7 Tsit5 stages of the field's
        activations, kept for the backward pass); both models are rolled out on the evaluation grid.
        """
        b = 8 if self.x64 else 4
        d, m = self.data, self.model
        act = m.width * (m.depth + 1) * b  # one point's activations
        return {
            "observations (data.n_obs x 7 x B x 2: times, clean, noise, observed)": (
                d.n_obs * 7 * b * 2
            ),
            "evaluation rollouts (data.n_eval x 9 x B x 3: grid, truth, 2 models, plot copies)": (
                d.n_eval * 9 * b * 3
            ),
            "training windows (train.batch_size x data.window x model.width x (model.depth + 1) "
            "x 7 stages x B x 3)": self.train.batch_size * d.window * act * 7 * 3,
            "parameters, gradients, Adam moments, 2 models (model.width^2 x model.depth x B x 8)": (
                m.width**2 * m.depth * b * 8
            ),
        }


def build_model(cfg: Config, key) -> dict[str, eqx.Module]:
    """The two models compared: a neural ODE and a discrete step model of the same width."""
    import jax.random as jr

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
def main(cfg: Config, run: Run) -> dict[str, Any]:
    # Every grid point of a `sweep:` is one member of a batched state, trained by one vmapped
    # program per model (issue #19); each point's trained models are then evaluated.
    names = list(_SETUP_NAMES)
    trained = {
        name: run.train_grid(
            lambda c, name=name: _setup(c, name), _objective, cfg.train, name=name
        ).model
        for name in names
    }
    rows = [
        _evaluate(c, run.at(i), {n: run.member(m, i) for n, m in trained.items()})
        for i, c in enumerate(run.points())
    ]
    return run.collect(rows)


_SETUP_NAMES = ("neural_ode", "baseline")  # the order of `build_model`'s models


def _data(cfg: Config):
    """Observation times, noisy observations, evaluation grid and the true trajectory."""
    import jax.numpy as jnp
    import jax.random as jr

    d = cfg.data
    k_t, k_noise, _, _ = jr.split(jr.key(cfg.seed), 4)
    field, y0 = _systems()[d.system]
    y0 = jnp.asarray(y0)
    if d.irregular:
        ts = sdeml.neural_ode.irregular_times(0.0, d.t_train, d.n_obs, dtype=y0.dtype, key=k_t)
    else:
        ts = jnp.linspace(0.0, d.t_train, d.n_obs, dtype=y0.dtype)
    clean = sdeml.neural_ode.integrate(field, y0, ts)
    obs = sdeml.neural_ode.add_noise(clean, d.noise_std, key=k_noise)
    t_eval = jnp.linspace(0.0, 2 * d.t_train, d.n_eval, dtype=y0.dtype)
    return ts, obs, t_eval, sdeml.neural_ode.integrate(field, y0, t_eval)


def _setup(cfg: Config, name: str) -> Setup:
    import jax.random as jr

    _, _, k_model, k_train = jr.split(jr.key(cfg.seed), 4)
    ts, obs, _, _ = _data(cfg)
    return Setup(build_model(cfg, k_model)[name], k_train, (ts, obs))


def _objective(cfg: Config, data):
    ts, obs = data

    def batch_fn(key, step):
        return sdeml.neural_ode.sample_windows(
            ts, obs, cfg.train.batch_size, cfg.data.window, key=key
        )

    def loss_fn(model, batch, key):
        return sdeml.neural_ode.window_loss(model, *batch)

    return loss_fn, batch_fn


def _evaluate(cfg: Config, run: Run, models: dict[str, Any]) -> dict[str, float]:
    """One grid point's train-window and extrapolation errors, plot and rollouts."""
    import equinox as eqx
    import matplotlib.pyplot as plt

    d = cfg.data
    ts, obs, t_eval, truth = _data(cfg)
    results, preds = {}, {}
    for name, model in models.items():
        pred = eqx.filter_jit(lambda mdl: mdl(t_eval, obs[0]))(model)
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
