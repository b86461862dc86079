"""Discrete updates converging as dt -> 0, and measured strong/weak orders of every SDE solver.

(a) The textbook picture: the update a += (0.5 a - 4 sin 10t) dt for dt = 0.2 ... 0.0125 next to
the exact ODE solution, and the same with + 0.5 sqrt(dt) z noise (three sample paths per dt,
each path driven by one Brownian path at every dt). (b) Strong and weak error-vs-dt plots for
Euler–Maruyama, Milstein, stochastic Heun and SRA1 on geometric Brownian motion and on
additive-noise Ornstein–Uhlenbeck; summary.json holds the fitted orders.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, register


class TextbookConfig(Section):
    dts: list[PositiveFloat] = [0.2, 0.1, 0.05, 0.025, 0.0125]
    a0: float = 1.0
    t1: PositiveFloat = 2.0
    noise: float = Field(default=0.5, ge=0.0)  # sigma in da = (0.5a - 4 sin 10t) dt + sigma dW
    n_sample_paths: PositiveInt = 3

    @model_validator(mode="after")
    def _grid(self):
        fine = min(self.dts)
        for dt in self.dts:
            r = dt / fine
            if abs(r - round(r)) > 1e-9:
                raise ValueError(f"textbook.dts: every dt must be a multiple of the smallest, {dt}")
        r = self.t1 / max(self.dts)
        if abs(r - round(r)) > 1e-9:
            raise ValueError(f"textbook.t1={self.t1} must be a multiple of the largest dt")
        return self


class ProblemsConfig(Section):
    gbm_mu: float = 0.5  # strong orders: sigma^2 noise term dominates EM's error (order 1/2 shows)
    gbm_sigma: PositiveFloat = 0.8
    weak_gbm_mu: float = 1.0  # weak orders: a large bias next to the coupled Monte Carlo noise
    weak_gbm_sigma: PositiveFloat = 0.5
    ou_theta: PositiveFloat = 1.0
    ou_mu: float = 0.5
    ou_sigma: PositiveFloat = 0.7


class OrdersConfig(Section):
    solvers: list[Literal["euler_maruyama", "milstein", "stochastic_heun", "sra1"]] = [
        "euler_maruyama",
        "milstein",
        "stochastic_heun",
        "sra1",
    ]
    t1: PositiveFloat = 1.0
    n_steps: list[PositiveInt] = [8, 16, 32, 64, 128]
    n_fine: PositiveInt = 512  # OU's exact reference integrates on this grid (O(h_fine^2))
    n_paths: PositiveInt = 500
    weak_n_steps: list[PositiveInt] = [8, 16, 32, 64, 128]
    weak_n_paths: PositiveInt = 10_000
    dtype: Literal["float32", "float64"] = "float64"

    @model_validator(mode="after")
    def _levels(self):
        for name, levels in (("n_steps", self.n_steps), ("weak_n_steps", self.weak_n_steps)):
            if len(levels) < 2:
                raise ValueError(f"orders.{name} needs at least two resolutions, got {levels}")
            bad = [n for n in levels if self.n_fine % n]
            if bad:
                raise ValueError(f"orders.n_fine={self.n_fine} must be a multiple of {name} {bad}")
        return self


class Config(ExperimentConfig):
    experiment: Literal["sde_convergence"] = "sde_convergence"
    textbook: TextbookConfig = TextbookConfig()
    problems: ProblemsConfig = ProblemsConfig()
    orders: OrdersConfig = OrdersConfig()

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation)."""
        o, tb = self.orders, self.textbook
        return {
            "strong-order Brownian increments (orders.n_paths x orders.n_fine x 8 B)": (
                o.n_paths * o.n_fine * 8
            ),
            "weak-order increments (orders.weak_n_paths x 8 x max(orders.weak_n_steps) x 8 B)": (
                o.weak_n_paths * 8 * max(o.weak_n_steps) * 8
            ),
            "textbook paths (textbook.n_sample_paths x t1 / min(dts) x 8 B x 3)": (
                tb.n_sample_paths * (tb.t1 / min(tb.dts) + 1) * 8 * 3
            ),
        }


def _textbook(cfg: TextbookConfig, run: Run, key) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib.pyplot as plt
    import numpy as np

    det = sdeml.sde.SineForcedSDE(sigma=0.0)
    noisy = sdeml.sde.SineForcedSDE(sigma=cfg.noise)
    fine = min(cfg.dts)
    n_fine = round(cfg.t1 / fine)
    ts_fine = jnp.linspace(0.0, cfg.t1, n_fine + 1)
    a0 = jnp.asarray(cfg.a0, jnp.float32)
    # one fine Brownian path per sample path, summed into every coarser dt (same noise at all dt)
    keys = jr.split(key, cfg.n_sample_paths)
    dw_fine = jax.vmap(lambda k: sdeml.sde.sample_increments(jnp.diff(ts_fine), (), key=k))(keys)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    t_plot = jnp.linspace(0.0, cfg.t1, 801)
    exact = det.mean(t_plot, cfg.a0)
    ax0.plot(t_plot, exact, "k-", lw=2, label="exact ODE solution")
    ax1.plot(t_plot, exact, "k-", lw=2, label="E a(t) (exact)")
    sd = jnp.sqrt(noisy.variance(t_plot, cfg.a0))
    ax1.fill_between(
        t_plot, exact - 2 * sd, exact + 2 * sd, color="k", alpha=0.08, label="±2 std (exact)"
    )
    metrics = {}
    errs = []
    for i, dt in enumerate(sorted(cfg.dts, reverse=True)):
        factor = round(dt / fine)
        ts = ts_fine[::factor]
        zero = jnp.zeros(ts.shape[0] - 1)
        ys = sdeml.sde.solve_increments(sdeml.EulerMaruyama(), det, a0, ts, zero)
        err = float(jnp.max(jnp.abs(ys - det.mean(ts, cfg.a0).astype(ys.dtype))))
        errs.append(err)
        metrics[f"textbook.ode_max_error.dt={dt}"] = err
        run.log(i, {"dt": dt, "ode_max_error": err}, tag="textbook")
        ax0.plot(ts, ys, "o-", ms=2.5, lw=1, color=f"C{i}", label=f"Δt = {dt}")
        dw = jax.vmap(lambda d, f=factor: sdeml.sde.coarsen_increments(d, f))(dw_fine)
        paths = jax.vmap(
            lambda d, ts=ts: sdeml.sde.solve_increments(sdeml.EulerMaruyama(), noisy, a0, ts, d)
        )(dw)
        for j in range(cfg.n_sample_paths):
            ax1.plot(
                ts,
                paths[j],
                "-",
                lw=1,
                color=f"C{i}",
                alpha=0.8,
                label=f"Δt = {dt}" if j == 0 else None,
            )
    dts = np.array(sorted(cfg.dts, reverse=True))
    metrics["textbook.ode_euler_order"] = float(np.polyfit(np.log(dts), np.log(errs), 1)[0])
    ax0.set_title("Δa = (0.5a − 4 sin 10t) Δt")
    ax1.set_title(f"Δa = (0.5a − 4 sin 10t) Δt + {cfg.noise} √Δt Δz  ({cfg.n_sample_paths} paths)")
    for ax in (ax0, ax1):
        ax.set_xlabel("t")
        ax.legend(fontsize=7)
    ax0.set_ylabel("a(t)")
    fig.tight_layout()
    run.savefig(fig, "textbook_updates")
    return metrics


@register(
    "sde_convergence",
    Config,
    "discrete SDE updates converging as dt -> 0; measured strong/weak orders of every solver",
    smoke=(
        "orders.n_paths=16",
        "orders.weak_n_paths=64",
        "orders.n_steps=[4,8]",
        "orders.weak_n_steps=[4,8]",
        "orders.n_fine=8",
        "orders.solvers=[sra1]",
        "textbook.dts=[0.2,0.1]",
    ),
    per_point=True,
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib.pyplot as plt
    import numpy as np

    oc, pc = cfg.orders, cfg.problems
    if oc.dtype == "float64":
        jax.config.update("jax_enable_x64", True)  # accuracy claims are made in float64
    dtype = jnp.dtype(oc.dtype)
    k_text, k_orders = jr.split(jr.key(cfg.seed))
    summary = _textbook(cfg.textbook, run, k_text)

    gbm = sdeml.GeometricBrownianMotion(pc.gbm_mu, pc.gbm_sigma)
    ou = sdeml.OrnsteinUhlenbeck(pc.ou_theta, pc.ou_mu, pc.ou_sigma)
    weak_gbm = sdeml.GeometricBrownianMotion(pc.weak_gbm_mu, pc.weak_gbm_sigma)
    problems = {"gbm": (gbm, jnp.ones(1)), "ou": (ou, jnp.zeros(1))}
    weak_problems = {"gbm": weak_gbm, "ou": ou}
    results: dict[str, dict[str, dict]] = {"strong": {}, "weak": {}}
    jobs = [(p, s) for p in problems for s in oc.solvers]
    for step, (pname, solver) in enumerate(run.progress(jobs, "measuring orders")):
        sde, x0 = problems[pname]
        if solver == "sra1" and sde.noise != "additive":
            continue  # SRA1 is an additive-noise method; GBM's noise is multiplicative
        # Heun converges to the Stratonovich solution: give it the Stratonovich form of the SDE
        conv = sdeml.sde.ito_to_stratonovich if solver == "stochastic_heun" else (lambda s: s)
        key = jr.fold_in(k_orders, step)
        common: dict[str, Any] = dict(t1=oc.t1, dtype=dtype, n_fine=oc.n_fine)
        wsde = weak_problems[pname]
        measures = (
            ("strong", sdeml.strong_order, sde, oc.n_steps, oc.n_paths, key),
            ("weak", sdeml.weak_order, wsde, oc.weak_n_steps, oc.weak_n_paths, jr.fold_in(key, 1)),
        )
        for kind, measure, prob, steps, paths, k in measures:
            res = measure(
                solver,
                conv(prob),
                x0,
                n_steps=steps,
                n_paths=paths,
                key=k,
                exact=prob.exact_solution,
                **common,
            )
            results[kind].setdefault(pname, {})[solver] = res
            summary[f"{kind}.{pname}.{solver}"] = res.order
            summary[f"{kind}.{pname}.{solver}.ci_low"] = res.ci[0]
            summary[f"{kind}.{pname}.{solver}.ci_high"] = res.ci[1]
            run.log(
                step,
                {
                    "kind": kind,
                    "problem": pname,
                    "solver": solver,
                    "order": res.order,
                    "ci_low": res.ci[0],
                    "ci_high": res.ci[1],
                    "expected": res.expected,
                },
                tag="orders",
            )
            run.save_arrays(
                f"{kind}_{pname}_{solver}",
                dts=np.asarray(res.dts),
                errors=np.asarray(res.errors),
                stderr=np.asarray(res.stderr),
            )

    for kind in ("strong", "weak"):
        if not results[kind]:
            continue
        fig, axes = plt.subplots(1, len(results[kind]), figsize=(5.5 * len(results[kind]), 4.2))
        axes = np.atleast_1d(axes)
        for ax, (pname, res) in zip(axes, results[kind].items(), strict=True):
            title = {"gbm": "GBM (Itô; Heun on its Stratonovich form)", "ou": "OU, additive noise"}[
                pname
            ]
            sdeml.sde.plot_orders(res, title=f"{kind} order: {title}", ax=ax)
        fig.tight_layout()
        run.savefig(fig, f"{kind}_orders")
    return summary
