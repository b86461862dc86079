"""SGD as an SDE: stationary variance against learning rate and batch size, with closed forms.

Dataset x_1..x_N ~ N(0, s^2) and per-example loss l_i = h (theta - x_i)^2 / 2, so L is
quadratic with curvature h and the per-example gradient variance sigma^2 = h^2 Var(x) is
constant. Many independent SGD runs (minibatches drawn with replacement) give SGD's stationary
variance; the SDE d theta = -L' dt + sqrt(eta sigma^2 / B) dW, simulated by Euler–Maruyama with
h dt <= sde_h_dt (EM's own stationary-variance bias h dt / 2 <= 0.5%), gives the SDE's. Both are
compared with the exact discrete-time value eta sigma^2 / (h B (2 - eta h)) and the continuous one
eta sigma^2 / (2 h B). Their ratio is 2 / (2 - eta h) for every B: the SDE holds while eta h is
small (within 5% for eta h <= 0.095; the stated range is eta h <= valid_lr_h) and breaks down as
eta h grows, whatever B. The B sweep is run at a learning rate inside the range and one outside
to show exactly that. Every variance comes with its standard error (chains are independent).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, register


class DataConfig(Section):
    n_data: PositiveInt = 500
    std: PositiveFloat = 1.5
    curvature: PositiveFloat = 2.0  # h


class StudyConfig(Section):
    lrs: list[PositiveFloat] = Field(
        default=[0.005, 0.01, 0.02, 0.04, 0.05, 0.1, 0.2, 0.4, 0.6], min_length=1
    )
    batch_size: PositiveInt = 8  # for the learning-rate sweep
    batch_sizes: list[PositiveInt] = Field(default=[1, 2, 4, 8, 16, 32, 64], min_length=1)
    # the batch-size sweep, at each of these learning rates (one inside the range, one outside)
    lrs_for_batch: list[PositiveFloat] = Field(default=[0.02, 0.2], min_length=1)
    # the stated range: eta h <= this; the SDE's gap eta h / (2 - eta h) is then <= 4.2%
    valid_lr_h: PositiveFloat = 0.08


class SimConfig(Section):
    n_chains: PositiveInt = 4000
    burn_relax: PositiveFloat = 6.0  # burn-in, in relaxation times 1/(eta h) steps
    n_record: PositiveInt = 100  # recorded states per chain
    thin_relax: PositiveFloat = 0.5  # record every (thin_relax / (eta h)) steps (>= 1)
    sde_substeps: PositiveInt = 4  # at least this many EM steps per SGD step ...
    sde_h_dt: PositiveFloat = 0.01  # ... and h dt <= this: EM's variance bias h dt / 2 <= 0.5%


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
        for lr in [*self.study.lrs, *self.study.lrs_for_batch]:
            if lr * self.data.curvature >= 2:
                raise ValueError(f"lr={lr}: SGD diverges for lr * curvature >= 2")
        return self

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        Both SGD and its SDE record sim.n_record states per chain after a burn-in of about
        burn_relax / thin_relax recording intervals (the SDE's simulation keeps those too); every
        SGD step gathers one minibatch per chain.
        """
        st, sim = self.study, self.sim
        n_saves = sim.n_record + math.ceil(sim.burn_relax / sim.thin_relax) + 1
        b_max = max(st.batch_size, *st.batch_sizes)
        return {
            "SGD and SDE records (sim.n_chains x (sim.n_record + burn) x 8 B x 3)": (
                sim.n_chains * n_saves * 8 * 3
            ),
            "minibatch gathers (sim.n_chains x max(study.batch_size, study.batch_sizes) "
            "x 8 B x 3)": (sim.n_chains * b_max * 8 * 3),
            "data and per-example gradients (data.n_data x 8 B x 4)": self.data.n_data * 8 * 4,
        }


def _variance_and_se(dev) -> tuple[float, float]:
    """Mean of dev^2 over records and chains, and its standard error from the spread of the
    per-chain means (chains are independent; records within a chain need not be)."""
    import jax.numpy as jnp

    per_chain = jnp.mean(jnp.reshape(dev**2, (dev.shape[0], -1)), axis=0)
    return float(jnp.mean(per_chain)), float(jnp.std(per_chain) / math.sqrt(per_chain.size))


def _variances(cfg: Config, x, lr: float, b: int, key) -> dict[str, float]:
    """Empirical stationary variance (and standard error) of SGD and of the simulated SDE."""
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    h, sim = cfg.data.curvature, cfg.sim
    loss_i = lambda th, xi: 0.5 * h * (th[0] - xi) ** 2
    xbar = jnp.mean(x)
    relax = 1.0 / (lr * h)  # steps per relaxation time (of the mean)
    thin = max(1, round(sim.thin_relax * relax))
    burn = thin * max(1, -(-round(sim.burn_relax * relax) // thin))  # a multiple of thin
    k1, k2, k3 = jr.split(key, 3)
    start = jnp.full((sim.n_chains, 1), xbar)
    sgd = sdeml.optim_dynamics.SGD(loss_i, x, lr=lr, batch_size=b)
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
    v_sgd, se_sgd = _variance_and_se(obs - xbar)
    # Sigma is constant for this loss (additive gradient noise): freeze it, exactly
    sigma = sdeml.optim_dynamics.gradient_noise_cov(loss_i, jnp.reshape(xbar, (1,)), x)
    sde = sdeml.SGDSDE(loss_i, x, lr=lr, batch_size=b, noise_cov=sigma)
    n_sub = max(sim.sde_substeps, math.ceil(lr * h / sim.sde_h_dt))
    paths = jax.jit(
        lambda k: sde.simulate(
            start,
            lr * (burn + sim.n_record * thin),
            n_sub * (burn + sim.n_record * thin),
            n_sub * thin,
            key=k,
        )
    )(k3)
    v_sde, se_sde = _variance_and_se(paths[burn // thin :] - xbar)
    return {
        "sgd": v_sgd,
        "se_sgd": se_sgd,
        "sde": v_sde,
        "se_sde": se_sde,
        "sde_h_dt": lr * h / n_sub,
    }


def _ratio_bars(a: Any, x: Any, r: dict, versus: str, **style: Any) -> None:
    """SGD's stationary variance against `versus` ("sde" or "discrete"), in percent, ±2 SE."""
    ratio = r[f"ratio_sgd_to_{versus}"]
    a.errorbar(x, 100 * (ratio - 1), 200 * r["rel_se_sgd"] * ratio, ms=4, capsize=2, **style)


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
    per_point=True,
)
def main(cfg: Config, run: Run) -> dict:
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib.pyplot as plt
    import numpy as np

    key = jr.key(cfg.seed)
    k_data, k_lr, k_b = jr.split(key, 3)
    x = cfg.data.std * jr.normal(k_data, (cfg.data.n_data,), jnp.float64)
    h, st = cfg.data.curvature, cfg.study
    sigma2 = h**2 * jnp.var(x)
    hh, ss = jnp.eye(1) * h, jnp.eye(1) * sigma2

    def point(lr, b, key) -> dict[str, float]:
        v = _variances(cfg, x, lr, b, key)
        disc = float(sdeml.optim_dynamics.sgd_stationary_cov(hh, ss, lr, b, discrete=True)[0, 0])
        cont = float(sdeml.optim_dynamics.sgd_stationary_cov(hh, ss, lr, b, discrete=False)[0, 0])
        return {
            "lr": lr,
            "batch_size": b,
            "lr_h": lr * h,
            "var_sgd": v["sgd"],
            "var_sde_sim": v["sde"],
            "var_discrete": disc,
            "var_sde_formula": cont,
            "ratio_sgd_to_discrete": v["sgd"] / disc,
            "ratio_sgd_to_sde": v["sgd"] / cont,
            "ratio_sde_sim_to_sde": v["sde"] / cont,
            "rel_se_sgd": v["se_sgd"] / v["sgd"],
            "rel_se_sde_sim": v["se_sde"] / v["sde"],
            "sde_h_dt": v["sde_h_dt"],
        }

    def table(points: list[dict]) -> dict[str, np.ndarray]:
        return {k: np.array([p[k] for p in points]) for k in points[0]}

    lr_pts = []
    for i, lr in enumerate(run.progress(st.lrs, "learning rates")):
        lr_pts.append(point(lr, st.batch_size, jr.fold_in(k_lr, i)))
        run.log(i, lr_pts[-1], tag="lr_sweep")
    b_pts: dict[float, list[dict]] = {lr: [] for lr in st.lrs_for_batch}
    grid = [(lr, b) for lr in st.lrs_for_batch for b in st.batch_sizes]
    for i, (lr, b) in enumerate(run.progress(grid, "batch sizes")):
        b_pts[lr].append(point(lr, b, jr.fold_in(k_b, i)))
        run.log(i, b_pts[lr][-1], tag="batch_sweep")
    r = table(lr_pts)
    br = {lr: table(p) for lr, p in b_pts.items()}
    run.save_arrays("lr_sweep", **r)
    for lr, t in br.items():
        run.save_arrays(f"batch_sweep_lr{lr:g}", **t)

    every = table(lr_pts + [p for ps in b_pts.values() for p in ps])
    in_range = every["lr_h"] <= st.valid_lr_h + 1e-12
    err_disc = np.abs(every["ratio_sgd_to_discrete"] - 1)
    err_sde = np.abs(every["ratio_sgd_to_sde"] - 1)
    beyond = r["lr_h"][np.abs(r["ratio_sgd_to_sde"] - 1) > 0.05]

    fig, ax = plt.subplots(1, 4, figsize=(21, 4.6))
    a = ax[0]
    a.loglog(r["lr"], r["var_discrete"], "k-", label="exact discrete eta s2/(hB(2-eta h))")
    a.loglog(r["lr"], r["var_sde_formula"], "b--", label="SDE eta s2/(2hB)")
    a.loglog(r["lr"], r["var_sgd"], "ko", mfc="none", label="SGD (empirical)")
    a.loglog(r["lr"], r["var_sde_sim"], "bx", label="SDE (EM simulation)")
    a.axvspan(min(r["lr"]), st.valid_lr_h / h, color="g", alpha=0.08)
    a.set(
        xlabel="learning rate eta",
        ylabel="stationary variance",
        title=f"B = {st.batch_size}; green: stated range eta h <= {st.valid_lr_h}",
    )
    a.legend(fontsize=7)
    a = ax[1]
    for j, (lr, t) in enumerate(br.items()):
        c = f"C{j}"
        a.loglog(t["batch_size"], t["var_discrete"], "-", color=c, label=f"eta = {lr:g}: exact")
        a.loglog(t["batch_size"], t["var_sde_formula"], "--", color=c, label=f"eta = {lr:g}: SDE")
        a.loglog(
            t["batch_size"], t["var_sgd"], "o", color=c, mfc="none", label=f"eta = {lr:g}: SGD"
        )
    a.set(xlabel="batch size B", ylabel="stationary variance", title="against B at two eta")
    a.legend(fontsize=7)
    a = ax[2]
    lam = np.geomspace(min(r["lr_h"]), max(r["lr_h"]), 200)
    a.semilogx(lam, 100 * (2 / (2 - lam) - 1), "b-", lw=0.8, label="theory: 2/(2 - eta h) - 1")
    _ratio_bars(a, r["lr_h"], r, "discrete", fmt="ko-", label="SGD vs exact discrete (2 SE)")
    _ratio_bars(a, r["lr_h"], r, "sde", fmt="bs", label="SGD vs SDE (2 SE)")
    a.axhspan(-5, 5, color="b", alpha=0.07)
    a.axhspan(-3, 3, color="k", alpha=0.07)
    a.axvline(st.valid_lr_h, color="g", ls=":", label="end of the stated range")
    a.set_yscale("symlog", linthresh=10)
    a.set(xlabel="eta h", ylabel="relative error (%)", title="where the SDE breaks down (eta)")
    a.legend(fontsize=7)
    a = ax[3]
    for j, (lr, t) in enumerate(br.items()):
        x, eh = t["batch_size"], f"eta h = {lr * h:g}"
        _ratio_bars(a, x, t, "sde", fmt="s-", color=f"C{j}", label=f"SGD vs SDE, {eh}")
        label = f"SGD vs exact discrete, {eh}"
        _ratio_bars(a, x, t, "discrete", fmt="o:", color=f"C{j}", mfc="none", label=label)
    a.axhspan(-5, 5, color="b", alpha=0.07)
    a.axhspan(-3, 3, color="k", alpha=0.07)
    a.set_xscale("log", base=2)
    a.set(
        xlabel="batch size B",
        ylabel="relative error (%)",
        title="against B: the gap is 2/(2 - eta h) - 1 for every B",
    )
    a.legend(fontsize=7)
    run.savefig(fig, "stationary_variance")

    def col(t: dict, k: str) -> list[float]:
        return [round(float(v), 5) for v in t[k]]

    return {
        "valid_lr_h_max": float(st.valid_lr_h),
        "holds": bool(err_disc.max() < 0.03 and err_sde[in_range].max() < 0.05),
        "max_rel_err_sgd_vs_discrete": float(err_disc.max()),
        "max_rel_err_sgd_vs_sde_in_range": float(err_sde[in_range].max()),
        "smallest_lr_h_beyond_5pct": float(beyond.min()) if beyond.size else float("nan"),
        "rel_err_sgd_vs_sde_largest_lr": float(err_sde[len(r["lr"]) - 1]),
        "max_rel_err_sde_sim_vs_formula": float(np.abs(every["ratio_sde_sim_to_sde"] - 1).max()),
        "max_rel_se_sgd": float(every["rel_se_sgd"].max()),
        "lr_sweep": {
            k: col(r, k)
            for k in ("lr_h", "ratio_sgd_to_discrete", "ratio_sgd_to_sde", "ratio_sde_sim_to_sde")
        },
        "batch_sweep": {
            f"lr={lr:g}": {
                k: col(t, k)
                for k in (
                    "batch_size",
                    "ratio_sgd_to_discrete",
                    "ratio_sgd_to_sde",
                    "ratio_sde_sim_to_sde",
                )
            }
            for lr, t in br.items()
        },
    }
