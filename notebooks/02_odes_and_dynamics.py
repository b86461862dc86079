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
# # ODEs and dynamics: closed forms, stiffness, phase portraits, stability
#
# Every ODE solve in sdeml goes through one front, `sdeml.solve_ode(f, y0, t0, t1, ...)`, with a
# vector field `f(t, y, args)`. This notebook checks a solve against the matrix exponential,
# shows what stiffness does to an explicit solver (and how an implicit one avoids it), then turns
# to the geometry: equilibria, Jacobian eigenvalues, stability classes and phase portraits.

# %%
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import sdeml
from sdeml import dynamics

T0 = time.perf_counter()

# %% [markdown]
# ## A linear system against its closed form
#
# For $\dot y = Ay$ the solution is $y(t) = e^{tA}y_0$ (`sdeml.ode.linear_ode_solution`). The
# damped oscillator $\ddot x + 2\zeta\omega\dot x + \omega^2 x = 0$ is such a system; Tsit5 at
# `rtol=1e-10` must agree with `expm` to about that accuracy.

# %%
osc = dynamics.DampedOscillator(omega=1.0, zeta=0.1)
A = jax.jacfwd(lambda y: osc(0.0, y))(jnp.zeros(2))  # the system matrix, by autodiff
y0, ts = jnp.array([1.0, 0.0]), jnp.linspace(0.0, 20.0, 201)
sol = sdeml.solve_ode(osc, y0, 0.0, 20.0, ts=ts, rtol=1e-10, atol=1e-12)
exact = sdeml.ode.linear_ode_solution(A, y0, ts)
err = float(jnp.max(jnp.abs(sol.ys - exact)))
print(f"Tsit5 vs expm: max error {err:.2e}, {int(sol.num_steps)} steps, {int(sol.nfe)} evaluations")
assert err < 1e-8

# %% [markdown]
# ## Stiffness
#
# The Van der Pol oscillator $\dot x = v$, $\dot v = \mu(1 - x^2)v - x$ with large $\mu$ has a
# slow limit cycle and very fast transients. An explicit method must keep $h\,|\lambda|$ inside
# its small stability region, so its step is limited by stability, not by accuracy; an implicit
# method (Kvaerno5, L-stable) takes steps sized by accuracy alone. The classic $\mu = 1000$, on
# $[0, 1000]$ (more than half a period, one fast jump), with the same tolerances and a budget of
# 20 000 steps each. `throw=False` returns the failure as a result code instead of raising:

# %%
vdp = dynamics.VanDerPol(mu=1000.0)
runs = {}
for solver in ["tsit5", "kvaerno5"]:
    s = sdeml.solve_ode(vdp, jnp.array([2.0, 0.0]), 0.0, 1000.0, solver=solver,
                        ts=jnp.linspace(0.0, 1000.0, 500), rtol=1e-6, atol=1e-8,
                        max_steps=20_000, throw=False)
    runs[solver] = s
    print(f"{solver:9s} steps {int(s.num_steps):6d}  reached t = {float(s.t_final):8.2f}  "
          f"h*rho = {float(s.stiffness):.2f}  result: {s.result == sdeml.ODEResult.successful}")
assert runs["tsit5"].result == sdeml.ODEResult.stiff  # diagnosed, not just "out of steps"
assert float(runs["tsit5"].stiffness) > 1.0
assert runs["kvaerno5"].result == sdeml.ODEResult.successful
assert int(runs["kvaerno5"].num_steps) < 5_000  # a quarter of the budget Tsit5 exhausted

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(runs["kvaerno5"].ts, runs["kvaerno5"].ys[:, 0])
ax.set(xlabel="t", ylabel="x", title="Van der Pol, $\\mu = 1000$, Kvaerno5")
plt.show()

# %% [markdown]
# ## Equilibria and their stability
#
# `find_equilibrium` runs Newton's method from a guess, takes the Jacobian at the root by autodiff
# and classifies it from the eigenvalues (Hartman–Grobman). For the damped oscillator the
# eigenvalues are $\omega(-\zeta \pm i\sqrt{1-\zeta^2})$: a stable spiral.

# %%
eq = dynamics.find_equilibrium(osc, jnp.array([0.3, -0.2]))
lam_exact = jnp.array([-0.1 + 1j * (1 - 0.01) ** 0.5, -0.1 - 1j * (1 - 0.01) ** 0.5])
print(eq.y, eq.eigenvalues, eq.label)
assert eq.label == "stable spiral"
assert float(jnp.max(jnp.abs(jnp.sort_complex(eq.eigenvalues) - jnp.sort_complex(lam_exact)))) < 1e-10

lv = dynamics.LotkaVolterra()
points, textbook = lv.textbook_equilibria()  # the origin and (gamma/delta, alpha/beta) = (4, 2)
labels = [dynamics.find_equilibrium(lv, p + 0.1).label for p in points]  # Newton from nearby
print("Lotka–Volterra equilibria:", labels)
assert labels == list(textbook) == ["saddle", "centre"], labels

# %% [markdown]
# The centre of Lotka–Volterra is surrounded by closed orbits, because
# $H(x, y) = \delta x - \gamma\ln x + \beta y - \alpha\ln y$ is conserved; a tight solve keeps it
# constant to about the tolerance.

# %%
sol_lv = sdeml.solve_ode(lv, jnp.array([2.0, 1.0]), 0.0, 20.0, ts=jnp.linspace(0, 20, 200),
                         rtol=1e-10, atol=1e-12)
drift_H = float(jnp.ptp(lv.first_integral(sol_lv.ys)))
print(f"variation of the first integral over t in [0, 20]: {drift_H:.1e}")
assert drift_H < 1e-7

# %% [markdown]
# ## Phase portraits
#
# `phase_portrait` draws the normalised field, trajectories (solved in one `vmap`), the
# nullclines and the equilibria marked by class.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
dynamics.phase_portrait(osc, (-1.5, 1.5), (-1.5, 1.5), x0s=jnp.array([[1.2, 0.0], [-1.0, 1.0]]),
                        t1=20.0, equilibrium_guesses=jnp.zeros((1, 2)),
                        title="damped oscillator", ax=axes[0])
dynamics.phase_portrait(dynamics.VanDerPol(1.0), (-3, 3), (-3, 3),
                        x0s=jnp.array([[0.1, 0.0], [2.5, 2.5]]), t1=15.0,
                        equilibrium_guesses=jnp.zeros((1, 2)), title="Van der Pol, $\\mu=1$",
                        ax=axes[1])
plt.show()
vdp1 = dynamics.find_equilibrium(dynamics.VanDerPol(1.0), jnp.array([0.1, 0.1]))
assert vdp1.label == "unstable spiral", vdp1.label

# %%
print(f"notebook ran in {time.perf_counter() - T0:.1f} s")
