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
# # Optimisation as dynamics: gradient flow, gradient descent and SGD as an SDE
#
# Gradient descent $\theta_{k+1} = \theta_k - \eta\nabla L(\theta_k)$ is the explicit Euler method
# on the gradient flow $\dot\theta = -\nabla L(\theta)$, so it tracks the flow with an $O(\eta)$
# gap. Minibatch SGD adds noise of covariance $\eta^2 c_B\Sigma$ per step ($c_B = 1/B$ with
# replacement, $\Sigma$ the per-example gradient covariance); to first order it behaves like the
# SDE $d\theta = -\nabla L\,dt + \sqrt{\eta c_B\Sigma}\,dW$. On a quadratic loss with Hessian $H$
# the SDE's stationary covariance solves the Lyapunov equation $HS + SH = \eta c_B\Sigma$, while
# SGD's own solves $S = (I - \eta H)S(I - \eta H) + \eta^2 c_B\Sigma$. This notebook measures both.

# %%
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.linalg as jsl
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import sdeml
from sdeml import optim_dynamics as od

T0 = time.perf_counter()

# %% [markdown]
# ## Gradient flow against gradient descent
#
# For $L(\theta) = \tfrac12\theta^\top H\theta$ the flow is $e^{-tH}\theta_0$. The largest gap
# between GD and the flow over a fixed horizon must halve when $\eta$ halves (first order).

# %%
H = jnp.array([[3.0, 1.0], [1.0, 2.0]])
loss = lambda th: 0.5 * th @ H @ th
th0 = jnp.array([1.0, -0.5])
ts = jnp.linspace(0.0, 2.0, 9)
flow = od.gradient_flow(loss, th0, ts)
exact = jax.vmap(lambda t: jsl.expm(-H * t) @ th0)(ts)
print("flow vs expm:", float(jnp.max(jnp.abs(flow - exact))))
assert float(jnp.max(jnp.abs(flow - exact))) < 1e-8

gaps = {lr: float(od.flow_gd_deviation(loss, th0, lr, round(2.0 / lr))) for lr in (0.04, 0.02, 0.01)}
print("max |GD - flow| on [0, 2]:", gaps)
ratios = [gaps[0.04] / gaps[0.02], gaps[0.02] / gaps[0.01]]
print("ratios when eta halves:", ratios)
assert all(1.8 < r < 2.2 for r in ratios), ratios

# %%
gd = od.gradient_descent(loss, th0, 0.2, 10)
fig, ax = plt.subplots(figsize=(5, 4))
fine = od.gradient_flow(loss, th0, jnp.linspace(0, 2, 100))
ax.plot(fine[:, 0], fine[:, 1], label="gradient flow")
ax.plot(gd[:, 0], gd[:, 1], "o-", label="GD, $\\eta = 0.2$")
ax.set(xlabel=r"$\theta_1$", ylabel=r"$\theta_2$", title="GD is Euler on the flow")
ax.legend()
plt.show()

# %% [markdown]
# ## SGD's stationary variance against the closed forms
#
# Estimating a mean: $\ell(\theta; x_i) = (\theta - x_i)^2$, so $H = 2$ and
# $\Sigma = 4\,\mathrm{Var}(x)$. We run 4000 independent SGD chains at once (`SGD` is an init/step
# kernel, `sdeml.langevin.run_chains` scans it), discard a burn-in of six relaxation times
# $1/(\eta H)$, then record every half relaxation time. The empirical variance must be within 3%
# of SGD's exact discrete value and, since $\eta H = 0.04$ is small, within 5% of the SDE's
# (their exact ratio is $2/(2 - \eta H)$, 2% here).

# %%
x = 1.5 * jr.normal(jr.key(0), (200,))
loss_i = lambda th, xi: (th[0] - xi) ** 2
lr, B, n_chains = 0.02, 8, 4000
h = 2.0
thin = round(0.5 / (lr * h))
burn = thin * -(-round(6 / (lr * h)) // thin)
sgd = od.SGD(loss_i, x, lr=lr, batch_size=B)
state = sgd.init(jnp.full((n_chains, 1), x.mean()))
state, _, _ = sdeml.langevin.run_chains(sgd, state, burn, key=jr.key(1))
_, _, obs = sdeml.langevin.run_chains(sgd, state, 100 * thin, observe=lambda s: s.position[:, 0],
                                      thin=thin, key=jr.key(2))
per_chain = jnp.mean((obs - x.mean()) ** 2, axis=0)
var, se = float(per_chain.mean()), float(per_chain.std() / n_chains**0.5)
Sigma = od.gradient_noise_cov(loss_i, jnp.array([0.0]), x)
disc = float(od.sgd_stationary_cov(h * jnp.eye(1), Sigma, lr, B, discrete=True)[0, 0])
cont = float(od.sgd_stationary_cov(h * jnp.eye(1), Sigma, lr, B, discrete=False)[0, 0])
print(f"SGD variance {var:.3e} +- {se:.1e}; exact SGD {disc:.3e}; SDE (Lyapunov) {cont:.3e}")
assert abs(var / disc - 1) < 0.03
assert abs(var / cont - 1) < 0.05

# %% [markdown]
# The stationary law of the 1-D SDE is the Gibbs density
# $p \propto \exp(-2L/(\eta c_B\sigma^2))$, here a Gaussian of variance `cont`:

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
dev = (obs - x.mean()).ravel()
ax.hist(dev, bins=80, density=True, alpha=0.5, label="SGD iterates")
grid = jnp.linspace(dev.min(), dev.max(), 200)
ax.plot(grid, jnp.exp(-grid**2 / (2 * cont)) / jnp.sqrt(2 * jnp.pi * cont), "r",
        label="SDE stationary law")
ax.set(xlabel=r"$\theta - \theta^*$", title="SGD's stationary distribution")
ax.legend()
plt.show()

# %% [markdown]
# ## The SDE itself, in 2-D
#
# `SGDSDE` is an ordinary `sdeml` SDE (drift $-\nabla L$, diffusion the square root of
# $\eta c_B\Sigma$). With the noise frozen at the minimum it is an Ornstein–Uhlenbeck process, and
# `sdeml.simulate` must reproduce the Lyapunov solution `solve_continuous_lyapunov(H, eta c_B Sigma)`.
# Euler–Maruyama at $\Delta t = 0.02$ biases the variance by about 1%; 8000 paths give ~1.6%
# standard errors, hence the 6% band.

# %%
xs2 = jr.normal(jr.key(40), (50, 2)) @ jnp.array([[1.0, 0.0], [0.6, 0.5]])
loss2 = lambda w, xi: 0.5 * jnp.sum((w - xi) ** 2)  # H = I, Sigma = Cov(x)
lr2, B2 = 0.2, 4
Sigma2 = od.gradient_noise_cov(loss2, jnp.zeros(2), xs2)
sde = od.SGDSDE(loss2, xs2, lr=lr2, batch_size=B2, noise_cov=Sigma2)
paths = sdeml.simulate(sde, xs2.mean(0), t1=8.0, n_steps=400, n_paths=8000, dtype=jnp.float64,
                       key=jr.key(41))
d = paths.xs[:, -1] - xs2.mean(0)
emp = d.T @ d / d.shape[0]
pred = od.solve_continuous_lyapunov(jnp.eye(2), lr2 / B2 * Sigma2)
print("empirical\n", emp, "\nLyapunov\n", pred)
assert float(jnp.max(jnp.abs(emp - pred) / jnp.sqrt(jnp.diag(pred)[:, None] * jnp.diag(pred)[None]))) < 0.06

# %%
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")
