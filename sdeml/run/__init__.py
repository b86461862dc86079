"""Experiment machinery: typed configs, the registry, run directories and the ``sdeml`` CLI."""

from ._config import ExperimentConfig, Section, TrainConfig, load_yaml, parse_override, validate
from ._errors import ConfigError, ExperimentError
from ._registry import Experiment, all_experiments, register
from ._rundir import Run

__all__ = [
    "ConfigError",
    "Experiment",
    "ExperimentConfig",
    "ExperimentError",
    "Run",
    "Section",
    "TrainConfig",
    "all_experiments",
    "load_yaml",
    "parse_override",
    "register",
    "validate",
]
