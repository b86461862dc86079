"""Langevin samplers against the Gibbs law: double well, anisotropic Gaussian, 2-D mixture.

MALA and ULA run as batched init/step kernels over many chains; their histograms (accumulated
inside the compiled loop, never stored) are compared with the Gibbs bin probabilities of
exp(-U/T) by total-variation and Kolmogorov–Smirnov distances. ULA's bias is explained, not just
measured: its own invariant law, the stationary vector of its discretised transition kernel,
is computed on a grid and compared with its histogram. A sweep over step sizes shows ULA's
O(h) bias against MALA's none.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, register


class DoubleWellConfig(Section):
    n_chains: PositiveInt = 10_000
    n_steps: PositiveInt = 10_000  # recorded steps per chain, after burn-in
    n_burn: PositiveInt = 1000
    mala_step: PositiveFloat = 0.1
    ula_step: PositiveFloat = 0.01
    temperature: PositiveFloat = 1.0
    lo: float = -2.5
    hi: float = 2.5
    bin_width: PositiveFloat = 0.02

    @model_validator(mode="after")
    def _box(self):
        if self.hi <= self.lo:
            raise ValueError(f"hi must be greater than lo (got lo={self.lo}, hi={self.hi})")
        n = (self.hi - self.lo) / self.bin_width
        if abs(n - round(n)) > 1e-6:
            raise ValueError(
                f"bin_width={self.bin_width} must divide hi - lo = {self.hi - self.lo}"
            )
        # ULA's invariant law is computed on sub-cells of bin_width / 4 (n_sub = 4), which must
        # resolve the kernel width sqrt(2 h T): checked here, not after a run directory exists
        # (issue #17; found by tests/test_cli_fuzz.py with ula_step=1e-4).
        kernel = (2.0 * self.ula_step * self.temperature) ** 0.5
        if self.bin_width / 4 > kernel / 4:
            raise ValueError(
                f"bin_width={self.bin_width} is too coarse for ula_step={self.ula_step}: ULA's "
                f"invariant law needs bin_width <= sqrt(2 * ula_step * temperature) = {kernel:.3g}"
            )
        return self


class BiasConfig(Section):
    steps: list[PositiveFloat] = Field(default=[0.005, 0.01, 0.02, 0.04, 0.08, 0.16], min_length=2)
    n_chains: PositiveInt = 4000
    n_steps: PositiveInt = 2000
    n_burn: PositiveInt = 1000
    bins: PositiveInt = 50  # bins on [lo, hi] of the double well


class Targets2DConfig(Section):
    n_chains: PositiveInt = 4000
    n_steps: PositiveInt = 1000
    n_burn: PositiveInt = 500
    mala_step: PositiveFloat = 0.05
    bins: PositiveInt = 40
    half_width: PositiveFloat = 4.0  # histogram box [-w, w]^2
    precision: list[float] = Field(default=[1.0, 10.0], min_length=2, max_length=2)  # diagonal


class Config(ExperimentConfig):
    experiment: Literal["langevin"] = "langevin"
    x64: bool = True  # TV at the 1e-3 level is an accuracy claim
    double_well: DoubleWellConfig = DoubleWellConfig()
    bias: BiasConfig = BiasConfig()
    targets_2d: Targets2DConfig = Targets2DConfig()

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        A chain's state (position, gradient, log-density, proposal: 4 floats per dimension) is kept
        for every chain, plus one histogram row of counts per chain block. ULA's invariant law is
        the stationary vector of a dense transition matrix on sub-cells of the widened box (4 per
        bin for the double well, 8 in the bias sweep; `ula_invariant_bin_probabilities` pads a tenth
        of the bins each side): the matrix, its log-kernel, the system and its LU factors. The 2-D
        Gibbs law is integrated on 4 x 4 sub-cells per bin of a box padded by half its bins.
        """
        dw, b, t2 = self.double_well, self.bias, self.targets_2d
        n_bins = round((dw.hi - dw.lo) / dw.bin_width)

        def kernel_cells(bins: int, n_sub: int) -> int:
            return (bins + 2 * max(1, bins // 10)) * n_sub

        return {
            "ULA invariant law, double well (((hi - lo) / double_well.bin_width x 1.2 x 4)^2 x "
            "8 B x 4)": kernel_cells(n_bins, 4) ** 2 * 8 * 4,
            "ULA invariant law, bias sweep ((bias.bins x 1.2 x 8)^2 x 8 B x 4)": (
                kernel_cells(b.bins, 8) ** 2 * 8 * 4
            ),
            "2-D Gibbs sub-cells ((targets_2d.bins x 2 x 4)^2 x 8 B x 4)": (
                (2 * (t2.bins // 2) + t2.bins) ** 2 * 16 * 8 * 4
            ),
            "double_well chains (double_well.n_chains x 4 x 8 B, x2 for ULA and MALA)": (
                dw.n_chains * 4 * 8 * 2
            ),
            "double_well histogram (bins x 8 B)": n_bins * 8,
            "bias chains (bias.n_chains x len(bias.steps) x 4 x 8 B)": (
                b.n_chains * len(b.steps) * 4 * 8
            ),
            "2-D target chains (targets_2d.n_chains x 2 x 4 x 8 B)": t2.n_chains * 2 * 4 * 8,
            "2-D histogram (targets_2d.bins^2 x 8 B)": t2.bins**2 * 8,
        }


@functools.cache
def _hist_program():
    """The compiled histogram program, built once (equinox is imported when a run starts)."""
    import equinox as eqx

    @eqx.filter_jit
    def program(kernel, x0, n_burn, n_steps, lo, hi, bins, k1, k2):
        # one compile per kernel class and sizes: step sizes are traced leaves of `kernel`
        state = sdeml.run_chains(kernel, kernel.init(x0), n_burn, key=k1)[0]
        return sdeml.langevin.histogram_chains(kernel, state, n_steps, lo, hi, bins, key=k2)[1:]

    return program


def _hist(kernel, x0, n_burn, n_steps, lo, hi, bins, key):
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    k1, k2 = jr.split(key)
    counts, acc = _hist_program()(kernel, x0, n_burn, n_steps, lo, hi, bins, k1, k2)
    return np.asarray(counts, np.float64), float(jnp.mean(acc))


@register(
    "langevin",
    Config,
    "ULA/MALA histograms vs the Gibbs law (TV, KS), ULA's bias explained",
    smoke=(
        "double_well.n_chains=500",
        "double_well.n_steps=200",
        "double_well.n_burn=100",
        "bias.steps=[0.02,0.08]",
        "bias.n_chains=200",
        "bias.n_steps=100",
        "bias.n_burn=100",
        "targets_2d.n_chains=200",
        "targets_2d.n_steps=100",
        "targets_2d.n_burn=100",
    ),
    per_point=True,
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib.pyplot as plt
    import numpy as np

    key = jr.key(cfg.seed)
    k_dw, k_bias, k_2d = jr.split(key, 3)
    dw = cfg.double_well
    U, T = sdeml.langevin.Potentials.double_well, dw.temperature
    bins = round((dw.hi - dw.lo) / dw.bin_width)
    gibbs, _ = sdeml.langevin.gibbs_bin_probabilities(U, dw.lo, dw.hi, bins, temperature=T)
    # start in the bulk: far out (|x| > ~2.3 at h = 0.1) MALA rejects forever and ULA explodes,
    # the superlinear-gradient pathology of Roberts & Tweedie (1996)
    x0 = 0.5 * jr.normal(jr.fold_in(k_dw, 0), (dw.n_chains, 1), jnp.float64)
    n_total = dw.n_chains * dw.n_steps
    out: dict[str, float] = {}
    hists = {}
    for i, (name, kern) in enumerate(
        (("mala", sdeml.MALA(U, dw.mala_step, T)), ("ula", sdeml.ULA(U, dw.ula_step, T)))
    ):
        counts, acc = _hist(
            kern, x0, dw.n_burn, dw.n_steps, dw.lo, dw.hi, bins, jr.fold_in(k_dw, i + 1)
        )
        p_hat = counts / n_total
        hists[name] = p_hat
        out[f"{name}_tv_gibbs"] = float(sdeml.metrics.total_variation(p_hat, gibbs))
        out[f"{name}_ks_gibbs"] = float(sdeml.metrics.ks_distance(p_hat, gibbs))
        out[f"{name}_acceptance"] = acc
        run.log(i, {k: v for k, v in out.items() if k.startswith(name)}, tag="double_well")
    iid = float(sdeml.metrics.expected_tv_iid(gibbs, n_total))
    ula_law, _ = sdeml.langevin.ula_invariant_bin_probabilities(
        U, dw.ula_step, dw.lo, dw.hi, bins, temperature=T
    )
    out.update(
        {
            "iid_tv_same_n": iid,
            "mala_tv_over_iid_tv": out["mala_tv_gibbs"] / iid,
            "ula_law_tv_gibbs": float(sdeml.metrics.total_variation(ula_law, gibbs)),
            "ula_tv_own_law": float(sdeml.metrics.total_variation(hists["ula"], ula_law)),
        }
    )

    # Bias against step size: ULA vs MALA, with ULA's exact invariant-law TV.
    bc = cfg.bias
    g_b, _ = sdeml.langevin.gibbs_bin_probabilities(U, dw.lo, dw.hi, bc.bins, temperature=T)
    xb = 0.5 * jr.normal(jr.fold_in(k_bias, 0), (bc.n_chains, 1), jnp.float64)
    tv_rows = {"h": [], "ula": [], "mala": [], "ula_law": []}
    for j, h in enumerate(run.progress(bc.steps, "step sizes")):
        row = [h]
        for kind in (sdeml.ULA, sdeml.MALA):
            c, _ = _hist(
                kind(U, jnp.asarray(h), jnp.asarray(T)),
                xb,
                bc.n_burn,
                bc.n_steps,
                dw.lo,
                dw.hi,
                bc.bins,
                jr.fold_in(k_bias, 10 * j + (kind is sdeml.MALA) + 1),
            )
            row.append(float(sdeml.metrics.total_variation(c / (bc.n_chains * bc.n_steps), g_b)))
        try:
            law, _ = sdeml.langevin.ula_invariant_bin_probabilities(
                U, h, dw.lo, dw.hi, bc.bins, temperature=T, n_sub=8
            )
            row.append(float(sdeml.metrics.total_variation(law, g_b)))
        except ValueError:  # ULA unstable on the box at this step: no invariant law there
            row.append(float("nan"))
        for k, v in zip(tv_rows, row, strict=True):
            tv_rows[k].append(v)
        run.log(
            j, dict(zip(("h", "tv_ula", "tv_mala", "tv_ula_law"), row, strict=True)), tag="bias"
        )
    tv = {k: np.array(v) for k, v in tv_rows.items()}

    # 2-D targets: anisotropic Gaussian and a two-component mixture, MALA.
    t2 = cfg.targets_2d
    w = t2.half_width
    targets = {
        "gaussian": sdeml.langevin.Potentials.gaussian(
            jnp.diag(jnp.asarray(t2.precision, jnp.float64))
        ),
        "mixture": sdeml.langevin.Potentials.mixture_2d,
    }
    hist2 = {}
    for i, (name, pot) in enumerate(targets.items()):
        p2, _ = sdeml.langevin.gibbs_bin_probabilities(pot, -w, w, t2.bins, d=2, n_sub=4)
        x2 = 2.0 * jr.normal(jr.fold_in(k_2d, i), (t2.n_chains, 2), jnp.float64)
        c2, acc = _hist(
            sdeml.MALA(pot, t2.mala_step),
            x2,
            t2.n_burn,
            t2.n_steps,
            -w,
            w,
            t2.bins,
            jr.fold_in(k_2d, 10 + i),
        )
        q2 = c2 / (t2.n_chains * t2.n_steps)
        hist2[name] = (q2, np.asarray(p2))
        out[f"{name}2d_mala_tv"] = float(sdeml.metrics.total_variation(q2, p2))
        out[f"{name}2d_mala_ks_x0"] = float(sdeml.metrics.ks_distance(q2.sum(1), p2.sum(1)))
        out[f"{name}2d_mala_ks_x1"] = float(sdeml.metrics.ks_distance(q2.sum(0), p2.sum(0)))
        out[f"{name}2d_iid_tv_same_n"] = float(
            sdeml.metrics.expected_tv_iid(p2, t2.n_chains * t2.n_steps)
        )
        out[f"{name}2d_acceptance"] = acc

    run.save_arrays(
        "double_well",
        gibbs=np.asarray(gibbs),
        mala=hists["mala"],
        ula=hists["ula"],
        ula_law=np.asarray(ula_law),
    )
    run.save_arrays("bias_vs_step", **tv)

    centres = dw.lo + (np.arange(bins) + 0.5) * dw.bin_width
    fig, ax = plt.subplots(2, 2, figsize=(12, 9))
    a = ax[0, 0]
    a.plot(centres, np.asarray(gibbs) / dw.bin_width, "k-", lw=2, label="Gibbs exp(-U/T)")
    a.plot(centres, hists["mala"] / dw.bin_width, "C0-", lw=0.8, label=f"MALA h={dw.mala_step}")
    a.plot(centres, hists["ula"] / dw.bin_width, "C3-", lw=0.8, label=f"ULA h={dw.ula_step}")
    a.plot(
        centres,
        np.asarray(ula_law) / dw.bin_width,
        "C3--",
        lw=1.2,
        label="ULA invariant law (grid)",
    )
    a.set(
        title=f"double well, {dw.n_chains} chains x {dw.n_steps} steps",
        xlabel="x",
        ylabel="density",
    )
    a.legend(fontsize=8)
    a = ax[0, 1]
    for series, style, lw, label in (
        (hists["ula"], "C3-", 0.6, "|ULA hist - Gibbs|"),
        (np.asarray(ula_law), "k--", 1, "|ULA law - Gibbs| (computed)"),
        (hists["mala"], "C0-", 0.6, "|MALA hist - Gibbs|"),
    ):
        a.semilogy(centres, np.abs(series - np.asarray(gibbs)) + 1e-9, style, lw=lw, label=label)
    a.set(title="per-bin errors: ULA's bias is its invariant law's", xlabel="x")
    a.legend(fontsize=8)
    a = ax[1, 0]
    a.loglog(tv["h"], tv["ula"], "C3o-", label="ULA histogram")
    a.loglog(tv["h"], tv["ula_law"], "k--", label="ULA invariant law (grid)")
    a.loglog(tv["h"], tv["mala"], "C0s-", label="MALA histogram")
    a.axhline(
        float(sdeml.metrics.expected_tv_iid(g_b, bc.n_chains * bc.n_steps)),
        color="0.5",
        ls=":",
        label="i.i.d. floor (same n)",
    )
    a.set(title="discretisation bias vs step size", xlabel="step size h", ylabel="TV to Gibbs")
    a.legend(fontsize=8)
    a = ax[1, 1]
    q2, p2 = hist2["mixture"]
    ext = (-w, w, -w, w)
    a.imshow(q2.T, origin="lower", extent=ext, cmap="Blues", aspect="auto")
    a.contour(
        np.linspace(-w, w, t2.bins),
        np.linspace(-w, w, t2.bins),
        p2.T,
        6,
        colors="k",
        linewidths=0.7,
        extent=ext,
    )
    a.set(
        title=f"2-D mixture: MALA histogram (TV {out['mixture2d_mala_tv']:.3f}), Gibbs contours",
        xlabel="x0",
        ylabel="x1",
    )
    run.savefig(fig, "langevin")
    return out
