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
# # Langevin samplers, the Gibbs law and the Fokker–Planck equation
#
# Overdamped Langevin dynamics $d\theta = -\nabla U(\theta)\,dt + \sqrt{2T}\,dW$ leaves the Gibbs
# density $\pi_T \propto e^{-U/T}$ invariant. Its Euler–Maruyama chain (ULA) has an invariant law
# that is $O(h)$ away from $\pi_T$; adding a Metropolis–Hastings test (MALA) removes the bias
# exactly. Both are batched init/step kernels: thousands of chains advance in one array program.
# We check the histograms with `sdeml.langevin.histogram_test` (Pearson's $\chi^2$ after pooling
# sparse bins, and the largest standardised residual judged by its exact binomial tail), then
# solve the Fokker–Planck equation of an Ornstein–Uhlenbeck process against its Gaussian law.

# %%
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import sdeml
from sdeml import langevin

T0 = time.perf_counter()

# %% [markdown]
# ## MALA on the double well
#
# $U(x) = (x^2 - 1)^2$: two modes at $\pm1$ behind a barrier of height 1. 10 000 chains start in
# the bulk, take 300 MALA steps ($h = 0.1$), and their final states are compared with the Gibbs
# bin probabilities (`gibbs_bin_probabilities`, integrated on sub-cells). Under agreement both
# p-values are uniform; we require them above 0.001.

# %%
n, lo, hi, bins = 10_000, -2.5, 2.5, 50
U = langevin.Potentials.double_well
x0 = 0.5 * jr.normal(jr.key(4), (n, 1))
mala = sdeml.MALA(U, step_size=0.1)
state, acc, _ = sdeml.run_chains(mala, mala.init(x0), 300, key=jr.key(5))
xs_mala = state.position[:, 0]
gibbs, outside = langevin.gibbs_bin_probabilities(U, lo, hi, bins)
counts = jnp.histogram(jnp.clip(xs_mala, lo, hi - 1e-9), bins=bins, range=(lo, hi))[0]
t_mala = langevin.histogram_test(counts, gibbs)
print(f"MALA acceptance {float(acc.mean()):.3f}; chi2 p = {float(t_mala.chi2_pvalue):.3f}, "
      f"max|z| = {float(t_mala.max_abs_z):.2f} (typical {float(t_mala.expected_max_abs_z):.2f}), "
      f"p = {float(t_mala.max_z_pvalue):.3f}")
assert float(outside) < 1e-10
assert float(t_mala.chi2_pvalue) > 1e-3 and float(t_mala.max_z_pvalue) > 1e-3

# %% [markdown]
# ## ULA's bias, computed rather than estimated
#
# At $h = 0.05$ ULA's histogram is visibly *not* Gibbs. `ula_invariant_bin_probabilities` computes
# the chain's own invariant law from its Gaussian transition kernel (a Nyström discretisation):
# the histogram must agree with that law, and disagree with Gibbs.

# %%
h = 0.05
ula = sdeml.ULA(U, step_size=h)
state, _, _ = sdeml.run_chains(ula, ula.init(0.5 * jr.normal(jr.key(6), (n, 1))), 300,
                               key=jr.key(7))
xs_ula = state.position[:, 0]
counts_ula = jnp.histogram(jnp.clip(xs_ula, lo, hi - 1e-9), bins=bins, range=(lo, hi))[0]
ula_law, _ = langevin.ula_invariant_bin_probabilities(U, h, lo, hi, bins)
t_own = langevin.histogram_test(counts_ula, ula_law)
t_gibbs = langevin.histogram_test(counts_ula, gibbs)
print(f"ULA vs its own invariant law: chi2 p = {float(t_own.chi2_pvalue):.3f}; "
      f"vs Gibbs: chi2 p = {float(t_gibbs.chi2_pvalue):.1e}")
assert float(t_own.chi2_pvalue) > 1e-3 and float(t_own.max_z_pvalue) > 1e-3
assert float(t_gibbs.chi2_pvalue) < 1e-4

# %%
centres = jnp.linspace(lo, hi, bins + 1)
centres = 0.5 * (centres[1:] + centres[:-1])
width = (hi - lo) / bins
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.stairs(counts / (n * width), jnp.linspace(lo, hi, bins + 1), label="MALA, h = 0.1")
ax.stairs(counts_ula / (n * width), jnp.linspace(lo, hi, bins + 1), label="ULA, h = 0.05")
ax.plot(centres, gibbs / width, "k", label="Gibbs $e^{-U}$")
ax.plot(centres, ula_law / width, "r--", label="ULA's invariant law")
ax.set(xlabel="x", ylabel="density", title="double well: histograms of 10 000 chains")
ax.legend()
plt.show()

# %% [markdown]
# ## The Fokker–Planck equation
#
# The density of $dX = f\,dt + g\,dW$ obeys $\partial_t p = -\partial_x(fp) + \partial_x^2(g^2p/2)$.
# `fokker_planck_1d` solves it with conservative finite volumes and Crank–Nicolson (second order,
# mass exactly conserved). For the OU process $dX = -X\,dt + \sqrt2\,dW$ started from
# $N(2, 0.2^2)$ the law at time $t$ is $N(2e^{-t},\ 0.04e^{-2t} + 1 - e^{-2t})$.

# %%
n_cells = 400
xc = -4 + (jnp.arange(n_cells) + 0.5) * 8 / n_cells
p0 = jax.scipy.stats.norm.pdf(xc, 2.0, 0.2)
ts, xc, p = langevin.fokker_planck_1d(lambda t, x: -x, lambda t, x: jnp.sqrt(2.0) * jnp.ones_like(x),
                                      p0, -4.0, 4.0, 0.0, 1.0, 400, 100)
m_t = 2 * jnp.exp(-ts)
v_t = 0.04 * jnp.exp(-2 * ts) + 1 - jnp.exp(-2 * ts)
exact = jax.scipy.stats.norm.pdf(xc[None], m_t[:, None], jnp.sqrt(v_t)[:, None])
err = float(jnp.max(jnp.abs(p[-1] - exact[-1])))
mass = float(jnp.sum(p[-1]) * 8 / n_cells)
print(f"t = 1: max |p - exact| = {err:.1e}, mass = {mass:.12f}")
assert err < 2e-3 and abs(mass - 1) < 1e-10

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for k in range(0, len(ts), max(1, len(ts) // 4)):
    ax.plot(xc, p[k], label=f"t = {float(ts[k]):.2f}")
    ax.plot(xc, exact[k], "k:", lw=1)
ax.set(xlabel="x", ylabel="p(t, x)", title="Fokker–Planck (lines) vs exact OU law (dotted)")
ax.legend()
plt.show()

# %%
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")
