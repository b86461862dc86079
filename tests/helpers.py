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
