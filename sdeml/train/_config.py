"""`TrainConfig`: the optimisation settings every trained model shares (a typed pydantic model).

It lives with the training loop, not with the command line, so a notebook builds one without the
CLI's config layer: ``TrainConfig(steps=2000, lr=3e-3)``. `sdeml.run` builds its experiment
schemas on the same `Section` base.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Integers the runs use become int32 array entries, loop bounds and shapes: larger ones pass
# validation and then overflow after a run directory exists (issue #17).
INT_LIMIT = 2**31 - 1


def _accepts(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    return any(_accepts(a, kind) for a in get_args(annotation))


def _accepts_bool(annotation: Any) -> bool:
    return _accepts(annotation, bool)


def _is_mapping(annotation: Any) -> bool:
    return get_origin(annotation) is dict or any(_is_mapping(a) for a in get_args(annotation))


def _check_scalar(
    value: Any, allow_bool: bool, allow_inf: bool = False, int_only: bool = False
) -> None:
    if isinstance(value, bool):
        if not allow_bool:
            raise ValueError(f"expected a number, not the boolean {value}")
    elif isinstance(value, int) or (int_only and isinstance(value, float) and math.isfinite(value)):
        # a float for an int key (``steps: 1.0e10``, ``steps=1e10``) becomes that int: the same
        # range applies
        if abs(value) > INT_LIMIT:
            raise ValueError(
                f"integer {value} is out of range (|value| <= 2**31 - 1 = {INT_LIMIT})"
            )
    elif isinstance(value, float) and not math.isfinite(value):
        if not (allow_inf and value == math.inf):
            raise ValueError(f"must be a finite number, got {value}")


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated.

    Every section also refuses, for every key (issue #17): a boolean where the key's type has no
    ``bool`` (pydantic would read ``true`` as 1), a non-finite float (``.nan``, ``.inf``), and an
    integer beyond the int32 range the runs compute with (`INT_LIMIT`), in lists too. A key whose
    meaning has a limit at infinity opts in to ``.inf`` (never NaN) with
    ``Field(allow_inf_nan=True)`` (e.g. PFGM++'s ``D = inf``, the Gaussian case).

    Args:
        **data: the section's keys, as declared by the subclass (typed, with defaults).

    Examples:
        >>> from sdeml.train import Section
        >>> class Data(Section):
        ...     n_train: int = 1000
        ...     noise: float = 0.1
        >>> Data(n_train=50).n_train
        50
        >>> for bad in ({"n_trian": 50}, {"n_train": True}, {"noise": float("nan")}):
        ...     try:
        ...         Data(**bad)
        ...     except ValueError as e:  # a pydantic ValidationError
        ...         print(e.errors()[0]["msg"])
        Extra inputs are not permitted
        Value error, expected a number, not the boolean True
        Value error, must be a finite number, got nan
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, validate_default=True, allow_inf_nan=False
    )

    def require_at_most(self, key: str, bound: str, why: str = "") -> Any:
        """Refuse ``self.key > self.bound`` (two numbers of this section) with one message
        naming both, and their meaning `why`; returns `self`, for a ``model_validator``."""
        if getattr(self, key) > getattr(self, bound):
            raise ValueError(
                f"{key} ({getattr(self, key)}) must not exceed {bound} ({getattr(self, bound)})"
                + (f": {why}" if why else "")
            )
        return self

    @field_validator("*", mode="before")
    @classmethod
    def _plain_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        allow_bool = field is None or _accepts_bool(field.annotation)
        allow_inf = field is not None and any(
            getattr(m, "allow_inf_nan", False) is True for m in field.metadata
        )
        int_only = (
            field is not None
            and _accepts(field.annotation, int)
            and not _accepts(field.annotation, float)
        )
        items = value if isinstance(value, list) else [value]
        for item in items:
            _check_scalar(item, allow_bool, allow_inf, int_only)
        if isinstance(value, dict) and field is not None and _is_mapping(field.annotation):
            # a mapping of plain values, e.g. a sweep block {key: [values]} (not a section)
            for v in value.values():
                for item in v if isinstance(v, list) else [v]:
                    _check_scalar(item, allow_bool=True)
        return value


class TrainConfig(Section):
    """The optimisation settings every trained experiment shares.

    Attributes:
        steps: optimisation steps.
        batch_size: examples per step (read by the experiment's batch function).
        lr: the peak learning rate (a state leaf: see `make_optimizer`).
        optimizer: adam | adamw | sgd | rmsprop.
        momentum: for sgd and rmsprop.
        weight_decay: for adamw only.
        schedule: constant | cosine (to 0 at ``steps``) | warmup_cosine (linear from 0 over
            ``warmup_steps``, then cosine to 0 at ``steps``).
        warmup_steps: the warm-up length of ``warmup_cosine``.
        grad_clip: clip the gradient's global norm to this value (None: no clipping).
        ema_decay: keep an exponential moving average of the parameters with this decay
            (warmed up, see `init_state`); None keeps none. The one place the EMA is configured.
        log_every: steps between logged metrics.
        ckpt_every: steps between checkpoints (0: a checkpoint only at the end).

    Examples:
        >>> from sdeml.train import TrainConfig
        >>> cfg = TrainConfig(steps=2000, lr=3e-3, schedule="warmup_cosine", warmup_steps=100)
        >>> cfg.optimizer, cfg.batch_size, cfg.ema_decay
        ('adam', 256, None)
        >>> try:
        ...     TrainConfig(weight_decay=1e-4)  # refused before any run starts
        ... except ValueError as e:
        ...     print(e.errors()[0]["msg"])
        Value error, weight_decay=0.0001 is only used by optimizer 'adamw' (got 'adam'): set
        optimizer: adamw, or weight_decay: 0
    """

    steps: PositiveInt = 1000
    batch_size: PositiveInt = 256
    lr: PositiveFloat = 1e-3
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    weight_decay: NonNegativeFloat = 0.0
    schedule: Literal["constant", "cosine", "warmup_cosine"] = "constant"
    warmup_steps: NonNegativeInt = 0
    grad_clip: PositiveFloat | None = None
    ema_decay: float | None = Field(default=None, gt=0.0, lt=1.0)
    log_every: PositiveInt = 100
    ckpt_every: NonNegativeInt = 1000  # 0: a checkpoint only at the end

    @model_validator(mode="after")
    def _decay_needs_adamw(self) -> TrainConfig:
        # refused here, before a run directory exists, not when the optimiser is built
        if self.weight_decay and self.optimizer != "adamw":
            raise ValueError(
                f"weight_decay={self.weight_decay:g} is only used by optimizer 'adamw' (got "
                f"{self.optimizer!r}): set optimizer: adamw, or weight_decay: 0"
            )
        if self.schedule == "warmup_cosine" and self.warmup_steps >= self.steps:
            # the rate would still be climbing when the run ends and never reach `lr`
            raise ValueError(
                f"warmup_steps={self.warmup_steps} must be < steps={self.steps} with schedule "
                "'warmup_cosine' (the rate would never reach lr)"
            )
        return self
