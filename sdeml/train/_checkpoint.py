"""Checkpoints in equinox's leaf serialisation (NumPy arrays in order; never pickle).

A checkpoint holds array leaves only; the tree structure comes from a "like" object that the
caller rebuilds (an experiment rebuilds its initial state from its config). Nothing in a checkpoint
is executed when it is read: `numpy.load` is called with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, BinaryIO

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._io import atomic_open, write_atomic

_NAME = re.compile(r"^step_(\d{9})\.eqx$")


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _write(f: BinaryIO, x: Any) -> None:
    if _is_key(x):
        x = jr.key_data(x)
    eqx.default_serialise_filter_spec(f, x)


def _read(f: BinaryIO, like: Any) -> Any:
    if _is_key(like):
        data = np.load(f, allow_pickle=False)
        return jr.wrap_key_data(jnp.asarray(data), impl=jr.key_impl(like))
    if isinstance(like, (jax.Array, np.ndarray, np.generic)):
        value = np.load(f, allow_pickle=False)
        if value.shape != like.shape or value.dtype != like.dtype:
            raise ValueError(
                f"checkpoint leaf has shape {value.shape} and dtype {value.dtype}, "
                f"expected {like.shape} and {like.dtype}: the config differs from the run's"
            )
        return jnp.asarray(value) if isinstance(like, jax.Array) else value
    return eqx.default_deserialise_filter_spec(f, like)


def save_checkpoint(path: str | Path, tree: Any) -> None:
    """Write `tree`'s leaves to `path` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        eqx.tree_serialise_leaves(f, tree, filter_spec=_write)


def load_checkpoint(path: str | Path, like: Any) -> Any:
    """Read a checkpoint into the structure of `like` (shapes and dtypes are checked)."""
    with open(path, "rb") as f:
        try:
            return eqx.tree_deserialise_leaves(f, like, filter_spec=_read)
        except Exception as e:  # equinox wraps the leaf's error with the leaf's tree path
            cause: BaseException | None = e
            while cause is not None and "checkpoint leaf" not in str(cause):
                cause = cause.__cause__ or cause.__context__
            where = str(e).splitlines()[0]
            raise ValueError(f"cannot load checkpoint {path}: {cause or e} ({where})") from None


class CheckpointDir:
    """``step_000001000.eqx`` files plus ``latest.json`` naming the newest complete one."""

    def __init__(self, directory: str | Path, keep: int = 2):
        self.dir = Path(directory)
        self.keep = keep

    def save(self, step: int, tree: Any) -> Path:
        path = self.dir / f"step_{step:09d}.eqx"
        save_checkpoint(path, tree)
        write_atomic(self.dir / "latest.json", json.dumps({"step": step, "file": path.name}))
        for old in self.steps()[: -self.keep] if self.keep else []:
            (self.dir / f"step_{old:09d}.eqx").unlink(missing_ok=True)
        return path

    def steps(self) -> list[int]:
        if not self.dir.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.dir.iterdir() if (m := _NAME.match(p.name)))

    def latest(self) -> int | None:
        meta = self.dir / "latest.json"
        if not meta.is_file():
            return None
        return int(json.loads(meta.read_text())["step"])

    def load(self, step: int, like: Any) -> Any:
        return load_checkpoint(self.dir / f"step_{step:09d}.eqx", like)
