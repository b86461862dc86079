"""A tiny experiment for the CLI tests (loaded with `--import tests/toy_experiment.py`).

Regression of sin(3x) with an MLP; ``nan_at`` poisons the loss at one step to test the NaN guard.
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from pydantic import NonNegativeInt, PositiveInt

from sdeml.run import ExperimentConfig, Run, register
from sdeml.train import TrainConfig, train_model


class ToyConfig(ExperimentConfig):
    experiment: Literal["toy_regression"] = "toy_regression"
    width: PositiveInt = 32
    nan_at: NonNegativeInt | None = None  # step whose loss is made NaN (testing only)
    train: TrainConfig = TrainConfig(steps=200, batch_size=64, lr=1e-2, log_every=10, ckpt_every=50)


def build_model(cfg: ToyConfig, key) -> eqx.nn.MLP:
    return eqx.nn.MLP(1, 1, cfg.width, 2, activation=jnp.tanh, key=key)


@register(
    "toy_regression",
    ToyConfig,
    "test-only: fit sin(3x) with a small MLP",
    build_model=build_model,
)
def main(cfg: ToyConfig, run: Run) -> dict[str, float]:
    k_model, k_train = jr.split(jr.key(cfg.seed))
    poison = -1 if cfg.nan_at is None else cfg.nan_at

    def loss_fn(model, batch, key):
        x, step = batch
        loss = jnp.mean((jax.vmap(model)(x) - jnp.sin(3 * x)) ** 2)
        return jnp.where(step + 1 == poison, jnp.nan, loss)

    def batch_fn(key, step):
        return jr.uniform(key, (cfg.train.batch_size, 1), minval=-2, maxval=2), step

    model = build_model(cfg, k_model)
    _, _, stats = train_model(model, loss_fn, batch_fn, cfg.train, key=k_train, run=run)
    return {"final_loss": stats.last_metrics["loss"]}
