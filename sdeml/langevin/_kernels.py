"""Langevin samplers (ULA, MALA, SGLD) as ``init``/``step`` kernels on a whole batch of chains.

Every kernel targets the Gibbs density $\\pi_T(\\theta) \\propto \\exp(-U(\\theta)/T)$, and
all three move by the one overdamped Langevin update `langevin_step` (MALA wraps its Metropolis
test around it), which is the Euler–Maruyama step of `LangevinSDE` (an `sdeml.core.AbstractSDE`).
The step is written on the batch ``(*chains, d)`` at once: per-chain gradients come from one
reverse pass through $\\sum_c U(\\theta_c)$ (chains are independent, so the gradient of the
sum with respect to $\\theta_c$ is $\\nabla U(\\theta_c)$), which is what makes one
step over 10^4 chains a handful of fused array operations rather than a vmapped per-chain kernel.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray, PyTree

from ..core import AbstractSDE
from ..core._checks import (
    check_batch_size,
    check_box,
    check_data,
    check_position,
    check_positive_int,
    check_positive_scalar,
    check_scalar_function,
)
from ..core._minibatch import sample_indices
from ..core._normals import standard_normal

Potential = Callable[[Float[Array, " d"]], Float[Array, ""]]


def _python_int(value: Any) -> Any:
    """A NumPy integer as a Python int (a static field's arithmetic then stays weakly typed);
    anything else unchanged, for `check_batch_size` to judge."""
    return int(value) if isinstance(value, np.integer) else value


class LangevinState(eqx.Module):
    r"""The state of a batch of Langevin chains.

    Attributes:
        position: the chains, shape ``(*chains, d)``.
        potential: $U$ at each chain, shape ``(*chains,)``.
        grad: $\nabla U$ at each chain, shape ``(*chains, d)``.

    Examples:
        >>> from sdeml.langevin import ULA
        >>> state = ULA(lambda x: 0.5 * jnp.sum(x**2), step_size=0.1).init(jnp.ones((4, 3, 2)))
        >>> state.position.shape, state.potential.shape, state.grad.shape
        ((4, 3, 2), (4, 3), (4, 3, 2))
        >>> bool(jnp.all(state.potential == 1.0)), bool(jnp.all(state.grad == state.position))
        (True, True)
    """

    position: Float[Array, "*chains d"]
    potential: Float[Array, " *chains"]
    grad: Float[Array, "*chains d"]


class LangevinInfo(eqx.Module):
    r"""What one step reports: the Metropolis acceptance probability and decision per chain.

    For the unadjusted kernels (ULA, SGLD) every move is taken, so both are one.

    Attributes:
        acceptance_rate: the acceptance probability $\alpha$ of each chain's move, shape
            ``(*chains,)``.
        is_accepted: whether each chain moved, shape ``(*chains,)``, boolean.

    Examples:
        >>> from sdeml.langevin import MALA, ULA
        >>> U = lambda x: 0.5 * jnp.sum(x**2)
        >>> ula, mala = ULA(U, step_size=0.5), MALA(U, step_size=0.5)
        >>> _, info = ula.step(ula.init(jnp.zeros((1000, 1))), key=jr.key(0))
        >>> bool(jnp.all(info.acceptance_rate == 1.0) & jnp.all(info.is_accepted))
        True
        >>> _, info = mala.step(mala.init(jr.normal(jr.key(1), (1000, 1))), key=jr.key(0))
        >>> info.is_accepted.shape, round(float(info.acceptance_rate.mean()), 2)
        ((1000,), 0.92)
    """

    acceptance_rate: Float[Array, " *chains"]
    is_accepted: Bool[Array, " *chains"]


def batched_value_and_grad(
    potential: Potential, position: Float[Array, "*chains d"]
) -> tuple[Float[Array, " *chains"], Float[Array, "*chains d"]]:
    r"""$U$ and $\nabla U$ for every chain, with one forward and one reverse pass.

    Args:
        potential: $U:\mathbb{R}^d\to\mathbb{R}$, written for one chain.
        position: shape ``(*chains, d)``.

    Returns:
        ``(U, grad)`` of shapes ``(*chains,)`` and ``(*chains, d)``.

    Examples:
        >>> from sdeml.langevin import batched_value_and_grad
        >>> x = jr.normal(jr.key(0), (4, 3, 2))  # 4 x 3 chains in d = 2
        >>> u, g = batched_value_and_grad(lambda th: 0.5 * jnp.sum(th**2), x)
        >>> u.shape, g.shape
        ((4, 3), (4, 3, 2))
        >>> bool(jnp.allclose(u, 0.5 * jnp.sum(x**2, -1))), bool(jnp.allclose(g, x))
        (True, True)
    """
    lead, d = position.shape[:-1], position.shape[-1]
    flat = position.reshape(-1, d)
    values, pullback = jax.vjp(jax.vmap(potential), flat)
    (grads,) = pullback(jnp.ones_like(values))
    return values.reshape(lead), grads.reshape(*lead, d)


def langevin_step(
    position: Float[Array, "*chains d"],
    grad: Float[Array, "*chains d"],
    step_size: Float[ArrayLike, ""],
    temperature: Float[ArrayLike, ""],
    noise: Float[Array, "*chains d"],
) -> Float[Array, "*chains d"]:
    r"""The overdamped Langevin update shared by ULA, SGLD and MALA's proposal.

    $$
    \theta' = \theta - h\,\nabla U(\theta) + \sqrt{2h/\beta}\,\xi,\qquad
    \xi\sim N(0, I),\ 1/\beta = T,
    $$

    the Euler–Maruyama step of `LangevinSDE` with $\Delta W = \sqrt h\,\xi$. ULA passes
    $\nabla U$, SGLD a minibatch estimate $\nabla\hat U$, MALA proposes with it.

    Args:
        position: $\theta$, shape ``(*chains, d)``.
        grad: $\nabla U(\theta)$ (or an unbiased estimate), same shape.
        step_size: $h > 0$.
        temperature: $T = 1/\beta > 0$.
        noise: standard normal $\xi$, same shape.

    Returns:
        $\theta'$, shape ``(*chains, d)``.

    Examples:
        >>> from sdeml.langevin import langevin_step
        >>> x = jnp.ones((3, 1))
        >>> g = jax.vmap(jax.grad(lambda th: 0.5 * jnp.sum(th**2)))(x)  # grad U = x
        >>> langevin_step(x, g, 0.1, 1.0, jnp.zeros((3, 1))).ravel().tolist()  # no noise: GD
        [0.9, 0.9, 0.9]
        >>> xi = jr.normal(jr.key(0), (3, 1))  # sqrt(2 h T) = 1 at h = 0.5, T = 1
        >>> bool(jnp.allclose(langevin_step(x, g, 0.5, 1.0, xi), 0.5 * x + xi))
        True

    References:
        Roberts & Tweedie, Bernoulli 2(4), 1996; Welling & Teh, ICML 2011.
    """
    return position - step_size * grad + jnp.sqrt(2 * step_size * temperature) * noise


class LangevinSDE(AbstractSDE):
    r"""Overdamped Langevin dynamics as an SDE: $d\theta = -\nabla U(\theta)\,dt +
    \sqrt{2T}\,dW$, additive noise; its invariant law is $\pi_T\propto e^{-U/T}$.

    Its Euler–Maruyama step with $\Delta W = \sqrt h\,\xi$ is `langevin_step`, i.e. ULA:
    ``sdeml.simulate(LangevinSDE(U), x0, n_steps=n, t1=n * h, ...)`` runs ULA chains on the SDE
    engine (paired normal draws, blocking, chunking; see `ULA.sde`).

    Args:
        potential: $U(\theta)$ for one chain, ``(d,) -> ()``.
        temperature: $T > 0$.

    Examples:
        >>> from sdeml.langevin import LangevinSDE
        >>> sde = LangevinSDE(lambda x: 0.5 * jnp.sum(x**2))  # invariant law N(0, I)
        >>> paths = sdeml.simulate(sde, jnp.zeros(2), t1=5.0, n_steps=500, n_paths=4000,
        ...                        key=jr.key(0))
        >>> paths.xs.shape  # (n_paths, n_saves, d): the final state only
        (4000, 1, 2)
        >>> bool(abs(paths.xs.var() - 1.0) < 0.05)  # 1 / (1 - h/2) = 1.005 at h = 0.01
        True

    References:
        Roberts & Tweedie, Bernoulli 2(4), 1996; Pavliotis, Stochastic Processes and
        Applications, Springer 2014, ch. 4.
    """

    potential: Potential
    temperature: Float[Array, ""] | float = 1.0

    def __check_init__(self):
        check_positive_scalar("temperature", self.temperature)

    noise: ClassVar[str] = "additive"
    brownian_dim: ClassVar[None] = None

    def drift(self, t: Any, y: Float[Array, " d"], args: PyTree = None) -> Float[Array, " d"]:
        r"""$-\nabla U(y)$."""
        return -jax.grad(self.potential)(y)

    def diffusion(self, t: Any, y: Float[Array, " d"], args: PyTree = None) -> Float[Array, " d"]:
        r"""$\sqrt{2T}$, broadcast to `y`."""
        return jnp.broadcast_to(jnp.sqrt(2 * jnp.asarray(self.temperature, y.dtype)), y.shape)


def _init(potential: Potential, position: Array) -> LangevinState:
    position = check_position(position)
    check_scalar_function("potential", potential, position.reshape(-1, position.shape[-1])[0])
    u, g = batched_value_and_grad(potential, position)
    return LangevinState(position, u, g)


class _PotentialLangevin(eqx.Module):
    """What `ULA` and `MALA` share: a potential, a step size, a temperature, `init` and `sde`."""

    potential: Potential
    step_size: Float[Array, ""] | float
    temperature: Float[Array, ""] | float = 1.0

    def __check_init__(self):
        check_positive_scalar("step_size", self.step_size)
        check_positive_scalar("temperature", self.temperature)

    def init(self, position: Float[Array, "..."]) -> LangevinState:
        """The state at `position` (shape ``(d,)`` or ``(*chains, d)``)."""
        return _init(self.potential, position)

    @property
    def sde(self) -> LangevinSDE:
        """The overdamped Langevin SDE whose Euler–Maruyama step (``dt = step_size``) is ULA."""
        return LangevinSDE(self.potential, self.temperature)


class ULA(_PotentialLangevin):
    r"""Unadjusted Langevin algorithm: Euler–Maruyama on overdamped Langevin dynamics.

    $$
    d\theta = -\nabla U(\theta)\,dt + \sqrt{2T}\,dW,\qquad
    \theta_{k+1} = \theta_k - h\nabla U(\theta_k) + \sqrt{2hT}\,\xi_k,\ \xi_k\sim N(0, I).
    $$

    The continuous dynamics leave $\pi_T \propto e^{-U/T}$ invariant; the chain has an
    $O(h)$-biased invariant law (see `ula_gaussian_stationary_cov`,
    `ula_invariant_bin_probabilities`).

    Args:
        potential: $U(\theta)$ for one chain, ``(d,) -> ()``.
        step_size: $h > 0$.
        temperature: $T > 0$.

    Examples:
        On $U = x^2/2$ the chain's invariant variance is $1/(1 - h/2)$, not the target's 1:

        >>> from sdeml.langevin import ULA, run_chains, ula_gaussian_stationary_cov
        >>> ula = ULA(lambda x: 0.5 * jnp.sum(x**2), step_size=0.5)
        >>> state = ula.init(jnp.zeros((4000, 1)))  # 4000 chains in d = 1
        >>> state, info = ula.step(state, key=jr.key(0))  # one step ...
        >>> state, _, _ = run_chains(ula, state, 100, key=jr.key(1))  # ... and 100 more
        >>> exact = ula_gaussian_stationary_cov(jnp.eye(1), 0.5)[0, 0]
        >>> round(float(exact), 4), bool(abs(state.position.var() - exact) < 0.1)
        (1.3333, True)

    References:
        Roberts & Tweedie, Exponential convergence of Langevin distributions and their discrete
        approximations, Bernoulli 2(4), 1996.
    """

    def step(
        self, state: LangevinState, *, key: PRNGKeyArray
    ) -> tuple[LangevinState, LangevinInfo]:
        """One ULA move of every chain."""
        x = state.position
        noise = standard_normal(key, x.shape, x.dtype)
        y = langevin_step(x, state.grad, self.step_size, self.temperature, noise)
        u, g = batched_value_and_grad(self.potential, y)
        ones = jnp.ones(x.shape[:-1], x.dtype)
        return LangevinState(y, u, g), LangevinInfo(ones, ones > 0)


class MALA(_PotentialLangevin):
    r"""Metropolis-adjusted Langevin algorithm: a ULA proposal with a Metropolis–Hastings test.

    $$
    y = \theta - h\nabla U(\theta) + \sqrt{2hT}\,\xi,\qquad
    \alpha = \min\Bigl(1, \frac{e^{-U(y)/T} q(\theta\mid y)}{e^{-U(\theta)/T} q(y\mid\theta)}
    \Bigr),\ q(y\mid\theta) \propto \exp\Bigl(-\frac{|y-\theta+h\nabla U(\theta)|^2}{4hT}\Bigr).
    $$

    The chain leaves $\pi_T \propto e^{-U/T}$ exactly invariant for every $h$.
    Start chains in the bulk of the target: for superlinear gradients (e.g. the double well) a
    chain started far out proposes past the mode into the other tail and rejects for ever (MALA
    is not geometrically ergodic there; ULA, likewise, explodes).

    Args:
        potential: $U(\theta)$ for one chain, ``(d,) -> ()``.
        step_size: $h > 0$.
        temperature: $T > 0$.

    Examples:
        At a step size where ULA's variance is a third too large (see `ULA`), MALA's is right:

        >>> from sdeml.langevin import MALA, run_chains
        >>> mala = MALA(lambda x: 0.5 * jnp.sum(x**2), step_size=0.5)
        >>> state = mala.init(jnp.zeros((4000, 1)))
        >>> state, info = mala.step(state, key=jr.key(0))
        >>> state, acc, _ = run_chains(mala, state, 100, key=jr.key(1))
        >>> round(float(acc.mean()), 2), bool(abs(state.position.var() - 1.0) < 0.1)
        (0.92, True)

    References:
        Roberts & Tweedie, Bernoulli 2(4), 1996; Besag, Comments on "Representations of knowledge
        in complex systems", JRSS B 56, 1994.
    """

    def step(
        self, state: LangevinState, *, key: PRNGKeyArray
    ) -> tuple[LangevinState, LangevinInfo]:
        """One MALA move (propose, accept or reject) of every chain."""
        x = state.position
        k_noise, k_accept = jr.split(key)
        noise = standard_normal(k_noise, x.shape, x.dtype)
        uniform = jr.uniform(k_accept, state.potential.shape, x.dtype)
        vg = functools.partial(batched_value_and_grad, self.potential)
        *moved, alpha, accept = mala_move(
            vg, x, state.potential, state.grad, self.step_size, self.temperature, noise, uniform
        )
        new = LangevinState(*moved)
        return new, LangevinInfo(alpha, accept)


def mala_move(value_and_grad, x, ux, gx, step_size, temperature, noise, uniform) -> tuple:
    r"""One Metropolis-adjusted Langevin move of chains ``(*chains, d)`` from given draws.

    Proposes $y = $ `langevin_step` $(x)$ and accepts with probability
    $\alpha = \min(1, e^{-(U(y) - U(x))/T} q(x\mid y)/q(y\mid x))$ when ``uniform < alpha``;
    with the forward and backward residuals $r_f = y - x + h\nabla U(x)$ and
    $r_b = x - y + h\nabla U(y)$,
    $\log q(x\mid y) - \log q(y\mid x) = (|r_f|^2 - |r_b|^2)/(4hT)
    = (\nabla U(x) + \nabla U(y))\cdot(2(y - x) + h(\nabla U(x) - \nabla U(y)))/(4T)$,
    the factored form (no cancellation of two nearly equal squares at small $h$).
    A NaN proposal is rejected. Shared by `MALA.step` and `mala_chain`.

    Returns:
        ``(x', U(x'), grad U(x'), alpha, accepted)``.
    """
    h, temp = step_size, temperature
    y = langevin_step(x, gx, h, temp, noise)
    uy, gy = value_and_grad(y)
    # |fwd|^2 - |back|^2 as (fwd + back).(fwd - back): two nearly equal squares cancelled in
    # float32 (at h = 1e-4 on N(0, 1) the rejection rate read 6.6e-7, against 2.2e-7)
    log_q_ratio = jnp.sum((gx + gy) * (2 * (y - x) + h * (gx - gy)), -1) / (4 * temp)
    log_alpha = (ux - uy) / temp + log_q_ratio
    log_alpha = jnp.where(jnp.isnan(log_alpha), -jnp.inf, log_alpha)  # NaN proposals: reject
    alpha = jnp.exp(jnp.minimum(log_alpha, 0.0))
    accept = jnp.log(uniform) < log_alpha
    return (
        jnp.where(accept[..., None], y, x),
        jnp.where(accept, uy, ux),
        jnp.where(accept[..., None], gy, gx),
        alpha,
        accept,
    )


class SGLDState(eqx.Module):
    """The state of a batch of SGLD chains: positions only (gradients are re-drawn each step).

    Attributes:
        position: the chains, shape ``(*chains, d)``.

    Examples:
        >>> from sdeml.langevin import SGLD
        >>> sgld = SGLD(lambda th, x: -0.5 * (x - th[0]) ** 2, lambda th: -0.5 * th @ th,
        ...             jnp.ones(10), batch_size=5, step_size=0.01)
        >>> sgld.init(jnp.zeros((8, 1))).position.shape
        (8, 1)
    """

    position: Float[Array, "*chains d"]


class SGLD(eqx.Module):
    r"""Stochastic-gradient Langevin dynamics with minibatch gradients and a temperature.

    For the posterior $p(\theta\mid x_{1:N}) \propto p(\theta)\prod_i p(x_i\mid\theta)$,
    $U(\theta) = -\log p(\theta) - \sum_i \log p(x_i\mid\theta)$ is estimated from a
    minibatch $S$ of size $B$, drawn independently per chain (without replacement by
    default, a random permutation per chain; ``replace=True`` is cheaper for many chains):

    $$
    \hat U(\theta) = -\log p(\theta) - \frac{N}{B}\sum_{i\in S}\log p(x_i\mid\theta),\qquad
    \theta_{k+1} = \theta_k - h\nabla\hat U(\theta_k) + \sqrt{2hT}\,\xi_k.
    $$

    (Welling & Teh's $\epsilon/2$ is $h$ here.) With $B = N$ this is ULA.

    Args:
        log_likelihood: $\log p(x_i\mid\theta)$ for one example, ``(theta, example) -> ()``.
        log_prior: $\log p(\theta)$, ``(d,) -> ()``.
        data: a pytree of arrays whose leading axis (length $N$) indexes examples.
        batch_size: $B$, ``1 <= B <= N``.
        step_size: $h > 0$.
        temperature: $T > 0$ (1 samples the posterior).
        replace: draw minibatches with replacement.

    Examples:
        The mean of $N$ unit-variance observations under a $N(0, 1)$ prior: the posterior is
        $N(\sum_i x_i/(N + 1),\ 1/(N + 1))$.

        >>> from sdeml.langevin import SGLD, run_chains
        >>> data = 1.0 + jr.normal(jr.key(0), (100,))
        >>> loglik = lambda th, x: -0.5 * (x - th[0]) ** 2
        >>> sgld = SGLD(loglik, lambda th: -0.5 * th @ th, data, batch_size=10, step_size=1e-3)
        >>> state, _, _ = run_chains(sgld, sgld.init(jnp.zeros((500, 1))), 200, key=jr.key(1))
        >>> bool(abs(state.position.mean() - data.sum() / 101) < 0.02)
        True

    References:
        Welling & Teh, Bayesian learning via stochastic gradient Langevin dynamics, ICML 2011.
    """

    log_likelihood: Callable[[Float[Array, " d"], Any], Float[Array, ""]]
    log_prior: Callable[[Float[Array, " d"]], Float[Array, ""]]
    data: PyTree
    batch_size: int = eqx.field(static=True, converter=_python_int)
    step_size: Float[Array, ""] | float
    temperature: Float[Array, ""] | float = 1.0
    replace: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_positive_scalar("step_size", self.step_size)
        check_positive_scalar("temperature", self.temperature)
        check_batch_size(self.batch_size, check_data(self.data))

    @property
    def n_data(self) -> int:
        return jax.tree_util.tree_leaves(self.data)[0].shape[0]

    def potential(self, theta: Float[Array, " d"]) -> Float[Array, ""]:
        """The full-data potential $U(\\theta)$ (used for checks and by MALA references)."""
        ll = jax.vmap(self.log_likelihood, in_axes=(None, 0))(theta, self.data)
        return -self.log_prior(theta) - jnp.sum(ll)

    def init(self, position: Float[Array, "..."]) -> SGLDState:
        """The state at `position` (shape ``(d,)`` or ``(*chains, d)``)."""
        position = check_position(position)
        theta = position.reshape(-1, position.shape[-1])[0]
        example = jax.tree_util.tree_map(lambda a: a[0], self.data)
        check_scalar_function("log_likelihood", self.log_likelihood, theta, example)
        check_scalar_function("log_prior", self.log_prior, theta)
        return SGLDState(position)

    def step(self, state: SGLDState, *, key: PRNGKeyArray) -> tuple[SGLDState, LangevinInfo]:
        """One SGLD move of every chain, each with its own minibatch."""
        x = state.position
        lead, d = x.shape[:-1], x.shape[-1]
        flat = x.reshape(-1, d)
        n_chains, n, b = flat.shape[0], self.n_data, self.batch_size
        k_batch, k_noise = jr.split(key)
        idx = sample_indices(n, b, n_chains, self.replace, key=k_batch)
        batch = jax.tree_util.tree_map(lambda a: a[idx], self.data)  # (chains, B, ...)
        ll = jax.vmap(jax.vmap(self.log_likelihood, in_axes=(None, 0)), in_axes=(0, 0))

        def total(theta):  # sum over chains of U-hat: its gradient is per-chain
            return jnp.sum(-jax.vmap(self.log_prior)(theta)) - (n / b) * jnp.sum(ll(theta, batch))

        grad = jax.grad(total)(flat)
        noise = standard_normal(k_noise, flat.shape, flat.dtype)
        y = langevin_step(flat, grad, self.step_size, self.temperature, noise).reshape(*lead, d)
        ones = jnp.ones(lead, x.dtype)
        return SGLDState(y), LangevinInfo(ones, ones > 0)


_DIVERGED = (
    "Langevin chain diverged: a chain's state became NaN/inf. The step size is too large for the "
    "potential's curvature (ULA and SGLD are unstable once step_size * L > 2 for a gradient "
    "Lipschitz constant L; MALA rejects such moves but cannot recover from a non-finite start): "
    "reduce step_size, or check the potential and its gradient."
)
_NONFINITE_START = "Langevin chains: the initial state contains NaN/inf; nothing was run."


def _finite_per_chain(state: Any) -> Bool[Array, " *chains"]:
    """Whether each chain's state is finite (position, and potential/grad where kept)."""
    position = getattr(state, "position", None)
    leaves = [x for x in jax.tree_util.tree_leaves(state) if eqx.is_inexact_array(x)]
    if position is None or not leaves:
        return jnp.asarray(True)
    lead = position.shape[:-1]
    ok = jnp.ones(lead, bool)
    for x in leaves:
        if x.shape[: len(lead)] == lead:
            ok = ok & jnp.all(jnp.isfinite(x).reshape(*lead, -1), axis=-1)
    return ok


def _flag_divergence(start_ok: Array, end_ok: Array, out: PyTree) -> PyTree:
    """Attach the divergence checks to every array of `out` (issue #17: never NaN in silence).

    `eqx.error_if` raises eagerly and, under ``jax.jit``, at run time; threading it through
    every output keeps a caller that uses only some of them from dropping the check.
    """
    arrays, rest = eqx.partition(out, eqx.is_array)
    arrays = eqx.error_if(arrays, ~jnp.all(start_ok), _NONFINITE_START)
    arrays = eqx.error_if(arrays, ~jnp.all(end_ok), _DIVERGED)
    return eqx.combine(arrays, rest)


def run_chains(
    kernel: Any,
    state: Any,
    n_steps: int,
    *,
    observe: Callable[[Any], PyTree] | None = None,
    thin: int = 1,
    key: PRNGKeyArray,
) -> tuple[Any, Float[Array, " *chains"] | None, PyTree]:
    r"""Run ``kernel.step`` `n_steps` times in one `lax.scan`.

    $$
    s_{k+1}, \mathrm{info}_k = \mathrm{step}(s_k; \mathrm{key}_k),\quad k < n.
    $$

    Args:
        kernel: any object with ``step(state, *, key) -> (state, info)`` (ULA, MALA, SGLD,
            `sdeml.optim_dynamics.SGD`).
        state: the initial state.
        n_steps: number of steps (a multiple of `thin`).
        observe: ``state -> pytree`` recorded every `thin` steps (``None``: nothing recorded).
        thin: record every `thin`-th state.
        key: PRNG key.

    Returns:
        ``(final_state, mean_acceptance_per_chain, observations)``; observations are stacked
        along a new leading axis of length ``n_steps // thin`` (``None`` if `observe` is None).
        The mean acceptance is ``None`` for kernels whose info has no ``acceptance_rate``
        (an optimiser such as SGD has no Metropolis test).

    Raises:
        EquinoxRuntimeError: (eagerly, and under ``jax.jit`` at run time) a chain's state became
            NaN/inf ("Langevin chain diverged": the step size is too large), or the initial
            state was not finite.

    Examples:
        >>> from sdeml.langevin import MALA, run_chains
        >>> mala = MALA(lambda x: 0.5 * jnp.sum(x**2), step_size=0.5)
        >>> state, acc, xs = run_chains(mala, mala.init(jnp.zeros((100, 2))), 1000,
        ...                             observe=lambda s: s.position, thin=10, key=jr.key(1))
        >>> state.position.shape, acc.shape, xs.shape  # xs: (n_steps // thin, *chains, d)
        ((100, 2), (100,), (100, 100, 2))
        >>> bool(abs(xs[10:].var() - 1.0) < 0.05)  # MALA's law is the target N(0, I)
        True
    """
    n_steps = check_positive_int("n_steps", n_steps)  # NumPy integers too
    thin_ok = not isinstance(thin, bool) and isinstance(thin, int | np.integer) and thin >= 1
    if not thin_ok or n_steps % thin:
        raise ValueError(f"`thin` must be a positive divisor of n_steps={n_steps}, got {thin!r}.")
    keys = jr.split(key, n_steps).reshape(n_steps // thin, thin)
    has_rate = _has_acceptance(kernel, state, key)

    def inner(carry, k):
        s, acc = carry
        s, info = kernel.step(s, key=k)
        return (s, acc + info.acceptance_rate if has_rate else acc), None

    def outer(carry, ks):
        carry, _ = jax.lax.scan(inner, carry, ks)
        return carry, None if observe is None else observe(carry[0])

    lead = jax.tree_util.tree_leaves(state)[0].shape[:-1]
    acc0 = jnp.zeros(lead, jax.tree_util.tree_leaves(state)[0].dtype)
    start_ok = _finite_per_chain(state)
    (state, acc), obs = jax.lax.scan(outer, (state, acc0), keys)
    # A chain that went non-finite stays non-finite (NaN/inf propagate through the update), so
    # checking the final state catches a divergence at any step.
    out = (state, acc / n_steps if has_rate else None, obs)
    return _flag_divergence(start_ok, _finite_per_chain(state), out)


def _has_acceptance(kernel: Any, state: Any, key: PRNGKeyArray) -> bool:
    """Whether ``kernel.step``'s info reports an ``acceptance_rate`` (decided at trace time)."""
    info = jax.eval_shape(lambda s, k: kernel.step(s, key=k)[1], state, key)
    return getattr(info, "acceptance_rate", None) is not None


def histogram_chains(
    kernel: Any,
    state: Any,
    n_steps: int,
    lo: Float[Array, " d"] | float,
    hi: Float[Array, " d"] | float,
    n_bins: int,
    *,
    key: PRNGKeyArray,
) -> tuple[Any, Int[Array, "..."], Float[Array, " *chains"]]:
    r"""Accumulate a histogram of every chain at every step, without storing the chains.

    $$
    c_j = \#\{(c, k): \theta^{(c)}_k \in \text{bin}_j\},\quad k = 1..n.
    $$

    Bins are ``n_bins`` equal cells per coordinate of the box ``[lo, hi]^d`` (d = 1 or 2);
    samples outside the box are not counted, so ``n_chains * n_steps - counts.sum()`` is the
    number that fell outside.

    Args:
        kernel: a kernel with ``step(state, *, key)``; the state must have ``position``.
        state: the initial state (run burn-in before, e.g. with `run_chains`).
        n_steps: number of steps to record (a positive int).
        lo, hi: the box (scalars or per-coordinate ``(d,)`` arrays; finite, ``hi > lo``).
        n_bins: cells per coordinate (a positive int).
        key: PRNG key.

    Returns:
        ``(final_state, counts, mean_acceptance)``; counts has shape ``(n_bins,) * d``.

    Raises:
        EquinoxRuntimeError: a chain diverged to NaN/inf, as in `run_chains` (a diverged chain
            would otherwise only go missing from the counts).

    Examples:
        1000 MALA chains started in the target $N(0, 1)$, 100 steps each, against the Gibbs
        law's bin probabilities:

        >>> from sdeml.langevin import MALA, gibbs_bin_probabilities, histogram_chains
        >>> U = lambda x: 0.5 * jnp.sum(x**2)
        >>> mala = MALA(U, step_size=0.5)
        >>> state = mala.init(jr.normal(jr.key(0), (1000, 1)))
        >>> state, counts, acc = histogram_chains(mala, state, 100, -3.0, 3.0, 20, key=jr.key(1))
        >>> counts.shape, bool(counts.sum() < 1000 * 100)  # a few samples fell outside
        ((20,), True)
        >>> probs, outside = gibbs_bin_probabilities(U, -3.0, 3.0, 20)
        >>> tv = sdeml.metrics.total_variation(counts / (1000 * 100), probs)
        >>> bool(tv < 0.01)
        True
    """
    d = state.position.shape[-1]
    if d not in (1, 2):
        raise ValueError(
            f"histogram_chains supports d = 1 or 2, got position shape {state.position.shape}."
        )
    n_steps = check_positive_int("n_steps", n_steps)
    n_bins = check_positive_int("n_bins", n_bins)
    dtype = state.position.dtype
    lo, hi = check_box(lo, hi, d, dtype)
    width = (hi - lo) / n_bins
    strides = n_bins ** jnp.arange(d - 1, -1, -1)

    has_rate = _has_acceptance(kernel, state, key)
    # a cell can hold every sample: int32 counts wrap past 2^31 - 1 without a word
    total = math.prod(state.position.shape[:-1]) * n_steps
    count_dtype = jnp.int32
    if total > np.iinfo(np.int32).max:
        if not jax.config.read("jax_enable_x64"):
            raise ValueError(
                f"histogram_chains: {total} samples (chains x n_steps) could overflow int32 "
                "counts; enable float64/int64 (jax.config.update('jax_enable_x64', True)) or "
                "sum the counts of several shorter calls in int64."
            )
        count_dtype = jnp.int64

    def body(carry, k):
        s, counts, acc = carry
        s, info = kernel.step(s, key=k)
        z = jnp.floor((s.position.reshape(-1, d) - lo) / width)
        # inside tested in floating point, before the cast: a far-out sample's cell index does
        # not fit an int32 (nor does an inf or NaN) and its cast is not defined
        inside = jnp.all((z >= 0) & (z < n_bins), axis=-1)
        cell = jnp.where(inside[:, None], z, 0).astype(jnp.int32)
        flat = jnp.where(inside, cell @ strides.astype(jnp.int32), n_bins**d)  # overflow cell
        counts = counts.at[flat].add(jnp.ones((), count_dtype), mode="drop")
        return (s, counts, acc + info.acceptance_rate if has_rate else acc), None

    counts0 = jnp.zeros(n_bins**d + 1, count_dtype)
    acc0 = jnp.zeros(state.position.shape[:-1], dtype)
    start_ok = _finite_per_chain(state)
    (state, counts, acc), _ = jax.lax.scan(body, (state, counts0, acc0), jr.split(key, n_steps))
    out = (state, counts[:-1].reshape((n_bins,) * d), acc / n_steps if has_rate else None)
    return _flag_divergence(start_ok, _finite_per_chain(state), out)
