"""Gradient descent is Euler's method on the gradient flow; the modified flow tracks it better.

On a non-quadratic 2-D loss, GD at learning rate eta is compared with the gradient flow
d theta/dt = -grad L (diffrax, Tsit5) and with the flow of the modified loss
L + (eta/4)|grad L|^2 (implicit gradient regularisation) at t = k eta over a fixed horizon: the
gaps are O(eta) and O(eta^2); summary.json holds the fitted slopes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveFloat

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, register


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

    # Every coefficient of the loss enters as an array (issue #19); `seed` is accepted (the study is
    # deterministic: every seed gives the same numbers). Not sweepable: the learning rates and the
    # horizon set the number of GD steps (shapes), `loss.theta0` is a list.
    sweep_keys: ClassVar[tuple[str, ...]] = ("seed", "loss.a", "loss.b", "loss.c", "loss.e")

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        Every GD iterate and the flow at the same times are kept: study.horizon / lr of them for
        each learning rate, three times the horizon for the plotted one.
        """
        st = self.study
        n = max(st.horizon / min(st.lrs), 3 * st.horizon / st.plot_lr) + 1
        return {
            "GD iterates and flows at the same times (max(study.horizon / min(study.lrs), "
            "3 x study.horizon / study.plot_lr) x 2 x 8 B x 4)": n * 2 * 8 * 4,
            "loss contour grid (120^2 x 8 B x 4)": 120**2 * 8 * 4,
        }


@register(
    "gradient_flow",
    Config,
    "GD vs gradient flow vs modified flow: O(eta) and O(eta^2) gaps",
    smoke=("study.lrs=[0.2,0.1]",),
)
def main(cfg: Config, run: Run) -> dict[str, Any]:
    # The GD iterates and flows of every grid point are one vmapped program over the loss's
    # coefficients (issue #19); the slopes and plots are then made per point.
    arrays = run.sweep_map(_core)
    rows = []
    for i, c in enumerate(run.points()):
        point = {k: v[i] for k, v in arrays.items()}
        rows.append(_report(c, run.at(i), point))
    return run.collect(rows)


def _loss(p: LossConfig):
    """L(theta); the coefficients may be traced arrays (a sweep)."""
    return lambda th: (
        0.5 * (p.a * th[0] ** 2 + p.b * th[1] ** 2) + p.c * th[0] ** 4 + p.e * th[0] * th[1] ** 2
    )


def _plot_steps(cfg: Config) -> int:
    return max(1, round(cfg.study.horizon * 3 / cfg.study.plot_lr))


def _core(cfg: Config) -> dict[str, Any]:
    """One grid point's numbers: the gaps at every learning rate and the plotted trajectories."""
    import jax.numpy as jnp

    loss, th0 = _loss(cfg.loss), jnp.asarray(cfg.loss.theta0, jnp.float64)
    lrs = sorted(cfg.study.lrs, reverse=True)
    dev = sdeml.optim_dynamics.flow_gd_deviation
    plain, mod = [], []
    for lr in lrs:
        n = max(1, round(cfg.study.horizon / lr))
        plain.append(dev(loss, th0, lr, n))
        mod.append(dev(loss, th0, lr, n, modified=True))
    lr, n = cfg.study.plot_lr, _plot_steps(cfg)
    ts = jnp.linspace(0.0, n * lr, 200)
    return {
        "plain": jnp.stack(plain),
        "mod": jnp.stack(mod),
        "gd": sdeml.optim_dynamics.gradient_descent(loss, th0, lr, n),
        "flow": sdeml.gradient_flow(loss, th0, ts),
        "mflow": sdeml.gradient_flow(loss, th0, ts, modified_lr=lr),
    }


def _report(cfg: Config, run: Run, arrays: dict[str, Any]) -> dict[str, float]:
    """One grid point's slopes, logged gaps, arrays and figure."""
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np

    p = cfg.loss
    lrs = sorted(cfg.study.lrs, reverse=True)
    plain = [float(x) for x in arrays["plain"]]
    mod = [float(x) for x in arrays["mod"]]
    for lr, gp, gm in zip(lrs, plain, mod, strict=True):
        n = max(1, round(cfg.study.horizon / lr))
        run.log(n, {"lr": lr, "gap_flow": gp, "gap_modified_flow": gm})
    s_plain = float(np.polyfit(np.log(lrs), np.log(plain), 1)[0])
    s_mod = float(np.polyfit(np.log(lrs), np.log(mod), 1)[0])
    run.save_arrays(
        "deviation", lrs=np.array(lrs), gap_flow=np.array(plain), gap_modified=np.array(mod)
    )

    lr = cfg.study.plot_lr
    gd, flow, mflow = arrays["gd"], arrays["flow"], arrays["mflow"]
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
