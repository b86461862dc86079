"""PFGM++ on a 2-D toy at a chosen D (D = inf: EDM diffusion), and a few-step sampler table.

Trains an EDM-preconditioned `TimeMLP` denoiser with the PFGM++ objective (through
`sdeml.train`), samples with EDM's Heun sampler and UniPC-3 under the PFGM++ prior at each
``eval.nfe`` budget, and scores the samples by the median-ratio MMD protocol of issue #7 (MMD to
held-out data over the data-vs-data floor). With ``table.enabled`` it also writes the sampler
table of issue #21 on the exact-score Gaussian mixture (VP SDE): endpoint error against a
tight PF-ODE solve from the same prior draws, and the log-density gap of the denoised samples,
for DDIM, EDM Heun, DPM-Solver++(2M) and UniPC-3 at each ``table.nfe``, on the log-SNR grid and
(``table.fit_grids``, rows ``*_fit``) on grids fitted to each sampler's endpoint error on other
prior draws (`sdeml.diffusion.optimize_time_grid`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, Setup, compiled, register
from sdeml.train import TrainConfig

from . import score_sde_2d
from .score_sde_2d import TOY_TRAIN, DataConfig, seeded_setup, toy_batches, toy_references


class PFGMConfig(Section):
    # augmented dimensions; .inf is EDM diffusion (the Gaussian limit)
    D: float = Field(default=128.0, gt=0, allow_inf_nan=True)
    sigma_data: PositiveFloat = 0.5
    p_mean: float = -1.2
    p_std: PositiveFloat = 1.2
    # the samplers' noise range (the grid of Heun and UniPC, and the prior's sigma_max). A toy
    # law of scale ~1 needs no sigma_max of 40: at 10 evaluations (0.01, 5) put the steps
    # where the flow bends (UniPC 1.34x the floor against 9.3x for (0.002, 40), seed 0; see
    # docs/themes/pfgm.md)
    sigma_min: PositiveFloat = 0.01
    sigma_max: PositiveFloat = 5.0
    rho: PositiveFloat = 7.0
    # clip the prior's draws (the heavy tail of small D); 0: no clipping
    max_radius: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _sigma_range(self) -> PFGMConfig:
        if not self.sigma_min < self.sigma_max:
            raise ValueError(
                f"sigma_min ({self.sigma_min}) must be below sigma_max ({self.sigma_max})"
            )
        return self


class ModelConfig(score_sde_2d.ModelConfig):
    width: PositiveInt = 128
    embed_scale: PositiveFloat = 1.0


class EvalConfig(score_sde_2d.ToyEvalConfig):
    # one MMD at n = 2000 varies about 30 % from set to set (floor pairs over 8 keys: 33 %), and
    # the ratio of two medians over 3 generated sets and 5 floor pairs varied 0.89-1.69x for one
    # trained model over eight evaluation keys (sd 0.24); 20 sets and 20 pairs: 1.09-1.36x (0.09)
    n_sets: int = Field(default=40, ge=2)
    n_seeds: PositiveInt = 20
    # score evaluations per sample, the final denoising step included (Heun: 2M + 1, UniPC: M + 1);
    # UniPC-3 needs M >= 3 steps
    nfe: list[Annotated[int, Field(ge=4)]] = Field(default_factory=lambda: [10, 19, 35])
    # UniPC's predictor order; with its corrector the update is one order higher (order 2 is
    # third order), and at 10 evaluations order 2 measured better than 3 (1.34x against 2.27x)
    unipc_order: int = Field(default=2, ge=1, le=3)


class TableConfig(Section):
    enabled: bool = True
    n_points: PositiveInt = 1000
    # M + 1 evaluations: at least one step before the denoising evaluation
    nfe: list[Annotated[int, Field(ge=2)]] = Field(default_factory=lambda: [3, 5, 8, 10, 20])
    # rows "<sampler>_fit": DDIM, DPM-Solver++(2M) and UniPC on grids fitted to their endpoint
    # error (`optimize_time_grid`) on table.n_points other prior draws, scored on the table's own
    fit_grids: bool = True
    grid_steps: PositiveInt = 300  # Adam iterations of each fit


class ConsistencyConfig(Section):
    """Consistency distillation of the trained model from its own PF-ODE (issue #21, item 4):
    the student starts from the teacher's network and trains with the run's optimiser."""

    enabled: bool = True
    steps: PositiveInt = 4000
    n_levels: PositiveInt = 18  # intervals of the rho-grid between adjacent teacher levels
    mid_sigma: PositiveFloat = 0.8  # the two-step sampler's re-noising level
    # the consistency model's own range: the identity at sigma_min, the prior at sigma_max
    # (EDM's sigma_min; one step must carry the whole prior, so a wide range served it better
    # than the samplers' (0.01, 5): 4.0x the floor against 4.1x, self-target)
    sigma_min: PositiveFloat = 0.002
    sigma_max: PositiveFloat = 40.0
    # the target network: an EMA of the student with this decay (Song et al. 2023: 0.95); 0 is
    # the student itself under a stop-gradient. Measured (D = 128, 2000 steps): one step 2.1x
    # the floor with 0.95, 4.1x with 0; 4000 steps with 0.95: 1.7x
    target_ema: float = Field(default=0.95, ge=0.0, lt=1.0)


class Config(ExperimentConfig):
    experiment: Literal["pfgm_2d"] = "pfgm_2d"
    x64: bool = True  # the sampler table's reference solve runs at rtol 1e-10
    data: DataConfig = DataConfig()
    pfgm: PFGMConfig = PFGMConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig(**TOY_TRAIN)  # score_sde_2d's recipe
    eval: EvalConfig = EvalConfig()
    table: TableConfig = TableConfig()
    consistency: ConsistencyConfig = ConsistencyConfig()

    @model_validator(mode="after")
    def _mid_sigma_in_range(self) -> Config:
        c = self.consistency
        if c.enabled and not c.sigma_min < c.sigma_max:
            raise ValueError(
                f"consistency.sigma_min ({c.sigma_min}) must be below consistency.sigma_max "
                f"({c.sigma_max})"
            )
        if c.enabled and not c.sigma_min < c.mid_sigma < c.sigma_max:
            raise ValueError(
                f"consistency.mid_sigma ({c.mid_sigma}) must lie inside (consistency.sigma_min, "
                f"consistency.sigma_max) = ({c.sigma_min}, {c.sigma_max})"
            )
        return self

    # `seed` (the keys) and `train.lr` (optimiser state) enter as arrays; D is a static property of
    # the kernel (it fixes the Gamma law's shape), sizes are static.
    sweep_keys: ClassVar[tuple[str, ...]] = ("seed", "train.lr")

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes."""
        w, layers = max(self.model.width, 2), self.model.depth + 2
        return {
            "training activations (train.batch_size x model.width x (model.depth + 2) x 4 B x 3)": (
                self.train.batch_size * w * layers * 4 * 3
            ),
            "sampler activations (eval.n_samples x model.width x (model.depth + 2) x 4 B x 2)": (
                self.eval.n_samples * w * layers * 4 * 2
            ),
            "parameters, gradients, Adam moments, EMA (model.width^2 x model.depth x 4 B x 5)": (
                w * w * self.model.depth * 4 * 5
            ),
            "exact-score table (table.n_points x 3 components x 8 B x 64)": (
                self.table.n_points * 3 * 8 * 64 if self.table.enabled else 0
            ),
        }


def build_model(cfg: Config, key) -> sdeml.diffusion.EDMDenoiser:
    """An EDM-preconditioned `TimeMLP` denoiser (time input: c_noise = ln(sigma) / 4)."""
    m = cfg.model
    net = sdeml.nn.TimeMLP(2, m.width, m.depth, embed_scale=m.embed_scale, key=key)
    return sdeml.diffusion.EDMDenoiser(net, cfg.pfgm.sigma_data)


@register(
    "pfgm_2d",
    Config,
    "PFGM++ on a 2-D toy at any D: train, sample (Heun/UniPC), MMD; sampler table",
    smoke=(
        "train.steps=20",
        "train.log_every=10",
        "train.ckpt_every=20",
        "eval.n_samples=200",
        "eval.n_seeds=1",
        "eval.nfe=[9]",
        "model.width=32",
        "table.n_points=50",
        "table.nfe=[5]",
        "table.grid_steps=10",
        "consistency.steps=20",
    ),
    build_model=build_model,
)
def main(cfg: Config, run: Run) -> dict[str, Any]:
    points = run.points()  # each validated: eval.nfe >= 4, sigma_min < sigma_max (`check`)
    models = run.train_grid(_setup, _objective, cfg.train).model
    students = None
    if cfg.consistency.enabled:  # distilled from each point's trained model, as one program too
        c = cfg.consistency
        # the target network is the state's EMA (decay target_ema); 0: no EMA, self-target
        cd_train = cfg.train.model_copy(
            update={"steps": c.steps, "ema_decay": c.target_ema or cfg.train.ema_decay}
        )
        students = run.train_grid(
            _cd_setup, _cd_objective, cd_train, name="consistency", inputs=models
        ).model
    rows = [
        _evaluate(
            c, run.at(i), run.member(models, i),
            None if students is None else run.member(students, i),
        )
        for i, c in enumerate(points)
    ]  # fmt: skip
    # the exact-score table does not depend on the trained model: computed once, shown per point
    table = _sampler_table(cfg, run) if cfg.table.enabled else {}
    return run.collect([{**row, **table} for row in rows])


def _draw(model, D, shape, key, kw):
    """A PFGM++ sampler run; compiled once (`sdeml.run.compiled`) per model structure, D, shape
    and options, shared by every grid point and seed."""
    return sdeml.pfgm.pfgmpp_sampler(model, D, shape, key=key, **kw)


def _cd_setup(cfg: Config, teacher) -> Setup:
    """The consistency student of one point: its teacher's network under the consistency
    parameterisation; the teacher rides along as the objective's data."""
    import jax.random as jr

    student = sdeml.diffusion.ConsistencyModel(
        teacher.net, sigma_data=cfg.pfgm.sigma_data, sigma_min=cfg.consistency.sigma_min
    )
    return Setup(student, jr.split(jr.key(cfg.seed), 4)[3], teacher)


def _cd_objective(cfg: Config, teacher):
    p, c = cfg.pfgm, cfg.consistency
    noise = None if math.isinf(p.D) else sdeml.pfgm.PFGMPPKernel(p.D).noise

    def loss_fn(model, batch, key, target=None):
        return sdeml.diffusion.consistency_distillation_loss(
            model, teacher, batch, n_levels=c.n_levels, sigma_max=c.sigma_max, noise_fn=noise,
            target=target, key=key,
        )  # fmt: skip

    if c.target_ema > 0:
        return sdeml.train.with_ema_target(loss_fn), toy_batches(cfg)
    return loss_fn, toy_batches(cfg)


def _setup(cfg: Config) -> Setup:
    return seeded_setup(build_model, cfg)


def _objective(cfg: Config, data: None):
    p = cfg.pfgm

    def loss_fn(model, batch, key):
        return sdeml.pfgm.pfgmpp_loss(
            model, batch, p.D, p_mean=p.p_mean, p_std=p.p_std, sigma_data=p.sigma_data, key=key
        )

    return loss_fn, toy_batches(cfg)


def _consistency_draw(student, D, radius, shape, sigma_max, sigmas, key):
    """The consistency sampler with the PFGM++ prior at `D` (Gaussian for D = inf); compiled
    once per structure and static options (`sdeml.run.compiled`)."""
    kern = sdeml.pfgm.PFGMPPKernel(D)

    def prior(shape, sigma_max, *, dtype=None, key):
        return kern.prior(shape, sigma_max, max_radius=radius, dtype=dtype, key=key)

    noise = None if math.isinf(D) else kern.noise
    return sdeml.diffusion.consistency_sampler(
        student, shape, sigma_max=sigma_max, sigmas=sigmas, prior=prior, noise_fn=noise, key=key
    )


def _evaluate(cfg: Config, run: Run, model, student=None) -> dict[str, float]:
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib.pyplot as plt

    n, ev, p = cfg.eval.n_samples, cfg.eval, cfg.pfgm
    k_eval, ref, bw = toy_references(cfg, n)
    methods = {}
    for k in ev.nfe:
        if (k - 1) % 2 == 0:  # Heun: 2M evaluations + the denoising step
            methods[f"heun{k}"] = dict(method="heun", n_steps=(k - 1) // 2)
        methods[f"unipc{k}"] = dict(method="unipc", n_steps=k - 1, order=ev.unipc_order)
    radius = p.max_radius or None
    results: dict[str, float] = {}
    samples = {}
    floors = None
    kw_all = dict(sigma_min=p.sigma_min, sigma_max=p.sigma_max, rho=p.rho, max_radius=radius)
    for name, kw in run.progress(methods.items(), "sampling", total=len(methods)):
        gen, nfe = [], 0
        for s in range(ev.n_seeds):
            r = compiled(_draw)(model, p.D, (n, 2), jr.fold_in(k_eval, s), {**kw_all, **kw})
            gen.append(r.x)
            nfe = int(r.nfe)
        sc = sdeml.metrics.mmd_ratio_to_floor(gen, ref, bandwidths=bw, floors=floors)
        floors = sc["floors"]
        results["mmd_floor"] = sc["floor"]
        results[f"mmd_ratio_{name}"] = sc["ratio"]
        results[f"nfe_{name}"] = nfe
        samples[name] = gen[0]
        run.log(cfg.train.steps, {f"mmd_ratio_{name}": sc["ratio"], f"nfe_{name}": nfe}, tag="eval")
    if student is not None:  # one and two evaluations of the distilled consistency model
        best_le10 = min(
            (results[f"mmd_ratio_{k[4:]}"] for k, v in results.items()
             if k.startswith("nfe_") and v <= 10),
            default=math.nan,
        )  # fmt: skip
        for name, sigmas in (("cm1", ()), ("cm2", (cfg.consistency.mid_sigma,))):
            gen = [
                compiled(_consistency_draw)(
                    student,
                    p.D,
                    radius,
                    (n, 2),
                    cfg.consistency.sigma_max,
                    sigmas,
                    jr.fold_in(k_eval, s),
                ).x
                for s in range(ev.n_seeds)
            ]
            sc = sdeml.metrics.mmd_ratio_to_floor(gen, ref, bandwidths=bw, floors=floors)
            floors = sc["floors"]
            results[f"mmd_ratio_{name}"] = sc["ratio"]
            results[f"nfe_{name}"] = 1 + len(sigmas)
            # issue #21: the one-step model against the best sampler at <= 10 evaluations
            results[f"{name}_over_best_nfe_le10"] = sc["ratio"] / best_le10
            samples[name] = gen[0]
        run.log(
            cfg.train.steps,
            {k: results[k] for k in ("mmd_ratio_cm1", "mmd_ratio_cm2")},
            tag="eval",
        )
    run.save_arrays("samples", data=ref[0], **samples)
    fig, axs = plt.subplots(1, 1 + len(samples), figsize=(3.2 * (1 + len(samples)), 3.2))
    lim = float(jnp.max(jnp.abs(ref[0]))) * 1.15
    for ax, (title, x) in zip(axs, [("data", ref[0])] + list(samples.items()), strict=True):
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
        if title != "data":
            title = f"{title}: MMD {results[f'mmd_ratio_{title}']:.2f}x floor"
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=title, aspect="equal")
        ax.title.set_fontsize(9)
    run.savefig(fig, "samples")
    return results


def _sampler_table(cfg: Config, run: Run) -> dict[str, float]:
    """Few-step samplers on the exact-score mixture: endpoint error and log-density gap."""
    import jax.numpy as jnp
    import jax.random as jr

    dif = sdeml.diffusion
    f_ = jnp.result_type(float)
    tol = 1e-10 if f_ == jnp.float64 else 1e-5
    gm = sdeml.data.gaussian_mixture_2d(f_)
    vp = sdeml.VPSDE(0.1, 20.0)
    score = sdeml.MixtureScore(gm, vp)
    n, eps = cfg.table.n_points, 1e-3
    key = jr.fold_in(jr.key(cfg.seed), 7)
    x_T = vp.prior_sample((n, 2), key=key, dtype=f_)
    data = gm.sample(20_000, key=jr.fold_in(key, 1))
    exact: dict[str, Any] = dict(solver="dopri8", rtol=tol, atol=tol, eps=eps, key=key)
    ref = dif.probability_flow_sampler(score, vp, (n, 2), x_T=x_T, **exact).x
    out: dict[str, float] = {}
    rows = []
    if cfg.table.fit_grids:
        # the grid fits' own draws and exact endpoints, disjoint from the draws the table scores
        x_fit = vp.prior_sample((n, 2), key=jr.fold_in(key, 2), dtype=f_)
        ref_fit = dif.probability_flow_sampler(score, vp, (n, 2), x_T=x_fit, **exact).x

    def multistep(order: int, unipc: bool, m: int):
        def f(ts, x, d=False):
            kw: dict[str, Any] = dict(n_steps=m, grid=ts, eps=eps, x_T=x, key=key, denoise=d)
            if unipc:
                return dif.unipc_sampler(score, vp, x.shape, order=min(order, m), **kw).x
            kw["prediction"] = "data"
            return dif.dpm_solver_sampler(score, vp, x.shape, order=order, **kw).x

        return f

    for nfe in cfg.table.nfe:
        m = nfe - 1  # the final denoising step is one evaluation
        base = {"ddim": (1, False), "dpmpp_2m": (2, False), "unipc_3": (3, True)}
        samplers = {name: multistep(o, u, m) for name, (o, u) in base.items()}
        runs: dict[str, Callable[[bool], Any]] = {
            name: lambda d, f=f: f("logsnr", x_T, d) for name, f in samplers.items()
        }
        if m % 2 == 0:  # Heun: 2 evaluations per step
            runs["edm_heun"] = lambda d, m=m: (
                dif.edm_heun_sampler(
                    score, vp, (n, 2), n_steps=m // 2, eps=eps, x_T=x_T, key=key, denoise=d
                ).x
            )
        if cfg.table.fit_grids:
            for name, f in samplers.items():
                ts = dif.optimize_time_grid(
                    f, vp, m, x_fit, ref_fit, eps=eps, steps=cfg.table.grid_steps
                ).ts
                runs[f"{name}_fit"] = lambda d, f=f, ts=ts: f(ts, x_T, d)
        for name, f in runs.items():
            x_end = f(False)
            err = float(jnp.sqrt(jnp.mean(jnp.sum((x_end - ref) ** 2, axis=1))))
            gap = dif.log_density_gap(f(True), data, gm)
            out[f"table_err_{name}_nfe{nfe}"] = err
            out[f"table_gap_{name}_nfe{nfe}"] = float(gap["gap"])
            rows.append(
                {
                    "sampler": name,
                    "nfe": nfe,
                    "endpoint_error": err,
                    "log_density_gap": float(gap["gap"]),
                    "gap_stderr": float(gap["stderr"]),
                }
            )
    run.save_json("sampler_table", rows)
    _plot_sampler_table(run, rows)
    return out


def _plot_sampler_table(run: Run, rows: list[dict[str, Any]]) -> None:
    """Endpoint error against NFE for each sampler: the named grids solid, fitted grids dashed."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    names = list(dict.fromkeys(r["sampler"] for r in rows))
    base_names = [n for n in names if not n.endswith("_fit")]
    colours = {n: f"C{i}" for i, n in enumerate(base_names)}
    named = {"edm_heun": "rho = 7"}  # the others run on the log-SNR grid
    for name in names:
        pts = sorted((r["nfe"], r["endpoint_error"]) for r in rows if r["sampler"] == name)
        base = name.removesuffix("_fit")
        fitted = name.endswith("_fit")
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            "--" if fitted else "-",
            marker="o" if not fitted else "s",
            color=colours.get(base, "k"),
            label=f"{base} ({'fitted' if fitted else named.get(base, 'log-SNR')} grid)",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="score evaluations (NFE, the denoising step included)",
        ylabel="RMS endpoint error against the PF-ODE",
        title="Few-step samplers on the exact-score mixture",
    )
    nfes = sorted({r["nfe"] for r in rows})
    ax.set_xticks(nfes, [str(n) for n in nfes])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.title.set_fontsize(10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    run.savefig(fig, "sampler_table")
