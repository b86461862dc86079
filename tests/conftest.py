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
