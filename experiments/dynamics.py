"""Phase portraits and a stability table for the systems zoo.

For every system: its textbook equilibria are located by Newton from a perturbed start, the
Jacobian comes from autodiff, its eigenvalues give the stability class, which is compared with
the textbook class. Planar systems get a phase portrait (vector field, trajectories, nullclines,
equilibria); SIR is drawn in the (S, I) plane and Lorenz as an (x, z) projection of a trajectory.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

import sdeml
from sdeml.run import ExperimentConfig, ExperimentError, Run, Section, register

SystemName = Literal[
    "exponential_growth", "harmonic", "damped", "van_der_pol", "lotka_volterra", "sir", "lorenz"
]


class SystemsConfig(Section):
    growth_rate: float = -0.5
    omega: PositiveFloat = 1.0
    zeta: PositiveFloat = 0.2
    mu: NonNegativeFloat = 1.0
    lv_alpha: PositiveFloat = 1.0
    lv_beta: PositiveFloat = 0.5
    lv_gamma: PositiveFloat = 1.0
    lv_delta: PositiveFloat = 0.25
    sir_beta: PositiveFloat = 0.3
    sir_gamma: PositiveFloat = 0.1
    lorenz_sigma: PositiveFloat = 10.0
    lorenz_rho: PositiveFloat = 28.0
    lorenz_beta: PositiveFloat = 8.0 / 3.0


class PlotConfig(Section):
    n_grid: PositiveInt = Field(default=21, ge=3, le=60)
    n_traj: PositiveInt = Field(default=6, le=40)
    t1: PositiveFloat = 20.0
    n_save: PositiveInt = 600
    perturb: PositiveFloat = 0.05  # Newton starts this far from each textbook equilibrium


class Config(ExperimentConfig):
    experiment: Literal["dynamics"] = "dynamics"
    x64: bool = True  # accuracy claims (orders, invariants, equilibria to 1e-10) need float64
    systems: list[SystemName] = [
        "exponential_growth",
        "harmonic",
        "damped",
        "van_der_pol",
        "lotka_volterra",
        "sir",
        "lorenz",
    ]
    params: SystemsConfig = SystemsConfig()
    plot: PlotConfig = PlotConfig()

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        Saved trajectories are held by the solver, copied to the host and drawn (matplotlib keeps
        its own copy of every line): about 3 copies of each.
        """
        pl, b = self.plot, 8 if self.x64 else 4
        lorenz = "lorenz" in self.systems
        return {
            "Lorenz trajectory (20 x plot.n_save x 3 x B x 3 copies)": (
                lorenz * 20 * pl.n_save * 3 * b * 3
            ),
            "portrait trajectories (plot.n_traj x plot.n_save x 2 x B x 3 copies, per system)": (
                pl.n_traj * pl.n_save * 2 * b * 3
            ),
            "arrow grid (plot.n_grid^2 x 2 x B x 3)": pl.n_grid**2 * 2 * b * 3,
        }


def _build(name: str, p: SystemsConfig):
    return {
        "exponential_growth": lambda: sdeml.dynamics.ExponentialGrowth(p.growth_rate),
        "harmonic": lambda: sdeml.dynamics.HarmonicOscillator(p.omega),
        "damped": lambda: sdeml.dynamics.DampedOscillator(p.omega, p.zeta),
        "van_der_pol": lambda: sdeml.dynamics.VanDerPol(p.mu),
        "lotka_volterra": lambda: sdeml.dynamics.LotkaVolterra(
            p.lv_alpha, p.lv_beta, p.lv_gamma, p.lv_delta
        ),
        "sir": lambda: sdeml.dynamics.SIR(p.sir_beta, p.sir_gamma),
        "lorenz": lambda: sdeml.dynamics.Lorenz(p.lorenz_sigma, p.lorenz_rho, p.lorenz_beta),
    }[name]()


# Plot windows and the segment from which trajectory starts are spread, per planar system.
_WINDOWS = {
    "harmonic": ((-2.0, 2.0), (-2.0, 2.0), ((0.2, 0.0), (1.8, 0.0))),
    "damped": ((-2.0, 2.0), (-2.0, 2.0), ((-1.8, 1.8), (1.8, 1.8))),
    "van_der_pol": ((-3.0, 3.0), (-4.0, 4.0), ((0.1, 0.1), (2.9, 3.9))),
    "sir": ((0.0, 1.0), (0.0, 1.0), ((0.99, 0.01), (0.5, 0.5))),
}


def _x0s(a, b, n):
    import jax.numpy as jnp
    import numpy as np

    s = np.linspace(0.0, 1.0, n)[:, None]
    return jnp.asarray((1 - s) * np.asarray(a) + s * np.asarray(b), dtype=jnp.float64)


@register(
    "dynamics",
    Config,
    "phase portraits and an equilibrium stability table for the classic systems zoo",
    smoke=("systems=[damped]", "plot.n_grid=7", "plot.n_traj=2", "plot.n_save=50"),
    per_point=True,
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np

    rows = []
    for name in run.progress(cfg.systems, "systems"):
        system = _build(name, cfg.params)
        points, labels = system.textbook_equilibria()
        for point, textbook in zip(points, labels, strict=True):
            eq = sdeml.dynamics.find_equilibrium(system, point + cfg.plot.perturb)
            at_point = sdeml.dynamics.classify_equilibrium(
                jnp.linalg.eigvals(sdeml.dynamics.jacobian(system, point))
            )
            row = {
                "system": name,
                "equilibrium": [round(float(v), 6) for v in point],
                "found": [round(float(v), 6) for v in eq.y],
                "converged": bool(eq.converged),
                "eigenvalues": [f"{complex(v):.4g}" for v in np.asarray(eq.eigenvalues)],
                "class": eq.label,
                "class_at_textbook_point": sdeml.dynamics.stability_name(at_point),
                "textbook": textbook,
                "match": eq.label == textbook
                and sdeml.dynamics.stability_name(at_point) == textbook,
            }
            rows.append(row)
            run.log(len(rows), row, tag="stability")

        if name in ("harmonic", "damped", "van_der_pol"):
            xlim, ylim, (a, b) = _WINDOWS[name]
            fig = sdeml.dynamics.phase_portrait(
                system,
                xlim,
                ylim,
                x0s=_x0s(a, b, cfg.plot.n_traj),
                t1=cfg.plot.t1,
                n_grid=cfg.plot.n_grid,
                n_save=cfg.plot.n_save,
                labels=("x", "v"),
                equilibrium_guesses=points + cfg.plot.perturb,
                title=name.replace("_", " "),
            )
            run.savefig(fig, f"portrait_{name}")
        elif name == "lotka_volterra":
            eq_c = np.asarray(points[1])
            fig = sdeml.dynamics.phase_portrait(
                system,
                (0.01, 3 * eq_c[0]),
                (0.01, 3 * eq_c[1]),
                x0s=_x0s(eq_c * 1.1, eq_c * 2.5, cfg.plot.n_traj),
                t1=cfg.plot.t1,
                n_grid=cfg.plot.n_grid,
                n_save=cfg.plot.n_save,
                labels=("prey", "predator"),
                equilibrium_guesses=points + cfg.plot.perturb,
                title="Lotka-Volterra",
            )
            run.savefig(fig, f"portrait_{name}")
        elif name == "sir":
            xlim, ylim, (a, b) = _WINDOWS[name]
            fig = sdeml.dynamics.phase_portrait(
                system.reduced,
                xlim,
                ylim,
                x0s=_x0s(a, b, cfg.plot.n_traj),
                t1=8 * cfg.plot.t1,
                n_grid=cfg.plot.n_grid,
                n_save=cfg.plot.n_save,
                labels=("S", "I"),
                title=f"SIR (R0 = {float(system.r0):.3g}), R = 1 - S - I",
            )
            run.savefig(fig, f"portrait_{name}")
        elif name == "lorenz":
            ts = jnp.linspace(0.0, 2 * cfg.plot.t1, 20 * cfg.plot.n_save, dtype=jnp.float64)
            sol = sdeml.solve_ode(
                system,
                jnp.array([1.0, 1.0, 1.0], jnp.float64),
                0.0,
                2 * cfg.plot.t1,
                ts=ts,
                rtol=1e-9,
                atol=1e-9,
                max_steps=1_000_000,
            )
            ys = np.asarray(sol.ys)
            fig, ax = plt.subplots(figsize=(6, 5))
            ax.plot(ys[:, 0], ys[:, 2], lw=0.4)
            for point, label in zip(np.asarray(points), labels, strict=True):
                ax.plot(point[0], point[2], "X", ms=9, label=f"{label} {np.round(point, 2)}")
            ax.set(xlabel="x", ylabel="z", title="Lorenz attractor (x, z projection)")
            ax.legend(fontsize=7)
            run.savefig(fig, f"portrait_{name}")
            run.save_arrays("lorenz", ts=ts, ys=sol.ys)

    run.save_json("stability_table", rows)
    fig, ax = plt.subplots(figsize=(12, 0.45 * len(rows) + 1))
    ax.axis("off")
    cols = ["system", "equilibrium", "eigenvalues", "class", "textbook", "match"]
    cells = [[str(r[c]) for c in cols] for r in rows]
    table = ax.table(cellText=cells, colLabels=cols, loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.auto_set_column_width(list(range(len(cols))))
    run.savefig(fig, "stability_table")

    n_match = sum(r["match"] for r in rows)
    if not all(r["converged"] for r in rows):
        raise ExperimentError("Newton did not converge for some equilibria; see metrics.jsonl")
    return {
        "n_equilibria": float(len(rows)),
        "n_match": float(n_match),
        "all_match": float(n_match == len(rows)),
    }
