"""Typed experiment configs: YAML files (data only), dotted overrides, one-line errors.

A config is a pydantic model. Every key has a typed default declared once, in the experiment's
schema; a YAML file overrides what differs and ``key.sub=value`` arguments override the file.
YAML is read with ``yaml.safe_load``, which builds only plain data (no tags, no code).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, NonNegativeInt, ValidationError

from ..train import Section
from ._errors import ConfigError

__all__ = ["ExperimentConfig", "Section"]

_UNION_TAGS = {"int", "float", "str", "bool", "none", "list[int]", "list[float]"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class ExperimentConfig(Section):
    """Base of every experiment's schema: the experiment name, the seed and an optional sweep.

    ``sweep`` maps dotted keys to lists of values, e.g. ``{seed: [0, 1, 2, 3], train.lr: [1e-3,
    3e-3]}``; the grid (their Cartesian product) runs as one vmapped program in experiments that
    support it.

    A subclass states two facts about itself, read by `register`:

    * ``sweep_keys``: the dotted keys a ``sweep:`` block may vary (``seed`` always, also when not
      listed); any other key is refused before any work, with this list. Keys enter the
      computation as arrays only (seeds as keys, learning rates as optimiser state, coefficients
      through the config), so one compiled program serves the whole grid: the experiment trains
      with ``run.train_grid(setup, objective, cfg.train)`` or vmaps its numerical core with
      ``run.sweep_map(fn)``, then evaluates each point (``run.points()``, ``run.at(i)``,
      ``run.member(tree, i)``) and returns ``run.collect(rows)`` (see `sdeml.run._sweep`).
    * ``estimate_memory()``: ``{description: bytes}`` of its largest arrays as the config sizes
      them (paths x steps x state, batch x width, ...), per sweep point. `sdeml check` and
      `sdeml run` refuse a config whose total exceeds the machine's memory, before any work
      (`sdeml.run._memory.check_memory`).

    Attributes:
        experiment: the registered name of the experiment (`register`).
        seed: the run's seed (a sweep may vary it).
        x64: run in float64 (``jax_enable_x64``).
        sweep: ``{dotted key: [values]}``, or None for a single run.

    Examples:
        >>> from typing import ClassVar
        >>> from sdeml.run import ExperimentConfig
        >>> from sdeml.train import TrainConfig
        >>> class Config(ExperimentConfig):
        ...     experiment: str = "demo"
        ...     n_paths: int = 1000
        ...     train: TrainConfig = TrainConfig(steps=200)
        ...     sweep_keys: ClassVar[tuple[str, ...]] = ("seed", "train.lr")
        ...     def estimate_memory(self):
        ...         return {"paths (n_paths x 8 B)": 8.0 * self.n_paths}
        >>> cfg = Config(seed=3, sweep={"train.lr": [1e-3, 1e-2]})
        >>> cfg.train.steps, cfg.x64, cfg.sweep
        (200, False, {'train.lr': [0.001, 0.01]})
        >>> Config.has_memory_estimate(), cfg.estimate_memory()
        (True, {'paths (n_paths x 8 B)': 8000.0})
    """

    sweep_keys: ClassVar[tuple[str, ...]] = ()

    experiment: str
    seed: NonNegativeInt = 0
    x64: bool = False  # run in float64 (jax_enable_x64) when the experiment's claims need it
    sweep: dict[str, list[int | float]] | None = None

    def estimate_memory(self) -> dict[str, float]:
        """The largest arrays in bytes, by description; a subclass states its own."""
        raise NotImplementedError(f"{type(self).__name__} states no memory estimate")

    @classmethod
    def has_memory_estimate(cls) -> bool:
        """Whether this schema states its arrays' sizes (overrides `estimate_memory`)."""
        return cls.estimate_memory is not ExperimentConfig.estimate_memory


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` (plain data only) that refuses a key given twice in one mapping."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue  # SafeLoader itself reports an unhashable key
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (line {seen[key]} and line {line}; a mapping gives each "
                "key once)",
                key_node.start_mark,
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)

# Numbers as YAML 1.2 (its core schema) reads them, not YAML 1.1: ``1e-3`` is a float (1.1 kept
# the string '1e-3', so a key of a non-float type received a string), ``010`` is 10 (1.1: octal
# 8) and ``1:30`` is a string (1.1: the sexagesimal 90). Underscores (``1_000``) still group
# digits; ``0x1f`` and ``0o17`` are hexadecimal and octal.
_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(  # before the floats: "10" matches both patterns
    _INT_TAG,
    re.compile(r"^(?:[-+]?[0-9][0-9_]*|[-+]?0x[0-9a-fA-F_]+|[-+]?0o[0-7_]+)$"),
    list("-+0123456789"),
)
_UniqueKeyLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def _construct_int(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    return sign * int(digits, 16 if digits[:2] == "0x" else 8 if digits[:2] == "0o" else 10)


_UniqueKeyLoader.add_constructor(_INT_TAG, _construct_int)


def _safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def load_yaml(path: str | Path) -> dict[str, Any]:
    r"""Read a YAML mapping safely; a missing or malformed file is a `ConfigError`.

    Only plain data is built (`yaml.SafeLoader`: no tags, no code), and a key given twice in one
    mapping is refused rather than silently overwritten.

    Args:
        path: the YAML file.

    Returns:
        The top-level mapping as a dict (``{}`` for an empty file).

    Raises:
        ConfigError: a missing file, malformed YAML (with its line and column), a duplicate key,
            or a top level that is not a mapping.

    Examples:
        >>> from pathlib import Path
        >>> from sdeml.run import ConfigError, load_yaml
        >>> _ = Path("demo.yaml").write_text("experiment: quickstart_ode\ntrain: {steps: 200}\n")
        >>> load_yaml("demo.yaml")
        {'experiment': 'quickstart_ode', 'train': {'steps': 200}}
        >>> _ = Path("twice.yaml").write_text("seed: 1\nseed: 2\n")
        >>> try:
        ...     load_yaml("twice.yaml")
        ... except ConfigError as e:
        ...     print(e)
        malformed YAML in twice.yaml (line 2, column 1): duplicate key 'seed' (line 1 and line 2;
        a mapping gives each key once)
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config {path} is a directory, not a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = _safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"malformed YAML in {path}{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, got {type(data).__name__}"
        )
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``a.b=value``; the value is read as a YAML scalar/list (data only).

    Numbers are read as YAML 1.2 reads them (config files too): ``3e-3`` is a float, ``010``
    the int 10 (not YAML 1.1's octal 8) and ``1:30`` a string (not 1.1's sexagesimal 90).

    Args:
        text: ``key=value`` with a dotted key, e.g. ``train.lr=3.0e-3``.

    Returns:
        ``(key, value)``: the dotted key and the parsed value (int, float, str, bool, None,
        list or mapping).

    Raises:
        ConfigError: no ``=``, a key that is not dotted identifiers, an empty or unparsable
            value.

    Examples:
        >>> from sdeml.run import parse_override
        >>> parse_override("train.steps=200")
        ('train.steps', 200)
        >>> parse_override("sweep={seed: [0, 1], train.lr: [1e-3, 3.0e-3]}")
        ('sweep', {'seed': [0, 1], 'train.lr': [0.001, 0.003]})
        >>> parse_override("train.lr=-1e-3"), parse_override("seed=010")
        (('train.lr', -0.001), ('seed', 10))
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. train.steps=200)")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not _KEY.match(key):
        raise ConfigError(f"override {text!r}: {key!r} is not a dotted key (e.g. train.lr)")
    if raw.strip() == "":
        raise ConfigError(f"override {text!r}: no value after '='")
    try:
        value = _safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"override {text!r}: cannot parse value {raw!r}") from None
    return key, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `raw` with each ``a.b=value`` override set."""
    import copy

    out = copy.deepcopy(raw)
    for text in overrides:
        key, value = parse_override(text)
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                prefix = ".".join(parts[: i + 1])
                raise ConfigError(f"override {text!r}: {prefix!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _field_names(schema: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The valid keys of the section at `loc` (for 'unknown key' messages)."""
    model: Any = schema
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = field.annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return None


def format_validation_error(err: ValidationError, schema: type[BaseModel], source: str) -> str:
    """One line naming every offending key, its problem and the value that arrived."""
    parts, seen = [], set()
    for e in err.errors():
        loc = tuple(e["loc"])
        while loc and loc[-1] in _UNION_TAGS:  # `int | float`: one message per key, not per type
            loc = loc[:-1]
        key = ".".join(str(p) for p in loc) or "<top level>"
        if key in seen:
            continue
        seen.add(key)
        if e["type"] == "extra_forbidden":
            valid = _field_names(schema, loc[:-1])
            hint = f" (valid keys here: {', '.join(valid)})" if valid else ""
            parts.append(f"{key}: unknown key{hint}")
        elif e["type"] == "missing":
            parts.append(f"{key}: required key is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            parts.append(f"{key}: {msg}{shown}")
    return f"invalid config {source}: " + "; ".join(parts)


def section_defaults(schema: type[BaseModel]) -> dict[str, Any]:
    """The schema's defaults of its nested sections, as plain data."""
    out: dict[str, Any] = {}
    for name, field in schema.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            out[name] = default.model_dump()
    return out


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, recursing where both hold a mapping."""
    out = dict(base)
    for k, v in top.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def validate(schema: type[BaseModel], raw: dict[str, Any], source: str) -> Any:
    """Validate `raw` against `schema`; any problem is one `ConfigError` line.

    A section given in `raw` overrides only the keys it names: the others keep the experiment's
    defaults for that section (not the section class's generic defaults).

    Args:
        schema: the experiment's config class (a subclass of `ExperimentConfig`).
        raw: the config as plain data (`load_yaml`, with overrides applied).
        source: where `raw` came from (a file name), for the message.

    Returns:
        The validated config, an instance of `schema`.

    Raises:
        ConfigError: one line naming every offending key (an unknown key lists the valid ones).

    Examples:
        >>> from sdeml.experiments.quickstart_ode import Config  # a shipped experiment's schema
        >>> from sdeml.run import ConfigError, validate
        >>> raw = {"experiment": "quickstart_ode", "train": {"steps": 50}}
        >>> cfg = validate(Config, raw, "demo.yaml")
        >>> cfg.train.steps, cfg.train.lr, cfg.train.schedule  # lr, schedule: its own defaults
        (50, 0.003, 'cosine')
        >>> try:
        ...     validate(Config, {"train": {"stpes": 50}}, "demo.yaml")
        ... except ConfigError as e:
        ...     print(e)
        invalid config demo.yaml: train.stpes: unknown key (valid keys here: steps, batch_size,
        lr, optimizer, momentum, weight_decay, schedule, warmup_steps, grad_clip, ema_decay,
        log_every, ckpt_every)
    """
    try:
        return schema.model_validate(deep_merge(section_defaults(schema), raw))
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, schema, source)) from None


def sweep_grid(
    cfg: ExperimentConfig, supported: tuple[str, ...], source: str
) -> list[dict[str, Any]]:
    """The grid points of ``cfg.sweep`` (Cartesian product, first key slowest), each validated.

    Raises:
        ConfigError: a swept key the experiment cannot vmap over, an empty list, or a value that
            is invalid for its key (named as ``sweep.<key>``).
    """
    import itertools

    if not cfg.sweep:
        return []
    for key, values in cfg.sweep.items():
        if key not in supported:
            can = ", ".join(supported) if supported else "none: it does not support sweeps"
            raise ConfigError(
                f"invalid config {source}: sweep.{key}: experiment {cfg.experiment!r} cannot sweep "
                f"this key in one program (sweepable keys: {can})"
            )
        if not values:
            raise ConfigError(f"invalid config {source}: sweep.{key}: the list of values is empty")
    keys = list(cfg.sweep)
    points = [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*(cfg.sweep[k] for k in keys))
    ]
    base = cfg.model_dump(exclude={"sweep"})
    for point in points:
        raw = apply_overrides(base, [f"{k}={v!r}" for k, v in point.items()])
        try:
            type(cfg).model_validate(raw)
        except ValidationError as e:
            msg = format_validation_error(e, type(cfg), source)
            raise ConfigError(msg.replace(": ", ": sweep.", 1)) from None
    return points


def get_dotted(cfg: BaseModel, key: str) -> Any:
    """``get_dotted(cfg, "train.lr")`` is ``cfg.train.lr``."""
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def to_yaml(cfg: BaseModel) -> str:
    """The resolved config as YAML (every key, defaults included)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
