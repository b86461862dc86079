"""The training loop: a pure optax step, EMA, chunked compiled execution, checkpoints, NaN guard."""

from ._checkpoint import CheckpointDir, load_checkpoint, save_checkpoint
from ._loop import FitStats, TrainingError, fit
from ._optim import make_optimizer
from ._step import TrainState, init_state, make_step, train_step
from ._sweep import init_states, set_learning_rate, shard_batch

__all__ = [
    "CheckpointDir",
    "FitStats",
    "TrainState",
    "TrainingError",
    "fit",
    "init_state",
    "init_states",
    "load_checkpoint",
    "make_optimizer",
    "make_step",
    "save_checkpoint",
    "set_learning_rate",
    "shard_batch",
    "train_step",
]
