"""Run the examples in sdeml's docstrings as doctests and say which are runnable.

sdeml's docstrings carry ``Examples:`` sections written as ``>>>`` sessions. Many are fragments
(they use a variable defined elsewhere, such as ``model`` or ``xs``) or show a call without its
printed output; only some run as they stand. This script runs every one of them, each docstring in
a fresh namespace holding its own module's globals plus the usual aliases (``jax``, ``jnp``,
``jr``, ``eqx``, ``np``, ``sdeml``), in float64 as the test suite runs, in a temporary working
directory, with a time limit per docstring, and sorts them:

- ``pass``: every example in the docstring runs and its printed output (where one is written)
  matches;
- ``undefined``: a name the example uses is defined nowhere in it (a fragment);
- ``output``: it runs, but what it prints differs from what the docstring shows (or the
  docstring shows nothing while the call returns a value);
- ``error``: it raises something else; ``slow``: over the time limit.

The docstrings that pass are recorded in ``docs/doctests_runnable.txt``. ``--check`` (CI) fails
when one of those no longer passes; ``--update`` rewrites the file. Nothing in ``sdeml/`` is
modified.

    python docs/run_doctests.py --check      # CI
    python docs/run_doctests.py --update     # after docstrings change on purpose
"""

from __future__ import annotations

import argparse
import doctest
import importlib
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hooks import package_names  # noqa: E402  (the API pages' list of public names)

PACKAGES = ["sdeml", "sdeml.core", "sdeml.sde", "sdeml.ode", "sdeml.dynamics",
            "sdeml.optim_dynamics", "sdeml.langevin", "sdeml.neural_ode", "sdeml.flows",
            "sdeml.diffusion", "sdeml.pfgm", "sdeml.pinn", "sdeml.ude", "sdeml.nn", "sdeml.data",
            "sdeml.metrics", "sdeml.train", "sdeml.run"]
BASELINE = HERE / "doctests_runnable.txt"


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def public_callables() -> dict[str, object]:
    """The public functions and classes, once each, under the name of the first package that
    lists them (the same names `collect` gives their docstrings); constants and namespaces are
    left out."""
    out: dict[str, object] = {}
    seen: set[int] = set()
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        for name in package_names(pkg):
            obj = getattr(mod, name)
            if isinstance(obj, type(sys)) or not callable(obj):
                continue
            if id(obj) not in seen:
                seen.add(id(obj))
                out[f"{pkg}.{name}"] = obj
    return out


def source_file(obj: object) -> str:
    """The defining file relative to the repository (``sdeml/pinn/_pinn.py``), or ``?``."""
    import inspect

    try:
        path = Path(inspect.getfile(inspect.unwrap(obj)))  # type: ignore[arg-type]
    except (TypeError, OSError):
        return "?"
    try:
        return str(path.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)


def missing_sections(obj: object) -> list[str]:
    """The Google-style sections its docstring lacks: Args (when it takes arguments), Returns
    (functions), Example."""
    import inspect

    doc = inspect.getdoc(obj) or ""
    lacks = []
    try:
        params = [q for q in inspect.signature(obj).parameters.values()  # type: ignore[arg-type]
                  if q.name not in ("self", "cls")]
    except (TypeError, ValueError):
        params = []
    if params and "Args:" not in doc and "Attributes:" not in doc:
        lacks.append("Args")
    if not isinstance(obj, type) and "Returns:" not in doc and "Yields:" not in doc:
        lacks.append("Returns")
    if ">>>" not in doc:
        lacks.append("Example")
    return lacks


def collect() -> list[doctest.DocTest]:
    """Every docstring with examples among the public names, once each (re-exports dedup)."""
    finder = doctest.DocTestFinder(recurse=True, exclude_empty=True)
    seen, tests = set(), []
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        for name in package_names(pkg):
            obj = getattr(mod, name)
            if isinstance(obj, type(sys)):  # a theme namespace: it has its own page
                continue
            home = getattr(obj, "__module__", None) or pkg
            try:
                found = finder.find(obj, f"{pkg}.{name}", module=sys.modules.get(home))
            except (TypeError, ValueError):
                continue
            for t in found:
                key = (t.filename, t.lineno, t.name.rsplit(".", 1)[-1])
                if t.examples and key not in seen and "sdeml" in (t.filename or ""):
                    seen.add(key)
                    tests.append(t)
    return tests


def classify(test: doctest.DocTest, limit: int) -> str:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    import sdeml

    home = sys.modules.get(test.globs.get("__name__", ""), None)
    globs = dict(vars(home)) if home is not None else {}
    globs.update(jax=jax, jnp=jnp, jr=jr, eqx=eqx, np=np, sdeml=sdeml)
    test.globs = globs
    failures: list[str] = []

    class Runner(doctest.DocTestRunner):
        def report_failure(self, out, test, example, got):
            failures.append("output")

        def report_unexpected_exception(self, out, test, example, exc_info):
            failures.append("undefined" if exc_info[0] is NameError else
                            "slow" if exc_info[0] is _Timeout else "error")

    runner = Runner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit)
    try:
        runner.run(test, out=lambda s: None, clear_globs=True)
    except _Timeout:
        failures.append("slow")
    finally:
        signal.alarm(0)
    if not failures:
        return "pass"
    for kind in ("slow", "error", "undefined", "output"):
        if kind in failures:
            return kind
    return failures[0]


def _run_in_workers(args: argparse.Namespace) -> dict[str, str]:
    """Classify the docstrings in ``args.jobs`` processes (``--shard i/n``), merged."""
    import subprocess

    cmd = [sys.executable, __file__, "--limit", str(args.limit)]
    for o in args.only:
        cmd += ["--only", o]
    procs = [
        subprocess.Popen([*cmd, "--shard", f"{i}/{args.jobs}"], stdout=subprocess.PIPE,
                         text=True)
        for i in range(args.jobs)
    ]  # fmt: skip
    results: dict[str, str] = {}
    for proc in procs:
        out, _ = proc.communicate()
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULTS ")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"a doctest worker failed (exit {proc.returncode})")
        results.update(json.loads(lines[-1][len("RESULTS "):]))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if a recorded runnable one fails")
    ap.add_argument("--update", action="store_true", help="record the ones that pass")
    ap.add_argument("--limit", type=int, default=60, help="seconds per docstring")
    ap.add_argument("--only", action="append", default=[], metavar="PATH",
                    help="only docstrings whose file path contains PATH (repeatable), e.g. "
                    "sdeml/pinn/; with --check only these are compared")
    ap.add_argument("--coverage", action="store_true",
                    help="list every public function and class: its example's status and the "
                    "sections its docstring lacks")
    ap.add_argument("--require-all", action="store_true",
                    help="with --check: also fail when a public function or class has no "
                    "example that runs")
    ap.add_argument("--jobs", type=int, default=1,
                    help="run the docstrings in this many processes (each imports JAX once)")
    ap.add_argument("--shard", default=None, help=argparse.SUPPRESS)  # "i/n": a worker's part
    args = ap.parse_args()
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")

    import jax

    jax.config.update("jax_enable_x64", True)
    os.environ.setdefault("MPLBACKEND", "Agg")
    start, cwd = time.perf_counter(), os.getcwd()
    tests = collect()
    if args.only:
        tests = [t for t in tests if any(o in (t.filename or "") for o in args.only)]
    if args.shard is not None:  # a worker of --jobs: its share, as JSON on stdout
        i, n = (int(v) for v in args.shard.split("/"))
        mine = tests[i::n]
        with tempfile.TemporaryDirectory(prefix="sdeml-doctest-") as tmp:
            os.chdir(tmp)
            try:
                out = {t.name: classify(t, args.limit) for t in mine}
            finally:
                os.chdir(cwd)
        print("RESULTS " + json.dumps(out))
        return 0
    results: dict[str, str] = {}
    if args.jobs > 1:
        results = _run_in_workers(args)
    else:
        with tempfile.TemporaryDirectory(prefix="sdeml-doctest-") as tmp:
            os.chdir(tmp)  # examples may write files (plots)
            try:
                for t in tests:
                    results[t.name] = classify(t, args.limit)
            finally:
                os.chdir(cwd)
    counts = Counter(results.values())
    n_examples = sum(len(t.examples) for t in tests)
    print(f"{len(tests)} docstrings with examples ({n_examples} '>>>' lines) in "
          f"{time.perf_counter() - start:.0f} s: " +
          ", ".join(f"{k} {counts[k]}" for k in ("pass", "output", "undefined", "error", "slow")))
    for kind in ("error", "slow"):
        for name, r in sorted(results.items()):
            if r == kind:
                print(f"  {kind:9s} {name}")
    passing = sorted(n for n, r in results.items() if r == "pass")
    uncovered: list[str] = []
    if args.coverage or args.require_all:
        pub = public_callables()
        rows = []
        for name, obj in pub.items():
            where = source_file(obj)
            if args.only and not any(o in where for o in args.only):
                continue
            status = results.get(name, "none")
            lacks = missing_sections(obj)
            if status != "pass":
                uncovered.append(name)
            rows.append((where, name, status, lacks))
        if args.coverage:
            for where, name, status, lacks in sorted(rows):
                print(f"  {status:9s} {name:50s} {where}"
                      + (f"  lacks: {', '.join(lacks)}" if lacks else ""))
        n_ok = len(rows) - len(uncovered)
        print(f"{n_ok} of {len(rows)} public functions and classes have an example that runs")
    if args.update:
        BASELINE.write_text("".join(f"{n}\n" for n in passing))
        print(f"recorded {len(passing)} runnable docstrings in {BASELINE.name}")
    if args.check:
        recorded = [n for n in BASELINE.read_text().split() if n]
        if args.only:
            recorded = [n for n in recorded if n in results]
        broken = [n for n in recorded if results.get(n) != "pass"]
        new = [n for n in passing if n not in recorded]
        for n in broken:
            print(f"  NO LONGER RUNNABLE: {n} ({results.get(n, 'missing')})")
        for n in new:
            print(f"  newly runnable (run --update to record): {n}")
        if args.require_all:
            for n in uncovered:
                print(f"  NO RUNNABLE EXAMPLE: {n}")
        return 1 if broken or (args.require_all and uncovered) else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
