"""Test-wide settings: float64 on, plots off-screen, caches in a temporary folder."""

import os
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")
# The digits classifier caches its weights; keep the tests from writing into ~/.cache.
os.environ.setdefault("SDEML_CACHE", tempfile.mkdtemp(prefix="sdeml-test-cache-"))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
