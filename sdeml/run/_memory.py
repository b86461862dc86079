"""Fail fast on absurd sizes: a config whose arrays cannot fit in memory is refused at validation.

An experiment's config states ``estimate_memory()`` (`ExperimentConfig`): the bytes of its largest
arrays by name (``{"paths (n_paths x n_steps x d x 8 B)": ...}``), estimated from the sizes in the
config. `check_memory` compares their sum with the machine's memory and refuses the config with
the estimate (issue #17), before any run directory exists or anything is compiled.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._errors import ConfigError

__all__ = ["check_memory", "format_bytes", "total_memory"]

MemoryEstimate = Callable[[Any], dict[str, float]]


def total_memory() -> int:
    """This machine's physical memory in bytes (os.sysconf, else /proc/meminfo; 0 if unknown)."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and size > 0:
            return int(pages * size)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def format_bytes(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _as_bytes(v: float) -> float:
    """An estimate as float bytes; an integer past float's range (a size from absurd config
    values, e.g. a grid of 1e151 cells squared) is infinite, and refused like any other excess."""
    try:
        return float(v)
    except OverflowError:
        return float("inf")


def check_memory(
    estimate: MemoryEstimate | None,
    cfg: Any,
    source: str,
    *,
    n_points: int = 1,
    available: int | None = None,
) -> float:
    """Refuse `cfg` when its estimated arrays exceed the machine's memory.

    Args:
        estimate: the experiment's ``memory`` hook (None: nothing is checked).
        cfg: the validated config.
        source: the config's file, for the message.
        n_points: sweep grid points (one vmapped program holds every point's arrays).
        available: bytes to compare against; default `total_memory()`.

    Returns:
        The estimate in bytes (0 without a hook).

    Raises:
        ConfigError: naming the estimate, its largest part and the memory available.
    """
    if estimate is None:
        return 0.0
    try:
        estimated = estimate(cfg)
    except OverflowError:  # e.g. math.ceil of an infinite cell count: past any machine
        estimated = {"the estimate itself (it overflowed: a size beyond any float)": float("inf")}
    parts = {k: _as_bytes(v) * max(n_points, 1) for k, v in estimated.items()}
    total = sum(parts.values())
    limit = total_memory() if available is None else available
    if limit > 0 and total > limit:
        name, size = max(parts.items(), key=lambda kv: kv[1])
        sweep = f" over {n_points} sweep points" if n_points > 1 else ""
        if size == float("inf"):
            raise ConfigError(
                f"invalid config {source}: the arrays would need more memory than any machine "
                f"has{sweep}; the largest is {name}. Reduce those sizes"
            )
        raise ConfigError(
            f"invalid config {source}: the arrays need about {format_bytes(total)}{sweep}, more "
            f"than this machine's memory ({format_bytes(limit)}); the largest is {name}: "
            f"{format_bytes(size)}. Reduce those sizes"
        )
    return total
