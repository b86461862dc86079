"""Test-wide settings: float64 on, strict dtype promotion for the core's tests, plots off-screen,
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

# No silent float32 <-> float64 or int -> float promotion between arrays in the core and the
# themes built directly on it: there a mixed-dtype computation is an error, not a quiet upcast.
# Not (yet) for the whole suite: optax's Adam raises a float64 decay to an int32 step count
# (`optax.tree.bias_correction`), which strict promotion refuses, so every trained experiment
# fails inside optax; and the langevin/data/diffusion themes still mix dtypes in places (listed
# in the issue #16 note).
STRICT_PROMOTION = {
    "test_core",
    "test_ode",
    "test_sde",
    "test_sde_convergence",
    "test_dynamics",
    "test_api",
    "test_layers",
}


@pytest.fixture(autouse=True)
def _strict_promotion(request):
    if request.module.__name__.rsplit(".", 1)[-1] in STRICT_PROMOTION:
        with jax.numpy_dtype_promotion("strict"):
            yield
    else:
        yield
