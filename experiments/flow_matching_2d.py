"""Flow matching on two moons: independent or mini-batch-OT couplings, then an optional reflow.

A `sdeml.nn.TimeMLP` velocity field is trained with `sdeml.cfm_loss` (source N(0, I)) by the
shared loop, then sampled with a fixed-step diffrax solve of ``eval.n_steps`` steps (``nfe`` in
the summary counts the field evaluations: one per Euler step, two per Heun/midpoint/Ralston
step). Quality is
the MMD median-ratio protocol of `sdeml.metrics.median_ratio`: median MMD of generated vs held-out
sets divided by the median MMD of data vs data sets of the same size (the two-sample floor; a
perfect sampler scores about 1). With ``reflow.steps > 0`` a second model is trained on the
first one's (x0, x1) pairs (rectified flow) and scored at fewer steps, with its straightness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, Setup, compiled, register
from sdeml.train import TrainConfig

if TYPE_CHECKING:  # annotations only: the module loads when a run starts
    import jax.numpy as jnp


class DataConfig(Section):
    name: Literal["moons", "8gaussians", "circles", "checkerboard", "swissroll", "mixture"] = (
        "moons"
    )
    n_train: PositiveInt = 50_000


class ModelConfig(Section):
    width: PositiveInt = 128
    depth: PositiveInt = 3
    # Frequency scale of the Fourier time embedding. The velocity of a straight-path flow is
    # smooth in t; TimeMLP's default 16 (made for diffusion scores) lets it wiggle in t and the
    # samples drift: on moons MMD/floor 3.1x at scale 16, 1.3x at scale 1 (issue #5).
    embed_scale: PositiveFloat = 1.0
    coupling: Literal["independent", "ot"] = "independent"
    sigma: NonNegativeFloat = 0.0


class EvalConfig(Section):
    n: PositiveInt = 2000  # points per generated / reference set
    n_sets: PositiveInt = 5  # sets for the median ratio
    n_steps: PositiveInt = 10  # Heun: 2 evaluations per step, so 20 NFE
    solver: Literal["euler", "heun", "midpoint", "ralston"] = "heun"


class ReflowConfig(Section):
    steps: NonNegativeInt = 0  # 0: no reflow
    n_pairs: PositiveInt = 20_000
    pair_steps: PositiveInt = 100
    n_steps: PositiveInt = 2


class Config(ExperimentConfig):
    experiment: Literal["flow_matching_2d"] = "flow_matching_2d"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig(
        steps=12_000,
        batch_size=256,
        lr=2e-3,
        schedule="cosine",
        ema_decay=0.999,
        log_every=200,
        ckpt_every=1000,
    )
    eval: EvalConfig = EvalConfig()
    reflow: ReflowConfig = ReflowConfig()

    # `seed` (the keys) and `train.lr` (a leaf of the optimiser state) enter as arrays. Not
    # sweepable (issue #19): `model.sigma` (`cfm_loss` branches on it in Python),
    # `model.embed_scale` (typed `float` in `TimeMLP`), the coupling, solvers and sizes.
    sweep_keys: ClassVar[tuple[str, ...]] = ("seed", "train.lr")

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation)."""
        b = 8 if self.x64 else 4
        m, e, r, tr = self.model, self.eval, self.reflow, self.train
        act = m.width * (m.depth + 2) * b  # one point's activations through the TimeMLP
        out: dict[str, float] = {
            "training data (data.n_train x 2 x B x 3)": self.data.n_train * 2 * b * 3,
            # kept for the backward pass, plus their cotangents and the batch's (x0, x1, xt, v)
            "training activations (train.batch_size x model.width x (model.depth + 2) x B x 3)": (
                tr.batch_size * act * 3
            ),
            "generated and reference sets (eval.n_sets x eval.n x 2 x B x 3)": (
                e.n_sets * e.n * 2 * b * 3
            ),
            "sampler activations (eval.n x model.width x (model.depth + 2) x B)": e.n * act,
            # sdeml.metrics.mmd: row blocks of 1024 against every point, one slice per bandwidth
            "MMD row blocks (min(1024, eval.n) x eval.n x 8 bandwidths x B x 2)": (
                min(1024, e.n) * e.n * 8 * b * 2
            ),
            "parameters, gradients, Adam moments, EMA (model.width^2 x model.depth x B x 5)": (
                m.width**2 * m.depth * b * 5
            ),
        }
        if m.coupling == "ot":  # the host assignment of each batch: a dense float64 cost matrix
            out["OT cost matrix (train.batch_size^2 x 8 B x 2)"] = tr.batch_size**2 * 8 * 2
        if r.steps > 0:
            out[
                "reflow pairs and their solve (reflow.n_pairs x (4 + model.width x "
                "(model.depth + 2)) x B)"
            ] = r.n_pairs * (4 * b + act)
        return out


def _sample(model, x0, n_steps: int, solver: str):
    """`sample_flow`, compiled once (`sdeml.run.compiled`) per model structure, shape, step count
    and solver, shared by every grid point and evaluation set."""
    return sdeml.sample_flow(model, x0, n_steps=n_steps, solver=solver)


def _score(model, cfg: Config, n_steps: int, key) -> tuple[dict, jnp.ndarray]:
    import jax.random as jr

    e = cfg.eval
    kg, kr, kb = jr.split(key, 3)
    gen = [
        compiled(_sample)(model, jr.normal(k, (e.n, 2)), n_steps, e.solver)
        for k in jr.split(kg, e.n_sets)
    ]
    ref = [sdeml.data.toy(cfg.data.name, e.n, key=k) for k in jr.split(kr, e.n_sets)]
    ref_b = [sdeml.data.toy(cfg.data.name, e.n, key=k) for k in jr.split(kb, e.n_sets)]
    # floor pairs (ref_i, ref_b_i); generated set i against ref_i
    res = sdeml.metrics.mmd_ratio_to_floor(gen, ref + ref_b, n_floor=e.n_sets)
    return res, gen[0]


def build_model(cfg: Config, key) -> sdeml.nn.TimeMLP:
    """The velocity field: a `TimeMLP` (the reflow model has the same structure)."""
    m = cfg.model
    return sdeml.nn.TimeMLP(2, m.width, m.depth, embed_scale=m.embed_scale, key=key)


@register(
    "flow_matching_2d",
    Config,
    "conditional flow matching (independent / OT coupling, rectified flow) on 2-D toys, MMD ratio",
    smoke=(
        "train.steps=4",
        "train.log_every=2",
        "data.n_train=512",
        "eval.n=64",
        "eval.n_sets=2",
        "eval.n_steps=2",
        "reflow.steps=2",
        "reflow.n_pairs=64",
        "reflow.pair_steps=2",
    ),
    build_model=build_model,
)
def main(cfg: Config, run: Run) -> dict[str, Any]:
    # Every grid point of a `sweep:` is one member of a batched state, trained by one vmapped
    # program (issue #19), the reflow likewise from each point's flow; then each point is scored.
    flows = run.train_grid(_setup, _objective, cfg.train).model
    flows2 = None
    if cfg.reflow.steps > 0:
        flows2 = run.train_grid(
            _reflow_setup,
            _reflow_objective,
            cfg.train,
            name="reflow",
            n_steps=cfg.reflow.steps,
            inputs=flows,  # warm start from the first flow
        ).model
    rows = []
    for i, c in enumerate(run.points()):
        flow2 = None if flows2 is None else run.member(flows2, i)
        rows.append(_evaluate(c, run.at(i), run.member(flows, i), flow2))
    return run.collect(rows)


def _keys(cfg: Config):
    """k_data, k_model, k_train, k_eval, k_pairs, k_model2, k_eval2 of a point's seed."""
    import jax.random as jr

    return jr.split(jr.key(cfg.seed), 7)


def _setup(cfg: Config) -> Setup:
    """One grid point's model, training key and training set (swept keys may be traced)."""
    k_data, k_model, k_train, *_ = _keys(cfg)
    x_train = sdeml.data.toy(cfg.data.name, cfg.data.n_train, key=k_data)
    return Setup(build_model(cfg, k_model), k_train, x_train)


def _objective(cfg: Config, x_train):
    import jax.random as jr

    m = cfg.model

    def loss_fn(model, batch, key):
        x0, x1 = batch
        return sdeml.cfm_loss(model, x1, x0=x0, coupling=m.coupling, sigma=m.sigma, key=key)

    def batch_fn(key, step):
        k1, k0 = jr.split(key)
        x1 = sdeml.data.minibatch(x_train, k1, cfg.train.batch_size)
        return jr.normal(k0, x1.shape, x1.dtype), x1

    return loss_fn, batch_fn


def _reflow_setup(cfg: Config, flow) -> Setup:
    """Reflow: the first flow's (noise, sample) pairs, warm-started from that flow."""
    r, keys = cfg.reflow, _keys(cfg)
    pairs = sdeml.flows.reflow_pairs(flow, r.n_pairs, 2, n_steps=r.pair_steps, key=keys[4])
    return Setup(flow, keys[5], pairs)


def _reflow_objective(cfg: Config, pairs):
    def pair_batch(key, step):
        return sdeml.data.minibatch(pairs, key, cfg.train.batch_size)

    def reflow_loss(model, batch, key):
        x0, x1 = batch
        return sdeml.cfm_loss(model, x1, x0=x0, coupling="independent", key=key)

    return reflow_loss, pair_batch


def _evaluate(cfg: Config, run: Run, flow, flow2) -> dict[str, float]:
    """Score and plot one grid point's flow (and its reflow)."""
    import equinox as eqx
    import jax.random as jr
    import matplotlib.pyplot as plt

    k_data, _, _, k_eval, _, _, k_eval2 = _keys(cfg)
    x_train = sdeml.data.toy(cfg.data.name, cfg.data.n_train, key=k_data)
    res, samples = _score(flow, cfg, cfg.eval.n_steps, k_eval)
    x0_probe = jr.normal(k_eval, (512, 2))
    out = {
        "mmd": res["value"],
        "mmd_floor": res["floor"],
        "mmd_ratio": res["ratio"],
        "n_steps": float(cfg.eval.n_steps),
        "nfe": float(sdeml.core.solver_info(cfg.eval.solver).nfe(cfg.eval.n_steps)),
        "straightness": float(eqx.filter_jit(sdeml.flows.straightness)(flow, x0_probe)),
    }
    panels = [("flow matching", samples)]

    if flow2 is not None:
        r = cfg.reflow
        res2, samples2 = _score(flow2, cfg, r.n_steps, k_eval2)
        res1, _ = _score(flow, cfg, r.n_steps, k_eval2)
        out.update(
            reflow_mmd_ratio=res2["ratio"],
            before_reflow_mmd_ratio_same_steps=res1["ratio"],
            reflow_n_steps=float(r.n_steps),
            reflow_nfe=float(sdeml.core.solver_info(cfg.eval.solver).nfe(r.n_steps)),
            reflow_straightness=float(eqx.filter_jit(sdeml.flows.straightness)(flow2, x0_probe)),
        )
        panels.append((f"rectified flow, {r.n_steps} steps", samples2))

    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.2 * (len(panels) + 1), 4))
    axes[0].scatter(x_train[:2000, 0], x_train[:2000, 1], s=2, c="k")
    axes[0].set(title="data")
    for a, (title, s) in zip(axes[1:], panels, strict=True):
        a.scatter(s[:, 0], s[:, 1], s=2)
        a.set(title=title)
    for a in axes:
        a.set(aspect="equal", xlim=(-2.5, 3.5), ylim=(-2.0, 2.5))
    run.savefig(fig, "samples")
    run.save_arrays("samples", samples=samples)
    return out
