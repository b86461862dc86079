#!/usr/bin/env bash
# The accelerator check (issue #19, item 6), end to end on a fresh machine in under 8 minutes:
# a virtualenv, the project with its test dependencies, JAX's CUDA wheels where `nvidia-smi`
# finds a GPU, then benchmarks/device_check.py, which writes one Markdown table.
#   bash benchmarks/device_check.sh [OUT_DIR]         (the table: OUT_DIR/device_check.md)
#   QUICK=1 bash benchmarks/device_check.sh           (small sizes: a check of the script)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-benchmarks}}"
mkdir -p "$out"
python3 -m venv .venv-device
. .venv-device/bin/activate
pip install -q -e '.[dev]'
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  jax_version="$(python -c 'import jax; print(jax.__version__)')"
  pip install -q "jax[cuda12]==${jax_version}"
fi
python -c 'import jax; print("devices:", jax.devices())'
export MPLBACKEND=Agg
python benchmarks/device_check.py ${QUICK:+--quick} --out "$out/device_check.md"
