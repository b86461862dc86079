"""Theme loops before/after the one core (issue #16): steady-state time, two trees side by side.

Times the same workloads against two source trees of sdeml, each in its own process (the tree
first on PYTHONPATH), interleaved over rounds; each entry is the best of `--repeats` calls after
a warm-up call (compile excluded), and the best over rounds. Cases:

* the engine itself (`simulate`, moved into `sdeml.core`): OU terminal values and GBM snapshots;
* probability-flow ODE sampling and a neural ODE training step, now through the core ODE front;

* diffusion: reverse-SDE Euler-Maruyama sampling, VP SDE, 1000 steps, 10 000 samples in 2-D,
  a small MLP score (width 64, depth 2), float32;
* ULA / MALA on the 1-D double well (10 000 chains x 2000 steps, float32, as
  benchmarks/langevin.py); SGLD on a Gaussian mean (N = 1000, B = 32, 1000 chains x 1000
  steps); ULA run by `sdeml.simulate` on `ULA(...).sde` (after-tree only);
* `SGDSDE.simulate` (2-D quadratic, frozen noise: 10 000 paths x 1000 steps; state-dependent
  noise, N = 256: 1000 paths x 500 steps), float32;
* `simulate_scalar_sde`, double well, 100 000 paths x 2000 steps saved every 400, float32 and
  float64.

The load average (1 min) is recorded beside every measurement: on a shared machine, re-run on a
quiet one before reading small differences.

    python benchmarks/themes_engine.py BEFORE_TREE [--after AFTER_TREE] [--rounds 2]
        [--repeats 3] [--cases diffusion_em,ula,...] [--out benchmarks/themes_engine.md]

(`git worktree add /tmp/before 911051b` makes a BEFORE_TREE.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "em_ou": "simulate: OU d=1, 100k paths x 1000 steps, terminal (float32)",
    "em_gbm_snap": "simulate: GBM, 10k paths x 1000 steps, 100 snapshots (float32)",
    "pf_ode": "probability-flow ODE sampling, Tsit5, 2000 samples, MLP score",
    "node_step": "neural ODE training step (spiral, MLPField cubic, Tsit5, jit(grad))",
    "diffusion_em": "diffusion reverse-SDE EM (1000 steps, 10k samples, MLP score)",
    "ula": "ULA, double well (10k chains x 2000 steps)",
    "mala": "MALA, double well (10k chains x 2000 steps)",
    "sgld": "SGLD, Gaussian mean (1000 chains x 1000 steps, B = 32)",
    "ula_engine": "ULA on the engine: simulate(ULA(...).sde) (10k chains x 2000 steps)",
    "sgdsde_frozen": "SGDSDE.simulate, frozen noise (10k paths x 1000 steps)",
    "sgdsde_state": "SGDSDE.simulate, state-dependent noise (1000 paths x 500 steps)",
    "scalar_f32": "simulate_scalar_sde, float32 (100k paths x 2000 steps)",
    "scalar_f64": "simulate_scalar_sde, float64 (100k paths x 2000 steps)",
}


MIN_TOTAL = 1.0  # seconds of timed calls per case and round, at least


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"unknown, {os.cpu_count()} cores"


def _loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def _build(case: str):
    """(function of a key, needs x64) for one case, in the tree found on sys.path."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    import sdeml
    from sdeml import diffusion, langevin, optim_dynamics

    if case == "em_ou":
        ou = sdeml.sde.OrnsteinUhlenbeck(1.0, 0.0, 0.5)
        return lambda k: sdeml.simulate(ou, jnp.zeros(1), n_steps=1000, n_paths=100_000, key=k).xs
    if case == "em_gbm_snap":
        gbm = sdeml.sde.GeometricBrownianMotion(0.5, 0.8)
        return lambda k: (
            sdeml.simulate(gbm, jnp.ones(1), n_steps=1000, n_paths=10_000, save_every=10, key=k).xs
        )
    if case == "pf_ode":
        mlp = eqx.nn.MLP(3, 2, 64, 2, activation=jax.nn.silu, key=jr.key(0))
        score = lambda t, x: mlp(jnp.concatenate([x, jnp.reshape(t, (1,))]))
        sde = diffusion.VPSDE()
        return lambda k: diffusion.probability_flow_sampler(score, sde, (2000, 2), key=k).x
    if case == "node_step":
        from sdeml import neural_ode

        field = neural_ode.MLPField(2, 50, 1, power=3, time_dependent=False, key=jr.key(0))
        ts = jnp.linspace(0.0, 2.0, 40)
        y0 = jnp.array([2.0, 0.0])
        target = jnp.stack([2.0 * jnp.cos(ts), -2.0 * jnp.sin(ts)], axis=-1)
        node = neural_ode.NeuralODE(field, solver="tsit5", rtol=1e-5, atol=1e-6)

        def loss(model):
            return jnp.mean((model(ts, y0) - target) ** 2)

        grad = eqx.filter_grad(loss)
        return lambda k: jax.tree_util.tree_leaves(eqx.filter(grad(node), eqx.is_array))
    if case == "diffusion_em":
        mlp = eqx.nn.MLP(3, 2, 64, 2, activation=jax.nn.silu, key=jr.key(0))
        score = lambda t, x: mlp(jnp.concatenate([x, jnp.reshape(t, (1,))]))
        sde = diffusion.VPSDE()
        return lambda k: (
            diffusion.euler_maruyama_sampler(score, sde, (10_000, 2), n_steps=1000, key=k).x
        )
    if case in ("ula", "mala", "ula_engine"):
        u = lambda x: (x[0] ** 2 - 1.0) ** 2
        x0 = 0.5 * jr.normal(jr.key(0), (10_000, 1), jnp.float32)
        if case == "ula_engine":
            ula = langevin.ULA(u, step_size=0.01)
            if not hasattr(ula, "sde"):
                return None
            return lambda k: (
                sdeml.core.simulate(
                    ula.sde, x0, t1=20.0, n_steps=2000, n_paths=10_000, x0_per_path=True, key=k
                ).xs
            )
        kernel = (langevin.ULA if case == "ula" else langevin.MALA)(
            u, step_size=0.01 if case == "ula" else 0.1
        )
        return lambda k: langevin.run_chains(kernel, kernel.init(x0), 2000, key=k)[0].position
    if case == "sgld":
        xd = 1.0 + jr.normal(jr.key(1), (1000,), jnp.float32)
        sgld = langevin.SGLD(
            lambda th, xi: -0.5 * (th[0] - xi) ** 2,
            lambda th: -0.5 * th[0] ** 2 / 100.0,
            xd,
            batch_size=32,
            step_size=1e-4,
            replace=True,
        )
        x0 = jnp.ones((1000, 1), jnp.float32)
        return lambda k: langevin.run_chains(sgld, sgld.init(x0), 1000, key=k)[0].position
    if case.startswith("sgdsde"):
        n_data = 256
        xd = jr.normal(jr.key(2), (n_data, 2), jnp.float32)
        yd = xd @ jnp.array([1.0, -2.0]) + 0.5 * jr.normal(jr.key(3), (n_data,))
        loss_i = lambda w, xy: 0.5 * (xy[0] @ w - xy[1]) ** 2
        w_hat = jnp.linalg.lstsq(xd, yd)[0]
        if case == "sgdsde_frozen":
            cov = optim_dynamics.gradient_noise_cov(loss_i, w_hat, (xd, yd))
            sde = optim_dynamics.SGDSDE(loss_i, (xd, yd), lr=0.05, batch_size=16, noise_cov=cov)
            th0 = jnp.tile(w_hat, (10_000, 1))
            return lambda k: sde.simulate(th0, 10.0, 1000, 100, key=k)
        sde = optim_dynamics.SGDSDE(loss_i, (xd, yd), lr=0.05, batch_size=16)
        th0 = jnp.tile(w_hat, (1000, 1))
        return lambda k: sde.simulate(th0, 5.0, 500, 50, key=k)
    if case.startswith("scalar"):
        dtype = jnp.float64 if case == "scalar_f64" else jnp.float32
        x0 = 1.5 + 0.3 * jr.normal(jr.key(4), (100_000,), dtype)
        drift = lambda t, x: -4 * x * (x**2 - 1)
        diff = lambda t, x: jnp.sqrt(jnp.asarray(2.0, x.dtype)) + 0 * x
        return lambda k: langevin.simulate_scalar_sde(drift, diff, x0, 0.0, 1.0, 2000, 400, key=k)[
            1
        ]
    raise ValueError(f"unknown case {case!r}; valid: {', '.join(CASES)}")


def _child(case: str, repeats: int) -> None:
    import jax

    if case == "scalar_f64":
        jax.config.update("jax_enable_x64", True)
    import jax.random as jr

    import sdeml

    fn = _build(case)
    if fn is None:
        print(json.dumps({"time": None}))
        return
    f = jax.jit(fn)
    jax.block_until_ready(f(jr.key(0)))  # compile + warm-up
    load = _loadavg()
    # best of at least `repeats` calls, and of enough calls to fill MIN_TOTAL seconds (sub-ms
    # cases such as the neural ODE step need hundreds of calls for a stable minimum)
    best, spent, i = float("inf"), 0.0, 0
    while i < repeats or spent < MIN_TOTAL:
        t = time.perf_counter()
        jax.block_until_ready(f(jr.key(i + 1)))
        dt = time.perf_counter() - t
        best, spent, i = min(best, dt), spent + dt, i + 1
    print(json.dumps({"time": best, "load": load, "sdeml": str(Path(sdeml.__file__).parent)}))


def _run(tree: str, case: str, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, "--repeats", str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        return {"time": None, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", nargs="?", help="source tree of the 'before' sdeml")
    ap.add_argument("--after", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--out", default=None, help="also write the Markdown table here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.repeats)
        return
    if not args.before:
        ap.error("give the path of the 'before' source tree")
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}; valid: {', '.join(CASES)}")
    trees = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    best: dict = {(c, w): {"time": None} for c in cases for w in trees}
    for r in range(args.rounds):
        for c in cases:
            for which, tree in trees.items():  # interleaved: before, after, before, after, ...
                res = _run(tree, c, args.repeats)
                t_old = best[(c, which)].get("time")
                if res.get("time") is not None and (t_old is None or res["time"] < t_old):
                    best[(c, which)] = res
                elif t_old is None and "error" in res:
                    best[(c, which)] = res
                print(f"round {r} {c:14s} {which:6s} {res}", file=sys.stderr, flush=True)
    lines = [
        "| case | before (s) | load | after (s) | load | after / before |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        b, a = best[(c, "before")], best[(c, "after")]
        tb, ta = b.get("time"), a.get("time")

        def cell(t):
            return "n/a" if t is None else f"{t:.4g}"

        def ld(x):
            return "" if x.get("time") is None else f"{x['load']:.2f}"

        ratio = "" if tb is None or ta is None else f"{ta / tb:.2f}"
        lines.append(f"| {CASES[c]} | {cell(tb)} | {ld(b)} | {cell(ta)} | {ld(a)} | {ratio} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(
            f"# Theme loops on the SDE engine: before ({trees['before']}) vs after "
            f"({trees['after']})\n\nCPU: {_cpu()}. Best of at least {args.repeats} calls (and "
            f"at least {MIN_TOTAL:g} s of calls) after compile, best of "
            f"{args.rounds} interleaved rounds; load = 1-min load average at the measurement.\n\n"
            + table
            + "\n"
        )


if __name__ == "__main__":
    main()
