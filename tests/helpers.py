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
