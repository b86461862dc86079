"""Matmul-bound work against this machine's own GEMM rate (issue #18, item 3).

For the diffusion EM sampler and the DSM training step (the `TimeMLP` score network of
`benchmarks/diffusion.py`), this measures in one process:

* the XLA GEMM rate at the network's own shapes: a compiled loop that does exactly the network's
  matrix products (the same shapes, steps and loop structure) and nothing else, plus the rate of
  the largest single product ``(n, width) @ (width, width)``;
* sdeml's sampler / training step on the same shapes, and the fraction of the GEMM-only time it
  reaches (GEMM-only time / sdeml time: 1.0 would mean everything but the products is free).

`--variants` reruns that process under XLA CPU flags (one process per variant: XLA reads its
flags once) and writes benchmarks/roofline.md: what each flag gave. Flags XLA rejects are
reported as such. `--no-write` prints only.

    python benchmarks/roofline.py                 # this process's flags, a table on stdout
    python benchmarks/roofline.py --variants      # every variant, writes benchmarks/roofline.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# the network and sizes of benchmarks/diffusion.py (n samples / batch, width, depth, embedding)
D, WIDTH, DEPTH, EMBED = 2, 256, 3, 32
N_SAMPLES, EM_STEPS = 10_000, 250
BATCH, DSM_STEPS = 512, 50
REPEATS = 5

VARIANTS = [
    ("default", ""),
    ("xnnpack", "--xla_cpu_use_xnnpack=true"),
    ("oneDNN", "--xla_cpu_use_onednn=true"),
    ("512-bit vectors", "--xla_cpu_prefer_vector_width=512"),
    ("no multi-threaded Eigen", "--xla_cpu_multi_thread_eigen=false"),
    ("fast math (changes rounding; not adoptable)", "--xla_cpu_enable_fast_math=true"),
]


def em_gemm_flops(n: int = N_SAMPLES, steps: int = EM_STEPS) -> float:
    """The network's matrix-product FLOPs over one EM sampling run: per step and sample
    2 (d w + (depth - 1) w^2 + w d); the time embedding's products are one per step for the whole
    batch (every sample shares t) and left out."""
    per_sample = 2 * (D * WIDTH + (DEPTH - 1) * WIDTH * WIDTH + WIDTH * D)
    return float(per_sample) * n * steps


def dsm_gemm_flops(batch: int = BATCH, steps: int = DSM_STEPS) -> float:
    """The products of DSM training steps: each sample has its own t, so the embedding's
    products (e w per layer) count too; backward = 2 x forward (input and weight gradients)."""
    fwd = 2 * (D * WIDTH + (DEPTH - 1) * WIDTH * WIDTH + WIDTH * D + DEPTH * EMBED * WIDTH)
    return 3.0 * fwd * batch * steps


def _best(fn, repeats=REPEATS) -> float:
    fn()  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _weights():
    import jax.numpy as jnp
    import jax.random as jr

    f32 = jnp.float32
    ks = jr.split(jr.key(1), 2 * DEPTH + 2)
    a_in = jr.normal(ks[0], (D, WIDTH), f32) / D**0.5
    hidden = [jr.normal(ks[1 + i], (WIDTH, WIDTH), f32) / WIDTH**0.5 for i in range(DEPTH - 1)]
    a_out = jr.normal(ks[DEPTH], (WIDTH, D), f32) / WIDTH**0.5
    e_proj = [jr.normal(ks[DEPTH + 1 + i], (EMBED, WIDTH), f32) / EMBED**0.5 for i in range(DEPTH)]
    return a_in, hidden, a_out, e_proj


def em_products_only(n: int = N_SAMPLES, steps: int = EM_STEPS, repeats: int = REPEATS) -> float:
    """Seconds of a compiled scan over `steps` that does exactly the EM sampler's network
    products at batch `n` (and one axpy to chain the steps), nothing else: the GEMM roofline of
    the sampler at these shapes."""
    return _best(em_products_runner(n, steps), repeats)


def em_products_runner(n: int = N_SAMPLES, steps: int = EM_STEPS):
    """``run()``: one blocking run of `em_products_only`'s compiled loop (compiled on the first
    call), for callers that time it in alternation with the sampler itself."""
    import jax
    import jax.random as jr

    a_in, hidden, a_out, _ = _weights()
    x0 = jr.normal(jr.key(2), (n, D), a_in.dtype)

    @jax.jit
    def em_gemm(x):
        def body(x, _):
            h = x @ a_in
            for a in hidden:
                h = h @ a
            return x + 1e-3 * (h @ a_out), None

        return jax.lax.scan(body, x, None, length=steps)[0]

    return lambda: em_gemm(x0).block_until_ready()


def dsm_products_only(batch: int = BATCH, steps: int = DSM_STEPS) -> float:
    """Seconds of a compiled loop of `steps` gradient steps of the network's products alone
    (forward and backward at the training shapes, per-sample time embedding), nothing else."""
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    a_in, hidden, a_out, e_proj = _weights()
    params = (a_in, tuple(hidden), a_out, tuple(e_proj))
    xb = jr.normal(jr.key(5), (batch, D), a_in.dtype)
    eb = jr.normal(jr.key(6), (batch, EMBED), a_in.dtype)

    def chain(p):
        a0, hs, ao, ep = p
        h = xb @ a0 + eb @ ep[0]
        for a, e in zip(hs, ep[1:], strict=True):
            h = h @ a + eb @ e
        return jnp.sum(h @ ao)

    @jax.jit
    def dsm_gemm(p):
        def body(i, p):
            g = jax.grad(chain)(p)
            return jax.tree.map(lambda w, gw: w - 1e-9 * gw, p, g)

        return jax.lax.fori_loop(0, steps, body, p)

    return _best(lambda: jax.block_until_ready(dsm_gemm(params)))


def big_gemm_gflops(n: int = N_SAMPLES) -> float:
    """GFLOP/s of the network's largest product, ``(n, width) @ (width, width)``, 20 in a loop."""
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    big = jax.jit(lambda h, a: jax.lax.fori_loop(0, 20, lambda i, h: h @ a, h))
    h0 = jr.normal(jr.key(3), (n, WIDTH), jnp.float32)
    a_sq = jnp.eye(WIDTH, dtype=jnp.float32)
    return 20 * 2.0 * n * WIDTH * WIDTH / _best(lambda: big(h0, a_sq).block_until_ready()) / 1e9


def measure() -> dict:
    """One process's measurements (its XLA flags as set in the environment)."""
    import equinox as eqx
    import jax
    import jax.random as jr
    import optax

    import sdeml
    from sdeml.train import fit, init_state, make_step

    key = jr.key(0)
    sde = sdeml.VPSDE()
    net = sdeml.nn.TimeMLP(D, WIDTH, DEPTH, embed_dim=EMBED, embed_scale=4.0, key=key)
    model = sdeml.diffusion.ScoreModel(net, sde, "eps")
    em = eqx.filter_jit(
        lambda k: (
            sdeml.diffusion.euler_maruyama_sampler(
                model, sde, (N_SAMPLES, D), n_steps=EM_STEPS, denoise=False, key=k
            ).x
        )
    )
    t_gemm = em_products_only()
    t_em = _best(lambda: em(key).block_until_ready())
    t_dsm_gemm = dsm_products_only()
    opt = optax.adam(1e-3)
    step = make_step(
        lambda m, batch, k: sdeml.dsm_loss(m, sde, batch, key=k),
        opt,
        lambda k, s: sdeml.data.toy("moons", BATCH, key=k),
    )
    _, stats = fit(
        init_state(model, opt, key), step, DSM_STEPS * 6, log_every=DSM_STEPS, progress=False
    )
    t_dsm = DSM_STEPS * stats.step_time_s
    jax.clear_caches()
    return {
        "flags": os.environ.get("XLA_FLAGS", ""),
        "big_gemm_gflops": big_gemm_gflops(),
        "em_gemm_s": t_gemm,
        "em_gemm_gflops": em_gemm_flops() / t_gemm / 1e9,
        "em_s": t_em,
        "em_gflops": em_gemm_flops() / t_em / 1e9,
        "em_fraction": t_gemm / t_em,
        "dsm_gemm_s": t_dsm_gemm,
        "dsm_gemm_gflops": dsm_gemm_flops() / t_dsm_gemm / 1e9,
        "dsm_s": t_dsm,
        "dsm_fraction": t_dsm_gemm / t_dsm,
    }


def row(name: str, r: dict) -> str:
    return (
        f"| {name} | {r['big_gemm_gflops']:.0f} | {r['em_gemm_gflops']:.0f} | "
        f"{r['em_gemm_s']:.3f} | {r['em_s']:.3f} | {r['em_gflops']:.0f} | "
        f"**{100 * r['em_fraction']:.0f}%** | {r['dsm_gemm_s'] * 1e3:.1f} | "
        f"{r['dsm_s'] * 1e3:.1f} | **{100 * r['dsm_fraction']:.0f}%** |"
    )


HEADER = [
    "| XLA flags | GEMM (n,256)@(256,256) GFLOP/s | EM products-only GFLOP/s "
    "| EM products-only (s) | sdeml EM sampler (s) | sdeml EM GFLOP/s | EM fraction "
    "| DSM products-only x50 (ms) | sdeml DSM x50, fit (ms) | DSM fraction |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", action="store_true", help="every XLA flag variant, a table")
    p.add_argument("--json", action="store_true", help="(internal) one JSON line")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    if args.json:
        print("ROOFLINE " + json.dumps(measure()), flush=True)
        return
    sys.path.insert(0, str(HERE))
    from _machine import machine_line  # the load at the start is read on import

    if not args.variants:
        print("\n".join(HEADER + [row(os.environ.get("XLA_FLAGS", "") or "default", measure())]))
        return
    lines = []
    for name, flags in VARIANTS:
        env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
        out = subprocess.run(
            [sys.executable, __file__, "--json"], env=env, capture_output=True, text=True
        )
        rec = [ln for ln in out.stdout.splitlines() if ln.startswith("ROOFLINE ")]
        label = f"{name} (`{flags}`)" if flags else name
        if out.returncode or not rec:
            why = (out.stderr.strip().splitlines() or ["no output"])[-1][:120]
            lines.append(f"| {label} | not accepted: {why} |" + " |" * 8)
        else:
            lines.append(row(label, json.loads(rec[0].removeprefix("ROOFLINE "))))
        print(lines[-1], flush=True)
    text = "\n".join(
        [
            "# Roofline: matmul-bound work against this machine's GEMM rate",
            "",
            f"Measured with {machine_line()}; float32. Generated by `benchmarks/roofline.py "
            "--variants` (one process per XLA flag setting).",
            "",
            f"The score network of `benchmarks/diffusion.py` (TimeMLP, d = {D}, width {WIDTH}, "
            f"depth {DEPTH}, time embedding {EMBED}). EM: {N_SAMPLES} samples x {EM_STEPS} "
            f"steps ({em_gemm_flops() / 1e9:.1f} GFLOP of products). DSM: batch {BATCH}, "
            f"{DSM_STEPS} Adam steps through `sdeml.train.fit` ({dsm_gemm_flops() / 1e9:.2f} "
            "GFLOP of products, backward counted as 2x forward). *Products-only*: a compiled "
            "loop of the same structure doing exactly the network's matrix products and nothing "
            "else (the GEMM roofline at these shapes); *fraction* = products-only time / sdeml's "
            "time. Best of 5 calls after compilation.",
            "",
            *HEADER,
            *lines,
        ]
    )
    print(text)
    if not args.no_write:
        (HERE / "roofline.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
