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
# # Physics-informed neural networks: the heat equation
#
# A PINN is a network $u_\theta(t, x)$ trained so that the PDE holds at collocation points: the
# residual $r = u_t - \alpha u_{xx}$ is computed by automatic differentiation of the network, and
# the loss adds the squared residual to the misfit of the initial and boundary data. For
# $u_t = \alpha u_{xx}$ on $[0, 1]$ with $u(0, x) = \sin\pi x$ and zero boundary values the exact
# solution is $u = e^{-\alpha\pi^2 t}\sin\pi x$, so the trained network can be scored directly.

# %%
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import sdeml
from sdeml import pinn
from sdeml.train import TrainConfig, train_model

T0 = time.perf_counter()

# %% [markdown]
# ## Problem, network, loss
#
# `Heat1D` holds the PDE, its data and its exact solution; `sample_collocation` draws points in
# the interior, on $t = 0$ and on the walls; `pinn_loss` returns the weighted loss and its three
# parts. Fresh collocation points every step (the batch function draws them).

# %%
problem = pinn.Heat1D(alpha=0.1, t1=1.0)
u = sdeml.PINN(32, 3, key=jr.key(0))
err0 = float(pinn.pinn_error(u, problem)["rel_l2"])
cfg = TrainConfig(steps=3000, lr=3e-3, schedule="cosine", log_every=500)
history = []
u, _, stats = train_model(
    u,
    lambda m, pts, key: pinn.pinn_loss(m, problem, pts),
    lambda key, step: pinn.sample_collocation(problem, 512, 128, 128, key=key),
    cfg, key=jr.key(1), ema=False, progress=False,
    on_log=lambda s, m: history.append((s, m["loss"], m["residual"])),
)
err = pinn.pinn_error(u, problem)
print(f"relative L2 error: {err0:.2f} (untrained) -> {float(err['rel_l2']):.2e}; "
      f"max |u - u*| = {float(err['max_abs']):.2e}; {1e3 * stats.step_time_s:.2f} ms/step")
assert float(err["rel_l2"]) < 2e-2, err["rel_l2"]

# %% [markdown]
# The residual is small where it was enforced; the exact solution also satisfies the PDE, so the
# autodiff residual of `exact` must vanish up to rounding (a check of the residual itself):

# %%

exact_u = lambda t, x: problem.exact(t, x)
pts = pinn.sample_collocation(problem, 256, 8, 8, key=jr.key(2))
res_exact = jax.vmap(lambda t, x: problem.residual(exact_u, t, x))(pts.t_in, pts.x_in)
res_net = jax.vmap(lambda t, x: problem.residual(u, t, x))(pts.t_in, pts.x_in)
print(f"max residual: exact solution {float(jnp.max(jnp.abs(res_exact))):.1e}, "
      f"trained PINN {float(jnp.max(jnp.abs(res_net))):.1e}")
assert float(jnp.max(jnp.abs(res_exact))) < 1e-5

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
ext = [0, 1, 0, problem.t1]
for ax, field, title in [(axes[0], err["u"], "PINN $u_\\theta$"),
                         (axes[1], jnp.abs(err["u"] - err["exact"]), "$|u_\\theta - u^*|$")]:
    im = ax.imshow(field, origin="lower", extent=ext, aspect="auto")
    ax.set(title=title, xlabel="x", ylabel="t")
    fig.colorbar(im, ax=ax)
steps, losses, residuals = zip(*history)
axes[2].semilogy(steps, losses, "o-", label="loss")
axes[2].semilogy(steps, residuals, "s--", label="residual part")
axes[2].set(xlabel="step", title="training")
axes[2].legend()
plt.show()

# %%
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")
