"""One line describing where a benchmark ran: CPU cores visible, load average, versions, device.

Every table states it, so a ratio is never read without knowing whether the machine was quiet.
"""

from __future__ import annotations

import os
import platform

import jax


def machine_line() -> str:
    """E.g. ``2 of 2 CPU cores, load average 0.1/0.4/0.9 at start, x86_64, jax 0.10.2, cpu``."""
    visible = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{visible} of {os.cpu_count()} CPU cores visible to the process, load average {load} "
        f"(1/5/15 min) at the start, {platform.processor() or platform.machine()}, "
        f"jax {jax.__version__}, device {jax.devices()[0].platform}"
    )
