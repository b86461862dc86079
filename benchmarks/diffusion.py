"""Diffusion benchmarks: sdeml beside PyTorch, plain diffrax and scipy, in one run.

1. Reverse-SDE Euler-Maruyama, 1000 steps, 10k 2-D samples: sdeml vs a PyTorch loop with the
   same network and weights (the score_sde_pytorch predictor loop).
2. Probability-flow ODE (Tsit5, rtol = atol = 1e-5 asked, which float32 solves to rtol 1.19e-5,
   for every contender; 10k samples): sdeml vs a hand-written plain diffrax solve (asserted to
   take the same steps); NFE beside scipy's RK45 on the flattened batch (score_sde's own ODE
   sampler).
3. One DSM training step (batch 512, Adam): sdeml (`sdeml.train.make_step`, run by
   `sdeml.train.fit` as in every experiment, and called once per step from Python) vs PyTorch.

Compile time (first call minus a steady call) and steady-state time (median of repeats) are
reported separately. Writes benchmarks/diffusion.md. Run: python benchmarks/diffusion.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import roofline
import scipy.integrate
import torch
from _machine import machine_line, paired_quartiles

import sdeml
from sdeml.core import solver_info
from sdeml.train import fit, init_state, make_step

N_SAMPLES = int(os.environ.get("BENCH_N", 10_000))
N_STEPS = 1000
WIDTH, DEPTH = 256, 3
REPEATS = 3
FIT_CHUNKS = 6
PF_ROUNDS = 10  # sdeml, plain diffrax and the products alone, in a new order each round
EM_ROUNDS = 3  # the sampler and its products-only loop, in alternation
DSM_ROUNDS = 3
torch.set_num_threads(2)


def timed(fn, repeats=REPEATS):
    """(first-call time, median steady time) of fn() -> something blocking."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    steady = statistics.median(times)
    return max(first - steady, 0.0), steady


def timed_once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class TorchTimeMLP(torch.nn.Module):
    """The same architecture as sdeml.nn.TimeMLP, weights copied from it."""

    def __init__(self, jmodel: sdeml.nn.TimeMLP):
        super().__init__()

        def lin(l, bias=True):
            m = torch.nn.Linear(l.in_features, l.out_features, bias=bias)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.asarray(l.weight)))
                if bias:
                    m.bias.copy_(torch.from_numpy(np.asarray(l.bias)))
            return m

        self.register_buffer("W", torch.from_numpy(np.array(jmodel.embed.W)))
        self.layers = torch.nn.ModuleList([lin(l) for l in jmodel.layers])
        self.tproj = torch.nn.ModuleList([lin(l, False) for l in jmodel.time_proj])
        self.out = lin(jmodel.out)

    def forward(self, t, x):  # t: (n,), x: (n, d)
        proj = 2 * torch.pi * t[:, None] * self.W[None]
        e = torch.cat([torch.sin(proj), torch.cos(proj)], 1)
        h = torch.cat([x, e], 1)
        for i, (lin, tp) in enumerate(zip(self.layers, self.tproj, strict=True)):
            h = torch.nn.functional.silu(lin(h) + (tp(e) if i else 0.0))
        return self.out(h)


def torch_em(net, n, beta_min=0.1, beta_max=20.0, eps=1e-3):
    """score_sde_pytorch-style loop: VP, eps-network, reverse-SDE Euler-Maruyama."""
    with torch.no_grad():
        x = torch.randn(n, 2)
        h = (1.0 - eps) / N_STEPS
        for i in range(N_STEPS):
            t = 1.0 - i * h
            beta = beta_min + t * (beta_max - beta_min)
            ib = beta_min * t + 0.5 * (beta_max - beta_min) * t**2
            std = float(np.sqrt(-np.expm1(-ib)))
            score = -net(torch.full((n,), t), x) / std
            x = x - (-0.5 * beta * x - beta * score) * h + np.sqrt(beta * h) * torch.randn_like(x)
        return x


def assert_same_law(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """A benchmark that silently compares different work must fail: two samples of shape (n, d)
    with every coordinate's mean and second moment within 6 standard errors."""
    for k in (1, 2):
        xa, xb = a.astype(np.float64) ** k, b.astype(np.float64) ** k
        se = np.sqrt(xa.var(0) / len(xa) + xb.var(0) / len(xb))
        diff = np.abs(xa.mean(0) - xb.mean(0))
        assert np.all(diff <= 6 * se), f"{what}: moment {k} differs by {diff} (se {se})"


def main() -> None:
    rows = []
    key = jr.key(0)
    sde = sdeml.VPSDE()
    net = sdeml.nn.TimeMLP(2, WIDTH, DEPTH, embed_scale=4.0, key=key)
    model = sdeml.diffusion.ScoreModel(net, sde, "eps")
    tnet = TorchTimeMLP(net)
    xt = np.asarray(jr.normal(jr.key(1), (8, 2)))
    tt = np.linspace(0.1, 0.9, 8)
    out_j = np.asarray(jax.vmap(net)(jnp.asarray(tt, jnp.float32), jnp.asarray(xt, jnp.float32)))
    out_t = tnet(torch.tensor(tt, dtype=torch.float32), torch.tensor(xt, dtype=torch.float32))
    assert np.allclose(out_j, out_t.detach().numpy(), atol=1e-4), "torch copy differs"

    # 1. EM sampling
    em = eqx.filter_jit(
        lambda k: (
            sdeml.diffusion.euler_maruyama_sampler(
                model, sde, (N_SAMPLES, 2), n_steps=N_STEPS, denoise=False, key=k
            ).x
        )
    )
    t0 = time.perf_counter()
    em(key).block_until_ready()
    first_j = time.perf_counter() - t0
    torch_em(tnet, N_SAMPLES)  # torch's first run (allocator, thread pool)
    # the same work: both samplers draw from the same law (the same network, SDE and grid)
    assert_same_law(np.asarray(em(jr.key(7))), torch_em(tnet, N_SAMPLES).numpy(), "EM sampling")
    # sdeml, PyTorch and the GEMM roofline at the sampler's shapes (issue #18 item 3), in
    # alternating rounds: the ratios are quotients of timings, and this machine drifts by 10-15 %
    # between runs a minute apart (scratch, 12-06: products-only 10.7-12.5 s in four rounds; the
    # PyTorch loop took 17.3 s in one sitting and 29.0 s in another); each keeps its median
    products = roofline.em_products_runner(N_SAMPLES, N_STEPS)
    products()  # compile and first run
    em_t, torch_t, prod_t = [], [], []
    for _ in range(EM_ROUNDS):
        em_t.append(timed_once(lambda: em(key).block_until_ready()))
        torch_t.append(timed_once(lambda: torch_em(tnet, N_SAMPLES)))
        prod_t.append(timed_once(products))
    s_j, s_t, em_prod = (statistics.median(v) for v in (em_t, torch_t, prod_t))
    c_j = max(first_j - s_j, 0.0)
    em_flops = roofline.em_gemm_flops(N_SAMPLES, N_STEPS)
    print("EM done", c_j, s_j, s_t, em_prod, flush=True)
    rows.append(
        (
            f"EM sampling, {N_SAMPLES} x {N_STEPS} steps",
            "PyTorch loop",
            c_j,
            s_j,
            0.0,
            s_t,
            f"medians of {EM_ROUNDS} rounds, sdeml, PyTorch and the products-only loop in turn",
        )
    )

    # 2. PF-ODE. sdeml solves the float32 state to tolerances floored at what float32 resolves
    # (`sdeml.core.effective_tolerances`: rtol 1e-5 becomes 1.19e-5); plain diffrax and scipy are
    # handed the same, so that the step sequences are the same (before 2026-12-05 they got 1e-5
    # and took 175 evaluations to sdeml's 151: not like for like)
    rtol_pf, atol_pf = (float(v) for v in sdeml.core.effective_tolerances(1e-5, 1e-5, jnp.float32))
    xT = sde.prior_sample((N_SAMPLES, 2), key=jr.key(2))
    ode = eqx.filter_jit(
        lambda x: sdeml.diffusion.probability_flow_sampler(
            model, sde, (N_SAMPLES, 2), rtol=1e-5, atol=1e-5, x_T=x, key=key
        )
    )
    t0 = time.perf_counter()
    r = ode(xT)
    r.x.block_until_ready()
    first_o = time.perf_counter() - t0
    _, s_o = timed(lambda: ode(xT).x.block_until_ready())
    c_o = max(first_o - s_o, 0.0)
    nfe_sdeml = int(r.nfe)

    @eqx.filter_jit
    def plain(x):
        def vf(t, y, args):
            s = jax.vmap(lambda yy: -net(t, yy) / sde.sigma(t))(y)
            return -0.5 * sde.beta(t) * (y + s)  # f x - g^2 s / 2 for VP

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(vf),
            diffrax.Tsit5(),
            1.0,
            1e-3,
            None,
            x,
            stepsize_controller=diffrax.PIDController(rtol=rtol_pf, atol=atol_pf),
            max_steps=4096,
        )
        # NFE from the registry's tableau facts (6 new stages a step, FSAL), as sdeml counts it
        return sol.ys, solver_info("tsit5").nfe(sol.stats["num_steps"])

    held = []
    c_p, s_p = timed(lambda: held.append(plain(xT)) or held[-1][0].block_until_ready())
    nfe_plain = int(held[-1][1])  # from a timed call, not an extra solve
    assert nfe_plain == nfe_sdeml, f"PF-ODE: different work, NFE {nfe_sdeml} against {nfe_plain}"
    # the two solves do the same arithmetic (same solver, tolerances, steps): time them again
    # in alternation, so that a slow spell of the machine hits both, and keep each one's median.
    # With them, the solve's products alone (the network's matrix products at the same shapes,
    # `nfe` times, in a compiled loop): a products-bound solve cannot run faster than that, so
    # plain diffrax's time over it bounds the ratio any solver could reach against it
    pf_products = roofline.em_products_runner(N_SAMPLES, nfe_sdeml)
    pf_products()  # compile and first run
    pf_flops = roofline.em_gemm_flops(N_SAMPLES, nfe_sdeml)
    contenders = {
        "sdeml": lambda: ode(xT).x.block_until_ready(),
        "plain": lambda: plain(xT)[0].block_until_ready(),
        "products": pf_products,
    }
    alt = {"sdeml": [s_o], "plain": [s_p], "products": []}
    order, names = np.random.default_rng(0), list(contenders)
    for _ in range(PF_ROUNDS):
        for i in order.permutation(len(names)):  # a new order every round
            alt[names[i]].append(timed_once(contenders[names[i]]))
    s_o, s_p, pf_prod = (statistics.median(alt[k]) for k in ("sdeml", "plain", "products"))
    # the per-round ratios plain / sdeml (the two timed within one round; the first calls above
    # were not timed in the same round, so they stay out)
    pf_q = paired_quartiles(alt["sdeml"][1:], alt["plain"][1:])
    # the same work: the same end states from the same noises, to what the tolerances allow
    end_o, end_p = np.asarray(r.x), np.asarray(held[-1][0][-1])
    gap = float(np.max(np.abs(end_o - end_p)))
    assert gap < 1e-2, f"PF-ODE: sdeml and plain diffrax end states differ by {gap:.2e}"
    score_b = jax.jit(jax.vmap(model, in_axes=(None, 0)))
    nfe_scipy = [0]

    def f_np(t, y):
        nfe_scipy[0] += 1
        x = jnp.asarray(y.reshape(N_SAMPLES, 2), jnp.float32)
        return np.asarray(sde.probability_flow(score_b)(jnp.float32(t), x), np.float64).ravel()

    t0 = time.perf_counter()
    sol = scipy.integrate.solve_ivp(
        f_np, (1.0, 1e-3), np.asarray(xT).ravel(), rtol=rtol_pf, atol=atol_pf, method="RK45"
    )
    s_sc = time.perf_counter() - t0
    gap_sc = float(np.max(np.abs(sol.y[:, -1].reshape(N_SAMPLES, 2) - end_o)))
    assert gap_sc < 1e-2, f"PF-ODE: sdeml and scipy RK45 end states differ by {gap_sc:.2e}"
    print("ODE done", flush=True)
    rows.append(
        (
            f"PF-ODE Tsit5 1e-5, {N_SAMPLES}",
            "plain diffrax",
            c_o,
            s_o,
            c_p,
            s_p,
            f"NFE sdeml {nfe_sdeml}, plain diffrax {nfe_plain}, scipy RK45 {nfe_scipy[0]} "
            f"({s_sc:.2f} s, ok={sol.success}); steady: median of {PF_ROUNDS + 1} calls each, "
            f"alternating; per-round ratios {pf_q[0]:.2f}-{pf_q[1]:.2f} (quartiles)",
        )
    )

    # 3. DSM step
    bs = 512
    opt = optax.adam(1e-3)

    def loss_fn(m, batch, k):
        return sdeml.dsm_loss(m, sde, batch, key=k)

    step = make_step(loss_fn, opt, lambda k, s: sdeml.data.toy("moons", bs, key=k))
    state = init_state(model, opt, key)
    jstep = eqx.filter_jit(step)
    holder = [state]
    j_losses = []  # the losses of every step (device arrays: no sync inside the timed loop)

    def run_j():
        for _ in range(50):
            holder[0], m = jstep(holder[0])
            j_losses.append(m["loss"])
        jax.block_until_ready(m["loss"])

    c_s, _ = timed(run_j, repeats=1)
    topt = torch.optim.Adam(tnet.parameters(), lr=1e-3)

    # the torch loop gets its batches drawn beforehand, outside the timing (sdeml draws its batch
    # inside the compiled step): a comparison conservative for sdeml
    torch_batches = [
        torch.from_numpy(np.asarray(sdeml.data.toy("moons", bs, key=jr.key(i)))) for i in range(50)
    ]

    t_losses = []

    def run_t():
        for x0 in torch_batches:
            t = 1e-5 + (1 - 1e-5) * torch.rand(bs)
            ib = 0.1 * t + 0.5 * 19.9 * t**2
            a, s = torch.exp(-0.5 * ib), torch.sqrt(-torch.expm1(-ib))
            z = torch.randn_like(x0)
            loss = ((tnet(t, a[:, None] * x0 + s[:, None] * z) - z) ** 2).sum(1).mean()
            topt.zero_grad()
            loss.backward()
            topt.step()
            t_losses.append(loss.detach())

    timed(run_t, repeats=1)  # the same two calls as sdeml's per-call loop had (warm-up)
    # the three rows in alternation, DSM_ROUNDS times, each keeping its median (one fit run is
    # ~1.5 s: a single one is at the mercy of one slow spell of the machine). The way sdeml
    # trains: `sdeml.train.fit` runs the step in compiled chunks (here 50 steps per chunk,
    # metrics fetched after each), so no per-step Python dispatch
    fit_t, fit_c, j_t, t_t = [], [], [], []
    for _ in range(DSM_ROUNDS):
        # a new step function each round: `fit` reuses the program of an earlier call with the
        # same one, and each round times a freshly compiled program, as before that cache
        _, fs = fit(
            init_state(model, opt, key),
            lambda s: step(s),
            50 * FIT_CHUNKS,
            log_every=50,
            progress=False,
        )
        assert fs.compiled
        fit_t.append(50 * fs.step_time_s)
        fit_c.append(fs.compile_time_s)
        j_t.append(timed_once(run_j))
        t_t.append(timed_once(run_t))
    dsm_fit = statistics.median(fit_t)
    s_s, s_ts = statistics.median(j_t), statistics.median(t_t)
    # the same work: the same initial network, optimiser and number of steps reach the same loss
    # (mean of each side's last 50 steps; the batches and noises differ, hence 10 %)
    lj = float(np.mean([float(v) for v in j_losses[-50:]]))
    lt = float(np.mean([float(v) for v in t_losses[-50:]]))
    assert len(j_losses) == len(t_losses) and abs(lj - lt) <= 0.1 * lt, (
        f"DSM: sdeml's mean loss {lj:.4f} over {len(j_losses)} steps, torch's {lt:.4f} over "
        f"{len(t_losses)}"
    )
    dsm_prod = roofline.dsm_products_only(bs, 50)
    dsm_flops = roofline.dsm_gemm_flops(bs, 50)
    big = roofline.big_gemm_gflops(N_SAMPLES)
    note = "torch batches drawn before timing; sdeml draws its batch inside the step"
    rows.append(
        (
            "DSM step x50, batch 512 (Adam), sdeml.train.fit",
            "PyTorch",
            min(fit_c),
            dsm_fit,
            0.0,
            s_ts,
            f"{note}; sdeml: {FIT_CHUNKS} compiled chunks of 50 steps; the three DSM rows: "
            f"medians of {DSM_ROUNDS} rounds in alternation",
        )
    )
    rows.append(
        (
            "DSM step x50, batch 512 (Adam), one jitted call per step",
            "PyTorch",
            c_s,
            s_s,
            0.0,
            s_ts,
            f"{note}; sdeml: eqx.filter_jit step called from Python",
        )
    )

    lines = [
        "# Diffusion benchmarks",
        "",
        f"Measured with {machine_line()};"
        f" torch {torch.__version__}, float32, network TimeMLP width {WIDTH} depth {DEPTH}.",
        "Compile = first call minus steady call; steady = median of repeats. Ratio = peer steady "
        "/ sdeml steady (> 1: sdeml faster). The script asserts that each pair does the same "
        "work: EM samples with the same first and second moments (6 standard errors), PF-ODE end "
        "states within 1e-2 (plain diffrax and scipy), DSM losses within 10 %.",
        "",
        "| task | peer | sdeml compile (s) | sdeml steady (s) | peer compile (s) "
        "| peer steady (s) | ratio | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, peer, cj, sj, cp, sp, note in rows:
        lines.append(
            f"| {task} | {peer} | {cj:.2f} | {sj:.3f} | {cp:.2f} | {sp:.3f} | "
            f"{sp / sj:.2f} | {note} |"
        )
    lines += [
        "",
        "Roofline, measured in this run (`benchmarks/roofline.py`; float32): the network's largest "
        f"product `({N_SAMPLES}, {WIDTH}) @ ({WIDTH}, {WIDTH})` runs at {big:.0f} GFLOP/s. "
        "*Products-only*: a compiled loop of the same structure doing exactly the network's "
        "matrix products and nothing else.",
        "",
        "| task | GEMM FLOPs | products-only (s) | its GFLOP/s | sdeml (s) | sdeml GFLOP/s "
        "| fraction of the roofline | PyTorch (s) | PyTorch / products-only |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| EM sampling, {N_SAMPLES} x {N_STEPS} steps | {em_flops / 1e9:.1f} G | {em_prod:.3f} "
        f"| {em_flops / em_prod / 1e9:.0f} | {s_j:.3f} | {em_flops / s_j / 1e9:.0f} "
        f"| **{100 * em_prod / s_j:.0f}%** | {s_t:.3f} | {s_t / em_prod:.2f} |",
        f"| DSM step x50, batch {bs}, fit | {dsm_flops / 1e9:.2f} G | {dsm_prod:.3f} "
        f"| {dsm_flops / dsm_prod / 1e9:.0f} | {dsm_fit:.3f} | {dsm_flops / dsm_fit / 1e9:.0f} "
        f"| **{100 * dsm_prod / dsm_fit:.0f}%** | {s_ts:.3f} | {s_ts / dsm_prod:.2f} |",
        "",
        "*PyTorch / products-only* is the largest ratio sdeml could reach against PyTorch on "
        "this machine: the ratio if sdeml ran at 100 % of XLA's GEMM rate at these shapes and did "
        "nothing but the products. Where it is below a target, the target is out of reach on "
        "this CPU with XLA's matrix products.",
        "",
        "The PF-ODE solve against the same bound: its products alone are the network's products "
        f"at ({N_SAMPLES}, ...), {nfe_sdeml} times (its evaluations), timed in alternation with "
        "both solves. *plain diffrax / products-only* is the largest ratio any solver with the "
        "same steps could reach against plain diffrax here.",
        "",
        "| task | GEMM FLOPs | products-only (s) | sdeml (s) | sdeml's fraction "
        "| plain diffrax (s) | its fraction | plain diffrax / products-only |",
        "|---|---|---|---|---|---|---|---|",
        f"| PF-ODE Tsit5 1e-5, {N_SAMPLES}, {nfe_sdeml} evaluations | {pf_flops / 1e9:.1f} G "
        f"| {pf_prod:.3f} | {s_o:.3f} | **{100 * pf_prod / s_o:.0f}%** | {s_p:.3f} "
        f"| {100 * pf_prod / s_p:.0f}% | {s_p / pf_prod:.3f} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if "--no-write" not in sys.argv:
        (Path(__file__).parent / "diffusion.md").write_text(text)


if __name__ == "__main__":
    main()
