"""`jax.vmap` of single-path functions against the engine and its peers (issue #23).

A researcher writes one path and vmaps it. This compares, side by side in one process, on the
same SDE, float32, 1000 Euler–Maruyama steps on [0, 1], terminal value or 100 snapshots:

- ``simulate``: ``sdeml.simulate(sde, x0, n_paths=n, ...)``, the engine with one key;
- ``vmap(simulate_path)``: ``jax.jit(jax.vmap(lambda k: sdeml.core.simulate_path(sde, x0,
  ..., key=k)))(keys)``, the user's pattern, which the `custom_vmap` rule runs on the engine
  with one key per path;
- ``eager vmap``: the same without `jax.jit` (steady time includes tracing the single-path
  function, as a notebook cell pays it);
- ``nested vmap``: ``vmap`` over 10 values of a drift parameter of ``vmap`` over n/10 keys
  (the same number of path-steps);
- ``before #23``: vmap of the single path as it was (every increment drawn up front by
  ``sample_increments``, every step kept by ``solve_increments``, then ``[-1]``); skipped
  where its increments alone would pass 2 GiB;
- ``jax scan``: the hand-written loop, a ``lax.scan`` over a batched state with one
  ``jax.random.normal`` per step (``jr.split`` each step);
- ``diffrax vmap``: ``jax.vmap`` of a plain ``diffrax.diffeqsolve`` with ``Euler`` and an
  ``UnsafeBrownianPath`` per key;
- ``floor: W alone``: ``vmap(simulate_path)`` of W itself (zero drift, unit noise): the cost of
  the normals alone, a lower bound for anything that draws them the same way.

Cells: steady-state seconds (best of several calls with fresh keys; compile excluded) and the
ratio ``peer / vmap(simulate_path)`` (> 1: the vmapped single path is faster). Targets (#23):
``simulate / vmap >= 0.8``, ``scan / vmap >= 1.5``, ``diffrax / vmap >= 5``. Every row records
the 1-min load average before and after it. Peak memory at 1e5 paths x 1000 steps, terminal:
XLA's compiled memory analysis, and the peak RSS of a fresh process per implementation.

    python benchmarks/vmap_composition.py            # the table -> benchmarks/vmap_composition.md
    python benchmarks/vmap_composition.py --quick    # 1e3 and 1e4 paths
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import diffrax
import em_throughput
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _machine import cpu_model

import sdeml
from sdeml.core import EulerMaruyama, sample_increments, simulate_path, solve_increments

N_STEPS, T1, N_SNAP = 1000, 1.0, 100
DT = T1 / N_STEPS
N_PARAMS = 10  # the outer axis of the nested vmap
OLD_MAX_BYTES = 2 * 2**30
INTERLEAVED_ROUNDS = 2  # simulate and vmap(simulate_path) again, alternately, after the others
IMPLS = [
    "simulate",
    "vmap(simulate_path)",
    "eager vmap",
    "nested vmap",
    "before #23",
    "jax scan",
    "diffrax vmap",
    "floor: W alone",
]
BASE = "vmap(simulate_path)"


def load1() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


# --------------------------------------------------------------------------- problems
def problems():
    """name -> (SDE factory of one drift parameter, its default value, state shape)."""
    return {
        "textbook scalar": (lambda p: sdeml.sde.SineForcedSDE(lam=p), 0.5, ()),
        "OU d=16": (lambda p: sdeml.OrnsteinUhlenbeck(theta=p, mu=0.5, sigma=0.7), 1.0, (16,)),
    }


# --------------------------------------------------------------------------- implementations
def _save_every(snap):
    return N_STEPS // N_SNAP if snap else None


def make_simulate(make, p, shape, n, snap):
    sde, x0 = make(p), jnp.ones(shape, jnp.float32)
    return lambda key: (
        sdeml.simulate(
            sde, x0, n_steps=N_STEPS, n_paths=n, save_every=_save_every(snap), key=key
        ).xs
    )


def _one(make, p, shape, snap):
    sde, x0 = make(p), jnp.ones(shape, jnp.float32)

    def one(k):
        ys = simulate_path(sde, x0, n_steps=N_STEPS, save_every=_save_every(snap), key=k)
        return ys if snap else ys[-1]

    return one


def make_vmap(make, p, shape, n, snap):
    f = jax.jit(jax.vmap(_one(make, p, shape, snap)))
    return lambda key: f(jr.split(key, n))


def make_eager(make, p, shape, n, snap):
    one = _one(make, p, shape, snap)
    split = jax.jit(lambda key: jr.split(key, n))
    return lambda key: jax.vmap(one)(split(key))


def make_nested(make, p, shape, n, snap):
    x0 = jnp.ones(shape, jnp.float32)
    params = jnp.linspace(0.5 * p, 1.5 * p, N_PARAMS, dtype=jnp.float32)

    def one(q, k):
        ys = simulate_path(make(q), x0, n_steps=N_STEPS, save_every=_save_every(snap), key=k)
        return ys if snap else ys[-1]

    f = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None)))
    return lambda key: f(params, jr.split(key, n // N_PARAMS))


def make_before(make, p, shape, n, snap):
    """The single path as it was before #23: increments drawn up front, every step kept."""
    sde, x0 = make(p), jnp.ones(shape, jnp.float32)
    ts = jnp.linspace(0.0, T1, N_STEPS + 1, dtype=jnp.float32)
    wshape = sde.brownian_shape(shape)

    def one(k):
        dw = sample_increments(jnp.diff(ts), wshape, key=k)
        ys = solve_increments(EulerMaruyama(), sde, x0, ts, dw)
        return ys[N_STEPS // N_SNAP :: N_STEPS // N_SNAP] if snap else ys[-1]

    f = jax.jit(jax.vmap(one))
    return lambda key: f(jr.split(key, n))


def make_scan(make, p, shape, n, snap):
    """The loop researchers write by hand (em_throughput's: lax.scan, one normal per step)."""
    return em_throughput.make_scan(make(p), shape, n, snap)


def make_diffrax(make, p, shape, n, snap):
    """em_throughput's `jax.vmap` of a plain diffrax solve (Euler, a Brownian path per key)."""
    return em_throughput.make_diffrax(make(p), shape, n, snap, "vmap")


def make_floor(make, p, shape, n, snap):
    """The same draws with no SDE arithmetic: vmap(simulate_path) of W itself (f = 0, g = 1).

    Its time is what the normals cost (hash + inverse-erf transform + the add): no
    implementation that draws its normals this way can be faster, so `diffrax vmap / floor`
    bounds the ratio any such implementation can reach against diffrax."""
    w = sdeml.SDE(lambda t, y, a: jnp.zeros_like(y), lambda t, y, a: jnp.ones_like(y), "additive")
    return make_vmap(lambda q: w, p, shape, n, snap)


MAKERS = {
    "simulate": make_simulate,
    "vmap(simulate_path)": make_vmap,
    "eager vmap": make_eager,
    "nested vmap": make_nested,
    "before #23": make_before,
    "jax scan": make_scan,
    "diffrax vmap": make_diffrax,
    "floor: W alone": make_floor,
}


# --------------------------------------------------------------------------- the draw's cost
def draw_costs(n: int = 100_000, size: int = 16) -> list[str]:
    """What the normals of OU d=16 cost, split into the hash and the inverse-erf transform.

    Each loop makes ``n * size * N_STEPS`` standard normals (or their bits) with per-path keys
    and folds them into a carry (so nothing is dead code), with no SDE arithmetic:

    - ``hash``: the Threefry-2x32 words alone, two words per hash (the engine's paired draw);
    - ``transform``: the inverse-erf transform of bits from a cheap Weyl counter (no hash);
    - ``hash + transform``: the engine's draw, as `simulate_path` makes it;
    - ``diffrax's draw``: what `UnsafeBrownianPath` does per path and step: two `fold_in`s of
      the path's key by the step's times, then `jax.random.normal` of the path's `size`
      components (one hash per number);
    - ``Box-Muller transform``: the other exact transform, two normals from a pair of words
      (sqrt(-2 log u1) times cos and sin of 2 pi u2) instead of two inverse erfs, on the same
      counter bits: is there a cheaper exact draw to be had?

    `diffrax vmap / 5` is the time a vmapped single path would need to reach the 5x target.
    """
    from sdeml.core._normals import _bits_to_normal, _hash, threefry_words

    f32 = jnp.dtype(jnp.float32)
    keys = jr.split(jr.key(0), n)
    kd = jax.vmap(threefry_words)(keys)
    k0, k1 = jnp.repeat(kd[:, 0], size), jnp.repeat(kd[:, 1], size)
    lo = jnp.tile(jnp.arange(size, dtype=jnp.uint32), n)
    half = jnp.arange(N_STEPS // 2, dtype=jnp.uint32)

    @jax.jit
    def hash_only(k0, k1, lo):
        def body(acc, i):
            w0, w1 = _hash(k0, k1, i, lo)
            return acc ^ w0 ^ w1, None

        return jax.lax.scan(body, jnp.zeros_like(lo), half)[0]

    @jax.jit
    def transform_only(lo):
        def body(acc, i):
            w0 = lo * jnp.uint32(0x9E3779B9) + i * jnp.uint32(0x85EBCA6B)
            w1 = w0 ^ jnp.uint32(0xA5A5A5A5)
            return acc + _bits_to_normal(w0, f32) + _bits_to_normal(w1, f32), None

        return jax.lax.scan(body, jnp.zeros(lo.shape, f32), half)[0]

    @jax.jit
    def box_muller_only(lo):
        def uniform(w):  # 23 mantissa bits -> [0, 1)
            return jax.lax.bitcast_convert_type((w >> 9) | jnp.uint32(0x3F800000), f32) - 1.0

        def body(acc, i):
            w0 = lo * jnp.uint32(0x9E3779B9) + i * jnp.uint32(0x85EBCA6B)
            w1 = w0 ^ jnp.uint32(0xA5A5A5A5)
            r = jnp.sqrt(-2.0 * jnp.log(1.0 - uniform(w0)))  # 1 - u in (0, 1]
            th = jnp.float32(2 * math.pi) * uniform(w1)
            return acc + r * jnp.cos(th) + r * jnp.sin(th), None

        return jax.lax.scan(body, jnp.zeros(lo.shape, f32), half)[0]

    @jax.jit
    def hash_transform(k0, k1, lo):
        def body(acc, i):
            w0, w1 = _hash(k0, k1, i, lo)
            return acc + _bits_to_normal(w0, f32) + _bits_to_normal(w1, f32), None

        return jax.lax.scan(body, jnp.zeros(lo.shape, f32), half)[0]

    @jax.jit
    def diffrax_draw(keys):
        def one(key, t):
            k = jr.fold_in(jr.fold_in(key, t), t + 1)
            return jr.normal(k, (size,), jnp.float32)

        def body(acc, i):
            return acc + jax.vmap(one, in_axes=(0, None))(keys, i), None

        steps = jnp.arange(N_STEPS, dtype=jnp.uint32)
        return jax.lax.scan(body, jnp.zeros((n, size), jnp.float32), steps)[0]

    cases = {
        "hash (Threefry-2x32, two words per hash)": lambda key: hash_only(k0, k1, lo),
        "transform (inverse erf of counter bits)": lambda key: transform_only(lo),
        "transform, Box-Muller instead (same counter bits)": lambda key: box_muller_only(lo),
        "hash + transform (the engine's draw)": lambda key: hash_transform(k0, k1, lo),
        "diffrax's draw (2 fold_in + jax.random.normal per path-step)": lambda key: diffrax_draw(
            keys
        ),
    }
    lines = [
        f"## What the normals cost: OU d={size}, {n:.0e} paths x {N_STEPS} steps "
        f"({n * size * N_STEPS:.1e} normals, float32)",
        "",
        "| loop | load | seconds | ns per normal |",
        "|---|---|---|---|",
    ]
    for name, fn in cases.items():
        _block(fn(None))
        load = load1()
        sec = steady_seconds(fn, 0)
        lines.append(
            f"| {name} | {load:.2f} | {sec:.4g} | {1e9 * sec / (n * size * N_STEPS):.2f} |"
        )
        print(lines[-1], flush=True)
    return lines


# --------------------------------------------------------------------------- timing
def _block(out):
    jax.tree_util.tree_map(lambda a: a.block_until_ready(), out)


def steady_seconds(fn, seed0, repeats=3, budget=1.0):
    """The fastest of at least `repeats` calls with fresh keys (more, up to 20, while they fit
    in about `budget` seconds); one call after the first if a call takes over 5 s."""
    times = []
    for r in range(20):
        t = time.perf_counter()
        _block(fn(jr.key(seed0 + r)))
        times.append(time.perf_counter() - t)
        if times[-1] > 5.0 or (len(times) >= repeats and sum(times) > budget):
            break
    return min(times)


# the implementations that simulate the same SDE (the nested vmap runs a grid of parameters and
# the floor a different SDE, by design)
SAME_LAW = (
    "simulate",
    "vmap(simulate_path)",
    "eager vmap",
    "before #23",
    "jax scan",
    "diffrax vmap",
)


def _terminal(impl, out, snap):
    """(X_T, X_T^2) samples of an implementation's output, whatever its layout: the hand-written
    scan keeps (saves, paths, ...) with snapshots, the others (paths, saves, ...); `simulate` and
    diffrax keep a saves axis even for the terminal value alone."""
    a = np.asarray(out, np.float64)
    if impl == "jax scan":
        a = a[-1] if snap else a
    elif snap or impl in ("simulate", "diffrax vmap"):
        a = a[:, -1]
    x = a.ravel()
    return x, x**2


def run_row(pname, make, p, shape, n, snap):
    load_before = load1()
    cells = {}
    fns = {}
    laws = {}
    size = 4 * (1 if not shape else shape[0])
    for impl in IMPLS:
        if impl == "before #23" and n * N_STEPS * size > OLD_MAX_BYTES:
            cells[impl] = None
            continue
        fn = MAKERS[impl](make, p, shape, n, snap)
        t = time.perf_counter()
        out = fn(jr.key(0))
        _block(out)  # compile (and a first run)
        first = time.perf_counter() - t
        if impl in SAME_LAW:
            laws["sdeml" if impl == "simulate" else impl] = _terminal(impl, out, snap)
        del out
        cells[impl] = steady_seconds(fn, 1)
        fns[impl] = fn
        em_throughput.progress(
            pname, snap, n, f"{impl:22s} first {first:7.2f}s steady {cells[impl]:8.4f}s"
        )
    em_throughput.assert_same_law(laws, f"{pname}, {'snapshots' if snap else 'terminal'}, n={n}")
    # the 0.8x target: simulate and the vmapped single path again, in alternation, so that a slow
    # spell of the machine hits both
    for _ in range(INTERLEAVED_ROUNDS):
        for impl in ("simulate", BASE):
            cells[impl] = min(cells[impl], steady_seconds(fns[impl], 100, repeats=2))
    return {
        "sde": pname,
        "saving": "100 snapshots" if snap else "terminal",
        "n": n,
        "cells": cells,
        "load_before": load_before,
        "load_after": load1(),
    }


# --------------------------------------------------------------------------- memory
def memory_child(impl: str) -> None:
    """In a fresh process: run one implementation at 1e5 paths x 1000 steps, terminal, print
    its peak RSS (``impl == "baseline"``: import, build the keys, run nothing)."""
    make, p, shape = problems()["textbook scalar"]
    n = 100_000
    jr.split(jr.key(0), n).block_until_ready()
    if impl != "baseline":
        _block(MAKERS[impl](make, p, shape, n, False)(jr.key(0)))
    print("PEAK", json.dumps({"impl": impl, "bytes": peak_rss()}), flush=True)


def peak_rss() -> int:
    """This process's peak resident set, in bytes: VmHWM, which starts afresh at `exec` (Linux's
    `ru_maxrss` does not: a child started from a big parent inherits the parent's peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def memory_table() -> list[str]:
    make, p, shape = problems()["textbook scalar"]
    n = 100_000
    x0 = jnp.ones(shape, jnp.float32)
    sde = make(p)
    vm = jax.jit(jax.vmap(lambda k: simulate_path(sde, x0, n_steps=N_STEPS, key=k)[-1]))
    sim = jax.jit(lambda k: sdeml.simulate(sde, x0, n_steps=N_STEPS, n_paths=n, key=k).xs)
    ana = {
        "simulate": sim.lower(jr.key(0)).compile().memory_analysis(),
        BASE: vm.lower(jr.split(jr.key(0), n)).compile().memory_analysis(),
    }
    total = {
        k: m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
        for k, m in ana.items()
        if m is not None
    }
    rss = {}
    for impl in ("baseline", "simulate", BASE, "before #23"):
        res = subprocess.run(
            [sys.executable, __file__, "--memory-child", impl], capture_output=True, text=True
        )
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("PEAK ")]
        rss[impl] = json.loads(line[0][5:])["bytes"] if line else None
        print(f"memory child {impl}: {rss[impl]}", flush=True)
    mib = lambda b: "failed" if b is None else f"{b / 2**20:.1f} MiB"
    base = rss["baseline"]
    above = lambda b: "failed" if b is None or base is None else mib(b - base)
    lines = [
        "## Peak memory, textbook scalar, 1e5 paths x 1000 steps, terminal",
        "",
        "| | XLA memory analysis (temp + arguments + output) | peak RSS of a fresh process "
        "| above the baseline process |",
        "|---|---|---|---|",
    ]
    for impl in ("simulate", BASE):
        lines.append(f"| {impl} | {mib(total[impl])} | {mib(rss[impl])} | {above(rss[impl])} |")
    lines.append(f"| before #23 | | {mib(rss['before #23'])} | {above(rss['before #23'])} |")
    lines.append(f"| baseline (import, build keys, run nothing) | | {mib(base)} | |")
    ratio = total[BASE] / total["simulate"]
    lines += ["", f"vmap(simulate_path) / simulate, XLA analysis: **{ratio:.2f}x** (target <= 2)."]
    if rss[BASE] and rss["simulate"] and base:
        r2 = (rss[BASE] - base) / max(rss["simulate"] - base, 1)
        lines.append(f"Above the baseline process: **{r2:.2f}x**.")
    return lines


# --------------------------------------------------------------------------- table
def write_md(rows, mem_lines, out: Path, start_load, end_load):
    lines = [
        "# vmap of single-path functions (benchmarks/vmap_composition.py, issue #23)",
        "",
        f"CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} of {os.cpu_count()} cores visible; "
        f"jax {jax.__version__}, diffrax {diffrax.__version__}, device "
        f"{jax.devices()[0].platform}, {platform.machine()}. 1-min load {start_load:.2f} at the "
        f"start, {end_load:.2f} at the end. Float32, {N_STEPS} Euler–Maruyama steps on [0, 1].",
        "",
        "Each cell: steady seconds (best of several calls, compile excluded) and the ratio "
        "peer / vmap(simulate_path) (> 1: the vmapped single path is faster). Targets: "
        "simulate >= 0.8, jax scan >= 1.5, diffrax vmap >= 5. `nested vmap`: 10 drift-parameter "
        "values x n/10 keys (the same path-steps). `before #23`: the old single path (increments "
        "drawn up front, every step kept); `skipped` where its increments pass 2 GiB. "
        "`floor: W alone`: the draws with no SDE arithmetic (zero drift, unit noise), so "
        "diffrax vmap / floor bounds the diffrax ratio reachable with these normals. Every row "
        "asserts that the implementations of the same SDE sample the same law (the means of X_T "
        "and X_T^2 within 6 standard errors of simulate's).",
        "",
        "| SDE | saving | n_paths | load before/after | "
        + " | ".join(IMPLS)
        + " | diffrax / floor |",
        "|" + "---|" * (5 + len(IMPLS)),
    ]
    for row in rows:
        base = row["cells"][BASE]
        out_cells = []
        for impl in IMPLS:
            s = row["cells"].get(impl)
            if s is None:
                out_cells.append("skipped")
            elif impl == BASE:
                out_cells.append(f"{s:.4g} s")
            else:
                out_cells.append(f"{s:.4g} s **×{s / base:.2f}**")
        d, f = row["cells"].get("diffrax vmap"), row["cells"].get("floor: W alone")
        bound = f"{d / f:.2f}" if d and f else ""
        lines.append(
            f"| {row['sde']} | {row['saving']} | {row['n']:.0e} | "
            f"{row['load_before']:.2f}/{row['load_after']:.2f} | "
            + " | ".join(out_cells)
            + f" | {bound} |"
        )
    lines += ["", *mem_lines, ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--memory-child", default=None)
    ap.add_argument("--memory-only", action="store_true", help="redo the memory section of --out")
    ap.add_argument("--draws-only", action="store_true", help="print the draw-cost table only")
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    a = ap.parse_args()
    if a.memory_child:
        memory_child(a.memory_child)
        return
    if a.draws_only:
        print("\n".join(draw_costs()))
        return
    if a.memory_only:
        out = Path(a.out)
        text = out.read_text().split("## Peak memory")[0].rstrip("\n")
        out.write_text(text + "\n\n" + "\n".join(memory_table()) + "\n")
        print(f"wrote {out}")
        return
    start_load = load1()
    sizes = a.sizes or ([1_000, 10_000] if a.quick else [1_000, 10_000, 100_000])
    rows = []
    for pname, (make, p, shape) in problems().items():
        for snap in (False, True):
            for n in sizes:
                rows.append(run_row(pname, make, p, shape, n, snap))
    mem_lines = [] if a.no_memory else memory_table()
    if not a.quick:
        mem_lines += ["", *draw_costs()]
    write_md(rows, mem_lines, Path(a.out), start_load, load1())


if __name__ == "__main__":
    main()
