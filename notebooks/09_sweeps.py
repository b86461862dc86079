# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Sweeps: many seeds and learning rates in one compiled program
#
# A sweep in sdeml is not a loop of runs: `sdeml.train.train_sweep` builds one training state per
# grid point, stacks them along a leading "member" axis, and trains all members with one `vmap`ped
# step, spread over the available devices. Member $i$ is, up to the rounding of batched matrix
# products, exactly what `train_model` gives for its seed and learning rate. The command line does
# the same for a `sweep:` block and writes one table of results.

# %%
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # so that "the same" can be checked tightly
import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import sdeml
from sdeml.train import TrainConfig, train_model, train_sweep

T0 = time.perf_counter()

# %% [markdown]
# ## Two seeds × two learning rates, trained at once
#
# The README's example: fit $\sin 3x$ on $[-2, 2]$ with a small MLP. `train_sweep` takes a
# `build_model(key)` function, the loss and batch functions of `train_model`, and one seed and one
# learning rate per member.

# %%
cfg = TrainConfig(steps=300, batch_size=128, lr=3e-3, log_every=100)
build = lambda k: eqx.nn.MLP(1, 1, 32, 2, activation=jnp.tanh, key=k)
loss_fn = lambda m, x, key: jnp.mean((jax.vmap(m)(x) - jnp.sin(3 * x)) ** 2)
batch_fn = lambda key, step: jr.uniform(key, (cfg.batch_size, 1), minval=-2, maxval=2)
seeds, lrs = [0, 1, 0, 1], [1e-3, 1e-3, 3e-3, 3e-3]
models, states, stats = train_sweep(build, loss_fn, batch_fn, cfg, seeds=seeds, lrs=lrs,
                                    progress=False)
x_test = jnp.linspace(-2, 2, 401)[:, None]
test_mse = eqx.filter_vmap(lambda m: loss_fn(m, x_test, None))(models)
for s, lr, mse in zip(seeds, lrs, test_mse):
    print(f"seed {s}  lr {lr:.0e}  test MSE {float(mse):.4f}")

# %% [markdown]
# Member 3 (seed 1, lr 3e-3) must equal a single `train_model` run with the same seed and rate:

# %%
k_model, k_train = jr.split(jr.key(1))
single, _, _ = train_model(build(k_model), loss_fn, batch_fn, cfg.model_copy(update={"lr": 3e-3}),
                           key=k_train, progress=False)
pick = lambda i: jax.tree_util.tree_map(lambda a: a[i] if eqx.is_array(a) else a, models)
member = pick(3)
diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in
           zip(jax.tree_util.tree_leaves(eqx.filter(single, eqx.is_array)),
               jax.tree_util.tree_leaves(eqx.filter(member, eqx.is_array))))
print(f"largest parameter difference, sweep member vs single run: {diff:.1e}")
assert diff < 1e-8, diff
# the larger learning rate helps here, for both seeds
assert float(test_mse[2]) < float(test_mse[0]) and float(test_mse[3]) < float(test_mse[1])

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(x_test[:, 0], jnp.sin(3 * x_test[:, 0]), "k", lw=2, label="sin 3x")
for i, (s, lr) in enumerate(zip(seeds, lrs)):
    ax.plot(x_test[:, 0], jax.vmap(pick(i))(x_test)[:, 0], lw=1, label=f"seed {s}, lr {lr:g}")
ax.set(xlabel="x", title="four members of one sweep")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## The same from the command line
#
# `sdeml run CONFIG 'sweep={...}'` runs the grid (the Cartesian product) as one program. Here the
# neural-ODE quickstart with two seeds and a very short training, into a temporary directory;
# `summary.json` holds the grid and every metric as a list, one value per point, and
# `sdeml.run.load` gives back the config and the trained models with a leading grid axis.

# %%
out = Path(tempfile.mkdtemp(prefix="sdeml-sweep-"))
sdeml_cli = shutil.which("sdeml") or str(Path(sys.executable).parent / "sdeml")
cmd = [sdeml_cli, "run", "ode_quickstart", "train.steps=40",
       "train.log_every=10", "train.ckpt_every=20", "eval.n_traj=2", "sweep={seed: [0, 1]}",
       "x64=true",  # this notebook runs in float64, and load() wants the run's precision
       "--out", str(out), "--name", "demo", "--no-progress"]
proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
print(proc.stdout[-1500:])
assert proc.returncode == 0, proc.stderr[-3000:]
run_dir = next((out / "quickstart_ode").iterdir())
summary = json.loads((run_dir / "summary.json").read_text())
print("files:", sorted(p.name for p in run_dir.iterdir()))
print("sweep labels:", summary["sweep"]["labels"])
assert summary["status"] == "completed"
assert len(summary["sweep"]["labels"]) == 2

loaded = sdeml.run.load(run_dir)
n_points = {leaf.shape[0] for leaf in jax.tree_util.tree_leaves(eqx.filter(loaded.model, eqx.is_array))}
print("loaded:", loaded.cfg.experiment, "step", loaded.step, "leading axes", n_points)
assert n_points == {2}

# %%
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")
