"""Test-wide settings: float64 on, strict dtype promotion, plots off-screen,
caches in a temporary folder. (Runtime shape and type checks of the core's annotations are
switched on in pyproject's pytest `addopts` through jaxtyping's import hook with beartype.)"""

import os
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")
# The digits classifier caches its weights; keep the tests from writing into ~/.cache.
os.environ.setdefault("SDEML_CACHE", tempfile.mkdtemp(prefix="sdeml-test-cache-"))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import pytest  # noqa: E402


# No silent float32 <-> float64 or int -> float promotion between arrays anywhere in sdeml: under
# test a mixed-dtype computation is an error, not a quiet upcast. (optax's own update runs under
# standard promotion: see sdeml/train/_step.py.)
@pytest.fixture(autouse=True)
def _strict_promotion():
    with jax.numpy_dtype_promotion("strict"):
        yield


# A test process compiles thousands of programs; XLA maps memory for each one and jit caches keep
# them alive, so a long session (the slow suite in one xdist worker) reached Linux's
# vm.max_map_count and died with a segmentation fault inside the next compilation. Free the
# compiled programs whenever the process has used half of that budget.
@pytest.fixture(autouse=True)
def _release_compiled_programs():
    yield
    from sdeml.core._memory import release_compiled_if_crowded

    release_compiled_if_crowded()
