"""MALA and ULA over many chains as one jitted program: sdeml's batched step vs blackjax.

sdeml's kernels are written on the whole batch of chains (one vjp through sum_c U(theta_c));
blackjax's MALA kernel is written for one chain and vmapped over chains. ULA is compared with a
per-chain ULA kernel vmapped the same way (blackjax has no plain ULA kernel). Target: the 1-D
double well U = (x^2 - 1)^2, T = 1, step 0.1 (MALA) / 0.01 (ULA), float32. Each program runs
n_steps steps of n_chains chains inside one lax.scan and returns the final positions and the
mean acceptance. Compile time (lower + compile) and steady-state time (median of repeats after
one warm-up) are reported separately, and the table goes to benchmarks/langevin.md.

    python benchmarks/langevin.py [--chains 10000] [--steps 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import blackjax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _machine import machine_line

import sdeml


def U(x):
    return (x[0] ** 2 - 1.0) ** 2


def sdeml_program(kernel_cls, h, n_steps):
    kernel = kernel_cls(U, step_size=h)

    def run(x0, key):
        state, acc, _ = sdeml.run_chains(kernel, kernel.init(x0), n_steps, key=key)
        return state.position, jnp.mean(acc)

    return run


def blackjax_mala_program(h, n_steps):
    mala = blackjax.mala(lambda x: -U(x), h)

    def run(x0, key):
        states = jax.vmap(mala.init)(x0)

        def body(carry, k):
            states, acc = carry
            states, info = jax.vmap(mala.step)(jr.split(k, x0.shape[0]), states)
            return (states, acc + info.acceptance_rate), None

        (states, acc), _ = jax.lax.scan(
            body, (states, jnp.zeros(x0.shape[0], x0.dtype)), jr.split(key, n_steps)
        )
        return states.position, jnp.mean(acc) / n_steps

    return run


def vmapped_ula_program(h, n_steps):
    grad = jax.grad(U)

    def one_chain(x, k):  # a per-chain kernel, vmapped: the blackjax style
        return x - h * grad(x) + jnp.sqrt(2 * h) * jr.normal(k, x.shape, x.dtype)

    def run(x0, key):
        def body(x, k):
            return jax.vmap(one_chain)(x, jr.split(k, x0.shape[0])), None

        x, _ = jax.lax.scan(body, x0, jr.split(key, n_steps))
        return x, jnp.asarray(1.0, x0.dtype)

    return run


def measure(fn, x0, key, repeats):
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(x0, key).compile()
    compile_s = time.perf_counter() - t
    jax.block_until_ready(compiled(x0, key))  # warm-up
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        out = jax.block_until_ready(compiled(x0, jr.fold_in(key, i + 1)))
        times.append(time.perf_counter() - t)
    return compile_s, float(np.median(times)), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chains", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    args = ap.parse_args()
    x0 = 0.5 * jr.normal(jr.key(0), (args.chains, 1), jnp.float32)  # in the bulk (see sdeml.MALA)
    key = jr.key(1)
    rows = []
    cases = [
        ("MALA", "sdeml.MALA (batched step)", sdeml_program(sdeml.MALA, 0.1, args.steps)),
        ("MALA", "blackjax.mala vmapped over chains", blackjax_mala_program(0.1, args.steps)),
        ("ULA", "sdeml.ULA (batched step)", sdeml_program(sdeml.ULA, 0.01, args.steps)),
        ("ULA", "per-chain ULA kernel vmapped (lax.scan)", vmapped_ula_program(0.01, args.steps)),
    ]
    finals = {}
    for algo, name, fn in cases:
        c, s, (x, acc) = measure(fn, x0, key, args.repeats)
        finals.setdefault(algo, []).append((name, np.asarray(x, np.float64)[:, 0], float(acc)))
        rows.append((algo, name, c, s, float(acc), float(jnp.mean(x**2))))
        print(
            f"{algo:5s} {name:42s} compile {c:7.2f} s  steady {s:8.3f} s  acc {float(acc):.3f}  "
            f"E[x^2] {rows[-1][-1]:.3f}",
            flush=True,
        )
    # a benchmark that silently compares different work must fail: both programs of an algorithm
    # sample the same law (the chains are independent: E[x^2] within 5 standard errors of the
    # difference of two sample means) with the same acceptance (MALA: within 0.01)
    for algo, ((n1, x1, a1), (n2, x2, a2)) in finals.items():
        m1, m2 = np.mean(x1**2), np.mean(x2**2)
        se = np.sqrt(np.var(x1**2) / x1.size + np.var(x2**2) / x2.size)
        assert abs(m1 - m2) <= 5 * se, (
            f"{algo}: E[x^2] {m1:.4f} ({n1}) vs {m2:.4f} ({n2}), se {se:.4f}"
        )
        assert abs(a1 - a2) <= 0.01, f"{algo}: acceptance {a1:.3f} ({n1}) vs {a2:.3f} ({n2})"
    by = {(r[0], r[1].split()[0].split(".")[0]): r for r in rows}
    mala_ratio = by[("MALA", "blackjax")][3] / by[("MALA", "sdeml")][3]
    ula_ratio = by[("ULA", "per-chain")][3] / by[("ULA", "sdeml")][3]
    mala_cratio = by[("MALA", "blackjax")][2] / by[("MALA", "sdeml")][2]
    ula_cratio = by[("ULA", "per-chain")][2] / by[("ULA", "sdeml")][2]
    lines = [
        "# Langevin samplers: sdeml batched kernels vs blackjax (vmapped per-chain kernels)",
        "",
        f"{args.chains} chains x {args.steps} steps as one jitted `lax.scan`, 1-D double well "
        "U = (x^2-1)^2, float32. Steady state: median of "
        f"{args.repeats} runs after a warm-up. Measured with "
        f"{machine_line()}; blackjax {blackjax.__version__}.",
        "",
        "| algorithm | implementation | compile (s) | steady state (s) | acceptance | E[x^2] |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {a} | {n} | {c:.2f} | {s:.3f} | {acc:.3f} | {m:.3f} |" for a, n, c, s, acc, m in rows
    ]
    lines += [
        "",
        f"Steady-state speed-up of sdeml: MALA {mala_ratio:.2f}x over blackjax, "
        f"ULA {ula_ratio:.2f}x over a vmapped per-chain kernel.",
        f"Compile-time ratio (peer / sdeml): MALA {mala_cratio:.2f}, ULA {ula_cratio:.2f}.",
        "(E[x^2] under the Gibbs law is 0.8327 for this target (0.8258 under ULA's own invariant "
        "law at h = 0.01). The script asserts that the two programs of each algorithm agree: "
        "E[x^2] within 5 standard errors, acceptance within 0.01.)",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines[-5:]))


if __name__ == "__main__":
    main()
