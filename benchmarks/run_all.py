"""Every benchmark table in one sitting, one script after another, each started on a quiet machine.

Before each script the runner waits until the 1-minute load average is at most ``--max-load``
(default 1.0; at most ``--max-wait`` seconds, after which it starts anyway and the log says so),
then runs it as its own process and records the load at its start and end, its wall time and its
exit status. Nothing else should run meanwhile: the tables are only as good as the quiet behind
them. Writes ``benchmarks/sitting.md`` (the log) beside the tables the scripts write themselves.

    python benchmarks/run_all.py                    # every table, about an hour and a half
    python benchmarks/run_all.py --only cold_start neural_ode
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (arguments after the script, extra environment); the script is benchmarks/<name>.py
# unless the name says otherwise (em_throughput_small is em_throughput at 1e3 paths)
SCRIPTS: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "cold_start": ("cold_start.py", [], {}),
    "em_throughput": ("em_throughput.py", [], {}),
    "em_throughput_small": (
        "em_throughput.py",
        ["--sizes", "1000", "--no-big", "--out", str(HERE / "em_throughput_small.md")],
        {},
    ),
    "vmap_composition": ("vmap_composition.py", [], {}),
    "sharded_simulate": ("sharded_simulate.py", [], {"JAX_NUM_CPU_DEVICES": "2"}),
    "ode": ("ode.py", [], {}),
    "langevin": ("langevin.py", [], {}),
    "neural_ode": ("neural_ode.py", [], {}),
    "diffusion": ("diffusion.py", [], {}),
    "roofline": ("roofline.py", ["--variants"], {}),
    "sweeps": ("sweeps.py", [], {}),
}


def load1() -> float:
    return os.getloadavg()[0]


def wait_quiet(max_load: float, max_wait: float) -> tuple[float, float]:
    """Wait until the 1-minute load is at most `max_load`; returns (load, seconds waited)."""
    t0 = time.monotonic()
    while load1() > max_load and time.monotonic() - t0 < max_wait:
        time.sleep(10)
    return load1(), time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=sorted(SCRIPTS), default=None)
    ap.add_argument("--max-load", type=float, default=1.0)
    ap.add_argument("--max-wait", type=float, default=900.0)
    ap.add_argument("--out", default=str(HERE / "sitting.md"))
    args = ap.parse_args()
    names = args.only or list(SCRIPTS)
    from _machine import cpu_model  # noqa: PLC0415 (imports JAX: only once the args are good)

    rows = []
    started = dt.datetime.now(dt.UTC)
    for name in names:
        script, extra, env = SCRIPTS[name]
        load, waited = wait_quiet(args.max_load, args.max_wait)
        cmd = [sys.executable, str(HERE / script), *extra]
        print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {name}: load {load:.2f}", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=HERE.parent, env={**os.environ, **env})
        wall = time.perf_counter() - t0
        rows.append((name, load, waited, load1(), wall, done.returncode))
        print(f"    {name}: {wall:.0f} s, exit {done.returncode}", flush=True)
    lines = [
        "# One sitting (benchmarks/run_all.py)",
        "",
        f"{cpu_model()}, {os.cpu_count()} cores; started {started:%Y-%m-%d %H:%M} UTC. Each "
        f"script waited for a 1-minute load <= {args.max_load} (at most {args.max_wait:.0f} s) "
        "and ran alone.",
        "",
        "| table | load at start | waited (s) | load at end | wall (s) | exit |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, l0, waited, l1, wall, rc in rows:
        quiet = "" if l0 <= args.max_load else " (not quiet: the wait ran out)"
        lines.append(f"| {name} | {l0:.2f}{quiet} | {waited:.0f} | {l1:.2f} | {wall:.0f} | {rc} |")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    if any(r[-1] for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
