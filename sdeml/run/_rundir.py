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

from .._io import write_atomic
from ._errors import ConfigError

T = TypeVar("T")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def write_json(path: str | Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(x: Any) -> Any:
    import numpy as np  # here, not at import: the CLI reads configs without numpy (issue #18)

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        return np.asarray(x).tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


NAME_RULE = (
    "a run name is 1 to 100 characters of letters, digits, '.', '_' and '-', starting with a "
    "letter or digit and without '..'"
)


def check_name(name: str) -> str:
    """A run name: `NAME_RULE` (exactly what the regular expression and the '..' test enforce)."""
    if not _NAME.match(name) or ".." in name:
        raise ConfigError(f"--name {name!r}: {NAME_RULE}")
    return name


def check_out(out: str | Path) -> Path:
    """`out` as a writable folder to create run directories in (created if missing).

    Raises:
        ConfigError: it is a file or device, lies under a file, or cannot be written.
    """
    path = Path(out)
    probe = path
    while not probe.exists() and probe != probe.parent:  # the nearest existing ancestor
        probe = probe.parent
    if not probe.is_dir():
        what = "is not a directory" if probe == path else f"lies under {probe}, which is not one"
        raise ConfigError(f"--out {out}: {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {probe} is not writable")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create it ({e.strerror or e})") from None
    return path


def new_run_dir(out: str | Path, experiment: str, name: str) -> Path:
    """Create ``out/experiment/name-YYYYmmdd-HHMMSS`` (suffixed if taken), inside `out`."""
    check_name(name)
    check_out(out)
    base = Path(out).resolve() / experiment
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        cand = base / (f"{name}-{stamp}" + (f"-{i}" if i else ""))
        if not cand.resolve().is_relative_to(Path(out).resolve()):
            raise ConfigError(f"--name {name!r} escapes the output directory {out}")
        try:
            cand.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        except OSError as e:  # read-only filesystem, a file in the way, no space, ...
            raise ConfigError(f"--out {out}: cannot create {cand} ({e.strerror or e})") from None
        try:  # a folder the filesystem lets us create but not fill is refused here, not later
            (cand / ".write-test").write_bytes(b"")
            (cand / ".write-test").unlink()
        except OSError as e:
            cand.rmdir()
            raise ConfigError(f"--out {out}: cannot write in {cand} ({e.strerror or e})") from None
        return cand
    raise ConfigError(f"could not create a new run directory under {base}")


class RunLock:
    """Ownership of a run directory by one live process: ``run.lock`` holding its pid and host.

    The lock is an exclusive `fcntl.flock` on that file, held as long as the owner lives (the
    kernel drops it when the process dies, however it dies), so a lock file left behind by a
    killed run is stale by construction: the next owner takes it over and says whose it was. A
    second writer (resuming a live run, or two resumes at once) is refused with a `ConfigError`
    naming the owner.
    """

    FILE = "run.lock"

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / self.FILE
        self._fd: int | None = None
        self.took_over: str | None = None  # "process 123 on host" when a stale lock was taken

    def acquire(self) -> RunLock:
        import fcntl

        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise ConfigError(
                    f"run directory {self.path.parent} is in use by {owner}: "
                    "wait for it to finish or stop it, then --resume"
                ) from None
            # The file we locked must still be the one at the path (an owner releasing its lock
            # removes the file; a lock on the removed file would own nothing).
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _read_owner(fd, default="")
            if previous:
                self.took_over = previous
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": platform.node()}).encode())
            os.fsync(fd)
            self._fd = fd
            return self
        raise ConfigError(f"run directory {self.path.parent}: could not take its lock")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_owner(fd: int, default: str = "another process") -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
        return f"process {int(info['pid'])} on {info.get('host', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
        return default


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
        # issue #19: every run's summary says the precision its numbers were computed in
        "matmul_precision": str(
            getattr(jax.config, "jax_default_matmul_precision", None) or "default"
        ),
    }
    env["dtype"] = "float64" if env["x64"] else "float32"
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
        index: the grid point of this view (`at`): its entry in a sweep's per-point lists;
            None for the run itself.

    Args:
        directory: the run directory (it must exist; ``sdeml run`` creates it).
        cfg: the validated config.
        resume: continue an interrupted run.
        progress: show progress bars.
        sweep: the grid points, one ``{dotted key: value}`` per point (none: a single run).
        sweep_keys: the keys the experiment can sweep (`register`).
        ckpt_root: where checkpoints are read and written (default: `directory`).

    Examples:
        >>> import json
        >>> import optax
        >>> from pathlib import Path
        >>> from sdeml.run import Run
        >>> from sdeml.train import TrainConfig, init_state, make_step
        >>> run_dir = Path("run_demo")
        >>> run_dir.mkdir(exist_ok=True)
        >>> run = Run(run_dir, cfg=None, progress=False)
        >>> run.log(0, {"loss": 0.5}, tag="warmup")
        >>> run.save_arrays("samples", x=jnp.zeros((5, 2))).name
        'samples.npz'
        >>> opt = optax.sgd(0.25)
        >>> step_fn = make_step(lambda w, b, key: jnp.sum((w - 1.0) ** 2), opt, lambda k, s: None)
        >>> train_cfg = TrainConfig(steps=4, log_every=2, ckpt_every=2)
        >>> state, stats = run.train(init_state(jnp.zeros(2), opt, jr.key(0)), step_fn, train_cfg,
        ...                          name="net")
        >>> rows = (run_dir / "metrics.jsonl").read_text().splitlines()
        >>> [json.loads(row)["step"] for row in rows]  # the row logged above, then training's
        [0, 2, 4]
        >>> sorted(p.name for p in (run_dir / "checkpoints" / "net").glob("*.eqx"))
        ['step_000000002.eqx', 'step_000000004.eqx']
        >>> run.training["net"]["steps"], state.model.tolist()  # w_4 = 1 - 2^-4
        (4, [0.9375, 0.9375])
    """

    index: int | None = None

    def __init__(
        self,
        directory: Path,
        cfg: Any,
        *,
        resume: bool = False,
        progress: bool = True,
        sweep: list[dict[str, Any]] | None = None,
        sweep_keys: Iterable[str] = (),
        ckpt_root: Path | None = None,
    ):
        self.dir = Path(directory)
        # where checkpoints are read on resume (and written by process 0): the run directory,
        # also for the other processes of a multi-process run, whose `dir` is a scratch folder
        self.ckpt_root = Path(ckpt_root) if ckpt_root is not None else self.dir
        self.cfg = cfg
        self.sweep: list[dict[str, Any]] = list(sweep or [])
        self.sweep_keys: tuple[str, ...] = tuple(sweep_keys)
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

    def points(self) -> list[Any]:
        """The validated config of every grid point (``[cfg]`` without a sweep)."""
        from ._sweep import point_configs

        return point_configs(self.cfg, self.sweep)

    def sweep_map(self, fn: Any) -> Any:
        """``fn(cfg)`` at every grid point in one `jax.vmap` (see `sdeml.run._sweep.sweep_map`)."""
        from ._sweep import sweep_map

        return sweep_map(fn, self.cfg, self.sweep, self.sweep_keys)

    def train_grid(
        self, setup: Any, objective: Any, train_cfg: Any, *, name: str = "model", **kw: Any
    ) -> Any:
        """Train every grid point's model in one vmapped program (see `_sweep.train_grid`)."""
        from ._sweep import train_grid

        return train_grid(
            setup, objective, self.cfg, train_cfg, grid=self.sweep, keys=self.sweep_keys,
            run=self, name=name, **kw,
        )  # fmt: skip

    def evaluate_points(self, evaluate: Any, models: Any) -> dict[str, Any]:
        """``evaluate(cfg, run, model)`` at every grid point (its config, `at` view and
        `member` of the batched `models`), collected (`collect`): the evaluation after
        `train_grid`."""
        rows = [
            evaluate(c, self.at(i), self.member(models, i)) for i, c in enumerate(self.points())
        ]
        return self.collect(rows)

    def member(self, tree: Any, i: int) -> Any:
        """Grid point `i`'s slice of a batched tree (`train_grid`'s model); the tree itself
        without a sweep."""
        if not self.sweep:
            return tree
        import equinox as eqx
        import jax

        return jax.tree.map(lambda x: x[i] if eqx.is_array(x) else x, tree)

    def at(self, i: int) -> Run:
        """This run as grid point `i` writes it: plots, arrays and JSON named ``<name>-<i>``
        with the point's label as the figure's title, logged rows tagged with the point.

        Without a sweep it is the run itself, so code written per point runs one point.
        """
        if not self.sweep:
            return self
        return _PointRun(self, i)

    def point_name(self, name: str) -> str:
        """What `name` (a plot, array or trained model) is called in this run: ``name`` itself,
        ``<name>-<i>`` in grid point i's view (`at`)."""
        return name

    def per_point(self, fn: Any) -> dict[str, Any]:
        """``fn(cfg, run)`` at every grid point in turn, with the point's config and `at` view;
        the metrics collected (`collect`). For experiments whose numerical core is not yet one
        vmapped program: each point is exactly the separate run of its config."""
        from ..core._memory import release_compiled_if_crowded

        rows = []
        for i, c in enumerate(self.points()):
            rows.append(fn(c, self.at(i)))
            # each point compiles its own programs; a long grid must not exhaust the process's
            # memory mappings (a segmentation fault inside XLA, see sdeml.core._memory)
            release_compiled_if_crowded()
        return self.collect(rows)

    def collect(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Per-point metric dicts as the run's metrics: plain values without a sweep, else one
        list per metric (one entry per grid point, the order of ``sweep_labels``)."""
        if not self.sweep:
            return dict(rows[0])
        keys = [k for k in rows[0] if all(k in r for r in rows)]
        return {k: [r[k] for r in rows] for k in keys}

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

        import numpy as np

        buf = io.BytesIO()
        # names np.savez itself takes would be read as its options, not saved
        clash = {"file", "allow_pickle"} & set(arrays)
        if clash:
            raise ValueError(f"save_arrays: array names {sorted(clash)} are reserved by np.savez")
        named: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
        np.savez(buf, **named)
        path = self.dir / f"{check_name(name)}.npz"
        write_atomic(path, buf.getvalue())
        return path

    def save_json(self, name: str, obj: Any) -> Path:
        path = self.dir / f"{check_name(name)}.json"
        write_json(path, obj)
        return path

    def progress(self, iterable: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
        """A progress bar over `iterable` (for long loops that are not training)."""
        from tqdm.auto import tqdm

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
    ) -> tuple[Any, Any]:
        """`sdeml.train.fit` wired to this run: metrics, checkpoints, resume, timings.

        Experiments call it through `sdeml.train.train_model` / `train_sweep`, which build the
        state and step from the config (and so keep the run loadable by `sdeml.run.load`).

        Args:
            state: the initial `TrainState` (rebuilt from the config on resume; the checkpoint
                then replaces its arrays).
            step_fn: from `sdeml.train.make_step` (or an `eqx.filter_vmap` of it).
            train_cfg: a `TrainConfig` (steps, log_every, ckpt_every).
            name: the model's name; checkpoints go to ``checkpoints/<name>/``.
            n_steps: overrides ``train_cfg.steps``.

        Returns:
            The final state and the loop's `FitStats`.
        """
        from ..train import fit

        check_name(name)
        steps = train_cfg.steps if n_steps is None else n_steps
        ckpt_dir = self.ckpt_root / "checkpoints" / name
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
            on_resume=lambda step: self._truncate_metrics(name, step),
        )
        self.training[name] = {
            "steps": steps,
            "resumed_from_step": stats.start_step,
            "compile_time_s": stats.compile_time_s,
            "step_time_s": stats.step_time_s,
            "train_wall_time_s": stats.wall_time_s,
            "final_train_metrics": stats.last_metrics,
        }
        if stats.resume_note:
            self.training[name]["resume_note"] = stats.resume_note
        return state, stats

    def _truncate_metrics(self, name: str, latest: int) -> None:
        """On resume, drop the logged rows of `name` past the checkpoint training restarts from."""
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


class _PointRun(Run):
    """Grid point `i` of a sweep run (`Run.at`): what it writes is named and labelled per point."""

    def __init__(self, parent: Run, i: int):
        self.__dict__.update(parent.__dict__)
        self.parent, self.index = parent, i
        self.cfg = parent.points()[i]
        self.label = parent.sweep_labels()[i]

    def point_name(self, name: str) -> str:
        return f"{name}-{self.index}"

    _name = point_name

    def log(self, step: int, metrics: dict[str, Any], tag: str | None = None) -> None:
        self.parent.log(step, {"point": self.index, **metrics}, tag=tag)

    def savefig(self, fig: Any, name: str, dpi: int = 120) -> Path:
        fig.suptitle(self.label, fontsize=9)
        return self.parent.savefig(fig, self._name(name), dpi)

    def save_arrays(self, name: str, **arrays: Any) -> Path:
        return self.parent.save_arrays(self._name(name), **arrays)

    def save_json(self, name: str, obj: Any) -> Path:
        return self.parent.save_json(self._name(name), obj)

    def train(self, state: Any, step_fn: Any, train_cfg: Any, **kwargs: Any) -> tuple[Any, Any]:
        """`Run.train` under this point's name (its own checkpoints, metric tag and timings)."""
        kwargs["name"] = self._name(kwargs.get("name", "model"))
        return self.parent.train(state, step_fn, train_cfg, **kwargs)
