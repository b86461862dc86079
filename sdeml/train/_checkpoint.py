"""Checkpoints in equinox's leaf serialisation (NumPy arrays in order; never pickle).

A checkpoint holds array leaves only; the tree structure comes from a "like" object that the
caller rebuilds (an experiment rebuilds its initial state from its config). Nothing in a checkpoint
is executed when it is read: `numpy.load` is called with ``allow_pickle=False``.

Each ``step_NNNNNNNNN.eqx`` has a ``step_NNNNNNNNN.json`` beside it with its size and SHA-256,
written after it; `CheckpointDir.restore` resumes from the newest checkpoint whose checksum
verifies, says which one and why, and never restarts from scratch while checkpoint files exist
(issue #17).
"""

from __future__ import annotations

import hashlib
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
from ..core._checks import check_int

_NAME = re.compile(r"^step_(\d{9})\.eqx$")


class CheckpointError(ValueError):
    """No usable checkpoint where checkpoints exist (every one failed verification).

    Raised by `CheckpointDir.restore` (and so by `fit` with ``resume=True``) rather than
    silently training from step 0 again.

    Examples:
        >>> from sdeml.train import CheckpointDir, CheckpointError
        >>> ckpts = CheckpointDir("ckpt_error_demo")
        >>> _ = ckpts.save(5, {"w": jnp.zeros(2)})
        >>> _ = ckpts.path(5).write_bytes(b"x")  # the only checkpoint, corrupted
        >>> try:
        ...     ckpts.restore({"w": jnp.zeros(2)})
        ... except CheckpointError as e:
        ...     print("refusing to start over" in str(e))
        True
    """


class CheckpointMismatchError(ValueError):
    """A sound checkpoint whose arrays do not fit the structure asked for (another config)."""


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _write(f: BinaryIO, x: Any) -> None:
    if _is_key(x):
        x = jr.key_data(x)
    eqx.default_serialise_filter_spec(f, x)


def _read(f: BinaryIO, like: Any) -> Any:
    if _is_key(like):
        data = np.load(f, allow_pickle=False)
        want = jr.key_data(like)
        if data.shape != want.shape or data.dtype != want.dtype:
            raise ValueError(
                f"checkpoint leaf is PRNG key data of shape {data.shape} and dtype {data.dtype}, "
                f"expected {want.shape} and {want.dtype} (keys of shape {like.shape}, "
                f"implementation {jr.key_impl(like)}): the config differs from the run's"
            )
        return jr.wrap_key_data(jnp.asarray(data), impl=jr.key_impl(like))
    if isinstance(like, (jax.Array, np.ndarray, np.generic)):
        value = np.load(f, allow_pickle=False)
        like_dtype = np.dtype(like.dtype)
        if value.dtype.kind == "V" and like_dtype.kind == "V":
            # NumPy stores the ml_dtypes types (bfloat16, float8_*) as raw bytes ("|V2"), without
            # their name: view them as the dtype asked for when the sizes agree (one such type
            # read as another of the same size, float8_e4m3fn as float8_e5m2, goes unnoticed)
            if value.dtype.itemsize == like_dtype.itemsize:
                value = value.view(like_dtype)
        if value.shape != like.shape or value.dtype != like.dtype:
            raise ValueError(
                f"checkpoint leaf has shape {value.shape} and dtype {value.dtype}, "
                f"expected {like.shape} and {like.dtype}: the config differs from the run's"
            )
        if isinstance(like, jax.Array):
            return jnp.asarray(value)
        return value[()] if isinstance(like, np.generic) else value  # a NumPy scalar stays one
    return eqx.default_deserialise_filter_spec(f, like)


def save_checkpoint(path: str | Path, tree: Any) -> None:
    """Write `tree`'s leaves to `path` atomically (temporary file, fsync, rename).

    Args:
        path: the file to write (its folder is created if missing).
        tree: a PyTree of arrays (JAX, NumPy, PRNG keys) and Python scalars; other leaves
            (functions, strings) are not saved.

    Returns:
        None.

    Examples:
        >>> from sdeml.train import load_checkpoint, save_checkpoint
        >>> save_checkpoint("save_demo/tree.eqx", {"w": jnp.arange(3.0), "key": jr.key(0)})
        >>> back = load_checkpoint("save_demo/tree.eqx", {"w": jnp.zeros(3), "key": jr.key(1)})
        >>> back["w"].tolist(), bool((jr.key_data(back["key"]) == jr.key_data(jr.key(0))).all())
        ([0.0, 1.0, 2.0], True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        eqx.tree_serialise_leaves(f, tree, filter_spec=_write)


def load_checkpoint(path: str | Path, like: Any) -> Any:
    """Read a checkpoint into the structure of `like` (shapes and dtypes are checked).

    Args:
        path: a file written by `save_checkpoint`.
        like: a PyTree of the same structure, shapes and dtypes (its values are not used).

    Returns:
        `like` with every saved leaf replaced by the checkpoint's value.

    Raises:
        ValueError: an unreadable file, or (its subclass ``CheckpointMismatchError``) a leaf
            whose shape or dtype differs from `like`'s, naming the leaf.

    Examples:
        >>> from sdeml.train import load_checkpoint, save_checkpoint
        >>> save_checkpoint("load_demo.eqx", {"w": jnp.ones((2, 3)), "n": 7})
        >>> back = load_checkpoint("load_demo.eqx", {"w": jnp.zeros((2, 3)), "n": 0})
        >>> float(back["w"].sum()), back["n"]
        (6.0, 7)
        >>> try:
        ...     load_checkpoint("load_demo.eqx", {"w": jnp.zeros(6), "n": 0})
        ... except ValueError as e:
        ...     print(type(e).__name__)
        CheckpointMismatchError
    """
    with open(path, "rb") as f:
        try:
            return eqx.tree_deserialise_leaves(f, like, filter_spec=_read)
        except Exception as e:  # equinox wraps the leaf's error with the leaf's tree path
            cause: BaseException | None = e
            while cause is not None and "checkpoint leaf" not in str(cause):
                cause = cause.__cause__ or cause.__context__
            where = str(e).splitlines()[0]
            error = CheckpointMismatchError if cause is not None else ValueError
            raise error(f"cannot load checkpoint {path}: {cause or e} ({where})") from None


class CheckpointDir:
    """``step_000001000.eqx`` files, each with a ``step_000001000.json`` holding its size and
    SHA-256, plus ``latest.json`` naming the newest complete one.

    Args:
        directory: the folder of the checkpoints (created on the first `save`).
        keep: how many of the newest checkpoints `save` keeps (0: all).

    Examples:
        >>> from sdeml.train import CheckpointDir
        >>> ckpts = CheckpointDir("ckpt_dir_demo", keep=2)
        >>> for step in (10, 20, 30):
        ...     _ = ckpts.save(step, {"w": jnp.full(2, float(step))})
        >>> ckpts.steps(), ckpts.latest()
        ([20, 30], 30)
        >>> _ = ckpts.path(30).write_bytes(b"garbage")  # the newest is corrupted
        >>> ckpts.verify(30)
        'size 7 bytes, recorded ... (truncated or overwritten)'
        >>> step, tree, note = ckpts.restore({"w": jnp.zeros(2)})
        >>> step, tree["w"].tolist()
        (20, [20.0, 20.0])
    """

    def __init__(self, directory: str | Path, keep: int = 2):
        self.dir = Path(directory)
        # an int >= 0: keep=-1 deleted all but the oldest checkpoint, keep=True kept one
        self.keep = check_int("keep", keep, 0)

    def path(self, step: int) -> Path:
        return self.dir / f"step_{step:09d}.eqx"

    def _meta(self, step: int) -> Path:
        return self.dir / f"step_{step:09d}.json"

    def save(self, step: int, tree: Any) -> Path:
        """Write `tree` as the checkpoint of `step`. Under several processes (`jax.distributed`)
        every process calls this (the sharded arrays are gathered) and process 0 alone writes."""
        from ._sweep import gather_to_host

        path = self.path(step)
        tree = gather_to_host(tree)
        if jax.process_index() != 0:
            return path
        save_checkpoint(path, tree)
        # The checksum is written after the file it covers: a kill in between leaves a checkpoint
        # without a checksum, which `restore` skips like a corrupted one.
        meta = {"step": step, "file": path.name, "bytes": path.stat().st_size}
        meta["sha256"] = file_digest(path)
        write_atomic(self._meta(step), json.dumps(meta))
        write_atomic(self.dir / "latest.json", json.dumps({"step": step, "file": path.name}))
        for old in self.steps()[: -self.keep] if self.keep else []:
            self.path(old).unlink(missing_ok=True)
            self._meta(old).unlink(missing_ok=True)
        return path

    def steps(self) -> list[int]:
        """The steps with a checkpoint file on disk (verified or not), ascending."""
        if not self.dir.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.dir.iterdir() if (m := _NAME.match(p.name)))

    def latest(self) -> int | None:
        """The step ``latest.json`` names, or None (no file, or an unreadable one)."""
        meta = self.dir / "latest.json"
        if not meta.is_file():
            return None
        try:
            return int(json.loads(meta.read_text())["step"])
        except (ValueError, KeyError, TypeError, OSError):
            return None

    def verify(self, step: int) -> str | None:
        """Why the checkpoint of `step` cannot be trusted, or None when its checksum verifies."""
        path, meta_path = self.path(step), self._meta(step)
        if not path.is_file():
            return "its file is missing"
        if not meta_path.is_file():
            return "it has no checksum file (written by a run killed mid-save, or edited)"
        try:
            meta = json.loads(meta_path.read_text())
            size, digest = int(meta["bytes"]), str(meta["sha256"])
        except (ValueError, KeyError, TypeError, OSError):
            return "its checksum file is unreadable"
        if path.stat().st_size != size:
            return f"size {path.stat().st_size} bytes, recorded {size} (truncated or overwritten)"
        if file_digest(path) != digest:
            return "checksum mismatch (the file is corrupted)"
        return None

    def newest_verified(self) -> tuple[int | None, list[str]]:
        """The newest step whose checksum verifies, and a note per checkpoint passed over.

        Raises:
            CheckpointError: checkpoint files exist (or ``latest.json`` names one) but none
                verifies: resuming would silently start over.
        """
        notes: list[str] = []
        meta = self.dir / "latest.json"
        named = self.latest()
        if meta.is_file() and named is None:
            notes.append("latest.json is unreadable")
        elif self.dir.is_dir() and not meta.is_file() and self.steps():
            notes.append("latest.json is missing")
        candidates = sorted(set(self.steps()) | ({named} if named is not None else set()))
        for step in reversed(candidates):
            reason = self.verify(step)
            if reason is None:
                return step, notes
            notes.append(f"step {step}: {reason}")
        if candidates:
            raise CheckpointError(
                f"no checkpoint in {self.dir} verifies ({'; '.join(notes)}); refusing to start "
                "over: move the folder away to train from step 0"
            )
        return None, notes

    def restore(self, like: Any) -> tuple[int, Any, str] | None:
        """Load the newest checkpoint that verifies into the structure of `like`.

        Returns:
            ``(step, tree, note)``, the note saying which checkpoint was used and why; None when
            there is no checkpoint at all.

        Raises:
            CheckpointError: checkpoints exist but none verifies.
            CheckpointMismatchError: a sound checkpoint that does not fit `like` (another config).
        """
        step, notes = self.newest_verified()
        if step is None:
            return None
        tree = self.load(step, like)
        if notes:
            why = "the newest that verifies; passed over: " + "; ".join(notes)
        else:
            why = "the newest, checksum verified"
        return step, tree, f"resuming from checkpoint step {step} in {self.dir} ({why})"

    def load(self, step: int, like: Any) -> Any:
        """The checkpoint of `step` read into the structure of `like` (`load_checkpoint`)."""
        return load_checkpoint(self.path(step), like)
