"""ResNet <-> Euler: a ResNet of N Euler blocks converges to the neural ODE (error ∝ 1/N).

One time-conditioned vector field f(t, h) (an MLP at its random initialisation, scaled by
``model.scale`` so the flow is far from the identity) defines both the neural ODE on [0, 1] and
ResNets h <- h + f(t_k, h)/N of N blocks; the mean error of the ResNet outputs against an accurate
Dopri8 solve is fitted against N on log-log axes (slope -1 expected).
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax.random as jr
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import Field, PositiveFloat, PositiveInt, field_validator  # noqa: E402

import sdeml  # noqa: E402
from sdeml.run import ExperimentConfig, Run, Section, register  # noqa: E402


class ModelConfig(Section):
    width: PositiveInt = 32
    depth: PositiveInt = 2
    scale: PositiveFloat = 2.0  # multiplies the field's output


class EvalConfig(Section):
    n_inputs: PositiveInt = 64
    n_blocks: list[PositiveInt] = Field(default_factory=lambda: [4, 8, 16, 32, 64, 128])
    rtol: PositiveFloat = 1e-9

    @field_validator("n_blocks")
    @classmethod
    def _two(cls, v: list[int]) -> list[int]:
        if len(v) < 2 or sorted(set(v)) != v:
            raise ValueError("needs at least two strictly increasing depths")
        return v


class Config(ExperimentConfig):
    experiment: Literal["resnet_limit"] = "resnet_limit"
    x64: bool = True  # accuracy claims (the audit, tight tolerances) are made in float64
    model: ModelConfig = ModelConfig()
    eval: EvalConfig = EvalConfig()


class _Scaled(eqx.Module):
    field: sdeml.MLPField
    scale: float = eqx.field(static=True)

    def __call__(self, t, h, args=None):
        return self.scale * self.field(t, h, args)


@register(
    "resnet_limit",
    Config,
    "a ResNet of N Euler blocks converges to the neural ODE with error ∝ 1/N",
    smoke=("eval.n_blocks=[4,8,16]", "eval.n_inputs=8"),
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    k_field, k_in = jr.split(jr.key(cfg.seed))
    field = _Scaled(
        sdeml.MLPField(2, cfg.model.width, cfg.model.depth, key=k_field), cfg.model.scale
    )
    h0 = jr.normal(k_in, (cfg.eval.n_inputs, 2))
    errors, slope = sdeml.neural_ode.resnet_limit(
        field, h0, cfg.eval.n_blocks, rtol=cfg.eval.rtol, atol=cfg.eval.rtol
    )
    ns = np.asarray(cfg.eval.n_blocks, float)
    for n, e in zip(cfg.eval.n_blocks, errors, strict=True):
        run.log(n, {"error": float(e)}, tag="depth")
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(ns, errors, "o-", label=f"ResNet vs neural ODE (slope {slope:.3f})")
    ax.loglog(ns, errors[0] * ns[0] / ns, "k--", label="1/N")
    ax.set(xlabel="number of residual blocks N", ylabel="mean |h_N - h(1)|")
    ax.legend()
    run.savefig(fig, "resnet_limit")
    run.save_arrays("errors", n_blocks=ns, errors=errors)
    return {"slope": slope, "error_first": float(errors[0]), "error_last": float(errors[-1])}
