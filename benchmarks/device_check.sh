#!/usr/bin/env bash
# The accelerator check (issue #19, item 6), end to end on a fresh machine in under 8 minutes:
# a virtualenv, the project with its test dependencies, JAX's CUDA wheels where `nvidia-smi`
# finds a GPU, then benchmarks/device_check.py, which writes one Markdown table.
#   bash benchmarks/device_check.sh [OUT_DIR]         (the table: OUT_DIR/device_check.md)
#   QUICK=1 bash benchmarks/device_check.sh           (small sizes: a check of the script)
#   ONLY=em,tests bash benchmarks/device_check.sh     (some sections: em,diffusion,node,sweep,tests)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-benchmarks}}"
mkdir -p "$out"
if [ -d .whl ]; then
  # A machine with no package index (the lent GPU machines): its own python3 already holds JAX's
  # CUDA build, diffrax, equinox, optax, pytest; the packages it lacks travel as wheels in .whl/
  # (pydantic, pydantic_core, annotated-types, typing-inspection, beartype for Python 3.12).
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl
  python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
  python() { python3 "$@"; }
else
  python3 -m venv .venv-device
  . .venv-device/bin/activate
  pip install -q -e '.[dev]'
  if command -v nvidia-smi >/dev/null 2>&1; then
    jax_version="$(python -c 'import jax; print(jax.__version__)')"
    pip install -q "jax[cuda12]==${jax_version}"
  fi
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
python -c 'import jax, diffrax, equinox, optax; print("devices:", jax.devices(), "jax", jax.__version__, "diffrax", diffrax.__version__, "equinox", equinox.__version__, "optax", optax.__version__)'
export MPLBACKEND=Agg
python benchmarks/device_check.py ${QUICK:+--quick} ${ONLY:+--only "$ONLY"} --out "$out/device_check.md"
