"""Minibatch index draws shared by the stochastic-gradient themes (SGLD, SGD)."""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Int, PRNGKeyArray


def sample_indices(
    n: int, b: int, n_chains: int, replace: bool, *, key: PRNGKeyArray
) -> Int[Array, "n_chains b"]:
    """``(n_chains, b)`` minibatch indices into ``range(n)``, drawn independently per chain.

    With ``replace=False`` each row holds `b` distinct indices (a random permutation's prefix;
    all of ``range(n)`` in order when ``b == n``); with ``replace=True`` they are iid uniform.

    Examples:
        >>> idx = sample_indices(1000, 32, 8, replace=True, key=jr.key(0))  # (8, 32)
    """
    if b == n and not replace:
        return jnp.broadcast_to(jnp.arange(n), (n_chains, n))
    if replace:
        return jr.randint(key, (n_chains, b), 0, n)
    return jnp.argsort(jr.uniform(key, (n_chains, n)), axis=-1)[:, :b]  # b distinct per chain
