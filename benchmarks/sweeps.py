"""Sweeps as one program, and the cost of several processes (issue #19).

Everything is end-to-end wall time of whole ``sdeml run`` processes (start-up, compilation,
training, evaluation, plots, run directory), one after the other on this machine:

1. **one sweep vs separate runs**: the quickstart diffusion experiment at 8 grid points (4 seeds
   x 2 learning rates) as one ``sweep:`` run, against 8 separate ``sdeml run`` processes, one per
   point. On a CPU the gain is amortisation: one interpreter start, one compilation and one
   evaluation program for all members instead of eight; the training arithmetic itself is the
   same. What bounds it: the per-member work that stays per member (the 8 members' training and
   sampling FLOPs), which the 2 cores share either way.
2. **processes x devices**: the same 8-point sweep on 1 process x 1 device, 1 x 4 (four CPU
   devices in one process) and 2 processes x 2 devices (``--processes 2
   --devices-per-process 2``, jax.distributed on localhost). The issue asks for 2 x 2 within
   1.5x of 1 x 4.

    python benchmarks/sweeps.py                  # -> benchmarks/sweeps.md
    python benchmarks/sweeps.py --steps 100      # a quicker, smaller table

On a GPU: ``--points 64 --singles 3 --no-layouts`` (64 points as one sweep against 64 separate
runs, three measured and scaled by their mean).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _machine  # noqa: E402

LRS = [1e-3, 3e-3]
# The evaluation both sides run (the sweep once per point, each separate run once): smaller than
# the quickstart's (2000 samples x 3 seeds, EM 1000 / PC 500 steps, density plot), which made
# the eleven runs of the 8-point table take over 20 minutes on the 2-core machine.
EVAL = [
    "eval.n_samples=500",
    "eval.n_seeds=1",
    "eval.em_steps=200",
    "eval.pc_steps=100",
    "eval.dpm_nfe=[20]",
    "eval.density_grid=0",
]


def _run(args: list[str], out: Path, env_extra: dict[str, str] | None = None) -> float:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.update(env_extra or {})
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sdeml", "run", *args, "--out", str(out), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"sdeml run {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    print(f"sweeps: {wall:.1f} s  {out.name}", file=sys.stderr, flush=True)
    return wall


def _metrics(out: Path) -> dict:
    (summary,) = out.glob("*/*/summary.json")
    return json.loads(summary.read_text())


def assert_same_work(
    sweep_out: Path, single_outs: dict[tuple[int, float], Path]
) -> tuple[int, str]:
    """A benchmark that silently compares different work must fail: every separate run's
    metrics agree with its point's in the sweep. Not to the last bit: a vmapped member and a
    plain run round differently in float32 over hundreds of training steps (measured: 8e-5
    relative on an MMD at 300 steps; tests/test_sweep_every_experiment.py holds 1e-5 at smoke
    sizes); so rel 1e-3 for every metric of the trained model and its samples.

    An adaptive sampler's evaluation count (``nfe_*``) is not asserted but reported: it is a
    step count, and such a rounding difference in the trained network can take or reject a
    step, which then changes the steps after it. Measured: member (seed 0, lr 1e-3) drew its
    PF-ODE samples in 169 evaluations and its separate run in 181 (6.6 %, with every other
    metric bit-equal; 2026-12-06), member (2, 1e-3) in 223 against 199 (12 %; 2026-12-08).
    Returns the number of metrics asserted and a sentence on the counts."""
    sweep = _metrics(sweep_out)
    points = [(p["seed"], p["train.lr"]) for p in sweep["sweep"]["points"]]
    n, worst = 0, (0.0, "")
    for point, out in single_outs.items():
        i = points.index(point)
        for k, v in _metrics(out)["metrics"].items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            got = sweep["metrics"][k][i]
            if k.startswith("nfe_"):
                d = abs(got - v) / max(abs(v), 1)
                if d >= worst[0]:
                    worst = (d, f"{k} of point {point}: {got:g} in the sweep, {v:g} alone")
                continue
            assert abs(got - v) <= 1e-3 * abs(v) + 1e-6 or (v != v and got != got), (
                f"point {point}: {k} = {got} in the sweep, {v} in its separate run"
            )
            n += 1
    counts = f"the evaluation counts' largest difference: {worst[0]:.1%} ({worst[1]})"
    return n, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="training steps per member")
    ap.add_argument(
        "--points", type=int, default=8, help="grid points: points/2 seeds x 2 learning rates"
    )
    ap.add_argument(
        "--singles",
        type=int,
        default=0,
        help="separate runs measured (0: all); fewer are scaled to --points by their mean",
    )
    ap.add_argument("--no-layouts", action="store_true", help="skip the processes x devices table")
    ap.add_argument("--out", default=str(HERE / "sweeps.md"))
    a = ap.parse_args()
    seeds = list(range(a.points // 2))
    points = [(s, lr) for s in seeds for lr in LRS]
    n_single = a.singles or len(points)
    base = ["quickstart", f"train.steps={a.steps}", f"train.log_every={min(100, a.steps)}", *EVAL]
    grid = f"sweep={{seed: {seeds}, train.lr: {LRS}}}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        load0 = os.getloadavg()[0]
        one = _run([*base, grid], root / "sweep")
        singles = [
            _run([*base, f"seed={s}", f"train.lr={lr}"], root / f"single-{s}-{lr}")
            for s, lr in points[:n_single]
        ]
        sep = sum(singles) / n_single * len(points)
        n_same, counts = assert_same_work(
            root / "sweep", {(s, lr): root / f"single-{s}-{lr}" for s, lr in points[:n_single]}
        )
        layouts: list[str] = []
        if not a.no_layouts:
            load1 = os.getloadavg()[0]
            t14 = _run([*base, grid], root / "1x4", {"JAX_NUM_CPU_DEVICES": "4"})
            t22 = _run(
                [*base, grid, "--processes", "2", "--devices-per-process", "2"], root / "2x2"
            )
            dist = _metrics(root / "2x2").get("distributed", {})
            mine = _metrics(root / "1x4")["metrics"]
            theirs = _metrics(root / "2x2")["metrics"]
            # evaluation counts of the adaptive PF-ODE sampler (nfe_*) are step counts: a
            # float32 rounding difference can accept or reject a step, so they are reported
            # apart from the continuous metrics
            diffs = [
                (abs(x - y) / max(abs(x), 1e-30), k)
                for k, v in mine.items()
                if isinstance(v, list) and all(isinstance(t, float) for t in v)
                for x, y in zip(v, theirs[k], strict=True)
            ]
            worst = max((d for d, k in diffs if not k.startswith("nfe_")), default=0.0)
            worst_nfe = max((d for d, k in diffs if k.startswith("nfe_")), default=0.0)
            layouts = [
                f"Processes x devices, the same {len(points)}-point sweep (load {load1:.2f} at "
                "start):",
                "",
                "| layout | wall (s) | relative to 1 x 4 |",
                "|---|---|---|",
                f"| 1 process x 1 device | {one:.1f} | {one / t14:.2f} |",
                f"| 1 process x 4 CPU devices | {t14:.1f} | 1.00 |",
                f"| 2 processes x 2 devices (jax.distributed, localhost) | {t22:.1f} | "
                f"{t22 / t14:.2f} |",
                "",
                f"Per-process wall times of the 2 x 2 run: {dist.get('process_wall_time_s')}. "
                "Largest relative difference of a per-point metric between 2 x 2 and 1 x 4: "
                f"{worst:.2e} (float32); of an adaptive sampler's evaluation count: "
                f"{worst_nfe:.2e}.",
                "",
                "The 2-core machine bounds this table: the four devices of 1 x 4 and the two "
                "processes of 2 x 2 share two cores, so neither layout can be faster than 1 x 1 "
                "here; it measures overhead (compilation in every process, the collectives, "
                "evaluation repeated by every process after the gather), not speed-up.",
                "",
            ]
    scaled = (
        f"all {n_single} measured"
        if n_single == len(points)
        else f"mean of {n_single} measured x {len(points)}"
    )
    lines = [
        "# Sweeps: one program against separate runs, and several processes",
        "",
        _machine.machine_line(),
        "",
        f"Quickstart diffusion experiment, {a.steps} training steps per member, {len(points)} "
        f"grid points (seeds 0..{seeds[-1]} x learning rates {LRS}), evaluation "
        f"`{' '.join(EVAL)}` on both sides; end-to-end wall time of whole `sdeml run` "
        "processes, run one after the other (generated by `benchmarks/sweeps.py`). The script "
        f"asserts that they did the same work: {n_same} metrics of the separate runs equal "
        f"their points' in the sweep (rel 1e-3); the adaptive samplers' evaluation counts are "
        f"step counts, which a float32 rounding difference can change, so they are reported: "
        f"{counts}.",
        "",
        "| comparison | sdeml sweep (s) | separate runs (s) | ratio separate / sweep |",
        "|---|---|---|---|",
        f"| one sweep vs {len(points)} separate `sdeml run` processes ({scaled}; load "
        f"{load0:.2f} at start) | {one:.1f} | {sep:.1f} | {sep / one:.2f}x |",
        "",
        "On a CPU the gain is amortisation: one interpreter start, one compilation and one "
        "evaluation program for all members instead of one each; the training and sampling "
        "arithmetic of the members is the same and the cores share it either way, which bounds "
        "the ratio.",
        "",
        *layouts,
    ]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
