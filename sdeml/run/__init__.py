"""Experiment machinery: typed configs, the registry, run directories and the ``sdeml`` CLI.

Names are loaded on first use (PEP 562), so the ``sdeml`` command reads a config without JAX.
"""

import typing as _typing

from .. import _lazy as _lazy

if _typing.TYPE_CHECKING:
    from ._cli import main as main
    from ._compiled import compiled as compiled
    from ._config import ExperimentConfig as ExperimentConfig
    from ._config import Section as Section
    from ._config import load_yaml as load_yaml
    from ._config import parse_override as parse_override
    from ._config import validate as validate
    from ._errors import ConfigError as ConfigError
    from ._errors import ExperimentError as ExperimentError
    from ._load import LoadedRun as LoadedRun
    from ._load import load as load
    from ._registry import Experiment as Experiment
    from ._registry import all_experiments as all_experiments
    from ._registry import register as register
    from ._rundir import Run as Run
    from ._sweep import Setup as Setup

if not _typing.TYPE_CHECKING:  # type checkers read the imports above: a typo stays an error
    __getattr__, __dir__ = _lazy.attach(__name__, __file__)
