"""Gradient descent is Euler's method on the gradient flow; the modified flow tracks it better.

On a non-quadratic 2-D loss, GD at learning rate eta is compared with the gradient flow
d theta/dt = -grad L (diffrax, Tsit5) and with the flow of the modified loss
L + (eta/4)|grad L|^2 (implicit gradient regularisation) at t = k eta over a fixed horizon: the
gaps are O(eta) and O(eta^2); summary.json holds the fitted slopes.
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import Field, PositiveFloat  # noqa: E402

import sdeml  # noqa: E402
from sdeml.run import ExperimentConfig, Run, Section, register  # noqa: E402


class LossConfig(Section):
    # L = (a th0^2 + b th1^2)/2 + c th0^4 + e th0 th1^2
    a: PositiveFloat = 1.0
    b: PositiveFloat = 4.0
    c: float = 0.1
    e: float = 0.3
    theta0: list[float] = Field(default=[1.0, 0.5], min_length=2, max_length=2)


class StudyConfig(Section):
    lrs: list[PositiveFloat] = Field(default=[0.2, 0.1, 0.05, 0.025, 0.0125], min_length=2)
    horizon: PositiveFloat = 1.0  # compare on t in [0, horizon]
    plot_lr: PositiveFloat = 0.2


class Config(ExperimentConfig):
    experiment: Literal["gradient_flow"] = "gradient_flow"
    x64: bool = True  # gaps down to ~1e-5 are accuracy claims
    loss: LossConfig = LossConfig()
    study: StudyConfig = StudyConfig()


@register(
    "gradient_flow",
    Config,
    "GD vs gradient flow vs modified flow: O(eta) and O(eta^2) gaps",
    smoke=("study.lrs=[0.2,0.1]",),
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    p = cfg.loss
    loss = lambda th: (
        0.5 * (p.a * th[0] ** 2 + p.b * th[1] ** 2) + p.c * th[0] ** 4 + p.e * th[0] * th[1] ** 2
    )
    th0 = jnp.asarray(p.theta0, jnp.float64)
    lrs = sorted(cfg.study.lrs, reverse=True)
    plain, mod = [], []
    for lr in run.progress(lrs, "learning rates"):
        n = max(1, round(cfg.study.horizon / lr))
        plain.append(float(sdeml.optim_dynamics.flow_gd_deviation(loss, th0, lr, n)))
        mod.append(float(sdeml.optim_dynamics.flow_gd_deviation(loss, th0, lr, n, modified=True)))
        run.log(n, {"lr": lr, "gap_flow": plain[-1], "gap_modified_flow": mod[-1]})
    s_plain = float(np.polyfit(np.log(lrs), np.log(plain), 1)[0])
    s_mod = float(np.polyfit(np.log(lrs), np.log(mod), 1)[0])
    run.save_arrays(
        "deviation", lrs=np.array(lrs), gap_flow=np.array(plain), gap_modified=np.array(mod)
    )

    lr = cfg.study.plot_lr
    n = max(1, round(cfg.study.horizon * 3 / lr))
    gd = sdeml.optim_dynamics.gradient_descent(loss, th0, lr, n)
    ts = jnp.linspace(0.0, n * lr, 200)
    flow = sdeml.gradient_flow(loss, th0, ts)
    mflow = sdeml.gradient_flow(loss, th0, ts, modified_lr=lr)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.5))
    g = jnp.linspace(-1.3, 1.3, 120)
    gx, gy = jnp.meshgrid(g, g)
    zz = 0.5 * (p.a * gx**2 + p.b * gy**2) + p.c * gx**4 + p.e * gx * gy**2
    ax[0].contour(gx, gy, zz, 20, colors="0.8", linewidths=0.7)
    ax[0].plot(gd[:, 0], gd[:, 1], "ko-", ms=3, label=f"GD, eta={lr}")
    ax[0].plot(flow[:, 0], flow[:, 1], "b-", label="gradient flow of L")
    ax[0].plot(mflow[:, 0], mflow[:, 1], "r--", label="flow of L + (eta/4)|grad L|^2")
    ax[0].set(title="trajectories", xlabel="theta_0", ylabel="theta_1")
    ax[0].legend(fontsize=8)
    ax[1].loglog(lrs, plain, "bo-", label=f"|GD - flow|, slope {s_plain:.2f}")
    ax[1].loglog(lrs, mod, "rs-", label=f"|GD - modified flow|, slope {s_mod:.2f}")
    ax[1].set(
        title=f"max gap on t in [0, {cfg.study.horizon}]",
        xlabel="learning rate eta",
        ylabel="max_k |theta_k - theta(k eta)|",
    )
    ax[1].legend(fontsize=8)
    run.savefig(fig, "gradient_flow")
    return {
        "slope_flow": s_plain,
        "slope_modified_flow": s_mod,
        "gap_flow_smallest_lr": plain[-1],
        "gap_modified_smallest_lr": mod[-1],
    }
