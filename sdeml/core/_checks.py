"""Argument checks shared by the themes: trace-time, one clear `ValueError` naming the argument."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise `ValueError` if a concrete `value` is not finite and > 0 (>= 0 with `allow_zero`),
    or is a bool (``True`` read as 1); traced values pass.

    Examples:
        >>> check_positive("step_size", 0.1)
    """
    if isinstance(value, jax.core.Tracer):
        return  # swept under vmap/jit: the caller owns the value; nothing concrete to check
    arr = np.asarray(value)
    if arr.dtype == bool:
        raise ValueError(f"`{name}` must be a number, got the boolean {value!r}.")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0 if allow_zero else arr <= 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be finite and {bound}, got {value!r}.")


def as_float(x: Any) -> jax.Array:
    """`x` as an array of a floating dtype: its own if it has one, else JAX's default float.

    Integer data (pixel levels, counts, an integer start) entered noise draws, scans and
    gradients in its own dtype and failed there (``jr.normal`` refuses an integer dtype) or
    truncated the float arguments combined with it (a std of 2.5 read as 2).

    Examples:
        >>> as_float(jnp.array([1, 2])).dtype == jnp.result_type(float)
        True
        >>> as_float(jnp.ones(2, jnp.float16)).dtype
        dtype('float16')
    """
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def common_float_dtype(*arrays: Any) -> np.dtype:
    """One floating dtype for arrays computed together: the promotion of the floating ones'
    dtypes (float32 with float32 stays float32, float32 with float64 is float64), and JAX's
    default float when none is floating (integer data join the others' dtype).

    Mixed inputs failed under strict promotion (a float32 sample against a float64 one), came
    back in float64 when the default float joined the promotion, or were truncated when
    computed in an integer dtype (bandwidth factors 1/32..1/2 read 0).

    Examples:
        >>> common_float_dtype(jnp.ones(2, jnp.float32), jnp.array([1, 2]))
        dtype('float32')
        >>> common_float_dtype(jnp.array([1, 2])) == jnp.result_type(float)
        True
    """
    floats = [a.dtype for a in map(jnp.asarray, arrays) if jnp.issubdtype(a.dtype, jnp.floating)]
    if not floats:
        return np.dtype(jnp.result_type(float))
    with jax.numpy_dtype_promotion("standard"):  # the callers cast to it explicitly
        return np.dtype(jnp.result_type(*floats))


def check_bool(name: str, value: Any) -> bool:
    """A flag as a Python bool; anything else but a (NumPy) bool is refused: ``"False"`` and
    ``0`` had been read by ``if flag:`` as True and False.

    Examples:
        >>> check_bool("joint", np.True_)
        True
    """
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"`{name}` must be a bool, got {value!r}.")
    return bool(value)


def check_float_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """A requested `dtype` as a floating dtype (None: JAX's default float, float64 read as
    float32 without x64); an integer or bool dtype is refused (data built in it were truncated:
    images to -1, 0 and 1).

    Examples:
        >>> check_float_dtype(jnp.float32)
        dtype('float32')
    """
    dt = jnp.zeros((), dtype).dtype if dtype is not None else jnp.zeros(()).dtype
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"`{name}` must be a floating dtype, got {dt}")
    return np.dtype(dt)


def concrete_scalar(value: Any) -> float | None:
    """A concrete real scalar (a Python number, a NumPy scalar, a concrete 0-d JAX array) as a
    Python float; None when it is traced or not a real 0-d number (then nothing is checked).

    Checks written as ``isinstance(v, int | float)`` skipped NumPy and JAX scalars, so a
    ``jnp.array(-0.1)`` small-time cut-off ran a sampler past t = 0 without an error.

    Examples:
        >>> concrete_scalar(np.float32(0.5)), concrete_scalar(jnp.array(2)), concrete_scalar("a")
        (0.5, 2.0, None)
    """
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        arr = np.asarray(value)
    except Exception:  # e.g. a tracer inside a container
        return None
    if arr.shape != () or not (
        np.issubdtype(arr.dtype, np.integer)
        or jnp.issubdtype(arr.dtype, jnp.floating)  # bfloat16 too (not a NumPy floating)
        or arr.dtype == bool
    ):
        return None
    return float(arr)


def check_positive_scalar(name: str, value: Any) -> None:
    """`check_positive`, and a scalar: a step size or temperature of shape ``(n,)`` broadcast
    against a batch of chains ``(*chains, d)`` and silently changed its shape (three chains in
    d = 1 came back as ``(3, 3)``). To sweep values, `jax.vmap` over them.

    Examples:
        >>> check_positive_scalar("temperature", 1.0)
    """
    if jnp.shape(value) != ():
        raise ValueError(
            f"`{name}` must be a scalar, got shape {jnp.shape(value)}; to run several values, "
            "jax.vmap over them."
        )
    check_positive(name, value)


def concrete_times(name: str, ts: Any, min_len: int = 2) -> np.ndarray | None:
    """A concrete `ts` as float64 NumPy after checking that it is 1-D with at least `min_len`
    entries, finite and strictly increasing; None (nothing checked) when `ts` is traced.

    Raises:
        ValueError: naming `name` and what arrived.

    Examples:
        >>> concrete_times("ts", jnp.array([0.0, 0.5, 1.0])).tolist()
        [0.0, 0.5, 1.0]
    """
    try:
        arr = np.asarray(ts, dtype=np.float64)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return None  # traced under jit/vmap: the caller checks the values at run time
    if arr.ndim != 1 or arr.shape[0] < min_len:
        raise ValueError(
            f"`{name}` must be a 1-D array of at least {min_len} time{'s' * (min_len != 1)}, "
            f"got shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite (no NaN or inf), got {arr}.")
    if not np.all(np.diff(arr) > 0):
        raise ValueError(f"`{name}` must be strictly increasing, got {arr}.")
    return arr


def check_positive_int(name: str, value: Any) -> int:
    """`value` as an int, or `ValueError` unless it is an int >= 1 (a bool is refused).

    Examples:
        >>> check_positive_int("n_bins", 10)
        10
    """
    return check_int(name, value, 1)


def check_int(name: str, value: Any, low: int) -> int:
    """`value` as an int, or `ValueError` unless it is an int (NumPy's too) >= `low`; a bool is
    refused (True read as 1).

    Examples:
        >>> check_int("n_saves", 0, 0)
        0
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        what = {0: "a non-negative int", 1: "a positive integer"}.get(low, f"an int >= {low}")
        raise ValueError(f"`{name}` must be {what}, got {value!r}.")
    return int(value)


def check_box(lo: Any, hi: Any, d: int, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """The box ``[lo, hi]^d`` as two ``(d,)`` arrays of `dtype`: `lo` and `hi` are scalars or
    per-coordinate ``(d,)`` arrays; concrete ones must be finite with ``hi > lo`` everywhere.

    Raises:
        ValueError: naming `lo`/`hi` and what arrived.

    Examples:
        >>> lo, hi = check_box(-1.0, jnp.array([1.0, 2.0]), 2, jnp.float32)
        >>> lo.tolist(), hi.tolist()
        ([-1.0, -1.0], [1.0, 2.0])
    """
    out = []
    for name, v in (("lo", lo), ("hi", hi)):
        shape = jnp.shape(v)
        if shape not in ((), (1,), (d,)):
            raise ValueError(
                f"`{name}` must be a scalar or a per-coordinate array of shape ({d},), got "
                f"shape {shape}."
            )
        out.append(jnp.broadcast_to(jnp.asarray(v, dtype), (d,)))
    if not any(isinstance(v, jax.core.Tracer) for v in (lo, hi)):
        # from the inputs, not `out`: under jit even constant inputs give traced arrays there
        lo_np = np.broadcast_to(np.asarray(lo, np.float64), (d,))
        hi_np = np.broadcast_to(np.asarray(hi, np.float64), (d,))
        if not (np.all(np.isfinite(lo_np)) and np.all(np.isfinite(hi_np))):
            raise ValueError(f"`lo` and `hi` must be finite, got lo={lo!r}, hi={hi!r}.")
        if not np.all(hi_np > lo_np):
            raise ValueError(
                f"`hi` must be greater than `lo` (in every coordinate), got lo={lo!r}, hi={hi!r}."
            )
    return out[0], out[1]


def check_scalar_function(name: str, fn: Callable, x: jax.Array, *extra: Any) -> None:
    """Raise `ValueError` unless ``fn(x, *extra)`` returns a scalar (checked with eval_shape).

    Examples:
        >>> check_scalar_function("potential", lambda x: x @ x, jnp.zeros(2))
    """
    out = jax.eval_shape(fn, x, *extra)
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(
            f"`{name}` must return a scalar for an input of shape {tuple(x.shape)}, got "
            f"{'a ' + type(out).__name__ if shape is None else 'shape ' + str(shape)}."
        )


def check_position(position: Any) -> jax.Array:
    """Positions are ``(..., d)`` floating arrays; a 0-d input is an error. Returns the array.

    Examples:
        >>> x = check_position(jnp.zeros((100, 2)))
    """
    position = jnp.asarray(position)
    if position.ndim == 0:
        raise ValueError(
            "`position` must have shape (d,) or (n_chains, d); got a scalar. Use shape (1,) "
            "for a 1-D target."
        )
    if not jnp.issubdtype(position.dtype, jnp.floating):
        raise ValueError(f"`position` must be a floating array, got dtype {position.dtype}.")
    return position


def check_data(data: PyTree) -> int:
    """The number of examples `N` of a dataset pytree whose leaves share a leading axis.

    Raises:
        ValueError: if `data` has no arrays, or its leaves' leading axes differ.

    Examples:
        >>> check_data((jnp.zeros((50, 3)), jnp.zeros(50)))
        50
    """
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("`data` must hold at least one array.")
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
    n = next(iter(sizes))
    if len(sizes) != 1 or n is None:
        raise ValueError(f"every array in `data` must share its leading axis, got sizes {sizes}.")
    return int(n)


def check_batch_size(batch_size: Any, n: int) -> int:
    """`batch_size` as an int, or `ValueError` unless it is an int (NumPy's too; not a bool) in
    ``[1, n]`` (the dataset size)."""
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or not 1 <= batch_size <= n
    ):
        raise ValueError(
            f"`batch_size` must be an integer in [1, {n}] (the dataset size), got {batch_size!r}."
        )
    return int(batch_size)


def check_model_shape(model: Callable, sample: Any, what: str = "score model") -> None:
    """Trace ``model(0.5, sample)`` for one sample; a shape failure becomes one message naming
    the shape. A model returning a broadcastable shape (``(1,)`` for ``(2,)``) would otherwise
    run silently to wrong numbers (a sampler's states, a loss's residuals).

    Examples:
        >>> check_model_shape(lambda t, x: -x, jnp.zeros(2), "velocity model")
    """
    try:
        out = eqx.filter_eval_shape(lambda m, x: m(jnp.asarray(0.5, x.dtype), x), model, sample)
    except (ValueError, TypeError) as e:
        msg = f"the {what} does not accept samples of shape {sample.shape}: {e}"
        raise ValueError(msg) from None
    if getattr(out, "shape", None) != sample.shape:
        raise ValueError(
            f"the {what} maps a sample of shape {sample.shape} to shape "
            f"{getattr(out, 'shape', type(out).__name__)}; it must return the sample's shape"
        )


def check_interval(lo_name: str, lo: Any, hi_name: str, hi: Any) -> tuple[float, float]:
    """``(lo, hi)`` as Python floats, or `ValueError` unless both are concrete finite scalars with
    ``hi > lo`` (an infinite end made a NaN grid, an overflow or an endless step count).

    Examples:
        >>> check_interval("t0", 0, "t1", np.float32(2.0))
        (0.0, 2.0)
    """
    ends = []
    for name, v in ((lo_name, lo), (hi_name, hi)):
        x = concrete_scalar(v)
        if x is None or np.asarray(v).dtype == bool or not math.isfinite(x):
            raise ValueError(f"`{name}` must be a finite scalar, got {v!r}.")
        ends.append(x)
    if not ends[1] > ends[0]:
        raise ValueError(
            f"`{hi_name}` must be greater than `{lo_name}`, got {lo_name}={lo}, {hi_name}={hi}."
        )
    return ends[0], ends[1]


def distinct_times(*ts: float) -> list[str]:
    """The times with the fewest significant digits (6 at least) that tell them apart.

    Examples:
        >>> distinct_times(1e6, 1e6 + 1)
        ['1000000', '1000001']
    """
    for digits in range(6, 18):
        out = [f"{t:.{digits}g}" for t in ts]
        if len(set(out)) == len(set(ts)):
            return out
    return [repr(t) for t in ts]


def time_spacing(t0: float, t1: float, dtype: Any) -> float:
    """The distance between neighbouring representable times of `dtype` near [t0, t1].

    Examples:
        >>> time_spacing(1e8, 1e8 + 1, "float32")
        8.0
    """
    return float(np.spacing(np.asarray(max(abs(t0), abs(t1)), np.dtype(dtype))))
