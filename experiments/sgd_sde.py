"""SGD as an SDE: stationary variance against learning rate and batch size, with closed forms.

Dataset x_1..x_N ~ N(0, s^2) and per-example loss l_i = h (theta - x_i)^2 / 2, so L is
quadratic with curvature h and the per-example gradient variance sigma^2 = h^2 Var(x) is
constant. Many independent SGD runs (minibatches drawn with replacement) give SGD's stationary
variance; the SDE d theta = -L' dt + sqrt(eta sigma^2 / B) dW, simulated by Euler–Maruyama at
dt = eta / sde_substeps, gives the SDE's. Both are compared with the exact discrete-time value
eta sigma^2 / (h B (2 - eta h)) and the continuous one eta sigma^2 / (2 h B): the SDE holds while
eta h is small and breaks down as eta h grows (the plot shows where).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import Field, PositiveFloat, PositiveInt, model_validator  # noqa: E402

import sdeml  # noqa: E402
from sdeml.run import ExperimentConfig, Run, Section, register  # noqa: E402


class DataConfig(Section):
    n_data: PositiveInt = 500
    std: PositiveFloat = 1.5
    curvature: PositiveFloat = 2.0  # h


class StudyConfig(Section):
    lrs: list[PositiveFloat] = Field(
        [0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6], min_length=1
    )
    batch_size: PositiveInt = 8  # for the learning-rate sweep
    batch_sizes: list[PositiveInt] = Field([1, 2, 4, 8, 16, 32, 64], min_length=1)
    lr_for_batch: PositiveFloat = 0.02  # for the batch-size sweep
    valid_lr_h: PositiveFloat = 0.08  # the stated range: eta * h <= this (SDE gap eta h / 2 <= 4%)


class SimConfig(Section):
    n_chains: PositiveInt = 4000
    burn_relax: PositiveFloat = 6.0  # burn-in, in relaxation times 1/(eta h) steps
    n_record: PositiveInt = 100  # recorded states per chain
    thin_relax: PositiveFloat = 0.5  # record every (thin_relax / (eta h)) steps (>= 1)
    sde_substeps: PositiveInt = 4  # EM dt = eta / sde_substeps


class Config(ExperimentConfig):
    experiment: Literal["sgd_sde"] = "sgd_sde"
    x64: bool = True  # 3% agreement claims
    data: DataConfig = DataConfig()
    study: StudyConfig = StudyConfig()
    sim: SimConfig = SimConfig()

    @model_validator(mode="after")
    def _batches(self):
        for b in [self.study.batch_size, *self.study.batch_sizes]:
            if b > self.data.n_data:
                raise ValueError(f"batch size {b} is larger than data.n_data={self.data.n_data}")
        for lr in self.study.lrs:
            if lr * self.data.curvature >= 2:
                raise ValueError(f"lr={lr}: SGD diverges for lr * curvature >= 2")
        return self


def _variances(cfg: Config, x, lr: float, b: int, key) -> tuple[float, float]:
    """Empirical stationary variance of SGD and of the simulated SDE at (lr, b)."""
    h, sim = cfg.data.curvature, cfg.sim
    loss_i = lambda th, xi: 0.5 * h * (th[0] - xi) ** 2
    xbar = jnp.mean(x)
    relax = 1.0 / (lr * h)  # steps per relaxation time (of the mean)
    thin = max(1, round(sim.thin_relax * relax))
    burn = thin * max(1, -(-round(sim.burn_relax * relax) // thin))  # a multiple of thin
    k1, k2, k3 = jr.split(key, 3)
    start = jnp.full((sim.n_chains, 1), xbar)
    sgd = sdeml.SGD(loss_i, x, lr=lr, batch_size=b)
    obs = jax.jit(
        lambda s, ka, kb: sdeml.run_chains(
            sgd,
            sdeml.run_chains(sgd, s, burn, key=ka)[0],
            sim.n_record * thin,
            observe=lambda s: s.position[:, 0],
            thin=thin,
            key=kb,
        )[2]
    )(sgd.init(start), k1, k2)
    v_sgd = float(jnp.mean((obs - xbar) ** 2))
    # Sigma is constant for this loss (additive gradient noise): freeze it, exactly
    sigma = sdeml.gradient_noise_cov(loss_i, jnp.reshape(xbar, (1,)), x)
    sde = sdeml.SGDSDE(loss_i, x, lr=lr, batch_size=b, noise_cov=sigma)
    n_sub = sim.sde_substeps
    paths = jax.jit(
        lambda k: sde.simulate(
            start,
            lr * (burn + sim.n_record * thin),
            n_sub * (burn + sim.n_record * thin),
            n_sub * thin,
            key=k,
        )
    )(k3)
    v_sde = float(jnp.mean((paths[burn // thin :] - xbar) ** 2))
    return v_sgd, v_sde


@register(
    "sgd_sde",
    Config,
    "SGD's stationary variance vs its SDE and the closed forms, over lr and B",
    smoke=(
        "study.lrs=[0.01,0.4]",
        "study.batch_sizes=[4,16]",
        "sim.n_chains=200",
        "sim.n_record=20",
    ),
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    key = jr.key(cfg.seed)
    k_data, k_lr, k_b = jr.split(key, 3)
    x = cfg.data.std * jr.normal(k_data, (cfg.data.n_data,), jnp.float64)
    h = cfg.data.curvature
    sigma2 = h**2 * jnp.var(x)
    hh, ss = jnp.eye(1) * h, jnp.eye(1) * sigma2

    def closed(lr, b):
        return (
            float(sdeml.sgd_stationary_cov(hh, ss, lr, b, discrete=True)[0, 0]),
            float(sdeml.sgd_stationary_cov(hh, ss, lr, b, discrete=False)[0, 0]),
        )

    rows = {"lr": [], "sgd": [], "sde": [], "exact_discrete": [], "sde_formula": []}
    for i, lr in enumerate(run.progress(cfg.study.lrs, "learning rates")):
        v_sgd, v_sde = _variances(cfg, x, lr, cfg.study.batch_size, jr.fold_in(k_lr, i))
        disc, cont = closed(lr, cfg.study.batch_size)
        for k, v in zip(rows, (lr, v_sgd, v_sde, disc, cont), strict=True):
            rows[k].append(v)
        run.log(
            i,
            {
                "lr": lr,
                "var_sgd": v_sgd,
                "var_sde_sim": v_sde,
                "var_discrete": disc,
                "var_sde_formula": cont,
            },
            tag="lr_sweep",
        )
    brows = {"b": [], "sgd": [], "sde": [], "exact_discrete": [], "sde_formula": []}
    for i, b in enumerate(run.progress(cfg.study.batch_sizes, "batch sizes")):
        v_sgd, v_sde = _variances(cfg, x, cfg.study.lr_for_batch, b, jr.fold_in(k_b, i))
        disc, cont = closed(cfg.study.lr_for_batch, b)
        for k, v in zip(brows, (b, v_sgd, v_sde, disc, cont), strict=True):
            brows[k].append(v)
        run.log(
            i,
            {
                "batch_size": b,
                "var_sgd": v_sgd,
                "var_sde_sim": v_sde,
                "var_discrete": disc,
                "var_sde_formula": cont,
            },
            tag="batch_sweep",
        )
    r = {k: np.array(v) for k, v in rows.items()}
    br = {k: np.array(v) for k, v in brows.items()}
    run.save_arrays("lr_sweep", **r)
    run.save_arrays("batch_sweep", **br)

    valid = r["lr"] * h <= cfg.study.valid_lr_h
    rel_disc = np.abs(r["sgd"] / r["exact_discrete"] - 1)
    rel_sde = np.abs(r["sgd"] / r["sde_formula"] - 1)
    rel_sde_sim = np.abs(r["sde"] / r["sde_formula"] - 1)
    b_rel_disc = np.abs(br["sgd"] / br["exact_discrete"] - 1)

    fig, ax = plt.subplots(1, 3, figsize=(16, 4.5))
    for a, xs, d, xl in (
        (ax[0], r["lr"], r, "learning rate eta"),
        (ax[1], br["b"], br, "batch size B"),
    ):
        a.loglog(xs, d["exact_discrete"], "k-", label="exact discrete eta s2/(hB(2-eta h))")
        a.loglog(xs, d["sde_formula"], "b--", label="SDE eta s2/(2hB)")
        a.loglog(xs, d["sgd"], "ko", mfc="none", label="SGD (empirical)")
        a.loglog(xs, d["sde"], "bx", label="SDE (EM simulation)")
        a.set(xlabel=xl, ylabel="stationary variance")
        a.legend(fontsize=7)
    ax[0].axvspan(min(r["lr"]), cfg.study.valid_lr_h / h, color="g", alpha=0.08)
    ax[0].set_title(f"B = {cfg.study.batch_size}; green: eta h <= {cfg.study.valid_lr_h}")
    ax[1].set_title(f"eta = {cfg.study.lr_for_batch}")
    ax[2].semilogx(
        r["lr"] * h,
        100 * (r["sgd"] / r["exact_discrete"] - 1),
        "ko-",
        label="SGD vs exact discrete",
    )
    ax[2].semilogx(r["lr"] * h, 100 * (r["sgd"] / r["sde_formula"] - 1), "bs-", label="SGD vs SDE")
    ax[2].axhspan(-5, 5, color="b", alpha=0.07)
    ax[2].axhspan(-3, 3, color="k", alpha=0.07)
    ax[2].set(xlabel="eta h", ylabel="relative error (%)", title="where the SDE breaks down")
    ax[2].legend(fontsize=8)
    run.savefig(fig, "stationary_variance")
    return {
        "valid_lr_h_max": float(cfg.study.valid_lr_h),
        "max_rel_err_sgd_vs_discrete": float(rel_disc.max()),
        "max_rel_err_sgd_vs_sde_in_range": float(rel_sde[valid].max())
        if valid.any()
        else float("nan"),
        "rel_err_sgd_vs_sde_largest_lr": float(rel_sde[-1]),
        "max_rel_err_sde_sim_vs_formula": float(rel_sde_sim.max()),
        "max_rel_err_batch_sweep_vs_discrete": float(b_rel_disc.max()),
    }
