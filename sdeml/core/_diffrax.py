"""Bridge to diffrax: an sdeml SDE as diffrax terms, for adaptive or higher-order solvers."""

from __future__ import annotations

from typing import Any

import diffrax
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._sde import AbstractSDE


class _NoiseTerm(diffrax.AbstractTerm):
    """$g(t, y)\\,dW$ with the product set by the SDE's noise type (diagonal, scalar, matrix)."""

    sde: AbstractSDE
    control: diffrax.AbstractPath

    def vf(self, t, y, args):
        return self.sde.diffusion(t, y, args)

    def contr(self, t0, t1, **kwargs):
        return self.control.evaluate(t0, t1, **kwargs)

    def prod(self, vf, control):
        return self.sde.noise_term(vf, control)


def to_diffrax(sde: AbstractSDE, brownian: diffrax.AbstractPath) -> diffrax.MultiTerm:
    r"""diffrax terms for $dX = f\,dt + g\,dW$: ``MultiTerm(ODETerm(f), g dW)``.

    The noise term multiplies $g$ and $dW$ as the SDE's noise type says (elementwise for
    diagonal, by a scalar for scalar noise, matrix–vector for general), so any diffrax solver
    (``Euler``, ``Heun``, ``ItoMilstein``, ``SRA1`` with a Lévy-area tree, adaptive ones with a
    ``VirtualBrownianTree``) integrates it. Pass ``args`` to ``diffrax.diffeqsolve``.

    Args:
        sde: the SDE.
        brownian: a diffrax Brownian path of shape ``sde.brownian_shape(y0.shape)``, e.g. from
            `virtual_brownian_tree`.

    Returns:
        A ``diffrax.MultiTerm`` for ``diffrax.diffeqsolve``.

    Examples:
        >>> import diffrax
        >>> from sdeml.sde import GeometricBrownianMotion, to_diffrax, virtual_brownian_tree
        >>> gbm, y0 = GeometricBrownianMotion(mu=0.5, sigma=0.8), jnp.ones(1)
        >>> bm = virtual_brownian_tree(gbm, y0.shape, 0.0, 1.0, dtype=jnp.float64, key=jr.key(0))
        >>> terms = to_diffrax(gbm, bm)
        >>> sol = diffrax.diffeqsolve(terms, diffrax.ItoMilstein(), 0.0, 1.0, 0.01, y0)
        >>> sol.ys.shape
        (1, 1)
        >>> exact = jnp.exp(0.5 - 0.8**2 / 2 + 0.8 * bm.evaluate(0.0, 1.0))  # Ito GBM at t = 1
        >>> bool(jnp.abs(sol.ys[-1] - exact)[0] < 0.01)
        True

    References:
        Kidger, On Neural Differential Equations, PhD thesis, Oxford 2021 (diffrax).
    """
    if not isinstance(sde, AbstractSDE):
        raise ValueError(f"`sde` must be an sdeml.AbstractSDE, got {type(sde)}")
    if not isinstance(brownian, diffrax.AbstractPath):
        raise ValueError(f"`brownian` must be a diffrax.AbstractPath, got {type(brownian)}")
    return diffrax.MultiTerm(diffrax.ODETerm(sde.drift), _NoiseTerm(sde, brownian))


def virtual_brownian_tree(
    sde: AbstractSDE,
    y_shape: tuple[int, ...],
    t0: float,
    t1: float,
    tol: float = 1e-3,
    *,
    levy_area: Any = None,
    dtype: Any = None,
    key: PRNGKeyArray,
) -> diffrax.VirtualBrownianTree:
    """A ``diffrax.VirtualBrownianTree`` with the Brownian shape `sde` needs for states `y_shape`.

    Args:
        sde: the SDE.
        y_shape: the state's shape ``S``.
        t0: start of the interval.
        t1: end of the interval.
        tol: the tree's resolution in time.
        levy_area: e.g. ``diffrax.SpaceTimeLevyArea`` for diffrax's SRA1/ShARK.
        dtype: floating dtype (default float32).
        key: PRNG key.

    Returns:
        The Brownian tree, of shape ``sde.brownian_shape(y_shape)``, to pass to `to_diffrax`.

    Examples:
        >>> from sdeml.sde import SDE, virtual_brownian_tree
        >>> sde = SDE(lambda t, y, a: -y, lambda t, y, a: jnp.ones((2, 3)), "general", 3)
        >>> bm = virtual_brownian_tree(sde, (2,), 0.0, 1.0, dtype=jnp.float64, key=jr.key(0))
        >>> bm.evaluate(0.0, 1.0).shape  # W has m = 3 components
        (3,)
        >>> bool(jnp.allclose(bm.evaluate(0.0, 0.5) + bm.evaluate(0.5, 1.0), bm.evaluate(0.0, 1.0)))
        True

    References:
        Jelinčič et al., Single-seed generation of Brownian paths and integrals for adaptive and
        high order SDE solvers, arXiv:2405.06464.
    """
    shape = jax.ShapeDtypeStruct(
        sde.brownian_shape(tuple(y_shape)), jnp.dtype(jnp.float32 if dtype is None else dtype)
    )
    kw = {} if levy_area is None else {"levy_area": levy_area}
    return diffrax.VirtualBrownianTree(t0, t1, tol, shape, key=key, **kw)
