"""ODE solvers side by side: measured orders, accuracy per function evaluation, and stiffness.

1. Global error at t1 against the closed form expm(A t) y0 of a linear spiral dy/dt = A y, for a
   ladder of constant step sizes: the fitted log-log slopes are the measured orders (Euler 1,
   RK4 4, Tsit5 5).
2. Work-precision: error against vector-field evaluations for adaptive solvers over a ladder of
   tolerances, with the fixed-step ladder of part 1 for comparison.
3. Van der Pol with mu = 1000 on [0, 3000]: an explicit solver runs into its stability limit and
   reports stiffness; an implicit one (Kvaerno5) solves it. Steps, evaluations and wall time.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

import sdeml
from sdeml.run import ExperimentConfig, ExperimentError, Run, Section, register

SolverName = Literal[
    "euler", "heun", "rk4", "tsit5", "dopri5", "dopri8", "implicit_euler", "kvaerno3", "kvaerno5"
]
ExplicitName = Literal["euler", "heun", "rk4", "tsit5", "dopri5", "dopri8"]
ImplicitName = Literal["implicit_euler", "kvaerno3", "kvaerno4", "kvaerno5"]


class ProblemConfig(Section):
    """The linear test problem dy/dt = A y, A = [[-decay, freq], [-freq, -decay]], y0 = (1, 0.5)."""

    decay: float = Field(default=0.5, ge=0.0)
    freq: float = 2.0
    t1: PositiveFloat = 2.0


class OrdersConfig(Section):
    solvers: list[SolverName] = ["euler", "rk4", "tsit5"]
    n_steps: list[PositiveInt] = [32, 64, 128, 256, 512]

    @model_validator(mode="after")
    def _ladder(self) -> OrdersConfig:
        if len(self.n_steps) < 2 or sorted(set(self.n_steps)) != self.n_steps:
            raise ValueError(f"n_steps must be >= 2 increasing values, got {self.n_steps}")
        if not self.solvers:
            raise ValueError("solvers must not be empty")
        return self


class WorkConfig(Section):
    solvers: list[SolverName] = ["heun", "tsit5", "dopri5", "dopri8", "kvaerno5"]
    rtols: list[PositiveFloat] = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10]
    max_steps: PositiveInt = 100_000


class StiffConfig(Section):
    mu: PositiveFloat = 1000.0
    t1: PositiveFloat = 3000.0
    explicit: ExplicitName = "tsit5"
    implicit: ImplicitName = "kvaerno5"
    explicit_max_steps: PositiveInt = 20_000  # the explicit solver stops here, diagnosed stiff
    rtol: PositiveFloat = 1e-6
    atol: PositiveFloat = 1e-6


class Config(ExperimentConfig):
    experiment: Literal["ode_solvers"] = "ode_solvers"
    x64: bool = True  # accuracy claims (orders, invariants, equilibria to 1e-10) need float64
    problem: ProblemConfig = ProblemConfig()
    orders: OrdersConfig = OrdersConfig()
    work: WorkConfig = WorkConfig()
    stiff: StiffConfig = StiffConfig()

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        Every solve saves its end point or the 2001 fixed output times of Van der Pol; no size in
        this config grows an array (the step budgets bound loops, not memory: diffrax keeps no
        per-step history without a gradient).
        """
        o, w = self.orders, self.work
        return {
            "Van der Pol solutions (2001 saved times x 2 x 8 B x 2 solvers x 3 calls)": (
                2001 * 2 * 8 * 2 * 3
            ),
            "error tables (len(orders.solvers) x len(orders.n_steps) + len(work.solvers) x "
            "len(work.rtols)) x 8 B x 4": (
                (len(o.solvers) * len(o.n_steps) + len(w.solvers) * len(w.rtols)) * 8 * 4
            ),
        }


def _timed(fn):
    """(result, seconds) of fn(), blocking on the device."""
    import jax

    t = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t


@register(
    "ode_solvers",
    Config,
    "ODE solver orders vs expm, work-precision, Van der Pol mu=1000 explicit vs implicit",
    smoke=(
        "orders.n_steps=[32,64]",
        "orders.solvers=[euler,rk4]",
        "work.solvers=[tsit5]",
        "work.rtols=[1e-4,1e-6]",
        "stiff.mu=100.0",
        "stiff.t1=20.0",
        "stiff.explicit_max_steps=500",
    ),
    per_point=True,
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np

    p = cfg.problem
    A = jnp.array([[-p.decay, p.freq], [-p.freq, -p.decay]], dtype=jnp.float64)
    y0 = jnp.array([1.0, 0.5], dtype=jnp.float64)
    exact = sdeml.ode.linear_ode_solution(A, y0, jnp.array([p.t1], jnp.float64))[0]

    def field(t, y, args):
        return args @ y

    results: dict[str, float] = {}

    # every solve of the linear test problem on [0, t1], counting the field's evaluations
    solve = functools.partial(sdeml.solve_ode, field, y0, 0.0, p.t1, args=A, count_evals=True)

    # 1. orders ---------------------------------------------------------------------------------
    hs = p.t1 / np.asarray(cfg.orders.n_steps, dtype=float)
    errors: dict[str, np.ndarray] = {}
    evals: dict[str, np.ndarray] = {}
    for name in run.progress(cfg.orders.solvers, "orders"):
        errs, nfe = [], []
        for n in cfg.orders.n_steps:
            sol = solve(solver=name, n_steps=n, rtol=1e-13, atol=1e-15)
            errs.append(float(jnp.max(jnp.abs(sol.ys[-1] - exact))))
            nfe.append(int(sol.nfe))
        errors[name], evals[name] = np.asarray(errs), np.asarray(nfe)
        # Least-squares slope of log error against log h; the round-off floor (~1e-14) is left
        # out so that it does not flatten the fit of high-order methods.
        keep = errors[name] > 1e-13
        if keep.sum() < 2:
            raise ExperimentError(f"{name}: errors hit round-off; use fewer/larger steps")
        order = float(np.polyfit(np.log(hs[keep]), np.log(errors[name][keep]), 1)[0])
        results[f"order_{name}"] = order
        run.log(
            0,
            {"solver": name, "order": order, "h": hs.tolist(), "error": errs, "fn_evals": nfe},
            tag="orders",
        )

    fig, ax = plt.subplots(figsize=(6, 5))
    for name, errs in errors.items():
        ax.loglog(hs, errs, "o-", label=f"{name}: slope {results[f'order_{name}']:.2f}")
    ax.set(
        xlabel="step size h",
        ylabel="|y_h(t1) - expm(A t1) y0|_max",
        title="global error vs step size (float64)",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    run.savefig(fig, "orders")

    # 2. work-precision -------------------------------------------------------------------------
    fig, ax = plt.subplots(figsize=(6, 5))
    for name in run.progress(cfg.work.solvers, "work-precision"):
        errs, nfe = [], []
        for rtol in cfg.work.rtols:
            sol = solve(
                solver=name, rtol=rtol, atol=rtol * 1e-2, max_steps=cfg.work.max_steps, throw=False
            )
            if not bool(sol.ok):
                continue  # e.g. a low-order method at a very tight tolerance: skip the point
            errs.append(float(jnp.max(jnp.abs(sol.ys[-1] - exact))))
            nfe.append(int(sol.nfe))
        run.log(
            0, {"solver": name, "rtol": cfg.work.rtols, "error": errs, "fn_evals": nfe}, tag="work"
        )
        if errs:
            ax.loglog(nfe, errs, "o-", label=f"{name} (adaptive)")
            results[f"work_{name}_min_error"] = float(min(errs))
    for name in errors:
        ax.loglog(evals[name], errors[name], "s--", alpha=0.6, label=f"{name} (fixed h)")
    ax.set(
        xlabel="vector-field evaluations",
        ylabel="error at t1",
        title="accuracy vs function evaluations",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    run.savefig(fig, "work_precision")

    # 3. stiffness: Van der Pol --------------------------------------------------------------
    s = cfg.stiff
    vdp = sdeml.dynamics.VanDerPol(jnp.asarray(s.mu, jnp.float64))
    v0 = jnp.array([2.0, 0.0], jnp.float64)
    ts = jnp.linspace(0.0, s.t1, 2001, dtype=jnp.float64)
    rows = {}
    for kind, name, max_steps in (
        ("explicit", s.explicit, s.explicit_max_steps),
        ("implicit", s.implicit, 1_000_000),
    ):
        kw: dict[str, Any] = dict(
            solver=name, ts=ts, rtol=s.rtol, atol=s.atol, max_steps=max_steps, throw=False
        )
        solve = lambda kw=kw: sdeml.solve_ode(vdp, v0, 0.0, s.t1, **kw)
        first, t_first = _timed(solve)  # compile + run
        sol, t_run = _timed(solve)  # steady state (cached program)
        counted = sdeml.solve_ode(vdp, v0, 0.0, s.t1, count_evals=True, **kw)
        rows[kind] = {
            "solver": name,
            "result": sol.result_name,
            "t_reached": float(sol.t_final),
            "steps": int(sol.num_steps),
            "rejected": int(sol.num_rejected_steps),
            "fn_evals": int(counted.nfe),
            # diagnosed when the solve runs out of steps (None for a successful solve)
            "h_rho": float(sol.stiffness) if bool(jnp.isfinite(sol.stiffness)) else None,
            "wall_s_compile_and_run": t_first,
            "wall_s_run": t_run,
            "stiff_diagnosed": bool(sol.result == sdeml.ODEResult.stiff),
            "ok": bool(sol.ok),
        }
        run.log(0, rows[kind], tag=f"van_der_pol_{kind}")
        if kind == "implicit":
            if not bool(sol.ok):
                raise ExperimentError(
                    f"{name} failed on Van der Pol: {sdeml.ODEResult[sol.result]}"
                )
            run.save_arrays("van_der_pol", ts=ts, ys=sol.ys)
            implicit_ys = np.asarray(sol.ys)
    run.save_json("van_der_pol", rows)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    axes[0].plot(np.asarray(ts), implicit_ys[:, 0], "k-", lw=1)
    axes[0].set(xlabel="t", ylabel="x", title=f"Van der Pol mu={s.mu:g} ({s.implicit})")
    axes[1].axis("off")
    cols = ["solver", "result", "t_reached", "steps", "fn_evals", "wall_s_run"]
    cells = [
        [str(r[c]) if not isinstance(r[c], float) else f"{r[c]:.4g}" for c in cols]
        for r in rows.values()
    ]
    table = axes[1].table(cellText=cells, colLabels=cols, loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    axes[1].set_title("explicit vs implicit")
    run.savefig(fig, "van_der_pol")

    for kind, r in rows.items():
        for k in ("steps", "fn_evals", "t_reached", "wall_s_run"):
            results[f"vdp_{kind}_{k}"] = float(r[k])
    results["vdp_explicit_stiff_diagnosed"] = float(rows["explicit"]["stiff_diagnosed"])
    return results
