"""SGD as a stochastic differential equation: the minibatch-noise SDE, its simulation, and the
stationary covariances (Lyapunov equations) of both SGD and the SDE on quadratic losses."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..core import AbstractSDE, simulate
from ..core._checks import check_batch_size as _check_batch
from ..core._checks import check_data as _n_data
from ..core._checks import (
    check_position,
    check_positive,
    check_positive_int,
    check_positive_scalar,
    check_scalar_function,
    common_float_dtype,
)
from ..core._minibatch import sample_indices

ExampleLoss = Callable[[Float[Array, " d"], Any], Float[Array, ""]]


def minibatch_factor(batch_size: int, n_data: int | None = None) -> float:
    r"""The variance factor of a minibatch mean: $\tfrac1B$ (with replacement) or
    $\tfrac1B\tfrac{N-B}{N-1}$ (without replacement, the finite-population correction).

    Args:
        batch_size: $B$, a positive int ($\le N$ when ``n_data`` is given).
        n_data: $N$, or None for sampling with replacement (or an infinite dataset).

    Returns:
        The factor $c_B$, a float: $\mathrm{Cov}(\bar g_B) = c_B\,\Sigma$.

    Examples:
        >>> from sdeml.optim_dynamics import minibatch_factor
        >>> minibatch_factor(10), round(minibatch_factor(10, 100), 6), round(0.1 * 90 / 99, 6)
        (0.1, 0.090909, 0.090909)
        >>> minibatch_factor(100, 100)  # the whole dataset: no noise
        0.0

    References:
        Cochran, Sampling Techniques, 3rd ed., 1977, thm. 2.2.
    """
    batch_size = check_positive_int("batch_size", batch_size)  # NumPy integers too
    if n_data is None:
        return 1.0 / batch_size
    _check_batch(batch_size, n_data)
    if n_data == 1:
        return 0.0
    return (n_data - batch_size) / (batch_size * (n_data - 1))


def per_example_gradients(
    per_example_loss: ExampleLoss, theta: Float[Array, " d"], data: PyTree
) -> Float[Array, "N d"]:
    r"""The gradients $\nabla_\theta \ell(\theta; x_i)$ of every example, shape ``(N, d)``.

    Args:
        per_example_loss: $\ell(\theta, x_i)$ for one example, ``((d,), example) -> ()``.
        theta: parameters, shape ``(d,)``.
        data: pytree of arrays with a leading example axis of length $N$.

    Returns:
        The per-example gradients, shape ``(N, d)``.

    Examples:
        For $\ell = \tfrac12(\theta - x)^2$, $g_i = \theta - x_i$:

        >>> from sdeml.optim_dynamics import per_example_gradients
        >>> xs = jnp.array([1.0, 2.0, 4.0])
        >>> g = per_example_gradients(lambda th, x: 0.5 * (th[0] - x) ** 2, jnp.zeros(1), xs)
        >>> g.shape, g[:, 0].tolist()
        ((3, 1), [-1.0, -2.0, -4.0])
    """
    return jax.vmap(jax.grad(per_example_loss), in_axes=(None, 0))(theta, data)


def gradient_noise_cov(
    per_example_loss: ExampleLoss, theta: Float[Array, " d"], data: PyTree
) -> Float[Array, "d d"]:
    r"""The per-example gradient covariance estimated from the data.

    $$
    \Sigma(\theta) = \frac1N\sum_{i=1}^N (g_i - \bar g)(g_i - \bar g)^T,\quad
    g_i = \nabla\ell(\theta; x_i),\ \bar g = \nabla L(\theta).
    $$

    Args:
        per_example_loss: $\ell(\theta, x_i)$, ``((d,), example) -> ()``.
        theta: parameters, shape ``(d,)``.
        data: the dataset, a pytree of arrays with a leading example axis of length $N$.

    Returns:
        $\Sigma(\theta)$, shape ``(d, d)``.

    Examples:
        For $\ell = \tfrac12(\theta - x)^2$, $\Sigma$ is the (population) variance of the data:

        >>> from sdeml.optim_dynamics import gradient_noise_cov
        >>> xs = jr.normal(jr.key(0), (100,))
        >>> cov = gradient_noise_cov(lambda th, x: 0.5 * (th[0] - x) ** 2, jnp.zeros(1), xs)
        >>> cov.shape, bool(jnp.allclose(cov, jnp.var(xs)))
        ((1, 1), True)

    References:
        Li, Tai & E, Stochastic modified equations and adaptive stochastic gradient algorithms,
        ICML 2017. arXiv:1511.06251
    """
    g = per_example_gradients(per_example_loss, theta, data)
    c = g - g.mean(0)
    return c.T @ c / g.shape[0]


def _check_loss_on(per_example_loss: ExampleLoss, data: PyTree, theta: Array, name: str) -> None:
    """`ValueError` unless ``per_example_loss(theta, example)`` runs on one example of `data`
    and returns a scalar: a `theta` whose d does not match the data failed deep inside JAX
    with a TypeError (a dot_general or broadcasting message)."""
    example = jax.tree_util.tree_map(lambda a: a[0], data)
    try:
        jax.eval_shape(per_example_loss, theta, example)
    except (TypeError, ValueError) as e:
        shapes = jax.tree_util.tree_map(lambda a: tuple(jnp.shape(a)[1:]), data)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(
            f"`per_example_loss` fails on parameters of shape {tuple(theta.shape)} (d = "
            f"{theta.shape[-1]}, from `{name}`) and one example of `data` (shapes {shapes}); "
            f"does d match the data? ({type(e).__name__}: {first})"
        ) from None
    check_scalar_function("per_example_loss", per_example_loss, theta, example)


class SGDState(eqx.Module):
    """A batch of SGD iterates, shape ``(*chains, d)``.

    Attributes:
        position: the iterates $\\theta$, shape ``(*chains, d)`` (or ``(d,)`` for one chain).

    Examples:
        >>> sgd = sdeml.optim_dynamics.SGD(
        ...     lambda th, x: 0.5 * (th[0] - x) ** 2, jnp.arange(10.0), lr=0.1, batch_size=2)
        >>> sgd.init(jnp.zeros((4, 1))).position.shape
        (4, 1)
    """

    position: Float[Array, "*chains d"]


class SGDInfo(eqx.Module):
    """What one SGD step reports: each chain's minibatch loss before the step.

    An optimiser has no Metropolis test, so there is no acceptance rate.

    Attributes:
        minibatch_loss: $\\frac1B\\sum_{i\\in S_k}\\ell(\\theta_k; x_i)$ of each chain at its
            position before the step, shape ``(*chains,)``.

    Examples:
        With all $N = B = 2$ examples $x = (0, 2)$, the minibatch loss at $\\theta = 0$ is
        $\\tfrac12(0 + 4)/2 = 1$:

        >>> sgd = sdeml.optim_dynamics.SGD(
        ...     lambda th, x: 0.5 * (th[0] - x) ** 2, jnp.array([0.0, 2.0]), lr=0.1,
        ...     batch_size=2, replace=False)
        >>> state, info = sgd.step(sgd.init(jnp.zeros((3, 1))), key=jr.key(0))
        >>> info.minibatch_loss.shape, info.minibatch_loss.tolist()
        ((3,), [1.0, 1.0, 1.0])
    """

    minibatch_loss: Float[Array, " *chains"]


class SGD(eqx.Module):
    r"""Minibatch SGD on $L = \frac1N\sum_i\ell(\theta;x_i)$ as an init/step kernel on chains.

    $$
    \theta_{k+1} = \theta_k - \frac{\eta}{B}\sum_{i\in S_k}\nabla\ell(\theta_k;x_i),
    $$

    with $S_k$ drawn independently per chain and per step, with replacement (default: B
    uniform indices, cheap) or without (a random permutation per chain: $O(N\log N)$ per
    chain and step, slow on CPU for many chains). Many independent SGD runs advance in one array
    program, and their spread is SGD's stationary law.

    Args:
        per_example_loss: $\ell(\theta, x_i)$, ``((d,), example) -> ()``.
        data: pytree of arrays with a leading example axis of length $N$.
        lr: $\eta > 0$, a scalar.
        batch_size: $1 \le B \le N$, a static int.
        replace: draw each minibatch with replacement (True) or without.

    Examples:
        1000 chains on $\ell = \tfrac12(\theta - x)^2$: their spread matches SGD's stationary
        variance $\eta\sigma^2 / (B(2 - \eta))$ (`sgd_stationary_cov`), with $\sigma^2$ the
        data variance:

        >>> from sdeml.optim_dynamics import SGD, sgd_stationary_cov
        >>> xs = jr.normal(jr.key(0), (100,))
        >>> sgd = SGD(lambda th, x: 0.5 * (th[0] - x) ** 2, xs, lr=0.1, batch_size=8)
        >>> state, _, _ = sdeml.run_chains(sgd, sgd.init(jnp.zeros((1000, 1))), 200,
        ...                                key=jr.key(1))
        >>> state.position.shape
        (1000, 1)
        >>> exact = sgd_stationary_cov(jnp.eye(1), jnp.var(xs)[None, None], 0.1, 8, discrete=True)
        >>> bool(abs(jnp.var(state.position) / exact[0, 0] - 1) < 0.15)  # 1000 chains: ~5% error
        True

    References:
        Robbins & Monro, Ann. Math. Statist. 22, 1951.
    """

    per_example_loss: ExampleLoss
    data: PyTree
    lr: Float[Array, ""] | float
    batch_size: int = eqx.field(static=True)
    replace: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_positive_scalar("lr", self.lr)
        _check_batch(self.batch_size, _n_data(self.data))

    def init(self, position: Float[Array, "*chains d"]) -> SGDState:
        """The state at `position` (shape ``(d,)`` or ``(*chains, d)``)."""
        position = check_position(position)
        theta = position.reshape(-1, position.shape[-1])[0]
        _check_loss_on(self.per_example_loss, self.data, theta, "position")
        return SGDState(position)

    def step(self, state: SGDState, *, key: PRNGKeyArray) -> tuple[SGDState, SGDInfo]:
        """One SGD step of every chain, each with its own minibatch."""
        x = state.position
        lead, d = x.shape[:-1], x.shape[-1]
        flat = x.reshape(-1, d)
        n, b = _n_data(self.data), self.batch_size
        idx = sample_indices(n, b, flat.shape[0], self.replace, key=key)
        batch = jax.tree_util.tree_map(lambda a: a[idx], self.data)
        loss = jax.vmap(jax.vmap(self.per_example_loss, in_axes=(None, 0)))
        # per-chain minibatch losses and, by one pullback of their sum, per-chain mean gradients
        values, pullback = jax.vjp(lambda th: jnp.sum(loss(th, batch), axis=1) / b, flat)
        (grad,) = pullback(jnp.ones_like(values))
        # lr in the chains' dtype: a NumPy float64 lr (not weakly typed) made float32 chains
        # float64 after one step, and `run_chains`' scan refused the changed carry type
        lr = jnp.asarray(self.lr, flat.dtype)
        new = SGDState((flat - lr * grad).reshape(*lead, d))
        return new, SGDInfo(values.reshape(lead))


class SGDSDE(AbstractSDE):
    r"""The SDE approximation of minibatch SGD (stochastic modified equation, first order).

    $$
    d\theta = -\nabla L(\theta)\,dt + \sqrt{\eta\,c_B\,\Sigma(\theta)}\,dW,
    $$

    with $\Sigma$ the per-example gradient covariance (`gradient_noise_cov`) and
    $c_B$ = `minibatch_factor` ($1/B$, times $(N-B)/(N-1)$ without
    replacement). Time $t$ corresponds to $t/\eta$ SGD steps. In 1-D with constant
    $\Sigma=\sigma^2$ its stationary law is the Gibbs density
    $\exp(-2L/(\eta c_B\sigma^2))$.

    It is an `sdeml.core.AbstractSDE` with ``drift(t, theta, args)`` $=-\nabla L$ and
    ``diffusion(t, theta, args)`` the ``(d, d)`` symmetric square root of
    $\eta c_B\Sigma(\theta)$: ``noise="general"`` with a ``d``-dimensional $W$, or
    ``"additive"`` (matrix) when $\Sigma$ is frozen by `noise_cov`. `simulate` runs it
    through `sdeml.core.simulate`; to pass it to the engine yourself, give `dim` (or
    `noise_cov`), which fixes the Brownian dimension.

    Args:
        per_example_loss: $\ell(\theta, x_i)$, ``((d,), example) -> ()``.
        data: the dataset, a pytree of arrays with a leading example axis of length $N$.
        lr: $\eta > 0$, a scalar.
        batch_size: $B$, a static int in $[1, N]$.
        replace: whether SGD draws minibatches with replacement (as `SGD`'s default).
        noise_cov: if given, a constant $\Sigma$ of shape ``(d, d)`` used instead of
            $\Sigma(\theta)$
            (exact for quadratic losses with additive gradient noise; otherwise the common
            "noise frozen at the minimum" approximation). It makes each step O(d^3) instead of
            O(N d^2 + d^3) per path.
        dim: $d$, the parameter dimension (default: from `noise_cov`, or from the start
            points given to `simulate`).

    Examples:
        On $\ell = \tfrac12(\theta - x)^2$, $\Sigma = \sigma^2$ (the data variance) and the
        stationary variance is $\eta\sigma^2/(2B)$ (`sgd_stationary_cov` with
        ``discrete=False``):

        >>> xs = jr.normal(jr.key(0), (100,))
        >>> sde = sdeml.SGDSDE(lambda th, x: 0.5 * (th[0] - x) ** 2, xs, lr=0.1, batch_size=8)
        >>> theta = jnp.array([0.3])
        >>> sde.drift(0.0, theta).shape, sde.diffusion(0.0, theta).shape
        ((1,), (1, 1))
        >>> bool(jnp.allclose(sde.diffusion(0.0, theta) ** 2, 0.1 / 8 * jnp.var(xs)))
        True
        >>> paths = sde.simulate(jnp.zeros((1000, 1)), 5.0, 250, save_every=250, key=jr.key(1))
        >>> paths.shape
        (1, 1000, 1)
        >>> bool(abs(jnp.var(paths[-1]) / (0.1 / 8 * jnp.var(xs) / 2) - 1) < 0.15)
        True

    References:
        Li, Tai & E, ICML 2017, arXiv:1511.06251; Mandt, Hoffman & Blei, Stochastic gradient
        descent as approximate Bayesian inference, JMLR 18, 2017.
    """

    per_example_loss: ExampleLoss
    data: PyTree
    lr: Float[Array, ""] | float
    batch_size: int = eqx.field(static=True)
    replace: bool = eqx.field(static=True, default=True)
    noise_cov: Float[Array, "d d"] | None = None
    dim: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_positive_scalar("lr", self.lr)
        _check_batch(self.batch_size, _n_data(self.data))
        if self.noise_cov is not None:
            shape = jnp.shape(self.noise_cov)
            if len(shape) != 2 or shape[0] != shape[1]:
                raise ValueError(f"`noise_cov` must be a (d, d) matrix, got shape {shape}.")
            if self.dim is not None and self.dim != shape[0]:
                raise ValueError(f"`dim`={self.dim} does not match `noise_cov` of shape {shape}.")
        if self.dim is not None:
            check_positive_int("dim", self.dim)  # NumPy integers too; a bool is refused

    @property
    def noise(self) -> str:
        return "general" if self.noise_cov is None else "additive"

    @property
    def brownian_dim(self) -> int | None:
        if self.dim is not None:
            return self.dim
        return None if self.noise_cov is None else int(jnp.shape(self.noise_cov)[0])

    @property
    def noise_factor(self) -> float:
        return minibatch_factor(self.batch_size, None if self.replace else _n_data(self.data))

    def loss(self, theta: Float[Array, " d"]) -> Float[Array, ""]:
        """The full-data loss $L(\\theta)$."""
        return jnp.mean(jax.vmap(self.per_example_loss, in_axes=(None, 0))(theta, self.data))

    def drift(self, t: Any, theta: Float[Array, " d"], args: PyTree = None) -> Float[Array, " d"]:
        """$-\\nabla L(\\theta)$."""
        return -jax.grad(self.loss)(theta)

    def diffusion(
        self, t: Any, theta: Float[Array, " d"], args: PyTree = None
    ) -> Float[Array, "d d"]:
        """The symmetric square root of $\\eta c_B \\Sigma(\\theta)$ (via eigh; PSD-safe)."""
        sigma = (
            gradient_noise_cov(self.per_example_loss, theta, self.data)
            if self.noise_cov is None
            else jnp.asarray(self.noise_cov)
        )
        # in theta's dtype: a float64 `noise_cov` or NumPy lr made the noise of float32 paths
        # float64 (an error under strict promotion, a silent upcast otherwise)
        dtype = theta.dtype if jnp.issubdtype(theta.dtype, jnp.floating) else sigma.dtype
        sigma = jnp.asarray(sigma, dtype)
        cov = jnp.asarray(self.lr * self.noise_factor, dtype) * sigma
        lam, v = jnp.linalg.eigh(cov)
        return (v * jnp.sqrt(jnp.maximum(lam, 0.0))) @ v.T

    def simulate(
        self,
        theta0: Float[Array, "n_paths d"],
        t1: float,
        n_steps: int,
        save_every: int = 1,
        *,
        chunk_size: int | None = None,
        mesh: Any = None,
        key: PRNGKeyArray,
    ) -> Float[Array, "s n_paths d"]:
        r"""Euler–Maruyama paths of the SDE on $[0, t_1]$, on the SDE engine
        (`sdeml.core.simulate`).

        $$
        \theta_{k+1} = \theta_k - \nabla L\,\Delta t + \sqrt{\eta c_B\Sigma}\,
        \sqrt{\Delta t}\,\xi_k.
        $$

        Use $\Delta t \ll \eta$ to see the SDE rather than SGD again (at
        $\Delta t = \eta$ this is SGD with Gaussian minibatch noise).

        Args:
            theta0: starts, shape ``(n_paths, d)``.
            t1: horizon (in units where SGD step k sits at $t = k\eta$).
            n_steps: EM steps; ``save_every`` divides it.
            chunk_size: paths per chunk of the engine (`sdeml.simulate`'s; default: sized to
                the platform's memory).
            mesh: a `jax.sharding.Mesh` (or `NamedSharding`) to split the paths over its
                devices, also those of other processes under `jax.distributed`
                (`sdeml.simulate`'s ``mesh``); every path equals the one-device run's with the
                same key and `chunk_size`. None: the default device.
            key: PRNG key.

        Returns:
            States every `save_every` steps (t0 excluded), ``(n_steps // save_every, n_paths, d)``.
        """
        theta0 = jnp.asarray(theta0)
        if theta0.ndim != 2:
            raise ValueError(f"`theta0` must have shape (n_paths, d), got {theta0.shape}.")
        if not jnp.issubdtype(theta0.dtype, jnp.floating):
            theta0 = theta0.astype(float)
        check_positive("t1", t1)
        save_every = check_positive_int("save_every", save_every)  # NumPy integers too
        n_steps = check_positive_int("n_steps", n_steps)
        if n_steps % save_every:
            raise ValueError(
                f"`n_steps` must be a positive multiple of save_every, got {n_steps!r}."
            )
        d = theta0.shape[1]
        if self.brownian_dim not in (None, d):
            raise ValueError(
                f"`theta0` has d={d} parameters but this SGDSDE's dimension is {self.brownian_dim}."
            )
        _check_loss_on(self.per_example_loss, self.data, theta0[0], "theta0")
        sde = self if self.brownian_dim == d else dataclasses.replace(self, dim=d)
        paths = simulate(
            sde,
            theta0,
            t0=0.0,
            t1=t1,
            n_steps=n_steps,
            n_paths=theta0.shape[0],
            x0_per_path=True,
            save_every=save_every,
            dtype=theta0.dtype,
            chunk_size=chunk_size,
            mesh=mesh,
            key=key,
        )
        return jnp.moveaxis(paths.xs, 0, 1)


def _eig_tol(a: Array, name: str) -> tuple[np.ndarray, float]:
    """The eigenvalues of a concrete square `a` (in float64 or complex128) and the rounding
    tolerance ``d * eps`` of its dtype, relative to their scale; `ValueError` naming `name`
    if `a` is not finite (NumPy's eigvals raised a LinAlgError)."""
    arr = np.asarray(a)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite (no NaN or inf).")
    dtype = a.dtype if jnp.issubdtype(a.dtype, jnp.inexact) else jnp.result_type(float)
    lam = np.linalg.eigvals(arr.astype(np.result_type(arr.dtype, np.float64)))
    return lam, a.shape[0] * float(jnp.finfo(dtype).eps)


def _check_unique(a: Array, kind: str) -> None:
    """`ValueError` unless the Lyapunov equation of a concrete `a` has a unique solution: the
    eigenvalues of its operator, lambda_i + lambda_j (continuous) or 1 - lambda_i lambda_j
    (discrete), must be away from 0 beyond rounding. Traced values pass."""
    if isinstance(a, jax.core.Tracer):
        return
    lam, tol = _eig_tol(a, "a")
    big = np.max(np.abs(lam), initial=0.0)
    if kind == "continuous":
        gap, scale = np.abs(lam[:, None] + lam[None, :]), big
        what = "lambda_i + lambda_j = 0"
        equation = "A S + S A^T = Q"
    else:
        gap, scale = np.abs(1.0 - lam[:, None] * lam[None, :]), max(1.0, big**2)
        what = "lambda_i lambda_j = 1"
        equation = "S = A S A^T + Q"
    i, j = np.unravel_index(np.argmin(gap), gap.shape)
    if gap[i, j] <= tol * scale:
        pair = np.real_if_close(np.array([lam[i], lam[j]]))
        raise ValueError(
            f"{equation} has no unique solution: `a` has eigenvalues {pair.tolist()} with "
            f"{what} (to rounding); its {kind} Lyapunov operator is singular."
        )


def _square_pair(a: Any, q: Any, names: tuple[str, str] = ("a", "q")) -> tuple[Array, Array]:
    """`a` and `q` as square matrices of equal shape in one floating dtype (`common_float_dtype`:
    integer matrices join the other's dtype, float32 with float64 is float64), or a
    `ValueError` naming them. Mixed dtypes failed under strict promotion."""
    a, q = jnp.asarray(a), jnp.asarray(q)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or q.shape != a.shape:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must be square of equal shape (d, d), got "
            f"{a.shape}, {q.shape}."
        )
    dtype = common_float_dtype(a, q)
    return a.astype(dtype), q.astype(dtype)


def solve_continuous_lyapunov(
    a: Float[Array, "..."],
    q: Float[Array, "..."],  # (d, d) each: checked with a clear message
) -> Float[Array, "d d"]:
    r"""Solve $AS + SA^T = Q$ (small $d$: a Kronecker-product linear solve).

    The solution is unique if and only if $\lambda_i + \lambda_j \ne 0$ for every pair of
    eigenvalues of $A$ (a zero eigenvalue, $\pm\lambda$, a centre's $\pm i\omega$).

    Args:
        a, q: $A$ and $Q$, square matrices of equal shape ``(d, d)``.

    Returns:
        $S$, shape ``(d, d)``.

    Raises:
        ValueError: for a concrete $A$ with $|\lambda_i + \lambda_j| \le d\,\varepsilon
            \max_k|\lambda_k|$ ($\varepsilon$ of its dtype): no unique solution. A traced $A$
            (under `jax.jit`/`jax.vmap`) is not checked, and there such an equation gives NaN or
            inf.

    Examples:
        >>> from sdeml.optim_dynamics import solve_continuous_lyapunov
        >>> A = jnp.array([[-1.0, 2.0], [0.0, -3.0]])
        >>> Q = jnp.array([[2.0, 1.0], [1.0, 3.0]])
        >>> S = solve_continuous_lyapunov(A, Q)
        >>> S.shape, bool(jnp.allclose(A @ S + S @ A.T, Q))
        ((2, 2), True)

    References:
        Bartels & Stewart, Comm. ACM 15, 1972 (the problem; solved densely here).
    """
    a, q = _square_pair(a, q)
    _check_unique(a, "continuous")
    eye = jnp.eye(a.shape[0], dtype=a.dtype)
    big = jnp.kron(a, eye) + jnp.kron(eye, a)  # row-major vec(A X B) = (A kron B^T) vec(X)
    return jnp.linalg.solve(big, q.reshape(-1)).reshape(a.shape)


def solve_discrete_lyapunov(a: Float[Array, "d d"], q: Float[Array, "d d"]) -> Float[Array, "d d"]:
    r"""Solve $S = ASA^T + Q$ (Kronecker-product linear solve).

    The solution is unique if and only if $\lambda_i\lambda_j \ne 1$ for every pair of
    eigenvalues of $A$ (e.g. an eigenvalue on the unit circle, or $2$ with $1/2$).

    Args:
        a, q: $A$ and $Q$, square matrices of equal shape ``(d, d)`` ($A$ with spectral radius
            < 1).

    Returns:
        $S$, shape ``(d, d)``.

    Raises:
        ValueError: for a concrete $A$ with $|1 - \lambda_i\lambda_j| \le d\,\varepsilon
            \max(1, \max_k|\lambda_k|^2)$ ($\varepsilon$ of its dtype): no unique solution. A
            traced $A$ (under `jax.jit`/`jax.vmap`) is not checked, and there such an equation
            gives NaN or inf.

    Examples:
        In 1-D, $S = Q/(1 - a^2)$; here $1/(1 - 0.25) = 4/3$:

        >>> from sdeml.optim_dynamics import solve_discrete_lyapunov
        >>> round(float(solve_discrete_lyapunov(jnp.array([[0.5]]), jnp.eye(1))[0, 0]), 6)
        1.333333
        >>> A = jnp.array([[0.5, 0.2], [0.0, -0.4]])
        >>> Q = jnp.array([[2.0, 1.0], [1.0, 3.0]])
        >>> S = solve_discrete_lyapunov(A, Q)
        >>> S.shape, bool(jnp.allclose(S, A @ S @ A.T + Q))
        ((2, 2), True)
    """
    a, q = _square_pair(a, q)
    _check_unique(a, "discrete")
    n = a.shape[0] ** 2
    return jnp.linalg.solve(jnp.eye(n, dtype=a.dtype) - jnp.kron(a, a), q.reshape(-1)).reshape(
        a.shape
    )


_UNSTABLE = (
    "SGD has no stationary law here: |1 - lr * h| >= 1 for an eigenvalue h of `hessian` (SGD on "
    "a quadratic is stable only if 0 < lr * h < 2 for every eigenvalue h); lower `lr`"
)


def _check_sgd_stable(a: Array, hessian: Array, lr: Any) -> Array:
    """`a` = I - lr H, after checking that its spectral radius is below 1 (SGD is stable)."""
    if isinstance(a, jax.core.Tracer):
        # traced (under jit/vmap): H is symmetric (the docstring's contract), so eigvalsh,
        # which every backend supports (eigvals is CPU-only)
        lam = jnp.linalg.eigvalsh(0.5 * (a + a.T))
        return eqx.error_if(a, jnp.max(jnp.abs(lam)) >= 1.0, _UNSTABLE)
    eig_h = _eig_tol(hessian, "hessian")[0]
    bad = np.abs(1.0 - float(lr) * eig_h) >= 1.0
    if np.any(bad):
        lr_h = np.real_if_close(float(lr) * eig_h[bad])
        raise ValueError(f"{_UNSTABLE}; got lr * h = {lr_h.tolist()}.")
    return a


_NOT_PD = (
    "the SGD SDE has no stationary law here: h <= 0 for an eigenvalue h of `hessian` (the SDE "
    "d theta = -H (theta - theta*) dt + sqrt(lr c_B Sigma) dW has one only if h > 0 for every "
    "eigenvalue h: `hessian` must be positive definite)"
)


def _check_sde_stable(hessian: Array) -> Array:
    """`hessian`, after checking that its eigenvalues are > 0 (beyond rounding: d eps times
    the largest |h|), so the SDE has a stationary law (continuous `sgd_stationary_cov`)."""
    if isinstance(hessian, jax.core.Tracer):
        # traced: H is symmetric (the docstring's contract); eigvalsh runs on every backend
        lam = jnp.linalg.eigvalsh(0.5 * (hessian + hessian.T))
        return eqx.error_if(hessian, jnp.min(lam) <= 0.0, _NOT_PD)
    eig_h, tol = _eig_tol(hessian, "hessian")
    bad = np.real(eig_h) <= tol * np.max(np.abs(eig_h), initial=0.0)
    if np.any(bad):
        raise ValueError(f"{_NOT_PD}; got h = {np.real_if_close(eig_h[bad]).tolist()}.")
    return hessian


def sgd_stationary_cov(
    hessian: Float[Array, "d d"],
    noise_cov: Float[Array, "d d"],
    lr: float,
    batch_size: int,
    n_data: int | None = None,
    *,
    discrete: bool,
) -> Float[Array, "d d"]:
    r"""Stationary covariance of SGD (``discrete=True``) or of its SDE on a quadratic loss.

    For $L = \tfrac12(\theta-\theta^*)^T H(\theta-\theta^*)$ with constant gradient noise
    covariance $\Sigma$ and $c_B$ = `minibatch_factor`:

    $$
    \text{SDE:}\ HS + SH = \eta c_B\Sigma,\qquad
    \text{SGD:}\ S = (I-\eta H)S(I-\eta H) + \eta^2 c_B\Sigma.
    $$

    In 1-D these are $\eta c_B\sigma^2/(2h)$ and $\eta c_B\sigma^2/(h(2-\eta h))$,
    in the ratio $2/(2-\eta h)$ whatever $B$: the SDE is within 5% of SGD for
    $\eta h \le 0.095$ (4.2% at $\eta h = 0.08$, 5.3% at 0.1) and off by a factor
    $1/(1-\eta h/2)$ beyond.

    SGD has a stationary law only where it is stable, $|1 - \eta h| < 1$, i.e.
    $0 < \eta h < 2$, for every eigenvalue $h$ of $H$ (the spectral radius of $I - \eta H$
    below 1); beyond, its iterates diverge and ``discrete=True`` raises `ValueError`. The SDE
    has one only if every $h > 0$ ($H$ positive definite), at any $\eta$; otherwise
    ``discrete=False`` raises `ValueError`.

    Args:
        hessian: $H$ (symmetric positive definite), shape ``(d, d)``.
        noise_cov: $\Sigma$, shape ``(d, d)``.
        lr: $\eta > 0$.
        batch_size: $B$, a positive int.
        n_data: $N$ for minibatches without replacement, None for with replacement.
        discrete: SGD's own covariance (True) or the SDE's (False).

    Returns:
        The stationary covariance $S$, shape ``(d, d)``.

    Raises:
        ValueError: with ``discrete=True``, if $|1 - \eta h| \ge 1$ for an eigenvalue $h$ of
            $H$; with ``discrete=False``, if $h \le 0$ (beyond rounding: $d\,\varepsilon$ times
            the largest $|h|$) for an eigenvalue $h$ of $H$ (eagerly; under `jax.jit` an
            `EquinoxRuntimeError` at run time).

    Examples:
        With $h = \sigma^2 = 1$, $\eta = 0.1$, $B = 4$: $0.1/(4 \cdot 1.9)$ for SGD and
        $0.1/(4 \cdot 2)$ for the SDE, in the ratio $2/1.9$:

        >>> from sdeml.optim_dynamics import sgd_stationary_cov
        >>> sgd = sgd_stationary_cov(jnp.eye(1), jnp.eye(1), 0.1, 4, discrete=True)
        >>> sde = sgd_stationary_cov(jnp.eye(1), jnp.eye(1), 0.1, 4, discrete=False)
        >>> sgd.shape, round(float(sgd[0, 0]), 6), round(0.1 / (4 * 1.9), 6)
        ((1, 1), 0.013158, 0.013158)
        >>> round(float(sde[0, 0]), 6), round(float(sgd[0, 0] / sde[0, 0]), 4)
        (0.0125, 1.0526)

    References:
        Mandt, Hoffman & Blei, JMLR 18, 2017 (continuous); Liu, Ziyin & Ueda, Noise and
        fluctuation of finite learning rate SGD, ICML 2021 (discrete).
    """
    check_positive_scalar("lr", lr)
    batch_size = check_positive_int("batch_size", batch_size)
    factor = minibatch_factor(batch_size, n_data)
    # one floating dtype: integer H or Sigma, a NumPy float64 lr with float32 matrices, or
    # float32 with float64 failed under strict promotion (and came back float64 otherwise)
    h, sigma = _square_pair(hessian, noise_cov, ("hessian", "noise_cov"))
    eta = jnp.asarray(lr, h.dtype)
    if discrete:
        a = jnp.eye(h.shape[0], dtype=h.dtype) - eta * h
        a = _check_sgd_stable(a, h, lr)
        return solve_discrete_lyapunov(a, eta**2 * factor * sigma)
    h = _check_sde_stable(h)
    return solve_continuous_lyapunov(h, eta * factor * sigma)
