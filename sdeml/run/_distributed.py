"""Several processes in one run: the local launcher of ``sdeml run --processes P`` and the start of
`jax.distributed` in each process (launched here, or by SLURM / Open MPI on a cluster).

Every process runs the same experiment on the same config (SPMD): the sweep's members are sharded
over a ``(process, device)`` mesh (`sdeml.train.shard_batch`), the compiled training and
`run.sweep_map` programs run each member where it lives, and the results are gathered to every
process (`sdeml.train.gather_to_host`) before the experiment evaluates and plots them. Process 0
writes the run directory; the others write only their log (``logs/process-<i>.log``) and keep
their other files in a temporary folder that is removed when they finish.

No sockets or RPC of our own: the processes meet through `jax.distributed.initialize` (its
coordinator on localhost for a local launch) and exchange arrays through JAX's collectives
(gloo on CPU). The launcher only starts the processes, watches them, and stops the others within
seconds when one dies.
"""

from __future__ import annotations

import json
import numbers
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._errors import ConfigError

# set by the launcher in each process it starts
ENV_ID, ENV_COUNT, ENV_COORD, ENV_RUN_DIR = (
    "SDEML_PROCESS_ID",
    "SDEML_NUM_PROCESSES",
    "SDEML_COORDINATOR",
    "SDEML_RUN_DIR",
)
MAX_PROCESSES = 256
# seconds without a heartbeat before JAX's coordination service declares a peer dead (its
# default is 100 s; the issue asks for the others to stop within 30 s of a lost process)
HEARTBEAT_S = 20
# after one process dies: seconds the others get to stop on SIGTERM before SIGKILL
GRACE_S = 10.0


def check_counts(processes: Any, devices: Any) -> tuple[int, int]:
    """``--processes`` and ``--devices-per-process`` as positive integers, or a `ConfigError`."""
    out = []
    for flag, v, hi in (
        ("--processes", processes, MAX_PROCESSES),
        ("--devices-per-process", devices, 4096),
    ):
        # `core._checks.check_int`'s test without its import: the launcher stays JAX-free.
        # NumPy integers are `numbers.Integral`; a bool (True read as 1) is refused.
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 1 <= int(v) <= hi:
            raise ConfigError(f"{flag} must be an integer from 1 to {hi}, got {v!r}")
        out.append(int(v))
    return out[0], out[1]


def cluster_size() -> int:
    """The process count a cluster launcher declares (SLURM, Open MPI), 1 outside one."""
    for var in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        try:
            n = int(os.environ.get(var, "1"))
        except ValueError:
            continue
        if n > 1:
            return n
    return 1


def is_launched() -> bool:
    """Whether this process was started by the local launcher."""
    return ENV_ID in os.environ


def initialize() -> bool:
    """Join the other processes (`jax.distributed.initialize`) when this process is one of
    several: started by ``--processes`` (coordinator, count and id from the environment) or by a
    cluster launcher (JAX's auto-detection). Returns whether it did; call before any computation.
    """
    import jax

    if is_launched():
        jax.distributed.initialize(
            os.environ[ENV_COORD],
            int(os.environ[ENV_COUNT]),
            int(os.environ[ENV_ID]),
            heartbeat_timeout_seconds=HEARTBEAT_S,
        )
        return True
    if cluster_size() > 1:
        jax.distributed.initialize(heartbeat_timeout_seconds=HEARTBEAT_S)
        return True
    return False


def share_run_dir(path: Path | None) -> Path:
    """The run directory process 0 chose, in every process (one `broadcast_one_to_all`)."""
    import numpy as np
    from jax.experimental import multihost_utils

    size = 4096
    raw = np.zeros(size, np.uint8)
    if path is not None:
        b = str(path).encode()
        if len(b) > size:
            raise ConfigError(f"run directory path longer than {size} bytes: {path}")
        raw[: len(b)] = np.frombuffer(b, np.uint8)
    got = np.asarray(multihost_utils.broadcast_one_to_all(raw))
    return Path(bytes(got[got != 0].astype(np.uint8)).decode())


def gather_floats(value: float) -> list[float]:
    """`value` from every process, in process order (a collective)."""
    import numpy as np
    from jax.experimental import multihost_utils

    got = multihost_utils.process_allgather(np.asarray([value], np.float64))
    return [float(v) for v in np.asarray(got).reshape(-1)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def _child_env(i: int, n: int, devices: int, coordinator: str, run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    else:
        env.pop("XLA_FLAGS", None)
    env.update(
        {
            ENV_ID: str(i),
            ENV_COUNT: str(n),
            ENV_COORD: coordinator,
            ENV_RUN_DIR: str(run_dir),
            "JAX_NUM_CPU_DEVICES": str(devices),
        }
    )
    return env


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def launch(argv: list[str], processes: int, devices: int, run_dir: Path) -> int:
    """Start `processes` copies of ``sdeml <argv>`` on this machine and wait for them.

    Process 0 shares this terminal; process i > 0 writes ``run_dir/logs/process-<i>.log``. When
    one exits with an error or is killed, the others are stopped (SIGTERM, then SIGKILL after
    `GRACE_S`), a message names the lost process, and the run is marked failed in its
    ``summary.json`` (its checkpoints stay: ``--resume`` continues from the last good one).

    Returns:
        0 when every process finished cleanly, else 1 (130 on Ctrl-C).
    """
    coordinator = f"localhost:{_free_port()}"
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "sdeml", *argv]
    procs: list[subprocess.Popen[bytes]] = []
    files = []
    t0 = time.perf_counter()
    try:
        for i in range(processes):
            env = _child_env(i, processes, devices, coordinator, run_dir)
            if i == 0:
                procs.append(subprocess.Popen(cmd, env=env))
            else:
                f = open(logs / f"process-{i}.log", "ab")  # noqa: SIM115 (closed below)
                files.append(f)
                procs.append(subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT))
        print(
            f"sdeml: {processes} processes x {devices} device(s), coordinator {coordinator}; "
            f"logs of processes 1-{processes - 1} in {logs}",
            file=sys.stderr,
        )
        lost: tuple[int, int] | None = None
        while True:
            codes = [p.poll() for p in procs]
            bad = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                lost = bad[0]
                break
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.2)
        i, code = lost
        print(
            f"sdeml: process {i} (pid {procs[i].pid}) {_describe(code)} after "
            f"{time.perf_counter() - t0:.1f} s; stopping the other processes",
            file=sys.stderr,
        )
        _stop(procs)
        _mark_failed(run_dir, f"process {i} of {processes} {_describe(code)}")
        return 1
    except KeyboardInterrupt:
        _stop(procs)
        _mark_failed(run_dir, "interrupted", status="interrupted")
        return 130
    finally:
        for f in files:
            f.close()


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    live = [p for p in procs if p.poll() is None]
    for p in live:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    for p in live:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _mark_failed(run_dir: Path, error: str, status: str = "failed") -> None:
    """Record the lost process in ``summary.json`` (process 0 may have died before it wrote its
    own status; a failure it wrote itself is kept)."""
    from ._rundir import write_json

    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        summary = {}
    if summary.get("status") == "failed" and summary.get("error"):
        summary.setdefault("distributed", {})["lost"] = error
    else:
        summary.update(status=status, error=error)
    summary["run_dir"] = str(run_dir)
    write_json(path, summary)
