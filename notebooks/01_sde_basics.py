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
# # SDE basics: batched paths and measured convergence orders
#
# An Itô SDE $dX_t = f(t, X_t)\,dt + g(t, X_t)\,dW_t$ is simulated in sdeml by one compiled
# program that advances many paths at once (`sdeml.simulate`). This notebook
#
# 1. simulates geometric Brownian motion (GBM), $dX = \mu X\,dt + \sigma X\,dW$, for 20 000 paths
#    and checks the sample mean against the *exact* mean of the Euler–Maruyama chain;
# 2. measures the strong orders of Euler–Maruyama (theory: 1/2) and Milstein (theory: 1) on GBM,
#    whose exact solution $X_T = X_0\exp((\mu - \sigma^2/2)T + \sigma W_T)$ is known on every
#    Brownian path;
# 3. defines a custom SDE with `sdeml.SDE` and checks its stationary variance.

# %%
import time

import jax

jax.config.update("jax_enable_x64", True)  # accuracy claims below are made in float64
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import sdeml

T0 = time.perf_counter()

# %% [markdown]
# ## Batched paths
#
# `simulate` returns `Paths` with `ts` of shape `(n_saves,)` and `xs` of shape
# `(n_paths, n_saves, *state_shape)`. With Euler–Maruyama on GBM each step multiplies the state by
# $1 + \mu h + \sigma\Delta W$, so the chain's mean after $n$ steps is exactly $(1 + \mu h)^n$: the
# sample mean must agree with it within its Monte Carlo standard error.

# %%
mu, sigma, n_steps, n_paths = 0.5, 0.8, 200, 20_000
gbm = sdeml.GeometricBrownianMotion(mu=mu, sigma=sigma)
paths = sdeml.simulate(
    gbm, jnp.ones(1), t1=1.0, n_steps=n_steps, n_paths=n_paths, save_every=10,
    include_t0=True, dtype=jnp.float64, key=jr.key(0),
)
print("ts", paths.ts.shape, "xs", paths.xs.shape)

x_T = paths.xs[:, -1, 0]
mean, se = float(x_T.mean()), float(x_T.std() / n_paths**0.5)
em_mean = (1 + mu / n_steps) ** n_steps
print(f"sample mean {mean:.4f} +- {se:.4f}; EM chain's exact mean {em_mean:.4f}; "
      f"SDE's exact mean e^mu = {jnp.exp(mu):.4f}")
assert abs(mean - em_mean) < 4 * se, (mean, em_mean, se)

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(paths.ts, paths.xs[:50, :, 0].T, lw=0.7, alpha=0.6)
ax.plot(paths.ts, paths.xs[:, :, 0].mean(0), "k", lw=2, label="mean of 20 000 paths")
ax.plot(paths.ts, jnp.exp(mu * paths.ts), "r--", label=r"$e^{\mu t}$")
ax.set(xlabel="t", ylabel="X", title="GBM, Euler–Maruyama", yscale="log")
ax.legend()
plt.show()

# %% [markdown]
# ## Strong orders, measured
#
# `sdeml.strong_order` runs a solver at several step sizes on the *same* Brownian paths (the fine
# increments are summed into the coarse steps), compares each terminal value with the exact one
# and fits the slope of $\log E|Y^h_T - X_T|$ against $\log h$. A bootstrap over paths gives a
# confidence interval. The bands below (0.15 around the theoretical order) leave room for
# seed-to-seed variation while still excluding the next order, which is 0.5 away.

# %%
common = dict(exact=gbm.exact_solution, n_steps=(8, 16, 32, 64, 128), n_fine=128,
              n_paths=500, dtype=jnp.float64)
res_em = sdeml.strong_order("euler_maruyama", gbm, jnp.ones(1), key=jr.key(1), **common)
res_mil = sdeml.strong_order("milstein", gbm, jnp.ones(1), key=jr.key(1), **common)
for name, r in [("Euler–Maruyama", res_em), ("Milstein", res_mil)]:
    print(f"{name:15s} strong order {r.order:.3f}  95% CI ({r.ci[0]:.3f}, {r.ci[1]:.3f})"
          f"  declared {r.expected}")
assert abs(res_em.order - 0.5) < 0.15, res_em.order
assert abs(res_mil.order - 1.0) < 0.15, res_mil.order
# Milstein is more accurate at every step size on the same paths.
assert bool(jnp.all(res_mil.errors < res_em.errors))

# %%
fig = sdeml.sde.plot_orders({"Euler–Maruyama": res_em, "Milstein": res_mil},
                            title="strong error on GBM")
plt.show()

# %% [markdown]
# ## Your own SDE
#
# `sdeml.SDE(drift, diffusion, noise=...)` wraps two functions with the signature
# `f(t, y, args)`. Here an Ornstein–Uhlenbeck process $dX = -\theta X\,dt + s\,dW$ written by hand:
# its stationary variance is $s^2/(2\theta)$, and Euler–Maruyama's own stationary variance is
# $s^2 h / (1 - (1-\theta h)^2) = s^2/(\theta(2 - \theta h))$, which the paths must match.

# %%
theta, s, h = 2.0, 0.5, 0.01
ou = sdeml.SDE(drift=lambda t, y, args: -theta * y,
               diffusion=lambda t, y, args: s * jnp.ones_like(y), noise="diagonal")
out = sdeml.simulate(ou, jnp.zeros(1), t1=5.0, n_steps=500, n_paths=20_000,
                     dtype=jnp.float64, key=jr.key(2))
var = float(out.xs[:, -1, 0].var())
var_em = s**2 / (theta * (2 - theta * h))
se_var = var_em * (2 / 20_000) ** 0.5  # standard error of a Gaussian sample variance
print(f"stationary variance: paths {var:.5f}, EM exact {var_em:.5f}, SDE {s**2 / (2 * theta):.5f}")
assert abs(var - var_em) < 4 * se_var

# %%
elapsed = time.perf_counter() - T0
print(f"notebook ran in {elapsed:.1f} s")
