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
# # PFGM++: from Poisson flows to diffusion
#
# PFGM++ perturbs data with the kernel $p_r(x\mid y)\propto(\|x-y\|^2+r^2)^{-(N+D)/2}$,
# $r=\sigma\sqrt D$. Its squared radius satisfies $R^2/\sigma^2 = \chi^2_N\cdot D/\chi^2_D$: heavy
# tails at small $D$, the Gaussian kernel's $\chi^2_N$ as $D\to\infty$. With the exact ideal
# denoiser of a data set, the PFGM++ sampler (EDM's ODE with the heavy-tailed prior) reproduces
# the data law at any $D$.

# %%
import math
import time

import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import sdeml
from sdeml import pfgm

T0 = time.perf_counter()

# %% [markdown]
# ## The radius law approaches the Gaussian's
#
# Kolmogorov–Smirnov distance between sampled $R^2/\sigma^2$ (N = 2) and the $\chi^2_2$ CDF.

# %%
N, n = 2, 20000
gauss_cdf = pfgm.PFGMPPKernel(math.inf).radius_sq_cdf
Ds = [1.0, 4.0, 16.0, 64.0, 1024.0]
ks = []
for D in Ds:
    z = np.sort(np.asarray(pfgm.PFGMPPKernel(D).sample_radius_sq(n, N, 1.0, key=jr.key(0))))
    F = np.asarray(gauss_cdf(z, N))
    i = np.arange(1, n + 1) / n
    ks.append(float(np.max(np.maximum(i - F, F - (i - 1 / n)))))
    print(f"D = {D:6.0f}: KS distance to chi^2_{N} = {ks[-1]:.4f}")
# strictly decreasing up to D = 64; beyond that the sampling noise (about 1/sqrt(n)) dominates
assert all(a > b for a, b in zip(ks[:4], ks[1:4])), ks
assert ks[-1] < 0.02, ks[-1]
assert ks[0] > 0.2, ks[0]

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].loglog(Ds, ks, "o-")
axes[0].set(xlabel="D", ylabel="KS distance", title=r"radius law vs $\chi^2_2$")
zz = jnp.linspace(0.0, 12.0, 200)
for D in (1.0, 16.0):
    axes[1].plot(zz, pfgm.PFGMPPKernel(D).radius_sq_cdf(zz, N), label=f"D = {D:g}")
axes[1].plot(zz, gauss_cdf(zz, N), "k--", label=r"$\chi^2_2$ (D = $\infty$)")
axes[1].set(xlabel=r"$R^2/\sigma^2$", ylabel="CDF", title="exact radius CDFs")
axes[1].legend()
plt.show()

# %% [markdown]
# ## Sampling with the ideal denoiser

# %%
m, n_s = 2000, 500
data = sdeml.data.toy("moons", m, key=jr.key(1))
reference = [sdeml.data.toy("moons", n_s, key=jr.key(100 + i)) for i in range(10)]
samples, scores = {}, {}
floors = None
for D in (4.0, 128.0):
    den = pfgm.IdealDenoiser(data, D)
    gen = [
        pfgm.pfgmpp_sampler(den, D, (n_s, 2), n_steps=18, sigma_max=40.0, key=jr.key(10 + s)).x
        for s in range(3)
    ]
    sc = sdeml.metrics.mmd_ratio_to_floor(gen, reference, floors=floors)
    floors = sc["floors"]
    samples[D], scores[D] = gen[0], sc["ratio"]
    print(f"D = {D:g}: MMD^2 / floor = {sc['ratio']:.2f}")
    assert sc["ratio"] < 3.0, sc["ratio"]

fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True, sharey=True)
axes[0].scatter(*np.asarray(reference[0]).T, s=3)
axes[0].set(xlabel="$x_1$", ylabel="$x_2$", title="data (moons)")
for ax, D in zip(axes[1:], samples):
    ax.scatter(*np.asarray(samples[D]).T, s=3, color="C1")
    ax.set(xlabel="$x_1$", title=f"PFGM++ D = {D:g}, MMD ratio {scores[D]:.2f}")
plt.show()

# %%
elapsed = time.perf_counter() - T0
print(f"notebook ran in {elapsed:.1f} s")
assert elapsed < 90, elapsed
