"""Test-wide settings: float64 on, strict dtype promotion, plots off-screen, caches in a temporary
folder. (Runtime shape and type checks of the core's annotations are switched on in pyproject's
pytest `addopts` through jaxtyping's import hook with beartype.)"""

import os
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")
# The digits classifier caches its weights; keep the tests from writing into ~/.cache.
os.environ.setdefault("SDEML_CACHE", tempfile.mkdtemp(prefix="sdeml-test-cache-"))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
# No silent float32 <-> float64 or int -> float promotion between arrays: a mixed-dtype
# computation in the library is an error in the tests, not a quiet upcast.
jax.config.update("jax_numpy_dtype_promotion", "strict")
