"""Errors the command line turns into one readable line."""


class ConfigError(ValueError):
    """A bad config, override, file or experiment name; the CLI exits with status 2."""


class ExperimentError(RuntimeError):
    """A failure while an experiment runs (numerical failure, solver max_steps, ...).

    The CLI prints the message, marks the run ``failed`` in its summary and exits with status 1.
    """
