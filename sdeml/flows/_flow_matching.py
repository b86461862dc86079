"""Flow matching: conditional paths, independent and mini-batch OT couplings, rectified flow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from ..core._checks import (
    as_float,
    check_interval,
    check_model_shape,
    check_positive,
    check_positive_int,
    common_float_dtype,
    concrete_scalar,
)
from ..core._normals import standard_normal
from ..core._ode import integrate_ode

COUPLINGS = ("independent", "ot")


def _assignment_host(cost: ArrayLike) -> np.ndarray:
    from scipy.optimize import linear_sum_assignment  # scipy only where used (issue #18)

    cost = np.asarray(cost)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(cost.shape[0], np.int32)
    perm[rows] = cols
    return perm


def ot_permutation(x0: Real[ArrayLike, "b d"], x1: Real[ArrayLike, "b d"]) -> Int[Array, " b"]:
    r"""The exact optimal-transport matching of two equal-size batches (squared Euclidean cost).

    $\sigma^* = \arg\min_\sigma \sum_i \lVert x_0^{(i)} - x_1^{(\sigma(i))}\rVert^2$ over
    permutations: the empirical OT plan between uniform measures on the two batches is a
    permutation (Birkhoff). Solved on the host with the Hungarian algorithm (scipy's
    ``linear_sum_assignment``) through `jax.pure_callback`, so it works under `jit` and `vmap`;
    it has no gradient (couplings are not differentiated).

    Args:
        x0, x1: batches of shape ``(b, d)``.

    Returns:
        ``perm``, shape ``(b,)`` (int32), with ``x1[perm]`` matched to ``x0``.

    Examples:
        >>> from sdeml.flows import ot_permutation
        >>> x0 = jnp.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
        >>> x1 = x0[jnp.array([2, 0, 1])] + 0.1  # shuffled and shifted
        >>> perm = ot_permutation(x0, x1)
        >>> perm.tolist(), bool(jnp.allclose(x1[perm], x0 + 0.1))
        ([1, 2, 0], True)
        >>> a, b = jr.normal(jr.key(0), (64, 2)), jr.normal(jr.key(1), (64, 2))
        >>> cost = lambda y: float(jnp.sum((a - y) ** 2))
        >>> cost(b[ot_permutation(a, b)]) < cost(b)  # shorter than the given pairing
        True

    References:
        Tong et al., Improving and Generalizing Flow-Based Generative Models with Minibatch Optimal
        Transport, TMLR 2024. arXiv:2302.00482. Pooladian et al., Multisample Flow Matching,
        ICML 2023. arXiv:2304.14772
    """
    x0, x1 = jnp.asarray(x0), jnp.asarray(x1)  # lists had failed with an AttributeError
    if x0.ndim != 2 or x0.shape != x1.shape:
        raise ValueError(f"`x0` and `x1` must both have shape (b, d), got {x0.shape}, {x1.shape}")
    cost = jax.lax.stop_gradient(jnp.sum((x0[:, None, :] - x1[None, :, :]) ** 2, axis=-1))
    out = jax.ShapeDtypeStruct((x0.shape[0],), jnp.int32)
    return jax.pure_callback(_assignment_host, out, cost, vmap_method="sequential")


def couple(
    x0: Real[ArrayLike, "b d"], x1: Real[ArrayLike, "b d"], coupling: str
) -> tuple[Real[Array, "b d"], Real[Array, "b d"]]:
    """Pair two batches: ``independent`` keeps the given order, ``ot`` re-orders `x1` optimally.

    Args:
        x0, x1: batches of shape ``(b, d)``.
        coupling: ``independent`` or ``ot`` (`ot_permutation`).

    Returns:
        ``(x0, x1_paired)``, each of shape ``(b, d)``; `x0` is returned unchanged.

    Examples:
        >>> from sdeml.flows import couple
        >>> x0, x1 = jnp.array([[0.0], [1.0], [2.0]]), jnp.array([[2.5], [0.5], [1.5]])
        >>> couple(x0, x1, "independent")[1][:, 0].tolist()
        [2.5, 0.5, 1.5]
        >>> couple(x0, x1, "ot")[1][:, 0].tolist()
        [0.5, 1.5, 2.5]
    """
    if coupling not in COUPLINGS:
        raise ValueError(f"unknown coupling {coupling!r}; valid: {', '.join(COUPLINGS)}")
    x0, x1 = jnp.asarray(x0), jnp.asarray(x1)
    if coupling == "independent":
        return x0, x1
    return x0, x1[ot_permutation(x0, x1)]


def conditional_path(
    x0: Real[ArrayLike, "b d"],
    x1: Real[ArrayLike, "b d"],
    t: Real[ArrayLike, " b"],
    sigma: Real[ArrayLike, ""] = 0.0,
    *,
    key: PRNGKeyArray | None = None,
) -> tuple[Float[Array, "b d"], Float[Array, "b d"]]:
    r"""Point and target velocity on the straight conditional path.

    $x_t = (1-t)x_0 + t x_1 + \sigma\xi$, $\xi\sim\mathcal N(0, I)$, with target
    $u_t = x_1 - x_0$ (the conditional field of I-CFM; $\sigma = 0$ is rectified flow's path).

    Args:
        x0: source points, shape ``(b, d)``.
        x1: target points, shape ``(b, d)``.
        t: one time per pair, shape ``(b,)``.
        sigma: the path noise $\sigma \ge 0$.
        key: PRNG key of $\xi$ (needed only when ``sigma > 0``).

    Returns:
        ``(x_t, u_t)``, each of shape ``(b, d)``.

    Examples:
        >>> from sdeml.flows import conditional_path
        >>> x0, x1 = jnp.zeros((3, 2)), jnp.ones((3, 2))
        >>> xt, ut = conditional_path(x0, x1, jnp.array([0.0, 0.25, 1.0]))
        >>> xt[:, 0].tolist(), ut[0].tolist()
        ([0.0, 0.25, 1.0], [1.0, 1.0])
        >>> xs, _ = conditional_path(x0, x1, jnp.full(3, 0.5), sigma=0.1, key=jr.key(0))
        >>> xs.shape, bool(jnp.all(jnp.abs(xs - 0.5) < 0.5))
        ((3, 2), True)

    References:
        Tong et al., Improving and Generalizing Flow-Based Generative Models with Minibatch Optimal
        Transport, TMLR 2024. arXiv:2302.00482
    """
    x0, x1, t = jnp.asarray(x0), jnp.asarray(x1), jnp.asarray(t)
    if x0.ndim != 2 or x1.shape != x0.shape or jnp.shape(t) != x0.shape[:1]:
        raise ValueError(
            f"`x0`, `x1` and `t` must have shapes (b, d), (b, d) and (b,), got {x0.shape}, "
            f"{x1.shape} and {jnp.shape(t)}"
        )
    check_positive("sigma", sigma, allow_zero=True)  # -1 was read as 0, NaN too
    # one float dtype for the points, `t` in it: integer points (or t = [0, 1]) had failed
    dt = common_float_dtype(x0, x1)
    x0, x1 = x0.astype(dt), x1.astype(dt)
    tt = t.astype(dt)[:, None]
    xt = (1 - tt) * x0 + tt * x1
    s = concrete_scalar(sigma)
    if s is None or s > 0:  # a traced sigma (jit/vmap over it) had failed on `sigma > 0`
        if key is None:
            raise ValueError("`sigma` > 0 needs a PRNG `key`")
        xt = xt + jnp.asarray(sigma, dt) * standard_normal(key, xt.shape, dt)
    return xt, x1 - x0


def cfm_loss(
    model: Callable[..., Any],
    x1: Real[ArrayLike, "b d"],
    *,
    x0: Real[ArrayLike, "b d"] | None = None,
    coupling: str = "independent",
    sigma: Real[ArrayLike, ""] = 0.0,
    key: PRNGKeyArray,
) -> Float[Array, ""]:
    r"""Conditional flow-matching loss $\mathbb E\lVert v_\theta(t, x_t) - (x_1 - x_0)\rVert^2$.

    $t\sim U(0,1)$; $x_0\sim\mathcal N(0, I)$ unless given; $(x_0, x_1)$ paired by `coupling`
    (independent, or the mini-batch OT permutation). Its gradient equals that of the
    marginal loss $\mathbb E\lVert v_\theta - v^*\rVert^2$, $v^*(t, x) = \mathbb E[x_1 - x_0\mid
    x_t = x]$, whose sampling ODE $\dot x = v^*$ carries the source to the data.

    Args:
        model: ``model(t, x) -> v`` for one point (vmapped here).
        x1: a data batch, shape ``(b, d)``.
        x0: source points (rectified-flow pairs); default: fresh standard normals.
        coupling: ``independent`` or ``ot``.
        sigma: path noise $\sigma$.
        key: PRNG key for $x_0$, $t$ and the path noise.

    Returns:
        The scalar loss (the batch mean over points of the squared error, summed over $d$).

    Examples:
        For data at one point $c$ the marginal velocity is $v^*(t, x) = (c - x)/(1 - t)$: it
        has zero loss, while $v = 0$ has $\mathbb E\lVert c - x_0\rVert^2 = \lVert c\rVert^2 + d
        = 7$.

        >>> from sdeml.flows import cfm_loss
        >>> c = jnp.array([1.0, -2.0])
        >>> x1 = jnp.tile(c, (4096, 1))
        >>> v_star = lambda t, x: (c - x) / (1 - t)
        >>> bool(cfm_loss(v_star, x1, key=jr.key(0)) < 1e-20)
        True
        >>> round(float(cfm_loss(lambda t, x: jnp.zeros(2), x1, key=jr.key(0))), 1)
        7.0
        >>> bool(cfm_loss(v_star, x1[:64], coupling="ot", key=jr.key(1)) < 1e-20)
        True

    References:
        Lipman et al., Flow Matching for Generative Modeling, ICLR 2023. arXiv:2210.02747.
        Liu et al., Flow Straight and Fast (rectified flow), ICLR 2023. arXiv:2209.03003.
        Tong et al., TMLR 2024 (I-CFM, OT-CFM). arXiv:2302.00482
    """
    x1 = jnp.asarray(x1)
    if x1.ndim != 2:
        raise ValueError(f"`x1` must have shape (b, d), got {x1.shape}")
    x1 = as_float(x1)  # integer data: the noise is float
    if x0 is not None:
        x0 = jnp.asarray(x0).astype(x1.dtype)
        if x0.shape != x1.shape:
            raise ValueError(f"`x0` must have the shape of `x1` {x1.shape}, got {x0.shape}")
    check_positive("sigma", sigma, allow_zero=True)  # NaN passed `sigma < 0` and acted as 0
    check_model_shape(model, x1[0], "velocity model")  # a (1,)-valued model broadcast silently
    k0, kt, ks = jr.split(key, 3)
    if x0 is None:
        x0 = standard_normal(k0, x1.shape, x1.dtype)
    x0, x1 = couple(x0, x1, coupling)
    t = jr.uniform(kt, (x1.shape[0],), x1.dtype)
    xt, ut = conditional_path(x0, x1, t, sigma, key=ks)
    v = jax.vmap(model)(t, xt)
    return jnp.mean(jnp.sum((v - ut) ** 2, axis=-1))


def _velocity(t, x, model):
    """The sampling ODE's field: the network travels as `args`, so every adjoint sees it."""
    return model(t, x)


def sample_flow(
    model: Callable[..., Any],
    x0: Real[ArrayLike, "b d"],
    *,
    n_steps: int = 20,
    solver: str | diffrax.AbstractSolver = "heun",
    t0: float = 0.0,
    t1: float = 1.0,
) -> Float[Array, "b d"]:
    r"""Push source points through $\dot x = v_\theta(t, x)$ from $t_0$ to $t_1$ in `n_steps` steps.

    A constant-step solve of each point through the core's ODE front (`sdeml.core.integrate_ode`),
    with ``sdeml.core.solver_info(solver).nfe(n_steps)`` evaluations per point (``euler``: one
    per step; ``heun``/``midpoint``/``ralston``: two; ``rk4``: four); the discretisation error
    is $O(h^p)$ with $h = (t_1 - t_0)/n$ and $p$ the solver's order.

    Args:
        model: the velocity network ``model(t, x) -> v`` for one point, as trained by
            `cfm_loss` (e.g. a `sdeml.nn.TimeMLP`); it is solved as the vector field
            ``lambda t, x, args: model(t, x)``.
        x0: source points, shape ``(b, d)``.
        n_steps: number of equal steps.
        solver: any registered ODE solver name (``sdeml.core.solver_names("ode")``; the usual
            few-step choices are ``euler``, ``heun``, ``midpoint``, ``ralston``, ``rk4``) or a
            diffrax solver; it runs with constant steps whether or not it could adapt.
        t0, t1: the time interval.

    Returns:
        The end points, shape ``(b, d)``.

    Examples:
        For $\dot x = -x$ the end point is $e^{-1}x_0$; Heun's error falls as $h^2$:

        >>> from sdeml.flows import sample_flow
        >>> x0 = jr.normal(jr.key(1), (8, 2))
        >>> err = lambda n: jnp.max(jnp.abs(sample_flow(lambda t, x: -x, x0, n_steps=n)
        ...                                 - jnp.exp(-1.0) * x0))
        >>> round(float(err(10) / err(20)))  # 2 ** 2
        4

    References:
        Lipman et al., ICLR 2023. arXiv:2210.02747
    """
    n_steps = check_positive_int("n_steps", n_steps)  # NumPy integers too
    x0 = jnp.asarray(x0)
    if x0.ndim != 2:
        raise ValueError(f"`x0` must have shape (b, d), got {x0.shape}")
    x0 = as_float(x0)  # integer source points: a float state
    # finite scalars with t1 > t0 (bools refused: t1=True had integrated to 1)
    t0, t1 = check_interval("t0", t0, "t1", t1)
    check_model_shape(model, x0[0], "velocity model")

    def one(x):
        return integrate_ode(
            _velocity, x, t0, t1, solver=solver, n_steps=n_steps, args=model, name="sample_flow"
        ).y_final

    return jax.vmap(one)(x0)


def reflow_pairs(
    model: Callable[..., Any],
    n: int,
    dim: int,
    *,
    n_steps: int = 100,
    solver: str = "heun",
    dtype: Any = None,
    key: PRNGKeyArray,
) -> tuple[Float[Array, "n d"], Float[Array, "n d"]]:
    r"""Rectified flow's "reflow": pairs $(x_0, \Phi_1(x_0))$ from the current flow.

    Training `cfm_loss` on these deterministic pairs (``x0=`` the first, ``x1=`` the second)
    straightens the flow: its paths cross less, so fewer solver steps reach the same samples.

    Args:
        model: the current velocity field.
        n, dim: number and dimension of pairs.
        n_steps, solver: the (accurate) constant-step solve that produces the end points (see
            `sample_flow`).
        dtype: float dtype of the pairs.
        key: PRNG key of the source points.

    Returns:
        ``(x0, x1)``, each of shape ``(n, dim)``.

    Examples:
        The flow of data at one point $c$ moves on straight lines, so even Euler steps end
        exactly at $c$:

        >>> from sdeml.flows import reflow_pairs
        >>> c = jnp.array([1.0, -2.0])
        >>> v_star = lambda t, x: (c - x) / (1 - t)
        >>> z0, z1 = reflow_pairs(v_star, 500, 2, n_steps=4, solver="euler", key=jr.key(2))
        >>> z0.shape, bool(jnp.allclose(z1, c, atol=1e-12))
        ((500, 2), True)

    References:
        Liu, Gong, Liu, Flow Straight and Fast, ICLR 2023. arXiv:2209.03003
    """
    n, dim = check_positive_int("n", n), check_positive_int("dim", dim)
    x0 = standard_normal(key, (n, dim), dtype)
    return x0, sample_flow(model, x0, n_steps=n_steps, solver=solver)


def straightness(
    model: Callable[..., Any], x0: Real[ArrayLike, "b d"], *, n_steps: int = 100
) -> Float[Array, ""]:
    r"""Straightness $S = \int_0^1 \mathbb E\lVert x_1 - x_0 - v(t, x_t)\rVert^2 dt$.

    Zero exactly when every path is a straight line traversed at constant speed (then one Euler
    step is exact). Estimated on an Euler grid of `n_steps` points.

    Args:
        model: the velocity field ``model(t, x) -> v`` for one point.
        x0: source points, shape ``(b, d)``.
        n_steps: Euler steps on $[0, 1]$ (the estimate's error is $O(1/n)$).

    Returns:
        The scalar $S$.

    Examples:
        The straight flow to a point $c$ has $S = 0$; the flow of $\dot x = -x$ bends
        (its speed decays): $S = \lVert x_0\rVert^2\int_0^1 (e^{-1} - 1 + e^{-t})^2 dt
        \approx 0.0328\,\lVert x_0\rVert^2$.

        >>> from sdeml.flows import straightness
        >>> c = jnp.array([1.0, -2.0])
        >>> x0 = jr.normal(jr.key(0), (128, 2))
        >>> bool(straightness(lambda t, x: (c - x) / (1 - t), x0) < 1e-20)
        True
        >>> round(float(straightness(lambda t, x: -x, jnp.eye(2), n_steps=1000)), 3)
        0.033

    References:
        Liu, Gong, Liu, Flow Straight and Fast, ICLR 2023. arXiv:2209.03003
    """
    n_steps = check_positive_int("n_steps", n_steps)  # -1 gave NaN
    x0 = jnp.asarray(x0)
    if x0.ndim != 2:
        raise ValueError(f"`x0` must have shape (b, d), got {x0.shape}")
    x0 = as_float(x0)  # integer points: the scan's carry is float
    h = 1.0 / n_steps
    ts = jnp.arange(n_steps, dtype=x0.dtype) * h

    def step(x, t):
        v = jax.vmap(lambda xi: model(t, xi))(x)
        return x + h * v, v

    x1, vs = jax.lax.scan(step, x0, ts)
    return jnp.mean(jnp.sum(((x1 - x0)[None] - vs) ** 2, axis=-1))
