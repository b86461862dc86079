"""The 1-D Fokker–Planck equation by finite differences against histograms of simulated paths.

SDE: overdamped Langevin dynamics in the double well, dX = -U'(X) dt + sqrt(2T) dW with
U = (x^2 - 1)^2, started from N(m0, s0^2). The density is evolved by conservative finite volumes
with Crank–Nicolson (`sdeml.fokker_planck_1d`); paths come from the SDE engine
(`sdeml.simulate`, Euler–Maruyama). At every shown time the histogram is compared with the FD
density integrated over each bin, in units of the histogram's own sampling error (chi^2/dof and
the largest |z|), and the final time with the Gibbs density.
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


class ProblemConfig(Section):
    temperature: PositiveFloat = 1.0
    m0: float = 1.5
    s0: PositiveFloat = 0.25
    t1: PositiveFloat = 2.0
    n_panels: PositiveInt = Field(6, ge=2, le=12)  # shown times, t0 included


class GridConfig(Section):
    lo: float = -3.0
    hi: float = 3.0
    n_cells: PositiveInt = 1200
    n_steps: PositiveInt = 2000  # Crank–Nicolson steps (and EM steps x em_refine)
    bins: PositiveInt = 60

    @model_validator(mode="after")
    def _grid(self):
        if self.hi <= self.lo:
            raise ValueError(f"hi must be greater than lo (got lo={self.lo}, hi={self.hi})")
        if self.n_cells % self.bins:
            raise ValueError(f"bins={self.bins} must divide n_cells={self.n_cells}")
        return self


class PathsConfig(Section):
    n_paths: PositiveInt = 100_000
    em_refine: PositiveInt = 2  # EM steps per Crank–Nicolson step


class Config(ExperimentConfig):
    experiment: Literal["fokker_planck"] = "fokker_planck"
    x64: bool = True  # densities compared at the 1e-3 level
    problem: ProblemConfig = ProblemConfig()
    grid: GridConfig = GridConfig()
    paths: PathsConfig = PathsConfig()

    @model_validator(mode="after")
    def _panels(self):
        if self.grid.n_steps % (self.problem.n_panels - 1):
            raise ValueError(
                f"problem.n_panels - 1 = {self.problem.n_panels - 1} must divide "
                f"grid.n_steps = {self.grid.n_steps}"
            )
        return self


@register(
    "fokker_planck",
    Config,
    "1-D Fokker–Planck by finite differences vs path histograms",
    smoke=(
        "grid.n_cells=240",
        "grid.n_steps=200",
        "grid.bins=40",
        "paths.n_paths=5000",
        "problem.n_panels=3",
    ),
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    pr, g, pa = cfg.problem, cfg.grid, cfg.paths
    temp = pr.temperature
    drift = lambda t, x: -4.0 * x * (x**2 - 1.0)
    diffusion = lambda t, x: jnp.sqrt(2.0 * temp) + 0.0 * x
    dx = (g.hi - g.lo) / g.n_cells
    x = g.lo + (jnp.arange(g.n_cells, dtype=jnp.float64) + 0.5) * dx
    p0 = jax.scipy.stats.norm.pdf(x, pr.m0, pr.s0)
    save = g.n_steps // (pr.n_panels - 1)
    ts, x, p = sdeml.fokker_planck_1d(drift, diffusion, p0, g.lo, g.hi, 0.0, pr.t1, g.n_steps, save)

    sde = sdeml.SDE(lambda t, y, a: drift(t, y), lambda t, y, a: diffusion(t, y), noise="diagonal")
    key = jr.key(cfg.seed)
    k0, k1 = jr.split(key)
    x0 = pr.m0 + pr.s0 * jr.normal(k0, (pa.n_paths, 1), jnp.float64)
    paths = sdeml.simulate(
        sde,
        x0,
        t0=0.0,
        t1=pr.t1,
        n_steps=g.n_steps * pa.em_refine,
        n_paths=pa.n_paths,
        save_every=save * pa.em_refine,
        include_t0=True,
        x0_per_path=True,
        dtype=jnp.float64,
        key=k1,
    )
    xs = np.asarray(paths.xs[..., 0])  # (n_paths, n_saves)
    if not np.allclose(np.asarray(paths.ts), np.asarray(ts)):
        raise sdeml.run.ExperimentError("path save times do not match the FD save times")

    width = (g.hi - g.lo) / g.bins
    centres = g.lo + (np.arange(g.bins) + 0.5) * width
    gibbs, _ = sdeml.gibbs_bin_probabilities(
        lambda y: (y[0] ** 2 - 1) ** 2, g.lo, g.hi, g.bins, temperature=temp
    )
    out: dict[str, float] = {}
    chi2s, zmaxs = [], []
    fig, axes = plt.subplots(
        2, (pr.n_panels + 1) // 2, figsize=(4 * ((pr.n_panels + 1) // 2), 7.5), squeeze=False
    )
    for k, t in enumerate(np.asarray(ts)):
        probs = np.asarray(p[k]).reshape(g.bins, -1).sum(1) * dx
        counts = np.histogram(xs[:, k], bins=g.bins, range=(g.lo, g.hi))[0]
        chi2, zmax, _ = sdeml.histogram_chi2(counts, probs)
        chi2s.append(float(chi2))
        zmaxs.append(float(zmax))
        run.log(
            k,
            {
                "t": float(t),
                "chi2_per_dof": float(chi2),
                "max_abs_z": float(zmax),
                "l1_density": float(np.sum(np.abs(counts / pa.n_paths - probs))),
            },
        )
        a = axes.flat[k]
        a.bar(
            centres,
            counts / (pa.n_paths * width),
            width=width,
            color="C0",
            alpha=0.35,
            label=f"{pa.n_paths} EM paths",
        )
        a.plot(np.asarray(x), np.asarray(p[k]), "k-", lw=1.4, label="Fokker–Planck (FD)")
        err = np.sqrt(np.maximum(probs * (1 - probs), 0) / pa.n_paths) / width
        a.fill_between(
            centres,
            probs / width - 2 * err,
            probs / width + 2 * err,
            color="k",
            alpha=0.2,
            step="mid",
            label="FD +- 2 sampling sd",
        )
        a.set(title=f"t = {t:.2f}: chi2/dof {float(chi2):.2f}", xlabel="x")
        if k == 0:
            a.legend(fontsize=7)
    axes.flat[len(ts) - 1].plot(centres, np.asarray(gibbs) / width, "r--", lw=1, label="Gibbs")
    axes.flat[len(ts) - 1].legend(fontsize=7)
    for a in list(axes.flat)[len(ts) :]:
        a.axis("off")
    run.savefig(fig, "fokker_planck")
    run.save_arrays("fokker_planck", ts=np.asarray(ts), x=np.asarray(x), p=np.asarray(p))
    out["max_chi2_per_dof"] = max(chi2s)
    out["max_abs_z"] = max(zmaxs)
    out["mass_error"] = float(jnp.max(jnp.abs(p.sum(1) * dx - 1.0)))
    out["tv_final_fd_vs_gibbs"] = float(
        sdeml.total_variation(np.asarray(p[-1]).reshape(g.bins, -1).sum(1) * dx, gibbs)
    )
    return out
