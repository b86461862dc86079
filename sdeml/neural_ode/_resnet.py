"""ResNet <-> Euler: N residual blocks are N Euler steps of one time-conditioned field."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..core._checks import as_float, check_interval, check_positive_int
from ._neural_ode import NeuralODE, check_field_signature


class EulerResNet(eqx.Module):
    r"""A residual network whose blocks are Euler steps of one vector field.

    $h_{k+1} = h_k + \Delta t\, f_\theta(t_k, h_k, \text{args})$, $t_k = t_0 + k\Delta t$,
    $\Delta t = (t_1 - t_0)/N$, for $k = 0, \dots, N-1$. As $N \to \infty$ the output $h_N$
    converges to the neural ODE's $h(t_1)$ with error $O(1/N)$ (Euler's global order 1).

    Args:
        func: the vector field ``func(t, y, args)`` shared by every block (the signature of
            `NeuralODE`).
        n_blocks: $N$, the number of residual blocks.
        t0, t1: the depth interval.

    Returns:
        ``resnet(h0, args)`` is $h_N$; ``resnet.trajectory(h0, args)`` is $(h_0, \dots, h_N)$.

    Examples:
        For $f = -h$ every block multiplies by $1 - \Delta t$, so $h_N = (1 - 1/N)^N h_0$, which
        tends to the neural ODE's $e^{-1} h_0$:

        >>> from sdeml.neural_ode import EulerResNet
        >>> net = EulerResNet(lambda t, h, args: -h, n_blocks=100)
        >>> h = net(jnp.ones(2))
        >>> round(float(h[0]), 6), round((1 - 1 / 100) ** 100, 6)
        (0.366032, 0.366032)
        >>> f"{abs(float(h[0]) - np.exp(-1)):.1e}"  # O(1/N)
        '1.8e-03'
        >>> net.trajectory(jnp.ones(2)).shape  # h_0, ..., h_N
        (101, 2)

    References:
        He et al., Deep Residual Learning, CVPR 2016; E, A Proposal on Machine Learning via
        Dynamical Systems, 2017; Chen et al., Neural ODEs, NeurIPS 2018. arXiv:1806.07366
    """

    func: Callable[..., Any]
    n_blocks: int = eqx.field(static=True)
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)

    def __init__(self, func: Callable[..., Any], n_blocks: int, t0: float = 0.0, t1: float = 1.0):
        n_blocks = check_positive_int("n_blocks", n_blocks)  # NumPy integers too
        t0, t1 = check_interval("t0", t0, "t1", t1)
        check_field_signature(func, "EulerResNet")
        self.func, self.n_blocks, self.t0, self.t1 = func, n_blocks, t0, t1

    def trajectory(self, h0: Float[Array, "..."], args: Any = None) -> Float[Array, "n_plus_1 ..."]:
        """The hidden states after 0, 1, ..., N blocks."""
        h0 = as_float(h0)  # an integer input failed in the scan (its carry changed dtype)
        dt = (self.t1 - self.t0) / self.n_blocks

        def block(h, k):
            t = jnp.asarray(self.t0, h.dtype) + k.astype(h.dtype) * dt
            h = h + dt * self.func(t, h, args)
            return h, h

        _, hs = jax.lax.scan(block, h0, jnp.arange(self.n_blocks))
        return jnp.concatenate([h0[None], hs])

    def __call__(self, h0: Float[Array, "..."], args: Any = None) -> Float[Array, "..."]:
        """The output $h_N$."""
        return self.trajectory(h0, args)[-1]


def resnet_limit(
    func: Callable[..., Any],
    h0: Float[Array, "b ..."],
    n_blocks: Sequence[int],
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    args: Any = None,
) -> tuple[np.ndarray, float]:
    r"""Errors of Euler ResNets of depth $N$ against the neural ODE, and the fitted order.

    $e_N = \operatorname{mean}_i \lVert h_N^{(i)} - h^{(i)}(t_1)\rVert_2$ over the batch, with
    $h(t_1)$ from Dopri8 at tolerance `rtol`/`atol`; the order is minus the least-squares slope of
    $\log e_N$ against $\log N$ (1 for Euler).

    Args:
        func: the shared vector field ``func(t, y, args)``.
        h0: a batch of inputs, shape ``(b, *state)``.
        n_blocks: the depths $N$ to compare (at least two).
        t0, t1: the depth interval.
        rtol, atol: tolerances of the reference solve.
        args: passed to the field.

    Returns:
        ``(errors, slope)``: a NumPy array of errors, shape ``(len(n_blocks),)``, and the fitted
        slope of $\log e_N$ against $\log N$ (≈ -1).

    Examples:
        >>> from sdeml.neural_ode import resnet_limit
        >>> h0 = jr.normal(jr.key(0), (4, 2))
        >>> errs, slope = resnet_limit(lambda t, h, args: -h, h0, [4, 8, 16, 32])
        >>> errs.shape, round(slope, 1)  # Euler's global order 1
        ((4,), -1.0)
        >>> bool(errs[-1] < errs[0] / 7)  # 8 times deeper, about 8 times closer
        True

    References:
        Chen et al., Neural Ordinary Differential Equations, NeurIPS 2018. arXiv:1806.07366
    """
    if len(n_blocks) < 2:
        raise ValueError(f"`n_blocks` needs at least two depths, got {list(n_blocks)}")
    node = NeuralODE(func, solver="dopri8", rtol=rtol, atol=atol, max_steps=100_000)
    ts = jnp.asarray([t0, t1], h0.dtype)
    ref = eqx.filter_jit(jax.vmap(lambda h: node(ts, h, args)[-1]))(h0)
    errors = []
    for n in n_blocks:
        net = EulerResNet(func, int(n), t0, t1)
        out = eqx.filter_jit(jax.vmap(net, in_axes=(0, None)))(h0, args)
        errors.append(
            float(jnp.mean(jnp.linalg.norm((out - ref).reshape(h0.shape[0], -1), axis=1)))
        )
    errs = np.asarray(errors)
    slope = float(np.polyfit(np.log(np.asarray(n_blocks, float)), np.log(errs), 1)[0])
    return errs, slope
