"""One line describing where a benchmark ran: CPU model and cores, the load average at the start and
at the end, versions, device.

Every table states it, so a ratio is never read without knowing whether the machine was quiet.
"""

from __future__ import annotations

import collections
import os
import platform

import jax
from jax import monitoring

# JAX reports how long it spends tracing, lowering to MLIR and compiling with XLA; the sum over a
# call is that call's compile time, free of the run-to-run noise of "first call minus a steady call"
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compile_seconds = collections.Counter()


def _listener(name: str, seconds: float, **kwargs) -> None:
    if name in _COMPILE_EVENTS:
        _compile_seconds["total"] += seconds


monitoring.register_event_duration_secs_listener(_listener)


def jax_compile_seconds() -> float:
    """Seconds JAX has spent tracing, lowering and compiling in this process so far.

    Take the difference around a first call to get that call's compile time.
    """
    return _compile_seconds["total"]


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo, else `platform.processor()`)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


# Read when the benchmark starts (this module is imported before any work is done), so a table
# states the load the run started at, not the load its own work raised by the time it is written.
START_LOAD = _load()


def machine_line() -> str:
    """E.g. ``AMD EPYC (2 of 2 cores visible), load 0.21/0.40/0.90 at the start and 1.6/0.9/1.0 at
    the end (1/5/15 min), x86_64, jax 0.10.2, device cpu``."""
    visible = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu_model()} ({visible} of {os.cpu_count()} CPU cores visible to the process), load "
        f"average {START_LOAD} at the start and {_load()} at the end (1/5/15 min), "
        f"{platform.machine()}, jax {jax.__version__}, device {jax.devices()[0].platform}"
    )


def paired_quartiles(times_a, times_b) -> tuple[float, float]:
    """The quartiles of the per-round ratios b/a, for two contenders timed back to back in each
    round (round i of each list is the same round)."""
    import numpy as np  # noqa: PLC0415

    r = np.asarray(times_b) / np.asarray(times_a)
    return float(np.quantile(r, 0.25)), float(np.quantile(r, 0.75))
