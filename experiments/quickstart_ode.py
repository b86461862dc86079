"""Learn the vector field of a linear ODE from noisy samples, then integrate it.

Data: states x ~ U([-2, 2]^2) with targets A x + noise, A = [[-0.1, 2], [-2, -0.1]] (a stable
spiral). A small MLP f_θ is fitted by the shared training loop; the learned ODE dx/dt = f_θ(x)
is then solved with `sdeml.solve_ode` and compared with the closed form x(t) = expm(A t) x0
(`sdeml.ode.linear_ode_solution`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, register
from sdeml.train import TrainConfig

if TYPE_CHECKING:  # annotations only: the module loads when a run starts
    import equinox as eqx

A = ((-0.1, 2.0), (-2.0, -0.1))  # the spiral's matrix (plain data: no JAX at import)


class DataConfig(Section):
    box: PositiveFloat = 2.0  # states are drawn from U([-box, box]^2)
    noise_std: NonNegativeFloat = 0.05  # observation noise on dx/dt


class ModelConfig(Section):
    width: PositiveInt = 64
    depth: PositiveInt = 2


class EvalConfig(Section):
    t0: float = 0.0  # integrate the learned ODE on [t0, t1]
    t1: float = 10.0
    n_traj: PositiveInt = Field(default=8, le=64)
    n_test: PositiveInt = 4096
    seed: int = 1234  # test points and initial states: the same for every training seed

    @model_validator(mode="after")
    def _interval(self) -> EvalConfig:
        if self.t1 <= self.t0:
            raise ValueError(f"t1 must be greater than t0 (got t0={self.t0}, t1={self.t1})")
        return self


class Config(ExperimentConfig):
    experiment: Literal["quickstart_ode"] = "quickstart_ode"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig(
        steps=3000, batch_size=256, lr=3e-3, schedule="cosine", log_every=100, ckpt_every=500
    )
    eval: EvalConfig = EvalConfig()

    sweep_keys: ClassVar[tuple[str, ...]] = ("seed", "train.lr")

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        Per sweep member (`check_memory` multiplies by the grid points).
        """
        b = 8 if self.x64 else 4
        m, e = self.model, self.eval
        act = m.width * (m.depth + 1) * b  # one point's activations
        return {
            "training activations (train.batch_size x model.width x (model.depth + 1) x B x 3)": (
                self.train.batch_size * act * 3
            ),
            "test field (eval.n_test x (model.width x (model.depth + 1) + 6) x B)": (
                e.n_test * (act + 6 * b)
            ),
            "parameters, gradients, Adam moments (model.width^2 x model.depth x B x 4)": (
                m.width**2 * m.depth * b * 4
            ),
            "trajectories (eval.n_traj x 200 x 2 x B x 4: learned, exact, errors)": (
                e.n_traj * 200 * 2 * b * 4
            ),
        }


def _sample(key, n, cfg: DataConfig):
    import jax.numpy as jnp
    import jax.random as jr

    kx, kn = jr.split(key)
    x = jr.uniform(kx, (n, 2), minval=-cfg.box, maxval=cfg.box)
    return x, x @ jnp.asarray(A).T + cfg.noise_std * jr.normal(kn, (n, 2))


def build_model(cfg: Config, key) -> eqx.nn.MLP:
    """The vector field f_θ: an MLP R^2 -> R^2 with tanh activations."""
    import equinox as eqx
    import jax.numpy as jnp

    return eqx.nn.MLP(2, 2, cfg.model.width, cfg.model.depth, activation=jnp.tanh, key=key)


@register(
    "quickstart_ode",
    Config,
    "fit an MLP vector field to a linear ODE, integrate it, compare with expm",
    smoke=("train.steps=40", "train.log_every=10", "train.ckpt_every=20", "eval.n_traj=2"),
    build_model=build_model,
)
def main(cfg: Config, run: Run) -> dict[str, Any]:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib.pyplot as plt

    from sdeml.train import train_sweep

    def loss_fn(model, batch, key):
        x, y = batch
        return jnp.mean(jnp.sum((jax.vmap(model)(x) - y) ** 2, axis=-1))

    def batch_fn(key, step):
        return _sample(key, cfg.train.batch_size, cfg.data)

    # Every grid point of a `sweep:` (seeds x learning rates) is one member of a batched state,
    # trained by one vmapped, device-sharded program; without a sweep there is one member.
    seeds, lrs = run.sweep_values("seed"), run.sweep_values("train.lr")
    models, _, stats = train_sweep(
        lambda k: build_model(cfg, k), loss_fn, batch_fn, cfg.train, seeds=seeds, lrs=lrs, run=run
    )

    k_test, k_x0 = jr.split(jr.key(cfg.eval.seed))
    x_test = jr.uniform(k_test, (cfg.eval.n_test, 2), minval=-cfg.data.box, maxval=cfg.data.box)
    field = eqx.filter_vmap(lambda m: jax.vmap(m)(x_test))(models)
    a = jnp.asarray(A)
    field_rmse = jnp.sqrt(jnp.mean((field - x_test @ a.T) ** 2, axis=(1, 2)))

    ts = jnp.linspace(cfg.eval.t0, cfg.eval.t1, 200)
    x0s = jr.uniform(k_x0, (cfg.eval.n_traj, 2), minval=-cfg.data.box, maxval=cfg.data.box)

    @eqx.filter_jit
    @eqx.filter_vmap(in_axes=(eqx.if_array(0), None))
    def learned_paths(model, x0s):
        solve = lambda x0: (
            sdeml.solve_ode(
                lambda t, x, args: model(x),
                x0,
                cfg.eval.t0,
                cfg.eval.t1,
                ts=ts,
                rtol=1e-6,
                atol=1e-8,
            ).ys
        )
        return jax.vmap(solve)(x0s)

    learned_all = learned_paths(models, x0s)  # (members, n_traj, n_times, 2)
    exact = jax.vmap(lambda x0: sdeml.ode.linear_ode_solution(a, x0, ts, t0=ts[0]))(x0s)
    scale = jnp.max(jnp.linalg.norm(exact, axis=-1), axis=1, keepdims=True)
    rel_err_all = jnp.linalg.norm(learned_all - exact, axis=-1) / scale
    traj_err = jnp.max(rel_err_all, axis=(1, 2))
    run.save_arrays("trajectories", ts=ts, learned=learned_all, exact=exact)

    # One row per member: every grid point of a sweep is plotted and labelled (issue #17).
    labels = run.sweep_labels() if run.sweep else [None]
    fig, axes_all = plt.subplots(len(labels), 2, figsize=(11, 5 * len(labels)), squeeze=False)
    g = jnp.linspace(-cfg.data.box, cfg.data.box, 17)
    gx, gy = jnp.meshgrid(g, g)
    grid = jnp.stack([gx.ravel(), gy.ravel()], -1)
    for m, (axes, label) in enumerate(zip(axes_all, labels, strict=True)):
        model = jax.tree.map(lambda x, m=m: x[m] if eqx.is_array(x) else x, models)
        learned, err_t = learned_all[m], rel_err_all[m]
        where = f"\n{label}" if label else ""
        v = jax.vmap(model)(grid)
        axes[0].quiver(grid[:, 0], grid[:, 1], v[:, 0], v[:, 1], color="0.6")
        for i in range(cfg.eval.n_traj):
            for path, style, lw, label in (
                (exact, "k-", 1.5, "exact expm(At)x0"),
                (learned, "r--", 1.2, "learned ODE (Tsit5)"),
            ):
                axes[0].plot(
                    path[i, :, 0], path[i, :, 1], style, lw=lw, label=label if i == 0 else None
                )
        axes[0].set(title=f"learned vector field and trajectories{where}", xlabel="x1", ylabel="x2")
        axes[0].legend(loc="upper right")
        axes[1].semilogy(ts, err_t.T, lw=1)
        axes[1].set(
            title=f"relative trajectory error (max {float(traj_err[m]):.2g}){where}",
            xlabel="t",
            ylabel="|x_learned - x_exact| / max|x|",
        )
    fig.tight_layout()
    run.savefig(fig, "trajectories")

    final_loss = jnp.atleast_1d(jnp.asarray(stats.last_metrics["loss"]))
    metrics: dict[str, Any] = {
        "train_loss": final_loss,
        "field_rmse": field_rmse,
        "trajectory_rel_error_max": traj_err,
    }
    if not run.sweep:
        metrics = {k: float(v[0]) for k, v in metrics.items()}
    metrics["noise_floor"] = float(2 * cfg.data.noise_std**2)
    return metrics
