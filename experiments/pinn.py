"""Solve a PDE with a physics-informed network (Adam, then full-batch quasi-Newton), against a
reference.

Problems: heat (exact), Burgers' travelling front (exact), Raissi's Burgers shock (Cole–Hopf
reference), convection at a hard speed (exact). Options, each off by default: input scaling,
periodic or random Fourier input features, residual-based adaptive sampling (RAD), causal
weighting in time, the quasi-Newton phase (L-BFGS, BFGS or self-scaled BFGS).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, Setup, register
from sdeml.train import TrainConfig

MATMUL_PRECISION = "highest"  # pinned for training and evaluation, recorded in the summary


class ProblemConfig(Section):
    name: Literal["heat", "burgers", "burgers_raissi", "convection"] = "heat"
    alpha: PositiveFloat = 0.1  # heat: diffusivity
    nu: PositiveFloat | None = None  # burgers: viscosity (None: 0.05; burgers_raissi: 0.01/pi)
    beta: PositiveFloat = 30.0  # convection: speed
    t1: PositiveFloat = 1.0


class PinnConfig(Section):
    width: PositiveInt = 32
    depth: PositiveInt = 3
    n_interior: PositiveInt = 1024  # collocation points per Adam step
    n_initial: PositiveInt = 128
    n_boundary: PositiveInt = 128
    resample: bool = True  # fresh collocation points every Adam step (false: one fixed set)
    scale_inputs: bool = False  # map t and x onto [-1, 1]
    harmonics: NonNegativeInt = 0  # periodic input features cos/sin(k w x), k <= harmonics
    fourier_features: NonNegativeInt = 0  # random Fourier features of the inputs (0: none)
    fourier_scale: PositiveFloat = 1.0
    w_residual: PositiveFloat = 1.0
    w_initial: PositiveFloat = 1.0
    w_boundary: PositiveFloat = 1.0


class AdaptiveConfig(Section):
    """Residual-based adaptive distribution (RAD, Wu et al. 2023): interior points are drawn from
    a uniform pool of ``pool_factor`` times as many with density |r|^k / mean |r|^k + c."""

    rad: bool = False
    pool_factor: PositiveInt = 4
    k: NonNegativeFloat = 1.0
    c: NonNegativeFloat = 1.0


class CausalConfig(Section):
    """Causal weighting in time (Wang, Sankaran & Perdikaris): ``chunks`` time slabs, weight
    exp(-eps * earlier slabs' residual). Adam phase only (L-BFGS needs a fixed objective)."""

    chunks: NonNegativeInt = 0  # 0: off
    eps: PositiveFloat = 1.0


class LBFGSConfig(Section):
    """The full-batch quasi-Newton phase after Adam (zoom line search): L-BFGS (optax), or dense
    BFGS / self-scaled BFGS (`sdeml.core.lbfgs_minimize`'s ``method``)."""

    steps: NonNegativeInt = 0  # iterations at most; 0: no quasi-Newton phase
    method: Literal["lbfgs", "bfgs", "ssbfgs"] = "lbfgs"  # bfgs/ssbfgs: dense n x n inverse Hessian
    memory: PositiveInt = 50  # curvature pairs (method lbfgs)
    linesearch_steps: PositiveInt = 30
    n_interior: PositiveInt = 10_000  # the fixed full-batch set
    n_initial: PositiveInt = 512
    n_boundary: PositiveInt = 512
    resample_every: NonNegativeInt = 0  # with adaptive.rad: redraw the set every N iterations
    ftol: NonNegativeFloat = 0.0
    gtol: NonNegativeFloat = 0.0
    patience: PositiveInt = 50
    log_every: PositiveInt = 100
    time_limit_s: PositiveFloat | None = None


class EvalConfig(Section):
    n_t: int = Field(default=100, ge=100, le=4096)  # the error grid: >= 256 x 100
    n_x: int = Field(default=256, ge=256, le=4096)
    snapshots: list[Annotated[float, Field(ge=0.0, le=1.0)]] = [0.25, 0.5, 0.75]  # x t1


class Config(ExperimentConfig):
    experiment: Literal["pinn"] = "pinn"
    problem: ProblemConfig = ProblemConfig()
    pinn: PinnConfig = PinnConfig()
    adaptive: AdaptiveConfig = AdaptiveConfig()
    causal: CausalConfig = CausalConfig()
    train: TrainConfig = TrainConfig(
        steps=5000, lr=3e-3, schedule="cosine", log_every=100, ckpt_every=1000
    )
    lbfgs: LBFGSConfig = LBFGSConfig()
    eval: EvalConfig = EvalConfig()

    # `seed` (the keys) and `train.lr` (a leaf of the optimiser state) enter as arrays (issue #19).
    # Not sweepable: the PDE's coefficients (checked in Python by the problem classes), the
    # problem, sizes, switches. The L-BFGS phase then runs point by point (it is full batch and
    # stops on its own criteria).
    sweep_keys: ClassVar[tuple[str, ...]] = ("seed", "train.lr")

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        The PDE residual needs u_t, u_x and u_xx at every interior point: the network's activations
        with their first- and second-order tangents (about 4 copies), kept for the backward pass
        with their cotangents (x2); initial and boundary points need u alone. RAD evaluates the
        residual (forward only) on its pool; L-BFGS works on its own fixed set and keeps `memory`
        curvature pairs.
        """
        b = 8 if self.x64 else 4
        c = self.pinn
        act = c.width * (c.depth + 1) * b  # one point's activations
        params = c.width**2 * c.depth * b
        lb = self.lbfgs
        parts: dict[str, float] = {
            "residual activations (pinn.n_interior x pinn.width x (pinn.depth + 1) x 4 x B x 2)": (
                c.n_interior * act * 4 * 2
            ),
            "initial-condition activations (pinn.n_initial x pinn.width x (pinn.depth + 1) "
            "x B x 2)": (c.n_initial * act * 2),
            "boundary activations (2 walls x pinn.n_boundary x pinn.width x (pinn.depth + 1) x B x "
            "2)": 2 * c.n_boundary * act * 2,
            "error grid (eval.n_t x eval.n_x x pinn.width x (pinn.depth + 1) x B)": (
                self.eval.n_t * self.eval.n_x * act
            ),
            "parameters, gradients, Adam moments (pinn.width^2 x pinn.depth x B x 4)": params * 4,
        }
        if self.adaptive.rad:  # only named when used: a switched-off option allocates nothing
            parts[
                "RAD pool residuals (pinn.n_interior x adaptive.pool_factor x pinn.width x "
                "(pinn.depth + 1) x 4 x B)"
            ] = c.n_interior * self.adaptive.pool_factor * act * 4
        if lb.steps:
            parts[
                "L-BFGS residual activations (lbfgs.n_interior x pinn.width x (pinn.depth + 1) x 4 "
                "x B x 2)"
            ] = lb.n_interior * act * 8
            if lb.method == "lbfgs":
                parts["L-BFGS memory (2 x lbfgs.memory x pinn.width^2 x pinn.depth x B)"] = (
                    2 * lb.memory * params
                )
            else:
                parts["dense inverse Hessian ((pinn.width^2 x pinn.depth)^2 x B x 2)"] = (
                    (c.width**2 * c.depth) ** 2 * b * 2
                )
            if self.adaptive.rad:
                parts[
                    "L-BFGS RAD pool (lbfgs.n_interior x adaptive.pool_factor x pinn.width x "
                    "(pinn.depth + 1) x 4 x B)"
                ] = lb.n_interior * self.adaptive.pool_factor * act * 4
        return parts


def _problem(p: ProblemConfig) -> sdeml.pinn.AbstractPDE:
    if p.name == "heat":
        return sdeml.pinn.Heat1D(p.alpha, p.t1)
    if p.name == "burgers":
        return sdeml.pinn.Burgers1D(0.05 if p.nu is None else p.nu, p.t1)
    if p.name == "burgers_raissi":
        return sdeml.pinn.RaissiBurgers(0.01 / math.pi if p.nu is None else p.nu, p.t1)
    return sdeml.pinn.Convection1D(p.beta, p.t1)


def build_model(cfg: Config, key) -> sdeml.PINN:
    c, problem = cfg.pinn, _problem(cfg.problem)
    lo, hi = problem.x_range
    scaled = c.scale_inputs or c.harmonics > 0
    return sdeml.PINN(
        c.width,
        c.depth,
        key=key,
        t_range=(0.0, problem.t1) if c.scale_inputs else None,
        x_range=(lo, hi) if scaled else None,
        harmonics=c.harmonics,
        fourier_features=c.fourier_features,
        fourier_scale=c.fourier_scale,
    )


@register(
    "pinn",
    Config,
    "PINN (Adam, then (SS)BFGS or L-BFGS) for heat, Burgers or convection, against a reference "
    "solution",
    smoke=(
        "train.steps=30",
        "train.log_every=10",
        "train.ckpt_every=10",
        "pinn.n_interior=64",
        "lbfgs.steps=6",
        "lbfgs.n_interior=64",
        "lbfgs.log_every=3",
    ),
    build_model=build_model,
)
def main(cfg: Config, run: Run) -> dict[str, Any]:
    import jax

    # Every grid point of a `sweep:` is one member of a batched state, trained by one vmapped
    # Adam program (issue #19); each point's network then gets its L-BFGS phase and evaluation.
    run.summary["matmul_precision"] = MATMUL_PRECISION
    with jax.default_matmul_precision(MATMUL_PRECISION):
        models, _, stats = run.train_grid(_setup, _objective, cfg.train)
        adam_wall = run.training.get("model", {}).get("train_wall_time_s", stats.wall_time_s)
        final = stats.last_metrics  # per metric: a float, or one entry per grid point
        problem = _problem(cfg.problem)
        t, x, ref = sdeml.pinn.reference_grid(problem, cfg.eval.n_t, cfg.eval.n_x)
        rows, stops = [], []
        for i, c in enumerate(run.points()):
            last = {k: v[i] if run.sweep else v for k, v in final.items()}
            u = run.member(models, i)
            adam_err = float(sdeml.pinn.pinn_error(u, problem, reference=ref)["rel_l2"])
            u, lb = _lbfgs_phase(c, run.at(i), u)
            row = _evaluate(c, run.at(i), u, last, lb, ref)
            row["adam_rel_l2_error"] = adam_err
            row["adam_wall_s"] = adam_wall
            rows.append(row)
            if lb is not None:
                stops.append({"status": lb["status"], "message": lb["message"]})
    if stops:
        run.summary["lbfgs"] = stops if run.sweep else stops[0]
    return run.collect(rows)


def _setup(cfg: Config) -> Setup:
    import jax.random as jr

    k_model, k_train = jr.split(jr.key(cfg.seed))
    data = None
    if not cfg.pinn.resample:  # one fixed set (Raissi et al.), drawn from the training key
        c = cfg.pinn
        data = sdeml.pinn.sample_collocation(
            _problem(cfg.problem),
            c.n_interior * (cfg.adaptive.pool_factor if cfg.adaptive.rad else 1),
            c.n_initial,
            c.n_boundary,
            key=jr.fold_in(k_train, 2**20),
        )
    return Setup(build_model(cfg, k_model), k_train, data)


def _loss(cfg: Config, problem: Any):
    """``(u, points, key) -> (loss, parts)``: RAD draws the interior points from the batch's."""
    c, ad, ca = cfg.pinn, cfg.adaptive, cfg.causal
    weights = (c.w_residual, c.w_initial, c.w_boundary)

    def loss_fn(u, points, key):
        if ad.rad:
            t_in, x_in = sdeml.pinn.rad_resample(
                u, problem, points.t_in, points.x_in, c.n_interior, k=ad.k, c=ad.c, key=key
            )
            points = sdeml.pinn.Collocation(t_in, x_in, points.x_init, points.t_bc, points.x_bc)
        return sdeml.pinn.pinn_loss(
            u, problem, points, weights=weights, causal_chunks=ca.chunks, causal_eps=ca.eps
        )

    return loss_fn


def _objective(cfg: Config, data: Any):
    problem, c = _problem(cfg.problem), cfg.pinn
    n_in = c.n_interior * (cfg.adaptive.pool_factor if cfg.adaptive.rad else 1)

    def batch_fn(key, step):
        if data is not None:
            return data
        return sdeml.pinn.sample_collocation(problem, n_in, c.n_initial, c.n_boundary, key=key)

    return _loss(cfg, problem), batch_fn


def _lbfgs_phase(cfg: Config, run: Run, u: Any) -> tuple[Any, dict[str, Any] | None]:
    """Full-batch L-BFGS on a fixed set (RAD-drawn from a pool with ``adaptive.rad``)."""
    import equinox as eqx
    import jax.random as jr

    lb, c, ad = cfg.lbfgs, cfg.pinn, cfg.adaptive
    if lb.steps == 0:
        return u, None
    problem = _problem(cfg.problem)
    weights = (c.w_residual, c.w_initial, c.w_boundary)
    base = jr.fold_in(jr.key(cfg.seed), 7)  # not the Adam keys: `train.lr` does not move it

    def points_for(u: Any, round_: int) -> Any:
        key = jr.fold_in(base, round_)
        k_pts, k_pool, k_rad = jr.split(key, 3)
        pts = sdeml.pinn.sample_collocation(
            problem, lb.n_interior, lb.n_initial, lb.n_boundary, key=k_pts
        )
        if not ad.rad:
            return pts
        t_pool, x_pool = sdeml.pinn.sample_interior(
            problem, lb.n_interior * ad.pool_factor, key=k_pool
        )
        draw = eqx.filter_jit(
            lambda u, tp, xp, k: sdeml.pinn.rad_resample(
                u, problem, tp, xp, lb.n_interior, k=ad.k, c=ad.c, key=k
            )
        )
        t_in, x_in = draw(u, t_pool, x_pool, k_rad)
        return sdeml.pinn.Collocation(t_in, x_in, pts.x_init, pts.t_bc, pts.x_bc)

    offset = cfg.train.steps
    rounds = (
        [lb.steps]
        if not (ad.rad and lb.resample_every)
        else [lb.resample_every] * (lb.steps // lb.resample_every)
        + ([lb.steps % lb.resample_every] if lb.steps % lb.resample_every else [])
    )
    done, history, wall, result = 0, [], 0.0, None
    name = run.point_name("lbfgs")
    for r, n in enumerate(rounds):
        pts = points_for(u, r)
        loss_fn = lambda model, pts=pts: sdeml.pinn.pinn_loss(model, problem, pts, weights=weights)

        def on_log(it: int, row: dict[str, float], base_it: int = done) -> None:
            run.log(offset + base_it + it, {**row, "iteration": base_it + it}, tag=name)

        remaining = None if lb.time_limit_s is None else max(lb.time_limit_s - wall, 1e-3)
        result = sdeml.pinn.lbfgs_minimize(
            loss_fn,
            u,
            max_iter=n,
            memory_size=lb.memory,
            max_linesearch_steps=lb.linesearch_steps,
            gtol=lb.gtol,
            ftol=lb.ftol,
            patience=lb.patience,
            log_every=lb.log_every,
            time_limit_s=remaining,
            on_log=on_log,
            raise_on_non_finite=False,  # reported below; the last finite model is evaluated
            method=lb.method,
        )
        u = result.params
        history += [{**h, "iteration": done + h["iteration"]} for h in result.history]
        done += result.iterations
        wall += result.wall_time_s
        if result.status not in ("max_iter",):
            break
    assert result is not None
    message = result.message
    if result.status == "time_limit" and lb.time_limit_s is not None:
        # the library saw one round's share of the budget; say what the whole phase did
        message = (
            f"{sdeml.core.METHOD_LABELS[lb.method]} stopped after {done} iterations in {r + 1} "
            f"round(s): time limit of {lb.time_limit_s:g} s reached (loss {result.loss:.6g})"
        )
    if result.status in ("non_finite", "no_progress"):
        print(f"sdeml: pinn: {result.message}", file=sys.stderr)
    return u, {
        "status": result.status,
        "message": message,
        "iterations": done,
        "loss": result.loss,
        "wall_s": wall,
        "history": history,
    }


def _history(run: Run, index: int | None) -> tuple[list[dict[str, float]], list[dict[str, Any]]]:
    """The Adam rows (this grid point's values) and L-BFGS rows logged to metrics.jsonl."""
    path = run.dir / "metrics.jsonl"
    adam, lbfgs = [], []
    if not path.is_file():
        return adam, lbfgs
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("tag") == "model":
            pick = lambda v: v[index] if isinstance(v, list) and index is not None else v
            adam.append({k: pick(v) for k, v in row.items() if k != "tag"})
        elif row.get("tag") == run.point_name("lbfgs") and row.get("point", index) == index:
            lbfgs.append(row)
    return adam, lbfgs


def _evaluate(
    cfg: Config,
    run: Run,
    u: Any,
    final: dict[str, float],
    lb: dict[str, Any] | None,
    ref: Any,
) -> dict[str, Any]:
    """One grid point's errors against the reference, and its plots."""
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np

    p = cfg.problem
    problem = _problem(p)
    err = sdeml.pinn.pinn_error(u, problem, reference=ref)
    run.save_arrays("solution", t=err["t"], x=err["x"], u=err["u"], exact=err["exact"])
    rel = float(err["rel_l2"])

    # the fields and the error heat-map
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    extent = (float(err["x"][0]), float(err["x"][-1]), 0.0, p.t1)
    for ax, field, title in [
        (axes[0], err["exact"], "reference u*(t, x)"),
        (axes[1], err["u"], "PINN u(t, x)"),
    ]:
        im = ax.imshow(field, origin="lower", extent=extent, aspect="auto", cmap="viridis")
        ax.set(title=title, xlabel="x", ylabel="t")
        fig.colorbar(im, ax=ax)
    im = axes[2].imshow(
        jnp.abs(err["u"] - err["exact"]), origin="lower", extent=extent, aspect="auto", cmap="magma"
    )
    axes[2].set(title=f"|u - u*|, relative L2 = {rel:.2e}", xlabel="x", ylabel="t")
    fig.colorbar(im, ax=axes[2], label="|u - u*|")
    fig.tight_layout()
    run.savefig(fig, "solution")

    # snapshots at the requested times, against the reference at exactly those times
    x = err["x"]
    snaps = [s * p.t1 for s in cfg.eval.snapshots]
    fig, axes = plt.subplots(1, len(snaps), figsize=(4.5 * len(snaps), 3.8), squeeze=False)
    for ax, s in zip(axes[0], snaps, strict=True):
        ts = jnp.full_like(x, s)
        ax.plot(x, problem.reference(ts, x), "b-", lw=2, label="reference")
        ax.plot(x, jax.vmap(u)(ts, x), "r--", lw=2, label="PINN")
        ax.set(title=f"t = {s:g}", xlabel="x", ylabel="u(t, x)")
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    run.savefig(fig, "snapshots")

    # loss curves per term: Adam, then L-BFGS
    index = getattr(run, "index", None)
    adam_rows, lbfgs_rows = _history(run, index)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    terms = ["loss", "residual", "initial", "boundary"]
    for k, color in zip(terms, ["k", "C0", "C1", "C2"], strict=True):
        steps = [r["step"] for r in adam_rows if k in r] + [r["step"] for r in lbfgs_rows if k in r]
        vals = [r[k] for r in adam_rows if k in r] + [r[k] for r in lbfgs_rows if k in r]
        if vals:
            ax.semilogy(steps, np.maximum(np.asarray(vals, float), 1e-300), color=color, label=k)
    if lbfgs_rows:
        ax.axvline(cfg.train.steps, color="gray", ls=":", lw=1)
        label = " " + sdeml.core.METHOD_LABELS[cfg.lbfgs.method]
        ax.text(cfg.train.steps, ax.get_ylim()[1], label, va="top", fontsize=8, color="gray")
    ax.set(
        xlabel="step (Adam), then Adam steps + quasi-Newton iteration",
        ylabel="loss term (mean sq.)",
    )
    ax.set_title(f"loss terms; final relative L2 = {rel:.2e}")
    ax.legend(loc="best", fontsize=8)
    run.savefig(fig, "loss_curves")

    row: dict[str, Any] = {
        "rel_l2_error": rel,
        "max_abs_error": float(err["max_abs"]),
        "final_loss": float(final["loss"]) if lb is None else float(lb["loss"]),
        "final_residual": float(final["residual"])
        if lb is None or not lb["history"]
        else float(lb["history"][-1]["residual"]),
    }
    if lb is not None:
        row["lbfgs_iterations"] = lb["iterations"]
        row["lbfgs_wall_s"] = lb["wall_s"]
    return row
