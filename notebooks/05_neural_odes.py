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
# # Neural ODEs: fitting a spiral, and the ResNet limit
#
# A neural ODE $\dot h = f_\theta(t, h)$ is a continuous-depth network: the output is the state at
# the end of an ODE solve, and gradients flow through the solver (or through the continuous
# adjoint). We fit the classic spiral $\dot y = A^\top y^3$ from short windows of one trajectory
# with the same training loop the CLI uses, then check the other side of the coin: a ResNet
# $h_{k+1} = h_k + \tfrac1N f(t_k, h_k)$ *is* Euler's method on the ODE, so its output converges
# to the ODE's at first order as the depth $N$ grows.

# %%
import time

import jax

jax.config.update("jax_enable_x64", True)  # the ResNet reference solve is at 1e-10
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import sdeml
from sdeml import neural_ode as no
from sdeml.train import TrainConfig, train_model

T0 = time.perf_counter()

# %% [markdown]
# ## Data: one spiral trajectory
#
# `integrate` is a tight Dopri8 solve, our ground truth. We keep 200 points on $[0, 10]$.

# %%
ts = jnp.linspace(0.0, 10.0, 200)
ys = no.integrate(no.spiral_field, jnp.array([2.0, 0.0]), ts)
print(ts.shape, ys.shape)

# %% [markdown]
# ## The model and its training
#
# `MLPField(2, 50, 1, power=3, time_dependent=False)` is the demo's field
# $f_\theta(y) = W_2\tanh(W_1y^3 + b_1) + b_2$, solved by Dopri5. Each batch holds 20 random
# windows of 10 consecutive observations; the loss is the mean absolute error of each window
# solved from its first point (`window_loss`). 400 RMSprop steps.

# %%
field = sdeml.MLPField(2, 50, 1, power=3, time_dependent=False, key=jr.key(0))
model = sdeml.NeuralODE(field, solver="dopri5", rtol=1e-5, atol=1e-6)
cfg = TrainConfig(steps=400, batch_size=20, lr=1e-3, optimizer="rmsprop", log_every=50)

batch_fn = lambda key, step: no.sample_windows(ts, ys, cfg.batch_size, 10, key=key)
loss_fn = lambda m, batch, key: no.window_loss(m, *batch)

eval_batch = no.sample_windows(ts, ys, 200, 10, key=jr.key(99))  # fixed held-out windows
loss_before = float(loss_fn(model, eval_batch, None))
history = []
trained, state, stats = train_model(model, loss_fn, batch_fn, cfg, key=jr.key(1), ema=False,
                                    progress=False, on_log=lambda s, m: history.append((s, m["loss"])))
loss_after = float(loss_fn(trained, eval_batch, None))
print(f"window loss: {loss_before:.4f} -> {loss_after:.4f}; "
      f"compile {stats.compile_time_s:.1f} s, {1e3 * stats.step_time_s:.2f} ms/step")
assert loss_after < 0.5 * loss_before, (loss_before, loss_after)

# %%
pred = trained(ts, ys[0])
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].plot(ys[:, 0], ys[:, 1], "k", label="true")
axes[0].plot(pred[:, 0], pred[:, 1], "r--", label="neural ODE")
axes[0].set(title="spiral, full rollout from y(0)", xlabel="$y_1$", ylabel="$y_2$")
axes[0].legend()
axes[1].plot(*zip(*history), "o-")
axes[1].set(xlabel="step", ylabel="training loss", yscale="log", title="training")
plt.show()

# %% [markdown]
# ## ResNet ↔ Euler
#
# `resnet_limit(field, h0, depths)` runs Euler ResNets of several depths $N$ that share one field
# and compares their outputs with a tight Dopri8 solve; the error must fall as $N^{-1}$, so the
# fitted slope of $\log e_N$ against $\log N$ must be close to $-1$.

# %%
f64 = sdeml.MLPField(2, 32, 2, dtype=jnp.float64, key=jr.key(2))
h0 = jr.normal(jr.key(3), (64, 2), jnp.float64)
depths = [4, 8, 16, 32, 64]
errors, slope = no.resnet_limit(f64, h0, depths)
print("errors:", errors, "slope:", slope)
assert abs(slope + 1.0) < 0.1, slope

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(depths, errors, "o-", label=f"measured, slope {slope:.2f}")
ax.loglog(depths, errors[0] * depths[0] / jnp.asarray(depths), "k:", label="slope -1")
ax.set(xlabel="ResNet depth N", ylabel="|ResNet - ODE|", title="a ResNet is Euler on the ODE")
ax.legend()
plt.show()

# %%
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")
