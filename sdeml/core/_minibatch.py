"""Minibatch index draws shared by the stochastic-gradient themes (SGLD, SGD)."""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Int, PRNGKeyArray

from ._checks import check_bool, check_int, check_positive_int


def sample_indices(
    n: int, b: int, n_chains: int, replace: bool, *, key: PRNGKeyArray
) -> Int[Array, "n_chains b"]:
    """``(n_chains, b)`` minibatch indices into ``range(n)``, drawn independently per chain.

    With ``replace=False`` each row holds `b` distinct indices (a random permutation's prefix;
    all of ``range(n)`` in order when ``b == n``), so ``b <= n``; with ``replace=True`` they are
    iid uniform. `n` and `b` are positive ints, `n_chains` a non-negative one.

    Examples:
        >>> idx = sample_indices(1000, 32, 8, replace=True, key=jr.key(0))  # (8, 32)
    """
    # Checked: b > n without replacement came back with n columns, not b; n = 0 gave index 0
    # into an empty data set; a negative size surfaced as a shape error inside JAX.
    n = check_positive_int("n", n)
    b = check_positive_int("b", b)
    n_chains = check_int("n_chains", n_chains, 0)
    replace = check_bool("replace", replace)
    if not replace and b > n:
        raise ValueError(
            f"`b` must be <= n = {n} to draw without replacement (replace=False), got {b}."
        )
    if b == n and not replace:
        return jnp.broadcast_to(jnp.arange(n), (n_chains, n))
    if replace:
        return jr.randint(key, (n_chains, b), 0, n)
    return jnp.argsort(jr.uniform(key, (n_chains, n)), axis=-1)[:, :b]  # b distinct per chain
