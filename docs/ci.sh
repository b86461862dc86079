#!/usr/bin/env bash
# Docs CI: (a) build the site strictly, (b) convert the notebooks with jupytext and execute them,
# (c) run the docstring examples that are runnable as doctests. Run from anywhere; needs the
# docs tools (pip install -e '.[dev,docs]'). Generated files go to build/ (git-ignored):
# build/site (the site) and build/notebooks (the .ipynb files and their executed copies).
# Prints the time of each stage and the total.
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg
export PYDEVD_DISABLE_FILE_VALIDATION=1  # quiet debugpy's warning in the notebook kernels

total_start=$(date +%s.%N)
stage() {  # stage NAME COMMAND...: run it, print its wall time
  local name=$1 t0 t1
  shift
  echo "== $name: $*"
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  printf '== %s took %s s\n' "$name" "$(python3 -c "print(f'{$t1 - $t0:.1f}')")"
}

# (a) the site; strict: a broken link, a missing snippet or an unresolved API name fails
stage site mkdocs build --strict

# docstring entries the API reference's parser cannot split (reported, not fatal: see the file)
stage docstring-report python docs/docstring_report.py

# (b) the notebooks: jupytext percent scripts -> .ipynb -> executed by nbmake on two workers.
# The repository's pytest options (addopts: the jaxtyping import hook, -m 'not slow') are for
# the test suite, not for notebooks, hence -o addopts=.
nb_dir=build/notebooks
rm -rf "$nb_dir" && mkdir -p "$nb_dir"
convert() {
  for f in notebooks/*.py; do
    jupytext --quiet --to ipynb --output "$nb_dir/$(basename "${f%.py}").ipynb" "$f"
  done
}
stage convert convert
stage notebooks python -m pytest -o addopts= -p no:cacheprovider -n 2 --nbmake \
  --nbmake-timeout=300 --durations=0 "$nb_dir"/*.ipynb

# (c) docstring examples: every public function and class has one that runs (docs/run_doctests.py)
stage doctests python docs/run_doctests.py --check --require-all --jobs 2

total_end=$(date +%s.%N)
printf '== docs CI total %s s\n' "$(python3 -c "print(f'{$total_end - $total_start:.1f}')")"
