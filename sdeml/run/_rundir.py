"""Run directories: the resolved config, metrics, summary, plots, arrays and checkpoints.

Layout of ``runs/<experiment>/<name>-<timestamp>/``::

    config.yaml      the resolved config (every key)
    metrics.jsonl    one JSON object per logged step: {"step": ..., "tag": ..., <metric>: ...}
    summary.json     status, final metrics, timings, device, versions, git commit
    *.png, *.npz     plots and arrays
    checkpoints/     one folder per trained model (see `sdeml.train.CheckpointDir`)
    error.log        the traceback, when the run failed

Every file is written atomically (temporary file in the same folder, then rename), so a killed
run leaves each file either old or new, never half-written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from .._io import write_atomic
from ._errors import ConfigError

T = TypeVar("T")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def write_json(path: str | Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        return np.asarray(x).tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def check_name(name: str) -> str:
    """A run name is one path component of letters, digits, '.', '_' and '-'."""
    if not _NAME.match(name) or name in {".", ".."} or ".." in name:
        raise ConfigError(
            f"--name {name!r}: a run name is one folder name of letters, digits, '.', '_', '-' "
            "(no '/' and no '..')"
        )
    return name


def new_run_dir(out: str | Path, experiment: str, name: str) -> Path:
    """Create ``out/experiment/name-YYYYmmdd-HHMMSS`` (suffixed if taken), inside `out`."""
    check_name(name)
    base = Path(out).resolve() / experiment
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        cand = base / (f"{name}-{stamp}" + (f"-{i}" if i else ""))
        if not cand.resolve().is_relative_to(Path(out).resolve()):
            raise ConfigError(f"--name {name!r} escapes the output directory {out}")
        try:
            cand.mkdir(parents=True, exist_ok=False)
            return cand
        except FileExistsError:
            continue
    raise ConfigError(f"could not create a new run directory under {base}")


def environment() -> dict[str, Any]:
    """Device, library versions and the git commit, for the summary."""
    import importlib.metadata as md

    import jax

    versions = {}
    for pkg in ("sdeml", "jax", "jaxlib", "diffrax", "equinox", "optax", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    devices = jax.devices()
    env: dict[str, Any] = {
        "device": {
            "platform": devices[0].platform,
            "kind": devices[0].device_kind,
            "count": len(devices),
            "process_count": jax.process_count(),
        },
        "versions": versions,
        "python": platform.python_version(),
        "host": platform.node(),
        "x64": bool(jax.config.read("jax_enable_x64")),
    }
    env["git"] = _git_commit()
    return env


def _git_commit() -> dict[str, Any] | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


class Run:
    """What an experiment gets to write its results with (see CONTRIBUTING.md).

    Attributes:
        dir: the run directory.
        cfg: the validated config.
        resume: True when continuing an interrupted run (`train` then starts from checkpoints).
        summary: extra entries for ``summary.json`` (the experiment may add to it).
    """

    def __init__(
        self,
        directory: Path,
        cfg: Any,
        *,
        resume: bool = False,
        progress: bool = True,
        sweep: list[dict[str, Any]] | None = None,
    ):
        self.dir = Path(directory)
        self.cfg = cfg
        self.sweep: list[dict[str, Any]] = list(sweep or [])
        self.resume = resume
        self.show_progress = progress
        self.summary: dict[str, Any] = {}
        self.training: dict[str, dict[str, Any]] = {}
        self._metrics_path = self.dir / "metrics.jsonl"

    # -- sweeps -------------------------------------------------------------------------------
    def sweep_values(self, key: str) -> list[Any]:
        """The value of dotted `key` at every grid point (the config's value where not swept).

        Without a ``sweep:`` block this is ``[value]``: code written for sweeps runs one point.
        """
        from ._config import get_dotted

        if not self.sweep:
            return [get_dotted(self.cfg, key)]
        return [p.get(key, get_dotted(self.cfg, key)) for p in self.sweep]

    def sweep_labels(self) -> list[str]:
        """One label per grid point, e.g. ``seed=1,train.lr=0.003``."""
        if not self.sweep:
            return ["-"]
        return [",".join(f"{k}={v}" for k, v in p.items()) for p in self.sweep]

    # -- metrics, plots, arrays ---------------------------------------------------------------
    def log(self, step: int, metrics: dict[str, Any], tag: str | None = None) -> None:
        """Append one JSON line ``{"step": step, "tag": tag, **metrics}`` to metrics.jsonl."""
        row: dict[str, Any] = {"step": int(step)}
        if tag is not None:
            row["tag"] = tag
        row.update(metrics)
        line = json.dumps(row, default=_json_default) + "\n"
        # One write of a whole line on an O_APPEND descriptor: a kill leaves whole lines only.
        fd = os.open(self._metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def savefig(self, fig: Any, name: str, dpi: int = 120) -> Path:
        """Save a matplotlib figure as ``name.png`` (atomically) and close it."""
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        path = self.dir / f"{check_name(name)}.png"
        write_atomic(path, buf.getvalue())
        return path

    def save_arrays(self, name: str, **arrays: Any) -> Path:
        """Save arrays as ``name.npz`` (atomically)."""
        import io

        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        path = self.dir / f"{check_name(name)}.npz"
        write_atomic(path, buf.getvalue())
        return path

    def save_json(self, name: str, obj: Any) -> Path:
        path = self.dir / f"{check_name(name)}.json"
        write_json(path, obj)
        return path

    def progress(self, iterable: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
        """A progress bar over `iterable` (for long loops that are not training)."""
        return iter(
            tqdm(
                iterable, desc=desc, total=total, disable=not self.show_progress, dynamic_ncols=True
            )
        )

    # -- training ------------------------------------------------------------------------------
    def train(
        self,
        state: Any,
        step_fn: Any,
        train_cfg: Any,
        *,
        name: str = "model",
        n_steps: int | None = None,
    ) -> Any:
        """`sdeml.train.fit` wired to this run: metrics, checkpoints, resume, timings.

        Args:
            state: the initial `TrainState` (rebuilt from the config on resume; the checkpoint
                then replaces its arrays).
            step_fn: from `sdeml.train.make_step` (or an `eqx.filter_vmap` of it).
            train_cfg: a `TrainConfig` (steps, log_every, ckpt_every).
            name: the model's name; checkpoints go to ``checkpoints/<name>/``.
            n_steps: overrides ``train_cfg.steps``.
        """
        from ..train import fit

        check_name(name)
        steps = train_cfg.steps if n_steps is None else n_steps
        ckpt_dir = self.dir / "checkpoints" / name
        if self.resume:
            self._truncate_metrics(name, ckpt_dir)
        state, stats = fit(
            state,
            step_fn,
            steps,
            log_every=train_cfg.log_every,
            ckpt_every=train_cfg.ckpt_every,
            ckpt_dir=ckpt_dir,
            resume=self.resume,
            progress=self.show_progress,
            desc=name,
            on_log=lambda step, m: self.log(step, m, tag=name),
        )
        self.training[name] = {
            "steps": steps,
            "resumed_from_step": stats.start_step,
            "compile_time_s": stats.compile_time_s,
            "step_time_s": stats.step_time_s,
            "train_wall_time_s": stats.wall_time_s,
            "final_train_metrics": stats.last_metrics,
        }
        return state

    def _truncate_metrics(self, name: str, ckpt_dir: Path) -> None:
        """On resume, drop the logged rows of `name` past its newest checkpoint."""
        from ..train import CheckpointDir

        latest = CheckpointDir(ckpt_dir).latest() or 0
        if not self._metrics_path.is_file():
            return
        keep = []
        for line in self._metrics_path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("tag") == name and row.get("step", 0) > latest:
                continue
            keep.append(line + "\n")
        write_atomic(self._metrics_path, "".join(keep))
