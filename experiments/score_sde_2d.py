"""Score-based generative modelling of a 2-D toy through a VP, sub-VP or VE SDE.

Trains a `TimeMLP` noise predictor with denoising score matching (through `sdeml.train`),
samples with reverse-SDE Euler-Maruyama, predictor-corrector, the probability-flow ODE and
multistep DPM-Solver at two few-step budgets (``eval.dpm_nfe``, default 20 and 35 score
evaluations), and scores every sampler by the median-ratio MMD protocol of issue #7 (median over
seeds of MMD(generated, held-out) / median of MMD(data, data)), at ``eval.n_samples`` and, when
``eval.n_large`` is set, again at that size. Plots samples beside data, the noising and
denoising trajectories, the learned density (PF-ODE likelihood on a grid) and the loss curve.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, Setup, compiled, register
from sdeml.train import TrainConfig


class DataConfig(Section):
    name: Literal["8gaussians", "moons", "swissroll", "checkerboard", "circles", "mixture"] = (
        "moons"
    )


# the training recipe of the 2-D toys' denoising objectives (also pfgm_2d's)
TOY_TRAIN: dict[str, Any] = dict(
    steps=6000,
    batch_size=512,
    lr=2e-3,
    schedule="cosine",
    ema_decay=0.999,
    log_every=200,
    ckpt_every=2000,
)


def _sde(cfg: SDEConfig):
    if cfg.name == "ve":
        return sdeml.diffusion.get_sde("ve", sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)
    return sdeml.diffusion.get_sde(cfg.name, beta_min=cfg.beta_min, beta_max=cfg.beta_max)


class SDEConfig(Section):
    name: Literal["vp", "subvp", "ve"] = "vp"
    beta_min: PositiveFloat = 0.1
    beta_max: PositiveFloat = 20.0
    sigma_min: PositiveFloat = 0.01
    sigma_max: PositiveFloat = 8.0
    eps: float = Field(default=1e-5, gt=0.0, lt=1.0)  # training cut-off

    @model_validator(mode="after")
    def _ordered(self) -> SDEConfig:
        # the SDE's own condition, checked here so that `check` refuses it (building the SDE
        # here would import JAX into `sdeml check`, which stays light)
        q = "sigma" if self.name == "ve" else "beta"
        a, b = getattr(self, f"{q}_min"), getattr(self, f"{q}_max")
        if not a < b:
            raise ValueError(f"need {q}_min < {q}_max, got {q}_min={a}, {q}_max={b}")
        return self


class ModelConfig(Section):
    width: PositiveInt = 256
    depth: PositiveInt = 3
    embed_scale: PositiveFloat = 4.0


class ToyEvalConfig(Section):
    n_samples: PositiveInt = 2000
    # independent data sets of n_samples each: generated set s is scored against data set s, and
    # the floor is the median MMD of n_sets // 2 disjoint pairs of them (issue #7's protocol)
    n_sets: int = Field(default=10, ge=2)
    n_seeds: PositiveInt = 3  # generated sets, at most n_sets

    @model_validator(mode="after")
    def _seeds_within_sets(self) -> ToyEvalConfig:
        if self.n_seeds > self.n_sets:
            raise ValueError(
                f"n_seeds ({self.n_seeds}) must be at most n_sets ({self.n_sets}): generated set "
                "s is scored against data set s"
            )
        return self


class EvalConfig(ToyEvalConfig):
    em_steps: PositiveInt = 1000
    pc_steps: PositiveInt = 500
    # few-step budgets (score evaluations, the final denoising step included) of multistep
    # DPM-Solver-3; issue #7 asks for <= 20 and <= 35
    dpm_nfe: list[Annotated[int, Field(ge=2)]] = Field(default_factory=lambda: [20, 35])
    n_large: int = Field(default=0, ge=0)  # also score EM, ODE and DPM at this n (issue #7: 10000)
    density_grid: int = Field(default=40, ge=0)  # 0: skip the PF-ODE density plot
    # toys with a closed-form mixture (8gaussians): also score EM/PC/ODE with the exact score
    exact_reference: bool = True


class Config(ExperimentConfig):
    experiment: Literal["score_sde"] = "score_sde"
    data: DataConfig = DataConfig()
    sde: SDEConfig = SDEConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig(**TOY_TRAIN)
    eval: EvalConfig = EvalConfig()

    # `seed` (the keys) and `train.lr` (a leaf of the optimiser state) enter as arrays. Not
    # sweepable (issue #19): the SDE's coefficients (`sde.beta_*`, `sde.sigma_*` are static Python
    # floats of the SDE modules, checked in Python), `sde.eps` (checked in Python by `dsm_loss`),
    # `model.embed_scale` (typed `float` in `TimeMLP`), and sizes.
    sweep_keys: ClassVar[tuple[str, ...]] = ("seed", "train.lr")

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation)."""
        w, layers = max(self.model.width, 2), self.model.depth + 2
        n_eval = max(self.eval.n_samples, self.eval.n_large)
        return {
            # activations kept for the backward pass, plus their gradients and the EMA/Adam copies
            "training activations (train.batch_size x model.width x (model.depth + 2) x 4 B x 3)": (
                self.train.batch_size * w * layers * 4 * 3
            ),
            "sampler states and activations (eval.n_samples or eval.n_large x model.width x "
            "(model.depth + 2) x 4 B x 2)": n_eval * w * layers * 4 * 2,
            "parameters, gradients, Adam moments, EMA (model.width^2 x model.depth x 4 B x 5)": (
                w * w * self.model.depth * 4 * 5
            ),
        }


def build_model(cfg: Config, key) -> sdeml.diffusion.ScoreModel:
    """The noise-predicting `TimeMLP` inside a `ScoreModel` for the configured SDE."""
    m = cfg.model
    net = sdeml.nn.TimeMLP(2, m.width, m.depth, embed_scale=m.embed_scale, key=key)
    return sdeml.diffusion.ScoreModel(net, _sde(cfg.sde), "eps")


@register(
    "score_sde",
    Config,
    "score SDE on a 2-D toy: train, sample (EM/PC/ODE/DPM), MMD",
    smoke=(
        "train.steps=20",
        "train.log_every=10",
        "train.ckpt_every=20",
        "eval.n_samples=200",
        "eval.n_seeds=1",
        "eval.em_steps=20",
        "eval.pc_steps=10",
        "eval.density_grid=0",
        "model.width=32",
    ),
    build_model=build_model,
)
def main(cfg: Config, run: Run) -> dict[str, Any]:
    run.points()  # each validated, its SDE's ranges too (`SDEConfig._ordered`)
    # Every grid point of a `sweep:` is one member of a batched state, trained by one vmapped
    # program (issue #19); the evaluation then runs each point's trained model.
    return run.evaluate_points(_evaluate, run.train_grid(_setup, _objective, cfg.train).model)


def seeded_setup(build: Any, cfg: Any) -> Setup:
    """One grid point's initial model (``build(cfg, key)``) and training key from ``cfg.seed``
    (swept keys may be traced arrays); the third key of the split is the evaluation's."""
    import jax.random as jr

    k_model, k_train, _ = jr.split(jr.key(cfg.seed), 3)
    return Setup(build(cfg, k_model), k_train)


def _setup(cfg: Config) -> Setup:
    return seeded_setup(build_model, cfg)


def toy_batches(cfg: Any):
    """Fresh i.i.d. batches of ``cfg.data.name`` at ``cfg.train.batch_size`` every step."""

    def batch_fn(key, step):
        return sdeml.data.toy(cfg.data.name, cfg.train.batch_size, key=key)

    return batch_fn


def toy_references(cfg: Any, n: int):
    """The evaluation key, the ``cfg.eval.n_sets`` reference sets of size `n` (issue #7's MMD
    protocol) and one set of kernel bandwidths from the first of them."""
    import jax.numpy as jnp
    import jax.random as jr

    k_eval = jr.split(jr.key(cfg.seed), 3)[2]
    m = cfg.eval.n_sets
    ref = [sdeml.data.toy(cfg.data.name, n, key=jr.fold_in(k_eval, 1000 + i)) for i in range(m)]
    bw = sdeml.metrics.median_bandwidth(ref[0]) * jnp.asarray(
        sdeml.metrics.DEFAULT_BANDWIDTH_FACTORS
    )
    return k_eval, ref, bw


def _objective(cfg: Config, data: None):
    """One grid point's DSM loss and batch function: fresh i.i.d. data every step."""
    sde = _sde(cfg.sde)

    def loss_fn(model, batch, key):
        return sdeml.dsm_loss(model, sde, batch, eps=cfg.sde.eps, key=key)

    return loss_fn, toy_batches(cfg)


# The evaluation's programs: module-level functions compiled once (`sdeml.run.compiled`) and
# shared by every grid point and seed; the SDE's float fields, the shape and the sampler's options
# are static, the model, keys and data arguments.
def _draw(model, sde, shape, key, kw):
    return sdeml.sample(model, sde, shape, key=key, **kw)


def _loglik(model, sde, x):
    import jax

    return jax.vmap(
        lambda xi: sdeml.log_likelihood(model, sde, xi, eps=1e-3, rtol=1e-4, atol=1e-4).logp
    )(x)


def _evaluate(cfg: Config, run: Run, model) -> dict[str, float]:
    """Sample, score and plot one grid point's trained model."""
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib.pyplot as plt

    sde = _sde(cfg.sde)
    n, ev = cfg.eval.n_samples, cfg.eval
    # one set of bandwidths (from the first data set at n) for every size and sampler
    k_eval, ref, bw = toy_references(cfg, n)

    # issue #7: floor pairs (R_i, R_{k+i}) with k = n_sets // 2 (the function's default), G_s
    # against R_s
    def score(gen, ref_s, floors=None):
        return sdeml.metrics.mmd_ratio_to_floor(gen, ref_s, bandwidths=bw, floors=floors)

    methods = {
        "em": dict(method="em", n_steps=ev.em_steps),
        "pc": dict(method="pc", n_steps=ev.pc_steps),
        "ode": dict(method="ode"),
    }
    for k in ev.dpm_nfe:  # >= 2 (validated)
        methods[f"dpm{k}"] = dict(method="dpm", n_steps=k - 1)  # + 1 denoising evaluation
    results: dict[str, float] = {}
    per_seed: dict[str, list[float]] = {}
    samples = {}
    sizes = [n] + ([ev.n_large] if ev.n_large else [])
    floors_n = None  # the floor pairs' MMDs at n, shared by the exact-score reference
    for size in sizes:
        sfx = "" if size == n else f"_n{size}"
        if size == n:
            ref_s = ref
        else:
            ref_s = [
                sdeml.data.toy(cfg.data.name, size, key=jr.fold_in(k_eval, 2000 + i))
                for i in range(ev.n_sets)
            ]
        floors = None
        todo = methods if size == n else {k: v for k, v in methods.items() if k != "pc"}
        draw = compiled(_draw)
        for name, kw in run.progress(todo.items(), f"sampling n={size}", total=len(todo)):
            gen, nfe = [], 0
            for s in range(ev.n_seeds):
                r = draw(model, sde, (size, 2), jr.fold_in(k_eval, s), kw)
                gen.append(r.x)
                nfe = int(r.nfe)
            r = score(gen, ref_s, floors)
            floors = r["floors"]  # computed once per size
            if size == n:
                floors_n = floors
            results[f"mmd_floor{sfx}"] = r["floor"]
            # one (generated, data) MMD varies 0.5-2x between seeds: keep every seed's ratio
            per_seed[f"{name}{sfx}"] = r["ratios"]
            results[f"mmd_{name}{sfx}"] = r["value"]
            results[f"mmd_ratio_{name}{sfx}"] = r["ratio"]
            results[f"nfe_{name}{sfx}"] = nfe
            if size == n:
                samples[name] = gen[0]
            run.log(
                cfg.train.steps,
                {f"mmd_ratio_{name}{sfx}": r["ratio"], f"nfe_{name}{sfx}": nfe},
                tag="eval",
            )

    mixture = sdeml.data.toy_mixture(cfg.data.name)
    if mixture is not None and ev.exact_reference:
        # the same samplers, seeds and data sets with the closed-form score of the toy: what a
        # perfect score model scores on this metric (sampler error and the metric's own noise)
        exact = sdeml.MixtureScore(mixture, sde)
        draw = compiled(_draw)
        for name in run.progress(("em", "pc", "ode"), "exact-score reference", total=3):
            gen = [
                draw(exact, sde, (n, 2), jr.fold_in(k_eval, s), methods[name]).x
                for s in range(ev.n_seeds)
            ]
            r = score(gen, ref, floors_n)
            per_seed[f"{name}_exact_score"] = r["ratios"]
            results[f"mmd_ratio_{name}_exact_score"] = r["ratio"]
    run.save_json("mmd_ratio_per_seed", per_seed)
    run.save_arrays("samples", data=ref[0], **samples)
    fig, axs = plt.subplots(1, 1 + len(samples), figsize=(3.2 * (1 + len(samples)), 3.2))
    lim = float(jnp.max(jnp.abs(ref[0]))) * 1.15
    for ax, (title, x) in zip(axs, [("data", ref[0])] + list(samples.items()), strict=True):
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
        if title == "data":
            title = f"data (n = {x.shape[0]})"
        else:  # each panel carries its score (issue #17): MMD / the data-vs-data floor
            ratio, nfe = results[f"mmd_ratio_{title}"], results[f"nfe_{title}"]
            title = f"{title}: MMD {ratio:.2f}x floor, NFE {nfe}"
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=title, aspect="equal", xlabel="x1")
        ax.title.set_fontsize(9)
    axs[0].set_ylabel("x2")
    run.savefig(fig, "samples")

    _plot_trajectories(run, model, sde, ref[0][:300], ev.em_steps, lim, jr.fold_in(k_eval, 99))
    _plot_loss(run)

    if ev.density_grid:
        g = jnp.linspace(-lim, lim, ev.density_grid)
        pts = jnp.stack(jnp.meshgrid(g, g), -1).reshape(-1, 2)
        loglik = compiled(_loglik)
        ll = loglik(model, sde, pts)
        fig, ax = plt.subplots(figsize=(4.8, 4))
        im = ax.imshow(
            jnp.exp(ll).reshape(len(g), len(g)), origin="lower", extent=(-lim, lim, -lim, lim)
        )
        fig.colorbar(im, ax=ax, label="density p(x) (linear scale)")
        ax.set(title="learned density (PF-ODE likelihood)", xlabel="x1", ylabel="x2")
        run.savefig(fig, "density")
        results["nll_nats"] = float(-jnp.mean(loglik(model, sde, ref[0][:200])))
        results["bits_per_dim"] = float(sdeml.metrics.bits_per_dim(results["nll_nats"], 2))
    return results


def _plot_trajectories(run: Run, model, sde, x0, em_steps: int, lim: float, key) -> None:
    """Noising (exact forward transitions from data) above denoising (reverse-SDE EM)."""
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib.pyplot as plt

    k_fwd, k_rev = jr.split(key)
    kw = dict(method="em", n_steps=em_steps, n_saves=6)
    traj = compiled(_draw)(model, sde, x0.shape, k_rev, kw)
    assert traj.ts is not None and traj.path is not None  # saved: n_saves=6
    ts_rev = traj.ts  # T = t_0 > ... > t_K
    ts_fwd = jnp.concatenate([jnp.zeros(1, ts_rev.dtype), ts_rev[::-1][1:]])  # 0 < ... < T
    # X_t | X_s = x ~ N(a_t / a_s x, sigma_t^2 - (a_t / a_s)^2 sigma_s^2) exactly: each particle
    # keeps its identity, so the panels show one forward path per point
    fwd, x = [x0], x0
    for i, (t0, t1) in enumerate(zip(ts_fwd[:-1], ts_fwd[1:], strict=True)):
        x = sde.forward_sample(x, t0, t1, key=jr.fold_in(k_fwd, i))
        fwd.append(x)
    k = len(ts_fwd)
    big = max(lim, 3.0 * float(sde.prior_std))
    fig, axs = plt.subplots(2, k, figsize=(2.4 * k, 5.0))
    for j in range(k):
        for row, (x, t, c) in enumerate(
            [(fwd[j], ts_fwd[j], "C1"), (traj.path[j], ts_rev[j], "C0")]
        ):
            ax = axs[row, j]
            ax.scatter(x[:, 0], x[:, 1], s=1, c=c)
            r = lim if float(t) < 0.1 else big
            ax.set(xlim=(-r, r), ylim=(-r, r), aspect="equal")
            ax.tick_params(labelsize=6)
            if row == 1:
                ax.set_xlabel("x1", fontsize=7)
            if j == 0:
                ax.set_ylabel("x2", fontsize=7)
            ax.set_title(
                f"{'noising' if row == 0 else 'denoising'}, t = {float(t):.2f}", fontsize=8
            )
    run.savefig(fig, "trajectories")


def _plot_loss(run: Run) -> None:
    """The DSM loss against the training step, read back from metrics.jsonl (a sweep logs one
    list per metric: the point's view `run.index` is its entry)."""
    import matplotlib.pyplot as plt

    path = run.dir / "metrics.jsonl"  # a point's run view shares the run's file
    if not path.is_file():
        return
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("tag") == "model" and "loss" in r]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(4.5, 3))
    member = run.index
    loss = [r["loss"] if member is None else r["loss"][member] for r in rows]
    ax.plot([r["step"] for r in rows], loss)
    ax.set(xlabel="step", ylabel="DSM loss (sigma^2 weighting)", title="training loss")
    run.savefig(fig, "loss")
