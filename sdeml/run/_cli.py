"""The ``sdeml`` command: run, check, list and show experiments.

Starts at once (issue #18): this module imports the standard library only; each command imports
what it needs (configs and the registry: pydantic and YAML; JAX only when an experiment runs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ._errors import ConfigError, ExperimentError

if TYPE_CHECKING:
    from ._registry import Experiment

EXAMPLES = """\
examples:
  sdeml run configs/quickstart.yaml
  sdeml run configs/quickstart.yaml train.steps=200 seed=3 --name short
  sdeml run quickstart                       # a shipped config by name
  sdeml run --resume runs/score_sde/quickstart-20261122-101500
  sdeml check configs/quickstart.yaml train.lr=3e-3
  sdeml list
  sdeml show runs/score_sde/quickstart-20261122-101500
  sdeml run my.yaml --import my_experiments  # an experiment defined in your own module
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see '{self.prog} --help')", 2)


def _fail(message: str, code: int) -> NoReturn:
    print(f"sdeml: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def shipped_configs() -> Path | None:
    """The folder of the shipped configs: package data of ``sdeml.configs``.

    In the repository they are ``configs/*.yaml``; pyproject.toml installs that folder as
    ``sdeml.configs``, found here with `importlib.resources` (a plain folder both for a wheel
    install and for an editable one).
    """
    import importlib.resources

    try:
        root = importlib.resources.files("sdeml.configs")
    except ModuleNotFoundError:
        return None
    path = Path(str(root))  # a plain folder: sdeml is installed unzipped
    return path if path.is_dir() else None


def config_dirs() -> list[Path]:
    """Where config names are looked up: ./configs first, then the shipped configs."""
    dirs = [Path.cwd() / "configs", shipped_configs()]
    seen, out = set(), []
    for d in dirs:
        if d is not None and d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


def find_config(spec: str) -> Path:
    """A config path, or a shipped config name (``quickstart`` -> configs/quickstart.yaml)."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.suffix == "" and "/" not in spec:
        for d in config_dirs():
            cand = d / f"{spec}.yaml"
            if cand.is_file():
                return cand
    if path.is_dir():
        raise ConfigError(
            f"config {spec} is a directory; give a YAML file in it, or a config name "
            "(`sdeml list` shows them)"
        )
    raise ConfigError(f"config file not found: {spec}")


def resolve(spec: str, overrides: list[str]) -> tuple[Experiment, Any, Path]:
    """Load, override and validate a config: (experiment, config, path)."""
    from . import _registry as registry
    from ._config import apply_overrides, load_yaml, sweep_grid, validate
    from ._memory import check_memory

    path = find_config(spec)
    raw = apply_overrides(load_yaml(path), overrides)
    exp = registry.get(raw.get("experiment"), source=str(path))
    cfg = validate(exp.config, raw, str(path))
    grid = sweep_grid(cfg, exp.sweep_keys, str(path))  # every grid point is valid before any work
    check_memory(exp.memory, cfg, str(path), n_points=len(grid))  # absurd sizes: refused now
    return exp, cfg, path


def _load_experiments(imports: list[str]) -> None:
    from . import _registry as registry

    registry.load_builtin()
    for spec in imports:
        registry.import_user(spec)


# ------------------------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    _load_experiments(args.imports)
    from ._config import to_yaml

    exp, cfg, path = resolve(args.config, args.overrides)
    print(f"# {path}: valid config for experiment {exp.name!r}")
    print(to_yaml(cfg), end="")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from . import _registry as registry
    from ._config import load_yaml

    _load_experiments(args.imports)
    exps = registry.all_experiments()
    width = max((len(e.name) for e in exps), default=10)
    print("experiments:")
    for e in exps:
        print(f"  {e.name:<{width}}  {e.description}")
    print("configs (`sdeml run NAME` runs NAME.yaml; ./configs comes first):")
    cwd, rows, names = Path.cwd().resolve(), [], set()
    for d in config_dirs():
        for path in sorted(d.glob("*.yaml")):
            try:
                name = load_yaml(path).get("experiment", "?")
            except ConfigError as err:
                name = f"(unreadable: {err})"
            desc = next((e.description for e in exps if e.name == name), "")
            # relative where the file lies under the working directory, else absolute
            # (a path like ../../usr/lib/.../configs/x.yaml names nothing a person would type)
            shown = path.resolve()
            if shown.is_relative_to(cwd):
                shown = shown.relative_to(cwd)
            shadowed = " (shadowed by ./configs)" if path.stem in names else ""
            names.add(path.stem)
            rows.append((str(shown), f"{name}: {desc}" if desc else name, shadowed))
    width = max((len(r[0]) for r in rows), default=0)
    for shown, what, shadowed in rows:
        print(f"  {shown:<{width}}  {what}{shadowed}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no summary.json)")
    s = json.loads(summary_path.read_text())
    status = _live_status(s)
    print(f"run         {run_dir}")
    print(f"experiment  {s.get('experiment')}")
    print(f"status      {status}")
    if s.get("error"):
        print(f"error       {s['error']}")
    print(f"started     {s.get('started')}")
    if s.get("wall_time_s") is not None:
        print(f"wall time   {s['wall_time_s']:.2f} s")
    for name, t in (s.get("training") or {}).items():
        print(
            f"train[{name}]  {t['steps']} steps, compile {t['compile_time_s']:.2f} s, "
            f"{1e3 * t['step_time_s']:.3f} ms/step steady"
            + (
                f", resumed from step {t['resumed_from_step']}"
                if t.get("resumed_from_step")
                else ""
            )
        )
    if not s.get("metrics"):
        last = _last_metrics(run_dir / "metrics.jsonl")
        if last:
            print(f"last logged {json.dumps(last)}")
    _print_table(s.get("metrics") or {}, (s.get("sweep") or {}).get("labels"))
    _print_aggregate(s)
    plots = sorted(p.name for p in run_dir.glob("*.png"))
    arrays = sorted(p.name for p in run_dir.glob("*.npz"))
    print(f"plots       {', '.join(plots) or '-'}")
    print(f"arrays      {', '.join(arrays) or '-'}")
    ckpts = sorted(str(p.relative_to(run_dir)) for p in run_dir.glob("checkpoints/*/latest.json"))
    print(f"checkpoints {', '.join(c.rsplit('/', 1)[0] for c in ckpts) or '-'}")
    return 0


def _live_status(s: dict[str, Any]) -> str:
    status = s.get("status", "unknown")
    if status != "running":
        return status
    pid, host = s.get("pid"), s.get("environment", {}).get("host")
    import platform

    if pid and host == platform.node():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"interrupted (process {pid} ended without finishing; resume with --resume)"
        except PermissionError:
            pass
    return "running"


def _last_metrics(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else None


def _print_aggregate(summary: dict[str, Any]) -> None:
    """A sweep's metrics over seeds per hyper-parameter point (computed if not stored)."""
    sweep, metrics = summary.get("sweep") or {}, summary.get("metrics") or {}
    if not sweep.get("points") or not metrics:
        return
    from ._aggregate import aggregate, format_aggregate

    rows = sweep.get("aggregate") or aggregate(sweep["points"], metrics)
    text = format_aggregate(rows)
    if text:
        print(text)


def _print_table(metrics: dict[str, Any], labels: list[str] | None = None) -> None:
    if not metrics:
        return
    if labels:  # a sweep: one row per grid point, one column per metric
        per_point = {
            k: v for k, v in metrics.items() if isinstance(v, list) and len(v) == len(labels)
        }
        text = [k for k, v in per_point.items() if any(isinstance(x, str) for x in v)]
        cols = [k for k in per_point if k not in text]
        lw = max(len(x) for x in [*labels, "point"])
        widths = [max(len(c), 12) for c in cols]
        print("results:")
        pairs = list(zip(cols, widths, strict=True))
        print("  " + "point".ljust(lw) + "".join(f"  {c:>{w}}" for c, w in pairs))
        for i, label in enumerate(labels):
            row = "".join(f"  {metrics[c][i]:>{w}.6g}" for c, w in pairs)
            print("  " + label.ljust(lw) + row)
        for k in text:  # text per point (e.g. recovered equations): one line each
            print(f"{k}:")
            for label, v in zip(labels, metrics[k], strict=True):
                print("  " + label.ljust(lw) + f"  {v}")
        return
    width = max(len(k) for k in metrics)
    print("results:")
    for k, v in metrics.items():
        shown = f"{v:.6g}" if isinstance(v, float) else str(v)
        print(f"  {k:<{width}}  {shown}")


# ------------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from . import _distributed as dist
    from . import _registry as registry
    from ._config import load_yaml, sweep_grid, validate
    from ._rundir import RunLock, check_name, check_out, new_run_dir

    _load_experiments(args.imports)
    n_proc, n_dev = 1, 1
    launcher = args.processes is not None and not dist.is_launched()
    if launcher:
        n_proc, n_dev = dist.check_counts(args.processes, args.devices_per_process)
        launcher = n_proc > 1
    joined = False if launcher else dist.initialize()  # a launched or cluster process
    rank = 0
    if joined:
        import jax

        rank = jax.process_index()
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file() or not (run_dir / "summary.json").is_file():
            raise ConfigError(
                f"--resume {run_dir}: not a run directory (config.yaml, summary.json)"
            )
        if args.name:
            raise ConfigError("--name cannot be used with --resume (the run keeps its name)")
        saved = load_yaml(run_dir / "config.yaml")
        exp = registry.get(saved.get("experiment"), source=str(run_dir / "config.yaml"))
        cfg = validate(exp.config, saved, str(run_dir / "config.yaml"))
        if args.config is not None:
            _, given, _ = resolve(args.config, args.overrides)
            if given.model_dump() != cfg.model_dump():
                raise ConfigError(
                    f"--resume {run_dir}: the given config differs from the run's config.yaml "
                    "(resume with the run directory alone)"
                )
        elif args.overrides:
            raise ConfigError("--resume takes no overrides: a resumed run keeps its config")
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
            if not isinstance(summary, dict):
                raise ValueError("not a JSON object")
        except (ValueError, OSError) as e:
            raise ConfigError(f"--resume {run_dir}: summary.json is unreadable ({e})") from None
        if summary.get("status") == "completed":
            raise ConfigError(f"--resume {run_dir}: the run already completed")
        if launcher:
            _check_multi_process(exp, sweep_grid(cfg, exp.sweep_keys, str(run_dir)), args)
            return dist.launch(args.argv, n_proc, n_dev, run_dir)
    else:
        if args.config is None:
            raise ConfigError("missing CONFIG (a YAML file or a shipped config name)")
        exp, cfg, path = resolve(args.config, args.overrides)
        name = check_name(args.name or path.stem)
        check_out(args.out)
        if launcher:
            _check_multi_process(exp, sweep_grid(cfg, exp.sweep_keys, str(path)), args)
            run_dir = new_run_dir(args.out, exp.name, name)
            return dist.launch(args.argv, n_proc, n_dev, run_dir)
        if dist.is_launched():  # the launcher made it
            run_dir = Path(os.environ[dist.ENV_RUN_DIR])
        elif joined:  # a cluster: process 0 makes it and tells the others
            mine = new_run_dir(args.out, exp.name, name) if rank == 0 else None
            run_dir = dist.share_run_dir(mine)
        else:
            run_dir = new_run_dir(args.out, exp.name, name)
        summary = {}
    if rank > 0:
        return _run_follower(exp, cfg, run_dir, args, summary)
    lock = RunLock(run_dir).acquire()  # one live writer per run directory (issue #17)
    try:
        if lock.took_over:
            print(
                f"sdeml: took over the stale lock of {run_dir} ({lock.took_over} is no longer "
                "running it)",
                file=sys.stderr,
            )
        return _execute(
            exp,
            cfg,
            run_dir,
            resume=bool(args.resume),
            progress=not args.no_progress,
            previous=summary,
        )
    finally:
        lock.release()


def _check_multi_process(exp: Experiment, grid: list[dict[str, Any]], args: Any) -> None:
    """Refuse, before any process starts, what several processes cannot split."""
    p, k = args.processes, args.devices_per_process
    if not grid:
        raise ConfigError(
            f"--processes {p}: the config has no sweep: block; several processes split a sweep's "
            "grid (add e.g. 'sweep={seed: [0, 1, 2, 3]}')"
        )
    if exp.per_point:
        raise ConfigError(
            f"--processes {p}: experiment {exp.name!r} runs its grid point by point, not as one "
            "compiled sweep, so several processes would each repeat every point; run it in one "
            "process"
        )
    if len(grid) % (p * k):
        raise ConfigError(
            f"--processes {p} --devices-per-process {k}: the sweep has {len(grid)} points, not a "
            f"multiple of the {p * k} devices; use a grid of a multiple of {p * k} points or "
            "other counts"
        )


def _run_follower(
    exp: Experiment, cfg: Any, run_dir: Path, args: Any, previous: dict[str, Any]
) -> int:
    """Process i > 0 of a multi-process run: the same experiment, its files in a temporary
    folder (removed at the end), checkpoints read from (and written by process 0 to) the run
    directory."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="sdeml-process-"))
    try:
        return _execute(
            exp,
            cfg,
            scratch,
            resume=bool(args.resume),
            progress=False,
            previous=previous,
            ckpt_root=run_dir,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _execute(
    exp: Experiment,
    cfg: Any,
    run_dir: Path,
    *,
    resume: bool,
    progress: bool,
    previous: dict[str, Any],
    ckpt_root: Path | None = None,
) -> int:
    from ._config import sweep_grid, to_yaml
    from ._rundir import Run, environment, write_atomic, write_json

    t0 = time.perf_counter()
    env = environment()
    env["x64"] = bool(env["x64"] or cfg.x64)
    env["dtype"] = "float64" if env["x64"] else "float32"  # the default floating dtype of the run
    summary: dict[str, Any] = {
        "experiment": exp.name,
        "run_dir": str(run_dir),
        "status": "running",
        "pid": os.getpid(),
        "started": previous.get("started") or dt.datetime.now().isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "environment": env,
    }
    if resume:
        summary["resumed"] = previous.get("resumed", 0) + 1
    else:
        write_atomic(run_dir / "config.yaml", to_yaml(cfg))
    write_json(run_dir / "summary.json", summary)
    print(f"sdeml: running {exp.name} -> {run_dir}", file=sys.stderr)

    grid = sweep_grid(cfg, exp.sweep_keys, str(run_dir / "config.yaml"))
    run = Run(
        run_dir,
        cfg,
        resume=resume,
        progress=progress,
        sweep=grid,
        sweep_keys=exp.sweep_keys,
        ckpt_root=ckpt_root,
    )
    if grid:
        summary["sweep"] = {"points": grid, "labels": run.sweep_labels()}
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    code, status, error = 0, "completed", None
    metrics: dict[str, Any] = {}
    import jax
    import matplotlib

    matplotlib.use("Agg")  # plots are written to files: no window, whatever the default backend
    x64_before = bool(jax.config.read("jax_enable_x64"))
    try:
        if cfg.x64:
            jax.config.update("jax_enable_x64", True)
        out = run.per_point(exp.fn) if exp.per_point else exp.fn(cfg, run)
        metrics = _check_metrics(out, exp.name)
    except ConfigError:
        if not resume:  # an input problem found late: leave nothing behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    except KeyboardInterrupt:
        code, status, error = 130, "interrupted", "interrupted by signal"
    except Exception as e:
        from ..train import TrainingError, describe_error

        code, status = 1, "failed"
        error = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        # a failure raised inside compiled code arrives wrapped (JaxRuntimeError: "CpuCallback
        # error calling callback: Traceback ..."): name the error inside and its message
        inner = re.search(r"\b(EquinoxRuntimeError|ODESolveError): ", str(e))
        if isinstance(e, (TrainingError, ExperimentError)):
            pass
        elif inner:
            error = f"{inner.group(1)}: {describe_error(e)}"
        else:
            error = f"{type(e).__name__}: {error}"
        write_atomic(run_dir / "error.log", traceback.format_exc())
    finally:
        signal.signal(signal.SIGTERM, old_term)
        jax.config.update("jax_enable_x64", x64_before)
    summary.update(run.summary)
    if jax.process_count() > 1:  # every process reaches this point: the timings are gathered
        from ._distributed import gather_floats

        summary["distributed"] = {
            "processes": jax.process_count(),
            "devices_per_process": jax.local_device_count(),
            "mesh": {"process": jax.process_count(), "device": jax.local_device_count()},
            "process_wall_time_s": gather_floats(time.perf_counter() - t0),
        }
    summary.update(
        status=status,
        finished=dt.datetime.now().isoformat(timespec="seconds"),
        wall_time_s=time.perf_counter() - t0,
        training=run.training,
        metrics=metrics,
    )
    if error:
        summary["error"] = error
    if grid and metrics:  # over seeds at each hyper-parameter point, and the sweep plot
        from ._aggregate import aggregate, sweep_plot

        summary["sweep"]["aggregate"] = aggregate(grid, metrics)
        sweep_plot(grid, metrics, run_dir / "sweep.png")
    write_json(run_dir / "summary.json", summary)
    if code:
        hint = " (traceback in error.log)" if (run_dir / "error.log").is_file() else ""
        _fail(f"{exp.name} {status}: {error}{hint}; run directory {run_dir}", code)
    print(f"\n{exp.name}: completed in {summary['wall_time_s']:.1f} s -> {run_dir}")
    for name, t in run.training.items():
        print(
            f"  train[{name}]: compile {t['compile_time_s']:.2f} s, "
            f"{1e3 * t['step_time_s']:.3f} ms/step"
        )
    _print_table(metrics, run.sweep_labels() if grid else None)
    _print_aggregate(summary)
    return 0


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _check_metrics(out: Any, name: str) -> dict[str, Any]:
    if out is None:
        return {}
    if not isinstance(out, dict):
        raise TypeError(f"experiment {name!r} must return a dict of final metrics")
    clean: dict[str, Any] = {}
    for k, value in out.items():
        v: Any = value
        if isinstance(v, (str, bool, int, dict)):
            clean[k] = v
            continue
        if isinstance(v, (list, tuple)) and any(isinstance(x, str) for x in v):
            # a sweep's per-point text (recovered equations, labels): kept as text per point,
            # never parsed as numbers ("1" stays "1") nor the whole list made one string
            clean[k] = [x if isinstance(x, (str, bool, int)) or x is None else float(x) for x in v]
            continue
        try:
            clean[k] = float(value)
        except (TypeError, ValueError):
            try:  # a per-point list (sweeps) or an array
                import numpy as np

                clean[k] = np.asarray(v, dtype=float).tolist()
            except (TypeError, ValueError):
                clean[k] = str(v)
    return clean


# ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="sdeml",
        description="Run differential-equation ML experiments from YAML configs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version="sdeml 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help: str, fn: Any) -> argparse.ArgumentParser:
        sp = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.set_defaults(fn=fn)
        return sp

    def imports(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--import",
            dest="imports",
            action="append",
            default=[],
            metavar="MODULE",
            help="import a module (or .py file) that registers experiments; may be repeated",
        )

    r = add("run", "run an experiment end to end and write a run directory", cmd_run)
    r.add_argument("config", nargs="?", metavar="CONFIG", help="YAML file or shipped config name")
    r.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides")
    r.add_argument("--out", default="runs", metavar="DIR", help="output root (default: runs)")
    r.add_argument("--name", metavar="NAME", help="run name (default: the config file's stem)")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument(
        "--processes",
        type=int,
        metavar="P",
        help="run the sweep on P local processes joined by jax.distributed (process 0 writes the "
        "run directory); under SLURM or Open MPI, leave it out: the cluster's processes join",
    )
    r.add_argument(
        "--devices-per-process",
        type=int,
        default=1,
        metavar="K",
        help="CPU devices each of the --processes gets (JAX_NUM_CPU_DEVICES; default 1)",
    )
    imports(r)

    c = add("check", "validate a config and print it resolved (nothing is run)", cmd_check)
    c.add_argument("config", metavar="CONFIG")
    c.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    imports(c)

    li = add("list", "list registered experiments and shipped configs", cmd_list)
    imports(li)

    s = add("show", "summarise a finished or interrupted run", cmd_show)
    s.add_argument("run_dir", metavar="RUN_DIR")
    return p


def main(argv: list[str] | None = None) -> int:
    """The ``sdeml`` command line (``sdeml ...``, ``python -m sdeml ...``).

    The process exits with status 0 on success, 1 for a failed run, 2 for bad input (printed
    as one ``sdeml: error: ...`` line) and 130 when interrupted. Called from Python, `main`
    returns the 0 and raises `SystemExit` with the others.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success; 2 when no command is given (the help is printed).

    Raises:
        SystemExit: with status 2 for bad input (an unknown key, file or experiment name, a
            malformed override), 1 for a failed run, 130 when interrupted; also for
            ``--help`` and ``--version`` (status 0).

    Examples:
        >>> import contextlib
        >>> import io
        >>> from sdeml.run import main
        >>> with contextlib.redirect_stdout(io.StringIO()) as out:
        ...     status = main(["check", "ode_quickstart", "train.steps=20"])  # nothing runs
        >>> status, out.getvalue().splitlines()[1:3]
        (0, ['experiment: quickstart_ode', 'seed: 0'])
        >>> try:
        ...     main(["check", "ode_quickstart", "train.stpes=20"])  # a typo in a key
        ... except SystemExit as e:
        ...     print("exit status", e.code)
        exit status 2
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may stand after options too (`run cfg --name x a=1`): argparse leaves them over.
    unknown = [a for a in extra if a.startswith("-") or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    if getattr(args, "fn", None) is None:
        parser.print_help()
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.fn(args)
    except ConfigError as e:
        _fail(str(e), 2)
    except BrokenPipeError:  # `sdeml check cfg | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's exit flush must not raise again
        return 0


if __name__ == "__main__":
    sys.exit(main())
