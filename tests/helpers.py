"""Shared test helpers: the repository root, shipped configs, the in-process CLI."""

from pathlib import Path

from sdeml.run._cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "configs" / "ode_quickstart.yaml")


def cli(args, capsys):
    """Run the `sdeml` CLI in-process; returns (exit code, stdout, stderr)."""
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def summary_of(out_dir):
    """The summary.json of the one run under `out_dir` (``<out>/<experiment>/<run>/``)."""
    import json

    (exp_dir,) = out_dir.iterdir()
    (run_dir,) = exp_dir.iterdir()
    return json.loads((run_dir / "summary.json").read_text())


def cli_captured(args, capsys):
    """`cli`, returning (exit code, the captured output object)."""
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr()


def first_config_of(experiment):
    """The experiment's first shipped config (in file-name order), or None: the one whose smoke
    run tests/test_cli_fuzz.py makes as its explicit example."""
    from sdeml.run import load_yaml

    for p in sorted((ROOT / "configs").glob("*.yaml")):
        if load_yaml(p).get("experiment") == experiment:
            return p
    return None


def assert_completed_run(out_dir, exp):
    """The one run under `out_dir` completed with metrics and a plot; a run that kept a trained
    model loads back in a notebook (`sdeml.run.load`; the ode_quickstart run once failed here on
    its one-member batched checkpoint)."""
    import json

    (run_dir,) = (Path(out_dir) / exp.name).iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["metrics"], "an experiment returns its final metrics"
    assert list(run_dir.glob("*.png")), "an experiment writes at least one plot"
    if exp.build_model is not None and (run_dir / "checkpoints" / "model").is_dir():
        import sdeml

        loaded = sdeml.run.load(run_dir)
        assert loaded.model is not None and loaded.step > 0
