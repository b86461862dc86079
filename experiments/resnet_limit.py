"""ResNet <-> Euler: a ResNet of N Euler blocks converges to the neural ODE (error ∝ 1/N).

One time-conditioned vector field f(t, h) (an MLP at its random initialisation, scaled by
``model.scale`` so the flow is far from the identity) defines both the neural ODE on [0, 1] and
ResNets h <- h + f(t_k, h)/N of N blocks; the mean error of the ResNet outputs against an accurate
Dopri8 solve is fitted against N on log-log axes (slope -1 expected).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, register


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

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        The reference is a vmapped Dopri8 solve: 13 stages of the state and, per stage evaluation,
        the field's activations; the ResNets hold one block's activations at a time.
        """
        b = 8 if self.x64 else 4
        m, n = self.model, self.eval.n_inputs
        return {
            "Dopri8 reference solve (eval.n_inputs x (model.width x (model.depth + 1) + 13 x 2) x "
            "B x 2)": n * (m.width * (m.depth + 1) + 13 * 2) * b * 2,
            "parameters (model.width^2 x model.depth x B)": m.width**2 * m.depth * b,
        }


@register(
    "resnet_limit",
    Config,
    "a ResNet of N Euler blocks converges to the neural ODE with error ∝ 1/N",
    smoke=("eval.n_blocks=[4,8,16]", "eval.n_inputs=8"),
    per_point=True,
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    import equinox as eqx
    import jax.random as jr
    import matplotlib.pyplot as plt
    import numpy as np

    class Scaled(eqx.Module):  # (equinox is imported when a run starts, not at import)
        field: sdeml.MLPField
        scale: float = eqx.field(static=True)

        def __call__(self, t, h, args=None):
            return self.scale * self.field(t, h, args)

    k_field, k_in = jr.split(jr.key(cfg.seed))
    field = Scaled(
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
