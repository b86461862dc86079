"""One line describing where a benchmark ran: CPU cores visible, load average, versions, device.

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


def machine_line() -> str:
    """E.g. ``2 of 2 CPU cores, load average 0.1/0.4/0.9 at start, x86_64, jax 0.10.2, cpu``."""
    visible = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{visible} of {os.cpu_count()} CPU cores visible to the process, load average {load} "
        f"(1/5/15 min) at the start, {platform.processor() or platform.machine()}, "
        f"jax {jax.__version__}, device {jax.devices()[0].platform}"
    )
