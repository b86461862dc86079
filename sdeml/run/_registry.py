"""The experiment registry: names map to (schema, function) pairs."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._config import ExperimentConfig
from ._errors import ConfigError


@dataclass(frozen=True)
class Experiment:
    """A registered experiment (made by `register`; listed by `all_experiments`).

    Attributes:
        name: the value of the config's ``experiment`` key.
        config: the experiment's schema, a subclass of `ExperimentConfig`.
        fn: ``fn(cfg, run) -> final metrics``.
        description: one line for ``sdeml list``.
        smoke: ``key=value`` overrides that make a run finish in seconds.
        module: the module that registered it.
        sweep_keys: the keys a ``sweep:`` block may vary, ``seed`` first.
        build_model: ``build_model(cfg, key) -> model`` (or ``{name: model}``), or None.
        memory: the schema's ``estimate_memory``, or None when it states none.
        per_point: a sweep runs `fn` at every grid point in turn.

    Examples:
        >>> from sdeml.run import Experiment, ExperimentConfig, all_experiments, register
        >>> class SquareConfig(ExperimentConfig):
        ...     experiment: str = "doc_square"
        ...     x: float = 3.0
        >>> @register("doc_square", SquareConfig, "documentation: x squared", smoke=("x=2.0",))
        ... def square(cfg, run):
        ...     return {"x2": cfg.x**2}
        >>> exp = next(e for e in all_experiments() if e.name == "doc_square")
        >>> isinstance(exp, Experiment), exp.config is SquareConfig, exp.smoke, exp.sweep_keys
        (True, True, ('x=2.0',), ('seed',))
        >>> exp.fn(SquareConfig(), None)
        {'x2': 9.0}
    """

    name: str
    config: type[ExperimentConfig]
    fn: Callable[..., dict[str, float]]
    description: str
    smoke: tuple[str, ...] = field(default=())
    module: str = ""
    sweep_keys: tuple[str, ...] = field(default=())
    build_model: Callable[[Any, Any], Any] | None = None
    memory: Callable[[Any], dict[str, float]] | None = None
    per_point: bool = False


_REGISTRY: dict[str, Experiment] = {}


def register(
    name: str,
    config: type[ExperimentConfig],
    description: str,
    *,
    smoke: Sequence[str] = (),
    build_model: Callable[[Any, Any], Any] | None = None,
    per_point: bool = False,
) -> Callable[[Callable[..., dict[str, float]]], Callable[..., dict[str, float]]]:
    r"""Register `fn(cfg, run) -> final metrics` as experiment `name`.

    What a config allows is a fact of its schema, read from `config`: the keys a ``sweep:`` block
    may vary (``config.sweep_keys``, `ExperimentConfig`) and the size of its largest arrays
    (``config.estimate_memory``), which `sdeml check` and `sdeml run` compare with the machine's
    memory before any work (`sdeml.run._memory.check_memory`).

    Args:
        name: the value of the config's ``experiment`` key.
        config: the experiment's schema, a subclass of `ExperimentConfig`.
        description: one line for ``sdeml list``.
        smoke: ``key=value`` overrides that make a run finish in seconds (used by the tests).
        build_model: ``build_model(cfg, key) -> model`` for an experiment that trains a model
            (through `sdeml.train.train_model` / `train_sweep`, with ``cfg.train``), or a dict
            ``{name: model}`` when it trains several under different names. The experiment
            builds its model with it, and `sdeml.run.load` rebuilds the checkpoint's structure
            with it, so a finished run loads in one call.
        per_point: `fn` computes one config; a sweep runs it at every grid point in turn
            (`Run.per_point`), each point exactly the separate run of its config. For an
            experiment whose numerical core is not yet one vmapped program (issue #19).

    Returns:
        A decorator that registers `fn` and returns it unchanged.

    Raises:
        TypeError: `config` is not a subclass of `ExperimentConfig`.
        ValueError: another module already registered `name`.

    Examples:
        Register an experiment and run it with the ``sdeml`` command line (`main`):

        >>> import json
        >>> from pathlib import Path
        >>> from sdeml.run import ExperimentConfig, main, register
        >>> class TriangleConfig(ExperimentConfig):
        ...     experiment: str = "doc_triangle"
        ...     n: int = 10
        >>> @register("doc_triangle", TriangleConfig, "documentation: 0 + 1 + ... + (n - 1)")
        ... def triangle(cfg, run):
        ...     return {"total": sum(range(cfg.n))}
        >>> _ = Path("triangle.yaml").write_text("experiment: doc_triangle\n")
        >>> main(["run", "triangle.yaml", "n=100", "--out", "runs_triangle", "--no-progress"])
        <BLANKLINE>
        doc_triangle: completed in ... s -> ...triangle-...
        results:
          total  4950
        0
        >>> [summary] = Path("runs_triangle").glob("doc_triangle/*/summary.json")
        >>> json.loads(summary.read_text())["metrics"]  # n (n - 1) / 2
        {'total': 4950}
    """
    if not (isinstance(config, type) and issubclass(config, ExperimentConfig)):
        raise TypeError(f"register({name!r}): `config` must subclass ExperimentConfig")

    def deco(fn: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
        old = _REGISTRY.get(name)
        if old is not None and old.module != fn.__module__:
            raise ValueError(
                f"experiment {name!r} is registered twice ({old.module}, {fn.__module__})"
            )
        _REGISTRY[name] = Experiment(
            name,
            config,
            fn,
            description,
            tuple(smoke),
            fn.__module__,
            ("seed", *(k for k in config.sweep_keys if k != "seed")),
            build_model,
            config.estimate_memory if config.has_memory_estimate() else None,
            per_point,
        )
        return fn

    return deco


def load_builtin() -> None:
    """Import every module of ``sdeml.experiments`` (each registers itself).

    The repository's ``experiments/`` folder is installed as ``sdeml.experiments`` (a
    ``package-dir`` mapping in pyproject.toml), so this works from any directory.
    """
    package = importlib.import_module("sdeml.experiments")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def import_user(spec: str) -> None:
    """Import a user module (``pkg.module`` or ``path/to/file.py``) that registers experiments."""
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"--import: file not found: {spec}")
        modname = f"sdeml_user_{path.stem}"
        loaded = importlib.util.spec_from_file_location(modname, path)
        assert loaded is not None and loaded.loader is not None
        module = importlib.util.module_from_spec(loaded)
        sys.modules[modname] = module
        loaded.loader.exec_module(module)
        return
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as e:
        raise ConfigError(f"--import: cannot import module {spec!r} ({e})") from None


def get(name: Any, source: str = "config") -> Experiment:
    """The experiment called `name`; an unknown name lists the valid ones."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: key 'experiment' must name an experiment ({_valid()})")
    if name not in _REGISTRY:
        raise ConfigError(f"{source}: unknown experiment {name!r} ({_valid()})")
    return _REGISTRY[name]


def all_experiments() -> list[Experiment]:
    """Every registered experiment, sorted by name.

    An experiment is registered when its module is imported: the shipped ones by ``sdeml``'s
    commands and `load` (``sdeml.experiments``), your own by ``--import`` or a plain import.

    Returns:
        A list of `Experiment`, sorted by ``name``.

    Examples:
        >>> import sdeml.experiments.quickstart_ode  # importing a module registers its experiment
        >>> from sdeml.run import all_experiments
        >>> names = [e.name for e in all_experiments()]
        >>> "quickstart_ode" in names, names == sorted(names)
        (True, True)
    """
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _valid() -> str:
    return "valid: " + ", ".join(sorted(_REGISTRY)) if _REGISTRY else "none registered"
