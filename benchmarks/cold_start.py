"""Cold start: the CLI's light commands and `import sdeml`, timed as whole processes.

Every command runs as a fresh Python process (``python -m sdeml.cli ...`` would add nothing: the
``sdeml`` console script is what a user types), once as a warm-up (it fills the OS file cache, as
a user's second call would find it) and then ``--repeats`` times in rotation with the others, so a
drift in the machine's load falls on every row alike. The table gives the median, min and max of
the wall time per command. Issue #18 item 5 asks: ``sdeml --help`` <= 0.3 s, ``sdeml check
quickstart`` <= 0.6 s, ``import sdeml`` within 1.1x of importing its own dependencies.

    python benchmarks/cold_start.py               # -> benchmarks/cold_start.md
    python benchmarks/cold_start.py --repeats 5   # quicker
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import machine_line

PY = sys.executable
DEPS = "import jax, jax.numpy, diffrax, equinox, optax"


def commands() -> dict[str, list[str]]:
    """The timed commands, by row label."""
    cli = shutil.which("sdeml") or str(Path(PY).with_name("sdeml"))
    return {
        "`sdeml --help`": [cli, "--help"],
        "`sdeml list`": [cli, "list"],
        "`sdeml check quickstart`": [cli, "check", "quickstart"],
        "`import sdeml`": [PY, "-c", "import sdeml"],
        # the first touch of a theme loads JAX and the rest: the honest price of using the library
        "`import sdeml` + first use (`sdeml.simulate`, `sdeml.train`, `sdeml.diffusion`)": [
            PY,
            "-c",
            "import sdeml; sdeml.simulate; sdeml.train; sdeml.diffusion",
        ],
        f"its dependencies alone (`{DEPS}`)": [PY, "-c", DEPS],
    }


def time_once(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    args = ap.parse_args()
    cmds = commands()
    for cmd in cmds.values():  # warm-up: the OS file cache, .pyc files
        time_once(cmd)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(args.repeats):
        for name, cmd in cmds.items():
            times[name].append(time_once(cmd))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    deps = med[f"its dependencies alone (`{DEPS}`)"]
    targets = {
        "`sdeml --help`": "<= 0.3 s",
        "`sdeml check quickstart`": "<= 0.6 s",
        "`import sdeml`": "<= 1.1x its dependencies",
    }
    lines = [
        "# Cold start (benchmarks/cold_start.py)",
        "",
        f"Measured with {machine_line()}.",
        f"Whole processes, one warm-up each, then {args.repeats} rounds in rotation; wall seconds.",
        "",
        "| command | median (s) | min (s) | max (s) | / dependencies | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, ts in times.items():
        lines.append(
            f"| {name} | {med[name]:.3f} | {min(ts):.3f} | {max(ts):.3f} | "
            f"{med[name] / deps:.2f}x | {targets.get(name, '')} |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
