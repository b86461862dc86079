"""The accelerator check (issue #19, item 6): one script a GPU machine runs end to end, writing one
Markdown table. It runs unchanged on a CPU (``--quick`` there, to check the script itself).

Sections, each timed side by side on the same device, steady state (compilation excluded, the
best of several calls):

1. the device tests (``pytest -m device``: sharded simulation, sharded sweeps);
2. Euler–Maruyama throughput: ``sdeml.simulate`` against a hand-written ``lax.scan`` and a
   batched ``diffrax.diffeqsolve`` (GBM and OU d = 16, terminal values, 1000 steps);
3. diffusion sampling: ``sdeml.diffusion.euler_maruyama_sampler`` against a hand-written reverse
   Euler–Maruyama ``lax.scan`` with the same score network;
4. neural ODE: one training step of ``sdeml.NeuralODE`` (Tsit5, checkpointed adjoint) against
   the same step written on ``diffrax.diffeqsolve``;
5. a sweep of 64 grid points (``sdeml run quickstart``, 32 seeds x 2 learning rates) as one
   process, against separate runs of single points (a few measured, the mean scaled to 64).

Matmul precision and dtype are recorded in the table's header.

    bash benchmarks/device_check.sh                    # installs, then runs this
    python benchmarks/device_check.py --quick          # small sizes, any machine
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _machine  # noqa: E402
import diffrax  # noqa: E402
import em_throughput as em  # noqa: E402
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import optax  # noqa: E402

import sdeml  # noqa: E402


def _best(fn, arg_next, repeats=5):
    fn(arg_next(-1))  # compile
    return em.steady_seconds(fn, arg_next, repeats)


def section_tests(quick: bool) -> list[str]:
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "device", "-q", "-p", "no:cacheprovider", "-n", "0"],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
    )
    log_dir = Path(os.environ.get("SDEML_DEVICE_LOG_DIR", tempfile.gettempdir()))
    (log_dir / "device_tests.log").write_text(done.stdout + done.stderr)
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    status = "pass" if done.returncode == 0 else f"FAIL (exit {done.returncode})"
    return [
        f"| device tests (`pytest -m device`) | {last} | | {status}, "
        f"{time.perf_counter() - t:.0f} s |"
    ]


def section_em(quick: bool) -> list[str]:
    sizes = [10**4] if quick else [10**5, 10**6]
    rows = []
    for name in ("GBM", "OU d=16"):
        sde, shape, *_ = em.problems()[name]
        for n in sizes:
            key = lambda r: jr.key(r + 1)
            s = _best(jax.jit(em.make_sdeml(sde, shape, n, False)), key)
            sc = _best(em.make_scan(sde, shape, n, False), key)
            dx = _best(em.make_diffrax(sde, shape, n, False, "batched"), key)
            rows.append(
                f"| EM {name}, {n:.0e} paths x 1000 steps | sdeml {s * 1e3:.1f} ms | scan "
                f"{sc * 1e3:.1f} ms, diffrax {dx * 1e3:.1f} ms | scan/sdeml {sc / s:.2f}x, "
                f"diffrax/sdeml {dx / s:.2f}x |"
            )
    return rows


def section_diffusion(quick: bool) -> list[str]:
    n, steps = (1000, 100) if quick else (100_000, 500)
    sde = sdeml.diffusion.VPSDE()
    net = sdeml.nn.TimeMLP(2, width=128 if quick else 256, depth=3, key=jr.key(0))
    score = lambda t, x: net(t, x)

    def ours(key):
        return sdeml.diffusion.euler_maruyama_sampler(
            score, sde, (n, 2), n_steps=steps, denoise=False, key=key
        ).x

    @jax.jit
    def scan(key):
        eps = 1e-3
        h = (sde.T - eps) / steps
        k0, key = jr.split(key)
        x = jr.normal(k0, (n, 2))
        batched = jax.vmap(score, in_axes=(None, 0))

        def body(carry, i):
            x, k = carry
            k, sub = jr.split(k)
            t = sde.T - i * h
            f, g = sde.drift(t, x, None), sde.diffusion_coef(t)
            x = x - (f - g**2 * batched(t, x)) * h + g * jnp.sqrt(h) * jr.normal(sub, x.shape)
            return (x, k), None

        return jax.lax.scan(body, (x, key), jnp.arange(steps))[0][0]

    key = lambda r: jr.key(r + 7)
    a = _best(jax.jit(ours), key, 3)
    b = _best(scan, key, 3)
    return [
        f"| diffusion EM sampling, {n:.0e} samples x {steps} steps, MLP | sdeml {a * 1e3:.1f} ms "
        f"| hand-written scan {b * 1e3:.1f} ms | scan/sdeml {b / a:.2f}x |"
    ]


def section_node(quick: bool) -> list[str]:
    batch, width = (64, 32) if quick else (1024, 128)
    ts = jnp.linspace(0.0, 1.0, 20)
    mlp = eqx.nn.MLP(2, 2, width, 2, activation=jnp.tanh, key=jr.key(0))
    y0 = jr.normal(jr.key(1), (batch, 2))
    target = jnp.sin(ts)[None, :, None] * y0[:, None, :]
    opt = optax.adam(1e-3)

    class Field(eqx.Module):
        mlp: eqx.nn.MLP

        def __call__(self, t, y, args):
            return self.mlp(y)

    field = Field(mlp)
    node = sdeml.NeuralODE(field, solver="tsit5", rtol=1e-5, atol=1e-7)
    rtol_eff, atol_eff = (float(v) for v in sdeml.core.effective_tolerances(1e-5, 1e-7, y0.dtype))

    def loss_ours(f):
        m = eqx.tree_at(lambda n: n.func, node, f)
        return jnp.mean((jax.vmap(lambda y: m(ts, y))(y0) - target) ** 2)

    def loss_diffrax(f):
        def one(y):
            return diffrax.diffeqsolve(
                diffrax.ODETerm(f), diffrax.Tsit5(), ts[0], ts[-1], None, y,
                saveat=diffrax.SaveAt(ts=ts),
                # the tolerances sdeml solves float32 to (rtol 1.19e-5, atol 1.19e-6): the
                # same steps on both sides (before 2026-12-05 this side had 1e-5 / 1e-7)
                stepsize_controller=diffrax.PIDController(rtol=rtol_eff, atol=atol_eff),
                adjoint=diffrax.RecursiveCheckpointAdjoint(), max_steps=4096,
            ).ys  # fmt: skip

        return jnp.mean((jax.vmap(one)(y0) - target) ** 2)

    def stepper(loss):
        @eqx.filter_jit
        def step(f, s):
            g = eqx.filter_grad(loss)(f)
            u, s = opt.update(g, s)
            return eqx.apply_updates(f, u), s

        return step

    times = []
    for loss in (loss_ours, loss_diffrax):
        step, s = stepper(loss), opt.init(eqx.filter(field, eqx.is_array))
        f = field
        f, s = step(f, s)
        jax.block_until_ready(f)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            f, s = step(f, s)
            jax.block_until_ready(f)
            best = min(best, time.perf_counter() - t)
        times.append(best)
    a, b = times
    return [
        f"| neural ODE training step, batch {batch}, MLP width {width}, Tsit5 | sdeml "
        f"{a * 1e3:.1f} ms | diffrax {b * 1e3:.1f} ms | diffrax/sdeml {b / a:.2f}x |"
    ]


def _run_cli(args: list[str], out: Path) -> float:
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sdeml", "run", *args, "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return time.perf_counter() - t


def section_sweep(quick: bool) -> list[str]:
    """Issue #19: the diffusion quickstart at 64 points (32 seeds x 2 learning rates) as one
    sweep against separate runs, with `benchmarks/sweeps.py`'s reduced evaluation on both sides
    (a few separate runs measured, their mean scaled to 64)."""
    import sweeps

    n_points, n_single = (8, 2) if quick else (64, 3)
    base = ["quickstart", "train.steps=300", "train.log_every=100", *sweeps.EVAL]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        grid = f"sweep={{seed: {list(range(n_points // 2))}, train.lr: {sweeps.LRS}}}"
        one = _run_cli([*base, grid], root / "sweep")
        singles = [
            _run_cli([*base, f"seed={s}", f"train.lr={sweeps.LRS[s % 2]}"], root / f"s{s}")
            for s in range(n_single)
        ]
        (summary,) = (root / "sweep").glob("*/*/summary.json")
        ok = json.loads(summary.read_text())["status"]
    est = sum(singles) / n_single * n_points
    return [
        f"| sweep of {n_points} points (diffusion `quickstart`, 300 steps), one process | "
        f"{one:.1f} s ({ok}) | {n_points} separate runs: {est:.1f} s (mean of {n_single} "
        f"measured x {n_points}) | separate/sweep {est / one:.1f}x |"
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a CPU check of the script)")
    ap.add_argument("--out", default=str(HERE / "device_check.md"))
    ap.add_argument(
        "--only", default="", help="comma-separated sections (em,diffusion,node,sweep,tests)"
    )
    a = ap.parse_args()
    os.environ.setdefault("SDEML_DEVICE_LOG_DIR", str(Path(a.out).parent))
    t0 = time.perf_counter()
    dev = jax.devices()[0]
    head = [
        "# Device check",
        "",
        _machine.machine_line(),
        "",
        f"Device: {dev.device_kind} ({dev.platform}) x {jax.device_count()}; float32; matmul "
        f"precision {jax.config.jax_default_matmul_precision or 'default'}; "
        f"{'quick sizes' if a.quick else 'full sizes'}. Generated by "
        "`benchmarks/device_check.py`.",
        "",
        "| check | sdeml | peer (same device) | result |",
        "|---|---|---|---|",
    ]
    rows: list[str] = []
    text = ""
    # the timed sections first, the tests last: a run cut short by its time limit keeps the numbers
    for name, fn in (
        ("em", section_em),
        ("diffusion", section_diffusion),
        ("node", section_node),
        ("sweep", section_sweep),
        ("tests", section_tests),
    ):
        if a.only and name not in a.only.split(","):
            continue
        t = time.perf_counter()
        try:
            new = fn(a.quick)
            rows += new
            print("\n".join(new), flush=True)
        except Exception as e:  # one broken section must not hide the others' numbers
            rows.append(
                f"| {name} | FAILED: {type(e).__name__}: {str(e).splitlines()[0][:200]} | | |"
            )
        print(f"device_check: {name} done in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        # written after every section: a run stopped at its time limit still leaves its numbers
        text = "\n".join([*head, *rows, "", f"Total {time.perf_counter() - t0:.0f} s.", ""])
        Path(a.out).write_text(text)
    print(text)
    if any("FAIL" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
