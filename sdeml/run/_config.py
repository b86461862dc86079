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


def _safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping safely; a missing or malformed file is a `ConfigError`."""
    path = Path(path)
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
    """Split ``a.b=value``; the value is read as a YAML scalar/list (data only)."""
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
