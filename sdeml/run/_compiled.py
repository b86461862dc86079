"""One compiled program per evaluation function, shared by every grid point of a sweep."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


@functools.cache
def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``eqx.filter_jit(fn)``, made once per function and kept.

    An experiment's per-point evaluation calls ``compiled(_sample)(model, ..., key)`` with a
    module-level `_sample`: every point and seed then reuse one compiled program per static
    argument set. A ``filter_jit(lambda ...)`` built inside the evaluation would be a new function
    at each call and recompile at every grid point. Per-point values (the model, keys, data) are
    arguments, never closed over (XLA would constant-fold a captured model). Equinox is imported
    on first use, so importing an experiment stays light.

    Args:
        fn: a module-level function (the cache is keyed by the function object).

    Returns:
        ``eqx.filter_jit(fn)``, the same object at every call with the same `fn`.

    Examples:
        >>> from sdeml.run import compiled
        >>> def second_moment(x):
        ...     return jnp.mean(x**2)
        >>> f = compiled(second_moment)
        >>> f is compiled(second_moment)  # one compiled program per function, kept
        True
        >>> float(f(jnp.arange(4.0)))  # (0 + 1 + 4 + 9) / 4
        3.5
    """
    import equinox as eqx

    return eqx.filter_jit(fn)
