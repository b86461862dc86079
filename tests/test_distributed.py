"""Multi-process runs (issue #19, items 3-4): `sdeml run --processes P` on jax.distributed.

The default suite checks the refusals (one line, exit 2, nothing started). The slow suite starts
real processes on localhost: a 2 x 2 run equals the 1 x 1 run point by point, and a killed
process stops the others, marks the run failed, keeps its checkpoints, and the run resumes.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import QUICK, summary_of
from helpers import cli as _cli

SMOKE = ["train.log_every=10", "eval.n_traj=2", "--no-progress"]
GRID4 = "sweep={seed: [0, 1, 2, 3]}"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--processes", "0"], "--processes must be an integer from 1"),
        (["--processes", "-2"], "--processes must be an integer from 1"),
        (["--processes", "100000"], "--processes must be an integer from 1 to 256"),
        (["--processes", "2", "--devices-per-process", "0"], "--devices-per-process"),
        (["--processes", "2"], "no sweep: block"),
        (["--processes", "3", GRID4], "4 points, not a multiple of the 3 devices"),
        (["--processes", "2", "--devices-per-process", "3", GRID4], "multiple of the 6"),
    ],
)
def test_bad_process_counts_are_one_line_exit_2(args, needle, tmp_path, capsys):
    code, out, err = _cli(["run", QUICK, *args, "--out", str(tmp_path)], capsys)
    assert code == 2, (code, err)
    assert needle in err and err.count("\n") <= 1, err
    assert not any(tmp_path.iterdir())  # nothing started, nothing written


def test_non_integer_process_count_is_refused(tmp_path, capsys):
    code, _, err = _cli(["run", QUICK, "--processes", "two", "--out", str(tmp_path)], capsys)
    assert code == 2 and "--processes" in err, err


def test_per_point_experiments_are_refused_for_several_processes(tmp_path, capsys):
    code, _, err = _cli(
        ["run", "ude_lotka_volterra", GRID4, "--processes", "2", "--out", str(tmp_path)], capsys
    )
    assert code == 2 and "point by point" in err, err


@pytest.mark.slow
@pytest.mark.e2e
def test_one_process_is_a_plain_run(tmp_path, capsys):
    code, _, err = _cli(
        ["run", QUICK, "train.steps=10", *SMOKE, "--processes", "1", "--out", str(tmp_path)],
        capsys,
    )
    assert code == 0, err
    assert "distributed" not in summary_of(tmp_path)


def _sdeml(args, **kw):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    return subprocess.run(
        [sys.executable, "-m", "sdeml", *args], env=env, capture_output=True, text=True, **kw
    )


@pytest.mark.slow
@pytest.mark.e2e
def test_two_processes_by_two_devices_equal_one_process(tmp_path, capsys):
    # float64, the same keys: the members trained on 2 processes x 2 devices are the members of
    # the one-process run (the issue asks for relative differences <= 1e-6)
    common = [QUICK, "train.steps=40", "x64=true", GRID4, *SMOKE]
    code, _, err = _cli(["run", *common, "--out", str(tmp_path / "one")], capsys)
    assert code == 0, err
    done = _sdeml(
        ["run", *common, "--processes", "2", "--devices-per-process", "2", "--out",
         str(tmp_path / "two")],
        timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = summary_of(tmp_path / "one"), summary_of(tmp_path / "two")
    assert two["distributed"]["processes"] == 2
    assert two["distributed"]["mesh"] == {"process": 2, "device": 2}
    assert len(two["distributed"]["process_wall_time_s"]) == 2
    for k, v in one["metrics"].items():
        if isinstance(v, list) and all(isinstance(x, float) for x in v):
            for a, b in zip(v, two["metrics"][k], strict=True):
                assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12), (k, a, b)
    run_dir = Path(two["run_dir"])
    # process 0 wrote the run directory; process 1 only its log
    assert (run_dir / "logs" / "process-1.log").is_file()
    assert sorted(p.name for p in (run_dir / "logs").iterdir()) == ["process-1.log"]
    assert (run_dir / "checkpoints").is_dir() and (run_dir / "sweep.png").is_file()


def _pid_of_process(run_dir: Path, index: int) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SDEML_PROCESS_ID={index}".encode() in env and (
            f"SDEML_RUN_DIR={run_dir}".encode() in env
        ):
            return int(proc.name)
    return None


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the process in /proc")
def test_a_killed_process_stops_the_run_and_it_resumes(tmp_path):
    out = tmp_path / "runs"
    args = [QUICK, "train.steps=4000", "train.ckpt_every=20", GRID4, *SMOKE]
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "sdeml", "run", *args, "--processes", "2", "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        run_dir = ckpt = None
        while time.monotonic() < deadline:
            found = list(out.glob("quickstart_ode/*/checkpoints/model/latest.json"))
            if found:
                ckpt = found[0]
                run_dir = ckpt.parents[2]
                break
            assert launcher.poll() is None, launcher.communicate()
            time.sleep(0.5)
        assert run_dir is not None, "no checkpoint within 300 s"
        pid = _pid_of_process(run_dir, 1)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        _, err = launcher.communicate(timeout=60)
        stopped_in = time.monotonic() - t_kill
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 1
    assert stopped_in < 30, stopped_in
    assert "process 1" in err and "SIGKILL" in err, err[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "process 1 of 2" in summary["error"], summary
    kept = json.loads(ckpt.read_text())["step"]
    assert kept >= 20 and (ckpt.parent / f"step_{kept:09d}.eqx").is_file()
    # the run continues from its last good checkpoint, on two processes again
    done = _sdeml(
        ["run", "--resume", str(run_dir), "--processes", "2", "--no-progress"], timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed"] == 1, summary
    assert summary["training"]["model"]["resumed_from_step"] >= kept
    assert summary["distributed"]["processes"] == 2


SHARDED_SIMULATE = """
import sys
import jax
jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
import jax.numpy as jnp, jax.random as jr, numpy as np
import sdeml
from sdeml.train import gather_to_host

auto = jax.sharding.AxisType.Auto
mesh = jax.make_mesh((2, 2), ("process", "device"), axis_types=(auto, auto))
sde = sdeml.SDE(lambda t, y, a: -y, lambda t, y, a: 0.5 * jnp.ones_like(y), noise="diagonal")
paths = sdeml.simulate(sde, jnp.ones(2), n_steps=20, n_paths=1000, chunk_size=64,
                       key=jr.key(0), mesh=mesh)
np.save(sys.argv[3], np.asarray(gather_to_host(paths.xs)))
"""


@pytest.mark.slow
def test_simulate_splits_paths_over_two_processes(tmp_path):
    # issue #19 item 5: the paths of a 2 processes x 2 devices simulation are those of the
    # one-device run with the same key, in every process after the gather
    import socket

    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    import sdeml

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    script = tmp_path / "sim.py"
    script.write_text(SHARDED_SIMULATE)
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="2")
    env.pop("XLA_FLAGS", None)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), f"localhost:{port}", str(i), str(tmp_path / f"{i}.npy")],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    sde = sdeml.SDE(lambda t, y, a: -y, lambda t, y, a: 0.5 * jnp.ones_like(y), noise="diagonal")
    one = sdeml.simulate(
        sde, jnp.ones(2), n_steps=20, n_paths=1000, chunk_size=64, key=jr.key(0), dtype=jnp.float32
    )
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), np.asarray(one.xs))


def _slurm_port() -> tuple[int, int]:
    """A free port in JAX's SLURM range and the job id that maps to it (``id % 4096 + 61440``)."""
    import random
    import socket

    for port in random.sample(range(61440, 65536), 64):
        with socket.socket() as s:
            try:
                s.bind(("localhost", port))
            except OSError:
                continue
        return port, port - 61440 + 4096 * random.randint(1, 1000)
    raise RuntimeError("no free port in 61440-65535")


@pytest.mark.slow
@pytest.mark.e2e
def test_a_slurm_launch_is_detected_and_runs_as_one_sweep(tmp_path):
    # the cluster path of issue #19 item 3: two `sdeml run` processes started as SLURM would
    # start them (srun sets these variables; here on localhost), with no --processes: JAX's
    # auto-detection joins them, the grid is split over the (process, device) mesh, process 0
    # alone writes the run directory, and the points equal the one-process run
    _, job = _slurm_port()
    out = tmp_path / "slurm"
    common = [QUICK, "train.steps=30", "x64=true", GRID4, *SMOKE]
    procs = []
    for i in range(2):
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SDEML_", "OMPI_"))
        }
        env.pop("XLA_FLAGS", None)
        env.update(
            SLURM_JOB_ID=str(job), SLURM_STEP_NODELIST="localhost", SLURM_NTASKS="2",
            SLURM_PROCID=str(i), SLURM_LOCALID=str(i), JAX_NUM_CPU_DEVICES="2",
        )  # fmt: skip
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "sdeml", "run", *common, "--out", str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=400)
        assert p.returncode == 0, err[-3000:]
    (run_dir,) = out.glob("quickstart_ode/*")  # one run directory, made by process 0
    two = json.loads((run_dir / "summary.json").read_text())
    assert two["distributed"]["processes"] == 2
    assert two["distributed"]["mesh"] == {"process": 2, "device": 2}
    done = _sdeml(["run", *common, "--out", str(tmp_path / "one")], timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    one = summary_of(tmp_path / "one")
    compared = 0
    for k, v in one["metrics"].items():
        if isinstance(v, list) and all(isinstance(x, float) for x in v):
            for a, b in zip(v, two["metrics"][k], strict=True):
                assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12), (k, a, b)
                compared += 1
    assert compared >= 4
