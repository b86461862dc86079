"""Keeping a long process under the kernel's limit on memory mappings.

XLA's CPU backend maps a few memory regions (code, constants) for every compiled executable, and
jit caches keep executables alive for as long as their function or static arguments live. A
process that compiles thousands of programs (a long sweep of per-point runs, a test session)
can reach Linux's ``vm.max_map_count`` (65,530 by default); the next compilation then fails
inside LLVM with a segmentation fault instead of an error. `release_compiled_if_crowded` frees
jax's compilation caches when the process has used half of that budget, so the next program
recompiles instead of crashing the process.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import jax

_DEFAULT_LIMIT = 65530
_RELEASERS: list[Callable[[], None]] = []


def on_release(clear: Callable[[], None]) -> None:
    """Register a cache of compiled programs held above jax (such as `sdeml.train.fit`'s) that
    `release_compiled_if_crowded` empties too."""
    _RELEASERS.append(clear)


def mapping_counts() -> tuple[int, int] | None:
    """``(memory mappings of this process, the kernel's limit)``, or None off Linux."""
    try:
        with open("/proc/self/maps", "rb") as f:
            used = sum(1 for _ in f)
    except OSError:
        return None
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text().strip())
    except (OSError, ValueError):
        limit = _DEFAULT_LIMIT
    return used, limit


def release_compiled_if_crowded(fraction: float = 0.5) -> bool:
    """Clear jax's caches of compiled programs when this process's memory mappings exceed
    `fraction` of ``vm.max_map_count``; return whether it did.

    Compiled programs whose functions are still referenced are compiled again on their next
    call (seconds at most); nothing else changes. A no-op off Linux.
    """
    counts = mapping_counts()
    if counts is None or counts[0] <= fraction * counts[1]:
        return False
    for clear in _RELEASERS:
        clear()
    jax.clear_caches()
    gc.collect()
    return True
