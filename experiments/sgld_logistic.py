"""SGLD on Bayesian logistic regression (breast cancer, standardised) against a long MALA run.

Model: y_i ~ Bernoulli(sigmoid(x_i . w)), x_i the 30 standardised features plus an intercept,
prior w ~ N(0, prior_std^2 I); 80% of the data for training. Both samplers run in the
coordinates z of the Laplace approximation (theta = mode + W z, a constant preconditioner that
leaves the posterior unchanged), MALA with full gradients as the reference and SGLD with
minibatches of size B. Reported: posterior means (in units of the MALA posterior sd), standard
deviations, and predictive accuracy on the held-out 20%.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

import sdeml
from sdeml.run import ExperimentConfig, Run, Section, register


class DataConfig(Section):
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    prior_std: PositiveFloat = 1.0


class SamplerConfig(Section):
    n_chains: PositiveInt = 32
    step_size: PositiveFloat = 0.5  # in whitened coordinates
    n_burn: PositiveInt = 1000
    n_steps: PositiveInt = 20_000
    thin: PositiveInt = 10


class SGLDConfig(SamplerConfig):
    batch_size: PositiveInt = 64
    step_size: PositiveFloat = 0.02


class Config(ExperimentConfig):
    experiment: Literal["sgld_logistic"] = "sgld_logistic"
    x64: bool = True  # 0.1-sd agreement claims
    data: DataConfig = DataConfig()
    mala: SamplerConfig = SamplerConfig()
    sgld: SGLDConfig = SGLDConfig()

    @model_validator(mode="after")
    def _sizes(self):
        size = sdeml.data.BREAST_CANCER_SIZE
        n_train = size - math.ceil(size * self.data.test_fraction)
        if self.sgld.batch_size > n_train:
            raise ValueError(
                f"sgld.batch_size={self.sgld.batch_size} is larger than the training set "
                f"({n_train} examples)"
            )
        for name, sc in (("mala", self.mala), ("sgld", self.sgld)):
            if sc.n_steps % sc.thin:
                raise ValueError(
                    f"{name}.n_steps={sc.n_steps} must be a multiple of thin={sc.thin}"
                )
        return self

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays, in bytes (issue #17: absurd sizes are refused at validation).

        Every kept state (one per `thin` steps after burn-in) of every chain is stored, then mapped
        back to the parameters (about 3 copies of 31 coefficients each) and pushed through the
        predictive on the test points (the logits and their sigmoid).
        """
        d = 31  # 30 standardised features and an intercept
        n_test = math.ceil(sdeml.data.BREAST_CANCER_SIZE * self.data.test_fraction)
        out: dict[str, float] = {}
        for name, sc in (("mala", self.mala), ("sgld", self.sgld)):
            kept = sc.n_chains * (sc.n_steps // sc.thin)
            what = f"{name}.n_chains x {name}.n_steps / {name}.thin"
            out[f"{name} samples ({what} x 31 x 8 B x 3)"] = kept * d * 8 * 3
            out[f"{name} test predictive (test points x {what} x 8 B x 2)"] = n_test * kept * 8 * 2
        out["SGLD minibatch gradients (sgld.n_chains x sgld.batch_size x 31 x 8 B x 2)"] = (
            self.sgld.n_chains * self.sgld.batch_size * d * 8 * 2
        )
        return out


def _samples(kernel, x0, sc: SamplerConfig, key):
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    k1, k2 = jr.split(key)

    @jax.jit
    def go(x0, k1, k2):
        s = sdeml.run_chains(kernel, kernel.init(x0), sc.n_burn, key=k1)[0]
        _, acc, zs = sdeml.run_chains(
            kernel, s, sc.n_steps, observe=lambda s: s.position, thin=sc.thin, key=k2
        )
        return zs, acc

    zs, acc = go(x0, k1, k2)
    return zs.reshape(-1, zs.shape[-1]), float(jnp.mean(acc))


@register(
    "sgld_logistic",
    Config,
    "SGLD vs a long MALA reference on Bayesian logistic regression",
    smoke=(
        "mala.n_steps=200",
        "mala.n_burn=100",
        "sgld.n_steps=200",
        "sgld.n_burn=100",
        "mala.n_chains=4",
        "sgld.n_chains=4",
    ),
    per_point=True,
)
def main(cfg: Config, run: Run) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib.pyplot as plt
    import numpy as np

    for sc in (cfg.mala, cfg.sgld):
        if sc.n_steps % sc.thin:
            raise sdeml.run.ExperimentError(
                f"n_steps={sc.n_steps} must be a multiple of thin={sc.thin}"
            )
    xtr, ytr, xte, yte = sdeml.data.load_breast_cancer(
        cfg.data.test_fraction, seed=cfg.seed, dtype=jnp.float64
    )
    n, d = xtr.shape
    if cfg.sgld.batch_size > n:
        raise sdeml.run.ExperimentError(
            f"sgld.batch_size={cfg.sgld.batch_size} is larger than the training set ({n} examples)"
        )
    var0 = cfg.data.prior_std**2
    loglik = lambda w, xy: xy[1] * (xy[0] @ w) - jnp.logaddexp(0.0, xy[0] @ w)
    logprior = lambda w: -0.5 * w @ w / var0
    U = lambda w: -logprior(w) - jnp.sum(jax.vmap(loglik, in_axes=(None, 0))(w, (xtr, ytr)))
    mode, wh = sdeml.langevin.laplace_approximation(U, jnp.zeros(d, jnp.float64))
    to_theta = lambda z: mode + z @ wh.T

    key = jr.key(cfg.seed)
    k_m, k_s, k0 = jr.split(key, 3)
    mala = sdeml.MALA(lambda z: U(mode + wh @ z), cfg.mala.step_size)
    z_m, acc_m = _samples(mala, jr.normal(k0, (cfg.mala.n_chains, d), jnp.float64), cfg.mala, k_m)
    sgld = sdeml.SGLD(
        lambda z, xy: loglik(mode + wh @ z, xy),
        lambda z: logprior(mode + wh @ z),
        (xtr, ytr),
        batch_size=cfg.sgld.batch_size,
        step_size=cfg.sgld.step_size,
        replace=True,
    )
    z_s, _ = _samples(sgld, jr.normal(k0, (cfg.sgld.n_chains, d), jnp.float64), cfg.sgld, k_s)
    th_m, th_s = to_theta(z_m), to_theta(z_s)
    mean_m, sd_m = th_m.mean(0), th_m.std(0)
    mean_s, sd_s = th_s.mean(0), th_s.std(0)
    dz = (mean_s - mean_m) / sd_m

    def accuracy(th):
        prob = jnp.mean(jax.nn.sigmoid(xte @ th.T), axis=1)  # posterior predictive
        return float(jnp.mean((prob > 0.5) == (yte > 0.5)))

    run.save_arrays(
        "posterior", mean_mala=mean_m, sd_mala=sd_m, mean_sgld=mean_s, sd_sgld=sd_s, mode=mode
    )
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    idx = np.arange(d)
    ax[0].errorbar(idx - 0.15, mean_m, yerr=sd_m, fmt="ko", ms=3, label="MALA reference")
    ax[0].errorbar(
        idx + 0.15, mean_s, yerr=sd_s, fmt="C3s", ms=3, label=f"SGLD, B={cfg.sgld.batch_size}"
    )
    ax[0].set(title="posterior mean +- sd per coefficient", xlabel="coefficient (30 = intercept)")
    ax[0].legend(fontsize=8)
    ax[1].bar(idx, np.asarray(dz), color="C3")
    ax[1].axhspan(-0.1, 0.1, color="g", alpha=0.15, label="+-0.1 posterior sd")
    ax[1].set(title="(SGLD mean - MALA mean) / MALA sd", xlabel="coefficient")
    ax[1].legend(fontsize=8)
    run.savefig(fig, "sgld_logistic")
    return {
        "max_abs_mean_diff_in_sd": float(jnp.max(jnp.abs(dz))),
        "median_abs_mean_diff_in_sd": float(jnp.median(jnp.abs(dz))),
        "sd_ratio_min": float(jnp.min(sd_s / sd_m)),
        "sd_ratio_max": float(jnp.max(sd_s / sd_m)),
        "mala_acceptance": acc_m,
        "test_accuracy_mala": accuracy(th_m),
        "test_accuracy_sgld": accuracy(th_s),
        "n_train": float(n),
    }
