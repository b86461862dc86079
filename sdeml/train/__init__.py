"""sdeml.train: the training loop (pure optax step, warmed-up EMA, compiled chunks, checkpoints,
NaN guard), its config (`TrainConfig`) and one helper that wires them (`train_model`).

Names are loaded on first use (PEP 562): `TrainConfig` and `Section` (pydantic only) are read by
the ``sdeml`` command without importing JAX; the loop loads JAX when first used.
"""

import typing as _typing

from .. import _lazy as _lazy

if _typing.TYPE_CHECKING:
    from ._checkpoint import CheckpointDir as CheckpointDir
    from ._checkpoint import CheckpointError as CheckpointError
    from ._checkpoint import load_checkpoint as load_checkpoint
    from ._checkpoint import save_checkpoint as save_checkpoint
    from ._config import Section as Section
    from ._config import TrainConfig as TrainConfig
    from ._digits import digits_classifier as digits_classifier
    from ._loop import FitStats as FitStats
    from ._loop import TrainingError as TrainingError
    from ._loop import describe_error as describe_error
    from ._loop import fit as fit
    from ._optim import make_optimizer as make_optimizer
    from ._optim import standard_promotion as standard_promotion
    from ._optim import warmup_cosine as warmup_cosine
    from ._step import TrainState as TrainState
    from ._step import ema_weight as ema_weight
    from ._step import init_state as init_state
    from ._step import jit_step as jit_step
    from ._step import make_step as make_step
    from ._step import train_step as train_step
    from ._step import with_ema_target as with_ema_target
    from ._sweep import gather_to_host as gather_to_host
    from ._sweep import init_states as init_states
    from ._sweep import set_learning_rate as set_learning_rate
    from ._sweep import shard_batch as shard_batch
    from ._trainer import RunLike as RunLike
    from ._trainer import Trained as Trained
    from ._trainer import build_state as build_state
    from ._trainer import sweep_like as sweep_like
    from ._trainer import train_model as train_model
    from ._trainer import train_sweep as train_sweep

if not _typing.TYPE_CHECKING:  # type checkers read the imports above: a typo stays an error
    __getattr__, __dir__ = _lazy.attach(__name__, __file__)
