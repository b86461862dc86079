"""One Langevin chain at a time: `ula_chain` and `mala_chain`, written to be `jax.vmap`-ped.

A chain's randomness is a function of its own key and the step index (the counter-based draws of
`sdeml.core`), so element i of ``jax.vmap(chain)(keys)`` is the chain run alone with key i.

- `ula_chain` is Euler–Maruyama on overdamped Langevin dynamics counted in steps
  (`_ULAStepSDE`), run by `sdeml.core.simulate_path`: under `jax.vmap` over keys, initial
  positions, step sizes or temperatures it runs as one call of the SDE engine (chunked chains,
  blocked steps, two normals per hash).
- `mala_chain` adds a Metropolis–Hastings test, which the SDE engine does not do. Written on a
  batch of one chain with `batched_value_and_grad` (the batched kernels' gradient), its plain
  `jax.vmap` is the batched MALA kernel itself: one forward and one reverse pass through the
  potential for all chains per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..core import AbstractSDE, simulate_path
from ..core._checks import check_positive_int, check_positive_scalar, check_scalar_function
from ..core._normals import chain_draws, threefry_words
from ._kernels import _DIVERGED, _NONFINITE_START, batched_value_and_grad, mala_move

Potential = Callable[[Float[Array, " d"]], Float[Array, ""]]


class _ULAStepSDE(AbstractSDE):
    r"""Overdamped Langevin dynamics in units of steps: $dY = -h\nabla U(Y)\,ds + \sqrt{2hT}\,dW_s$.

    Its Euler–Maruyama step with $\Delta s = 1$ is the ULA update
    $\theta' = \theta - h\nabla U(\theta) + \sqrt{2hT}\,\xi$. The step size is a parameter, not
    the grid: a sweep over step sizes (`jax.vmap`) shares one time grid and runs on the engine.
    """

    potential: Potential
    step_size: Any
    temperature: Any

    @property
    def noise(self) -> str:
        return "additive"

    @property
    def brownian_dim(self) -> None:
        return None

    def drift(self, t, y, args=None):
        return -jnp.asarray(self.step_size, y.dtype) * jax.grad(self.potential)(y)

    def diffusion(self, t, y, args=None):
        h, temp = jnp.asarray(self.step_size, y.dtype), jnp.asarray(self.temperature, y.dtype)
        return jnp.broadcast_to(jnp.sqrt(2 * h * temp), y.shape)


def _check_chain(potential: Potential, x0: Any, n_steps: Any, thin: Any, step_size, temperature):
    x0 = jnp.asarray(x0)
    if x0.ndim != 1:
        raise ValueError(
            f"`x0` must have shape (d,) (one chain), got {x0.shape}; to run several chains, "
            "jax.vmap over keys or initial positions"
        )
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        raise ValueError(f"`x0` must be a floating array, got dtype {x0.dtype}")
    check_scalar_function("potential", potential, x0)
    check_positive_scalar("step_size", step_size)
    check_positive_scalar("temperature", temperature)
    n_steps = check_positive_int("n_steps", n_steps)
    if thin is not None and check_positive_int("thin", thin) and n_steps % thin:
        raise ValueError(f"`thin` must divide n_steps={n_steps}, got {thin!r}.")
    return x0


def _flag(x0: Array, out: Any) -> Any:
    """Refuse a non-finite start and report a diverged chain (issue #17): never NaN in silence."""
    arrays, rest = eqx.partition(out, eqx.is_array)
    arrays = eqx.error_if(arrays, ~jnp.all(jnp.isfinite(x0)), _NONFINITE_START)
    bad = jnp.any(jnp.stack([~jnp.all(jnp.isfinite(a)) for a in jax.tree_util.tree_leaves(arrays)]))
    arrays = eqx.error_if(arrays, bad, _DIVERGED)
    return eqx.combine(arrays, rest)


def ula_chain(
    potential: Potential,
    x0: Any,
    n_steps: int,
    *,
    step_size: Any,
    temperature: Any = 1.0,
    thin: int | None = None,
    key: PRNGKeyArray,
) -> Array:
    r"""One ULA chain: $\theta_{k+1} = \theta_k - h\nabla U(\theta_k) + \sqrt{2hT}\,\xi_k$.

    The unadjusted Langevin algorithm, Euler–Maruyama on $d\theta = -\nabla U\,dt + \sqrt{2T}dW$
    with step $h$; its invariant law is $\pi_T \propto e^{-U/T}$ up to an $O(h)$ bias. One
    chain: `jax.vmap` it over keys (and initial positions, step sizes, temperatures) and the
    batch runs as one call of the SDE engine (see `sdeml.core.simulate_path`); chain i of the
    batch is the chain run alone with key i.

    Args:
        potential: $U(\theta)$, ``(d,) -> ()``.
        x0: the initial position, shape ``(d,)``.
        n_steps: number of steps.
        step_size: $h > 0$.
        temperature: $T > 0$.
        thin: return the position after every `thin` steps (`n_steps` a multiple of it),
            shape ``(n_steps // thin, d)``; default: the final position, shape ``(d,)``.
        key: the chain's PRNG key.

    Returns:
        The final position ``(d,)``, or the thinned positions ``(n_steps // thin, d)``.

    Raises:
        EquinoxRuntimeError: the chain diverged to NaN/inf (step size too large), or `x0` was
            not finite (eagerly, and under jit/vmap at run time).

    Examples:
        4000 chains on $U = |x|^2/2$, whose ULA invariant variance is $1/(1 - h/2)$:

        >>> from sdeml.langevin import ula_chain
        >>> U = lambda x: 0.5 * jnp.sum(x**2)
        >>> run = lambda k: ula_chain(U, jnp.zeros(2), 200, step_size=0.2, key=k)
        >>> xs = jax.jit(jax.vmap(run))(jr.split(jr.key(0), 4000))
        >>> xs.shape
        (4000, 2)
        >>> bool(abs(xs.var() - 1 / 0.9) < 0.05)  # 1.11, not the target's 1
        True
        >>> ula_chain(U, jnp.zeros(2), 200, step_size=0.2, thin=50, key=jr.key(0)).shape
        (4, 2)

    References:
        Roberts & Tweedie, Bernoulli 2(4), 1996.
    """
    x0 = _check_chain(potential, x0, n_steps, thin, step_size, temperature)
    sde = _ULAStepSDE(potential, step_size, temperature)
    ys = simulate_path(
        sde, x0, t0=0.0, t1=float(n_steps), n_steps=int(n_steps), save_every=thin, key=key
    )
    return _flag(x0, ys if thin is not None else ys[-1])


def mala_chain(
    potential: Potential,
    x0: Any,
    n_steps: int,
    *,
    step_size: Any,
    temperature: Any = 1.0,
    thin: int | None = None,
    key: PRNGKeyArray,
) -> tuple[Array, Array]:
    r"""One MALA chain: a ULA proposal and a Metropolis–Hastings test at every step.

    $y = \theta - h\nabla U(\theta) + \sqrt{2hT}\,\xi$, accepted with probability
    $\min\bigl(1, e^{-(U(y) - U(\theta))/T}\,q(\theta\mid y)/q(y\mid\theta)\bigr)$,
    $q(y\mid\theta)\propto\exp(-|y-\theta+h\nabla U(\theta)|^2/(4hT))$; the chain leaves
    $\pi_T\propto e^{-U/T}$ exactly invariant. The proposal noise $\xi$ and the uniform of the
    test at step $k$ are drawn from the chain's key and $k$ (`sdeml.core` counter-based draws),
    so chain i of ``jax.vmap(chain)(keys)`` is the chain run alone with key i, and the vmapped
    function is the batched MALA kernel (one reverse pass through the potential for all chains).

    Args:
        potential: $U(\theta)$, ``(d,) -> ()``.
        x0: the initial position, shape ``(d,)``.
        n_steps: number of steps.
        step_size: $h > 0$.
        temperature: $T > 0$.
        thin: return the position after every `thin` steps (``(n_steps // thin, d)``);
            default: the final position ``(d,)``.
        key: the chain's PRNG key.

    Returns:
        ``(positions, acceptance_rate)``: the final ``(d,)`` (or thinned
        ``(n_steps // thin, d)``) positions and the mean Metropolis acceptance probability over
        the steps, a scalar.

    Raises:
        EquinoxRuntimeError: a non-finite start (MALA cannot recover from one).

    Examples:
        2000 chains on the double well $U = (x^2 - 1)^2$; by symmetry each well has the same
        $E[x^2]$, so it is checked without the chains crossing the barrier:

        >>> from sdeml.langevin import mala_chain
        >>> U = lambda x: (x[0] ** 2 - 1) ** 2
        >>> run = lambda k: mala_chain(U, jnp.zeros(1), 300, step_size=0.1, key=k)
        >>> xs, acc = jax.vmap(run)(jr.split(jr.key(0), 2000))
        >>> xs.shape, acc.shape, round(float(acc.mean()), 2)
        ((2000, 1), (2000,), 0.84)
        >>> g = jnp.linspace(-3.0, 3.0, 2001)  # the Gibbs law's E[x^2] = 0.833, by quadrature
        >>> w = jnp.exp(-((g**2 - 1) ** 2))
        >>> bool(abs(jnp.mean(xs**2) - jnp.sum(g**2 * w) / jnp.sum(w)) < 0.05)
        True

    References:
        Roberts & Tweedie, Bernoulli 2(4), 1996.
    """
    x0 = _check_chain(potential, x0, n_steps, thin, step_size, temperature)
    dtype = x0.dtype
    h = jnp.asarray(step_size, dtype)
    temp = jnp.asarray(temperature, dtype)
    kw = threefry_words(key)
    d = x0.shape[0]
    every = n_steps if thin is None else thin

    def value_and_grad(x):  # the batched kernels' gradient, on a batch of one chain
        u, g = batched_value_and_grad(potential, x[None])
        return u[0], g[0]

    def step(carry, k):
        x, ux, gx, acc = carry
        noise, uniform = chain_draws(kw, k, d, dtype)
        *moved, alpha, _ = mala_move(value_and_grad, x, ux, gx, h, temp, noise, uniform)
        new = (*moved, acc + alpha)
        return new, None

    def block(carry, j):
        ks = (j * every + jnp.arange(every)).astype(np.uint32)
        carry, _ = jax.lax.scan(step, carry, ks)
        return carry, carry[0]

    u0, g0 = value_and_grad(x0)
    carry = (x0, u0, g0, jnp.zeros((), dtype))
    carry, xs = jax.lax.scan(block, carry, jnp.arange(n_steps // every))
    out = (xs if thin is not None else carry[0], carry[3] / n_steps)
    return _flag(x0, out)
