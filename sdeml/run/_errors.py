"""Errors the command line turns into one readable line."""


class ConfigError(ValueError):
    """A bad config, override, file or experiment name; the CLI exits with status 2.

    Examples:
        >>> from sdeml.run import ConfigError, parse_override
        >>> try:
        ...     parse_override("train.steps")
        ... except ConfigError as e:
        ...     print(e)
        override 'train.steps' is not of the form key=value (e.g. train.steps=200)
    """


class ExperimentError(RuntimeError):
    r"""A failure while an experiment runs (numerical failure, solver max_steps, ...).

    The CLI prints the message, marks the run ``failed`` in its summary and exits with status 1.

    Examples:
        >>> import json
        >>> from pathlib import Path
        >>> from sdeml.run import ExperimentConfig, ExperimentError, main, register
        >>> class Cfg(ExperimentConfig):
        ...     experiment: str = "doc_diverges"
        >>> @register("doc_diverges", Cfg, "documentation: an experiment that fails")
        ... def diverges(cfg, run):
        ...     raise ExperimentError("the loss diverged at step 7")
        >>> _ = Path("diverges.yaml").write_text("experiment: doc_diverges\n")
        >>> try:
        ...     main(["run", "diverges.yaml", "--out", "runs_diverges", "--no-progress"])
        ... except SystemExit as e:
        ...     print("exit status", e.code)
        exit status 1
        >>> [summary] = Path("runs_diverges").glob("doc_diverges/*/summary.json")
        >>> s = json.loads(summary.read_text())
        >>> s["status"], s["error"]
        ('failed', 'the loss diverged at step 7')
    """
