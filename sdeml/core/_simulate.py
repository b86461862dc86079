"""Batched fixed-step simulation: `simulate` (the engine) and `solve_increments`.

The single-path functions (`simulate_path`, `euler_maruyama`, ...) live in `_single`; under
`jax.vmap` they run this engine with one key per path.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._checks import as_float, concrete_times, distinct_times, time_spacing
from ._normals import PathKeys, normal_pair, standard_normal
from ._normals import pairs_supported as pairs_ok
from ._sde import AbstractSDE, check_sde, check_shapes
from ._sde_solvers import AbstractSolver, SolverState
from ._solvers import get_solver

# Memory budget (bytes) of one chunk of paths' working set: the state, one block of Brownian
# increments and the saved snapshots. 10^7 paths are simulated as a sequence of such chunks.
_CHUNK_BYTES = 48 * 2**20
_DEFAULT_BLOCK = 8
# Paths per chunk are chosen so that one step touches about this many Brownian components: measured
# on a 2-core CPU (EM, 1e5 paths), 2^16-2^18 beat both smaller chunks (loop overhead, less
# parallel work per op) and larger ones (the block of increments falls out of cache).
_CHUNK_ELEMENTS = 2**17
# On an accelerator one chunk should hold all the paths it can: each step is one kernel launch over
# the chunk, and chunks run one after another. Measured on an H200 (benchmarks/device_check.md,
# EM OU d=16, 10^6 paths x 1000 steps): with the CPU budget above (123 chunks) 834 ms against
# 104 ms for a hand-written scan over all paths at once.
_ACCEL_CHUNK_BYTES = 2**30
_ACCEL_CHUNK_ELEMENTS = 2**24


class Paths(eqx.Module):
    """Simulated paths, as `simulate` returns them.

    Args:
        ts: the saved times, shape ``(n_saves,)``.
        xs: the saved states, shape ``(n_paths, n_saves, *S)``.

    Examples:
        >>> from sdeml.sde import BrownianMotion, simulate
        >>> paths = simulate(BrownianMotion(), jnp.zeros(2), n_steps=8, n_paths=3, save_every=4,
        ...                  key=jr.key(0))
        >>> paths.ts.tolist(), paths.xs.shape  # saved at steps 4 and 8
        ([0.5, 1.0], (3, 2, 2))
    """

    ts: Float[Array, " n_saves"]
    xs: Float[Array, "n_paths n_saves ..."]


def _concrete(x: Any) -> np.ndarray | None:
    try:
        return np.asarray(x, dtype=np.float64)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError, TypeError):
        return None


def _resolve_dtype(dtype: Any) -> Any:
    dt = jnp.dtype(jnp.float32 if dtype is None else dtype)
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"`dtype` must be a floating dtype, got {dt}")
    if dt == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            "`dtype=float64` needs 64-bit mode: call jax.config.update('jax_enable_x64', True)"
        )
    return dt


def _check_resolved(grid: np.ndarray, dtype: Any) -> None:
    """Refuse a time grid whose neighbouring times are one number in `dtype` (float32 at
    t0 = 1e8 is spaced 8 apart): its steps would be 0 and the paths would not move."""
    cast = grid.astype(np.dtype(dtype))
    same = np.nonzero(np.diff(cast) <= 0)[0]
    if same.size:
        i = int(same[0])
        a, b = float(grid[i]), float(grid[i + 1])
        t_s = distinct_times(a, b)
        raise ValueError(
            f"the times {t_s[0]} and {t_s[1]} (steps {i} and {i + 1} of the grid) are the same "
            f"time in {np.dtype(dtype).name}, which spaces times near {max(abs(a), abs(b)):.6g} "
            f"{time_spacing(a, b, dtype):.3g} apart: use fewer steps, shift time so that it "
            'starts at 0, or enable float64 with jax.config.update("jax_enable_x64", True).'
        )


def _time_grid(t0, t1, n_steps, ts, dtype):
    """Host-side grid; returns (grid as numpy float64 or None, grid as jnp, n_steps, ends): ends
    is (t0, t1) as checked device scalars for a traced uniform grid, else None."""
    if ts is not None:
        if n_steps is not None:
            raise ValueError("give either `n_steps` or `ts`, not both")
        ts_np = concrete_times("ts", ts)
        if ts_np is not None:
            _check_resolved(ts_np, dtype)
            return ts_np, jnp.asarray(ts_np, dtype), ts_np.shape[0] - 1, None
        ts = jnp.asarray(ts, dtype)
        if ts.ndim != 1 or ts.shape[0] < 2:
            raise ValueError(f"`ts` must be a 1-D array of at least 2 times, got shape {ts.shape}")
        # one run-time check (one conditional in the program), two messages
        not_finite = ~jnp.all(jnp.isfinite(ts))
        ts = eqx.branched_error_if(
            ts,
            not_finite | jnp.any(jnp.diff(ts) <= 0),
            jnp.where(not_finite, 0, 1),
            ("`ts` must be finite (no NaN or inf)", "`ts` must be strictly increasing"),
        )
        return None, ts, ts.shape[0] - 1, None
    if n_steps is None:
        raise ValueError("give `n_steps` (a positive int) or explicit times `ts`")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer) or n_steps <= 0:
        raise ValueError(f"`n_steps` must be a positive int, got {n_steps!r}")
    n_steps = int(n_steps)
    t0_np, t1_np = _concrete(t0), _concrete(t1)
    if t0_np is not None and t1_np is not None:
        if t0_np.shape != () or t1_np.shape != ():
            raise ValueError(
                f"`t0` and `t1` must be scalars, got shapes {t0_np.shape}, {t1_np.shape}"
            )
        for name, v in (("t0", t0_np), ("t1", t1_np)):
            if not np.isfinite(v):
                raise ValueError(f"`{name}` must be finite, got {float(v)}")
        if not t1_np > t0_np:
            raise ValueError(
                f"`t1` must be greater than `t0`, got t0={float(t0_np)}, t1={float(t1_np)}"
            )
        grid = float(t0_np) + (float(t1_np) - float(t0_np)) * np.arange(n_steps + 1) / n_steps
        grid[-1] = float(t1_np)
        _check_resolved(grid, dtype)
        return grid, jnp.asarray(grid, dtype), n_steps, None
    t0j, t1j = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
    if t0j.shape != () or t1j.shape != ():
        raise ValueError(f"`t0` and `t1` must be scalars, got shapes {t0j.shape}, {t1j.shape}")
    bad_t0, bad_t1 = ~jnp.isfinite(t0j), ~jnp.isfinite(t1j)
    t1j = eqx.branched_error_if(  # one run-time check (one conditional), three messages
        t1j,
        bad_t0 | bad_t1 | (t1j <= t0j),
        jnp.where(bad_t0, 0, jnp.where(bad_t1, 1, 2)),
        ("`t0` must be finite", "`t1` must be finite", "`t1` must be greater than `t0`"),
    )
    grid = t0j + (t1j - t0j) * jnp.arange(n_steps + 1, dtype=dtype) / n_steps
    return None, grid, n_steps, (t0j, t1j)


def simulate(
    sde: AbstractSDE,
    x0: Any,
    *,
    t0: Any = 0.0,
    t1: Any = 1.0,
    n_steps: int | None = None,
    ts: Any = None,
    n_paths: int = 1,
    method: str | AbstractSolver = "euler_maruyama",
    save_every: int | None = None,
    save_at: Any = None,
    include_t0: bool = False,
    args: PyTree = None,
    x0_per_path: bool = False,
    args_per_path: bool = False,
    dtype: Any = None,
    chunk_size: int | None = None,
    block_size: int | None = None,
    mesh: Any = None,
    key: PRNGKeyArray,
) -> Paths:
    r"""Simulate `n_paths` paths of $dX = f(t, X)\,dt + g(t, X)\,dW$ with a fixed-step solver.

    The loop is one compiled program: paths are processed in chunks (bounded memory: 10^7 paths
    with terminal saving run in a few tens of MiB), steps in blocks whose Brownian increments are
    drawn at once, and the solver's `step` is vectorised over the paths of a chunk.

    Args:
        sde: the SDE (`SDE`, a zoo class, or any `AbstractSDE`).
        x0: initial state, shape ``S`` (shared), or ``(n_paths, *S)`` with ``x0_per_path=True``.
        t0, t1: time interval, with `n_steps` equal steps. Or give `ts` instead.
        n_steps: number of steps (positive int).
        ts: explicit increasing times ``(n_steps + 1,)``, possibly non-uniform.
        n_paths: number of independent paths.
        method: a registered SDE scheme (``"euler_maruyama"`` or ``"em"``, ``"milstein"``,
            ``"stochastic_heun"``, ``"sra1"``) or an `AbstractSolver` instance.
        save_every: save every k steps (and at `t1`); default: terminal value only.
        save_at: times in ``[t0, t1]`` to save at (sorted); they are added to the grid.
        include_t0: also save the initial state (with `save_every`, `save_at` or neither).
        args: passed to drift and diffusion as their third argument.
        x0_per_path, args_per_path: whether `x0` / the leaves of `args` carry a leading
            ``n_paths`` axis (per-path initial values or parameters).
        dtype: floating dtype, float32 by default; float64 on request (needs x64 mode).
        chunk_size: paths per chunk (default: on a CPU about 2^17 Brownian components per
            step and at most a ~48 MiB working set per chunk; on a GPU or TPU up to 2^24
            components and 1 GiB, so that usually all paths run as one chunk, and with a
            `mesh` at most an equal share per device). The default thus depends on the
            platform, and so do the numbers drawn: give `chunk_size` to reproduce a run
            exactly on another kind of device.
        block_size: steps per block of drawn increments. Default: in float32 with a Threefry
            key, the even divisor of the steps between saves nearest 8 (up to 16): an even
            block takes two steps' normals from each Threefry hash, which halves the hashing.
            Otherwise 8, or a nearby size up to 16 that divides them.
        mesh: a `jax.sharding.Mesh` (or a `NamedSharding`, whose mesh is used) to split the
            paths over: the chunks of paths are dealt out over all of the mesh's devices (of
            every process under `jax.distributed`), each device running its chunks, and `xs`
            comes back sharded along the paths when the device count divides `n_paths`
            (otherwise, once the padding is dropped, it is gathered onto every device: JAX
            shards only evenly). Every path is exactly the path of the
            one-device run with the same key, `chunk_size` and `block_size` (the noise of a
            chunk depends on its index, not on the device). None: the default device.
        key: PRNG key. The same key, `chunk_size` and `block_size` give the same numbers
            (the default `block_size` follows the saving, so give it to get the same paths
            saved at other times; `simulate_path`, vmapped, draws by key and step alone).

    Returns:
        `Paths` with ``ts`` ``(n_saves,)`` and ``xs`` ``(n_paths, n_saves, *S)``.

    Examples:
        >>> from sdeml.sde import GeometricBrownianMotion, simulate
        >>> gbm = GeometricBrownianMotion(mu=0.5, sigma=0.8)
        >>> paths = simulate(gbm, jnp.ones(1), n_steps=100, n_paths=10_000, save_every=10,
        ...                  include_t0=True, key=jr.key(0))
        >>> paths.ts.shape, paths.xs.shape
        ((11,), (10000, 11, 1))
        >>> round(float(paths.xs[:, -1].mean()), 1), round(float(gbm.mean(1.0, 1.0)), 1)  # e^0.5
        (1.6, 1.6)

    References:
        Kloeden & Platen (1992); Higham, An algorithmic introduction to numerical simulation of
        stochastic differential equations, SIAM Review 43(3), 2001.
    """
    solver = get_solver(method, kind="sde")
    check_sde(sde)
    solver.check(sde)
    check_key(key, "pass one key: simulate draws all `n_paths` paths from it")
    dtype = _resolve_dtype(dtype)
    if isinstance(n_paths, bool) or not isinstance(n_paths, int | np.integer) or n_paths <= 0:
        raise ValueError(f"`n_paths` must be a positive int, got {n_paths!r}")
    n_paths = int(n_paths)
    x0 = _check_x0(x0, dtype, "simulate")
    if x0_per_path:
        if x0.ndim == 0 or x0.shape[0] != n_paths:
            raise ValueError(
                f"with x0_per_path=True, `x0` must have shape (n_paths={n_paths}, *S), "
                f"got {x0.shape}"
            )
        state_shape = x0.shape[1:]
    else:
        state_shape = x0.shape
    if args_per_path:
        for leaf in jtu.tree_leaves(args):
            if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != n_paths:
                raise ValueError(
                    f"with args_per_path=True, every leaf of `args` needs a leading axis of size "
                    f"n_paths={n_paths}, got shape {jnp.shape(leaf)}"
                )
    wshape = sde.brownian_shape(state_shape)
    pairs = not solver.needs_time_integral and pairs_ok(key, dtype)
    plan = _plan(t0, t1, n_steps, ts, save_every, save_at, include_t0, block_size, dtype, pairs)
    mesh = _check_mesh(mesh)
    chunk = _chunking(solver, state_shape, wshape, dtype, plan, n_paths, chunk_size, mesh)

    xs = _simulate_core(
        solver,
        sde,
        x0,
        args,
        key,
        plan.t_starts,
        plan.dts,
        n_paths=n_paths,
        chunk=chunk,
        block=plan.block,
        x0_pp=bool(x0_per_path),
        args_pp=bool(args_per_path),
        wshape=tuple(wshape),
        mesh=mesh,
    )
    if plan.save_initial:
        x_init = x0 if x0_per_path else jnp.broadcast_to(x0, (n_paths, *state_shape))
        xs = jnp.concatenate([x_init[:, None], xs], axis=1)
    return Paths(jnp.asarray(plan.ts_out), xs)


def _check_mesh(mesh: Any) -> Any:
    """`simulate`'s `mesh` argument as a `Mesh` with more than one device, or None."""
    if mesh is None:
        return None
    if isinstance(mesh, jax.sharding.NamedSharding):
        mesh = mesh.mesh
    if not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(
            f"`mesh` must be a jax.sharding.Mesh or NamedSharding, got {type(mesh).__name__}"
        )
    if mesh.size == 1:
        return None
    # the chunks are dealt out by `shard_map` with the specs below, whatever axis types the
    # caller's mesh has (`jax.make_mesh` makes Explicit ones by default)
    auto = (jax.sharding.AxisType.Auto,) * len(mesh.axis_names)
    return jax.sharding.Mesh(mesh.devices, mesh.axis_names, axis_types=auto)


def check_key(key: Any, hint: str) -> None:
    """Raise `ValueError` unless `key` is one PRNG key: a typed key of shape ``()`` or a legacy
    raw uint32 key (1-D). `hint` says how to get several paths instead of a key array."""
    dt = getattr(key, "dtype", None)
    if dt is not None and jnp.issubdtype(dt, jax.dtypes.prng_key):
        batch = tuple(key.shape)
    elif dt == jnp.uint32 and jnp.ndim(key) >= 1:
        batch = tuple(jnp.shape(key)[:-1])  # a raw key is one row of words
    else:
        raise ValueError(
            f"`key` must be a PRNG key (jax.random.key(seed)), got {type(key).__name__} with "
            f"shape {jnp.shape(key)} and dtype {dt}; {hint}"
        )
    if batch != ():
        raise ValueError(
            f"`key` must be a single PRNG key, got a key array of shape {batch}; {hint}"
        )


def _check_x0(x0: Any, dtype: Any, name: str) -> Array:
    """`x0` as an array of `dtype`; a non-finite start is refused (issue #17): eagerly when
    concrete, else (under jit or vmap) by a run-time check. An empty state is refused."""
    x0 = jnp.asarray(x0, dtype)
    if x0.size == 0:
        raise ValueError(f"`x0` must hold at least one number, got shape {x0.shape}")
    x0_host = _concrete(x0)
    if x0_host is not None:
        if not np.all(np.isfinite(x0_host)):
            raise ValueError("`x0` contains NaN or inf; every path would be non-finite")
    else:
        x0 = eqx.error_if(x0, ~jnp.all(jnp.isfinite(x0)), f"{name}: `x0` contains NaN or inf")
    return x0


class _Plan(NamedTuple):
    """The step layout of a run: segments ending at the save points, padded to whole blocks."""

    ts_out: Any  # (n_saves,): the saved times (t0 first when saved; numpy when concrete)
    save_initial: bool  # whether the initial state is among the saves
    t_starts: Any  # (n_segments, seg_len): start time of each step (numpy when concrete)
    dts: Any  # (n_segments, seg_len): step sizes, 0 on padding steps
    steps: np.ndarray  # (n_segments, seg_len) uint32: the step's index on the grid (see below)
    block: int  # steps per block of drawn increments
    aligned: bool  # every segment starts at an even step (and blocks are even)
    # the uniform grid of `t0`, `t1`, `n_steps` as (t0, t1, n, seg_len, first index and real
    # steps of each segment), for kernels that compute it step by step; None for `ts`/`save_at`
    uniform: tuple | None


_PLAN_CACHE: dict[tuple, _Plan] = {}
_PLAN_CACHE_SIZE = 256


def _scalar_key(v: Any) -> Any:
    """`v` as a cache key if it is a plain Python/NumPy scalar or None, else a sentinel."""
    if v is None or isinstance(v, bool | int | float | np.integer | np.floating):
        return (type(v).__name__, v)
    return _UNCACHED


_UNCACHED = object()


def _plan(t0, t1, n_steps, ts, save_every, save_at, include_t0, block_size, dtype, pairs) -> _Plan:
    """`_make_plan`, cached for scalar time arguments (issue #18: a small run's host-side set-up).

    A uniform grid given by Python numbers (no `ts`, no `save_at`) is laid out once per distinct
    set of arguments; repeated calls (a notebook loop, a parameter scan) skip the NumPy work and
    the small device transfers. The plan holds only immutable arrays.
    """
    key = tuple(_scalar_key(v) for v in (t0, t1, n_steps, save_every, include_t0, block_size))
    if ts is not None or save_at is not None or any(k is _UNCACHED for k in key):
        return _make_plan(
            t0, t1, n_steps, ts, save_every, save_at, include_t0, block_size, dtype, pairs
        )
    key = (*key, str(jnp.dtype(dtype)), bool(pairs))
    plan = _PLAN_CACHE.get(key)
    if plan is None:
        plan = _make_plan(
            t0, t1, n_steps, ts, save_every, save_at, include_t0, block_size, dtype, pairs
        )
        if len(_PLAN_CACHE) >= _PLAN_CACHE_SIZE:
            _PLAN_CACHE.pop(next(iter(_PLAN_CACHE)))
        _PLAN_CACHE[key] = plan
    return plan


def _make_plan(
    t0, t1, n_steps, ts, save_every, save_at, include_t0, block_size, dtype, pairs
) -> _Plan:
    """Check the time and saving arguments and lay the steps out (see `simulate`).

    `pairs`: whether the scheme draws two steps' normals from each hash (then an even block).
    `steps` numbers every step of a segment from the segment's first grid index on, padding
    steps included (they continue the count and have zero length, so the increments drawn for
    them are multiplied by zero): the noise of a path with its own key depends on these numbers
    alone (see `_normals.PathKeys`).
    """
    grid_np, grid, n, ends = _time_grid(t0, t1, n_steps, ts, dtype)

    # Which grid indices (0..n) to save at.
    if save_at is not None and save_every is not None:
        raise ValueError("give either `save_every` or `save_at`, not both")
    if save_at is not None:
        sa = _concrete(save_at)
        if sa is None or grid_np is None:
            raise ValueError("`save_at` needs concrete (non-traced) `save_at`, `t0`, `t1` / `ts`")
        sa = np.atleast_1d(sa)
        if sa.ndim != 1 or sa.size == 0:
            raise ValueError(
                f"`save_at` must be a non-empty 1-D array of times, got shape {sa.shape}"
            )
        if not np.all(np.isfinite(sa)):
            raise ValueError(f"`save_at` must be finite (no NaN or inf), got {sa}")
        if not np.all(np.diff(sa) > 0):
            raise ValueError(f"`save_at` must be strictly increasing, got {sa}")
        span = grid_np[-1] - grid_np[0]
        tol = 1e-9 * span
        if sa[0] < grid_np[0] - tol or sa[-1] > grid_np[-1] + tol:
            raise ValueError(
                f"`save_at` must lie in [t0, t1] = [{grid_np[0]}, {grid_np[-1]}], got {sa}"
            )
        sa = np.clip(sa, grid_np[0], grid_np[-1])
        near = np.abs(sa[:, None] - grid_np[None, :]).min(1) <= tol
        merged = np.union1d(grid_np, sa[~near])
        save_idx = [int(np.argmin(np.abs(merged - s))) for s in sa]
        if len(set(save_idx)) != len(save_idx):
            raise ValueError(
                f"`save_at` holds times closer together than {tol:g} (they would be saved "
                f"twice at the same grid time), got {sa}"
            )
        grid_np, grid, n = merged, jnp.asarray(merged, dtype), merged.shape[0] - 1
        if include_t0 and save_idx[0] != 0:
            save_idx = [0, *save_idx]
    elif save_every is not None:
        if isinstance(save_every, bool) or not isinstance(save_every, int | np.integer):
            raise ValueError(f"`save_every` must be a positive int, got {save_every!r}")
        if save_every <= 0:
            raise ValueError(f"`save_every` must be a positive int, got {save_every}")
        save_idx = list(range(int(save_every), n + 1, int(save_every)))
        if not save_idx or save_idx[-1] != n:
            save_idx.append(n)
        if include_t0:
            save_idx = [0, *save_idx]
    else:
        save_idx = [0, n] if include_t0 else [n]

    save_initial = save_idx[0] == 0
    step_saves = [i for i in save_idx if i > 0]
    n_saves_core = len(step_saves)

    block = _DEFAULT_BLOCK if block_size is None else block_size
    if isinstance(block, bool) or not isinstance(block, int | np.integer) or block <= 0:
        raise ValueError(f"`block_size` must be a positive int, got {block_size!r}")
    if not step_saves:
        # only t0 is saved (`save_at=[t0]`): no step runs, and the callers return the initial
        # state alone; the arrays of steps have no segments
        assert grid_np is not None  # `save_at` needs a concrete grid
        empty = np.zeros((0, 1), dtype)
        ts_out = grid_np[save_idx].astype(dtype)
        return _Plan(ts_out, True, empty, empty, np.zeros((0, 1), np.uint32), 1, False, None)
    # Steps are grouped into segments ending at the save points; every segment is padded with
    # zero-length steps (which leave the state unchanged for every solver) to a common length,
    # a multiple of the block size, so the loop is a regular scan(segments, scan(blocks, steps)).
    bounds = np.asarray([0, *step_saves])
    seg_len = int(np.max(np.diff(bounds)))
    block = int(min(block, seg_len))
    even = [b for b in range(2, min(2 * block, seg_len) + 1, 2) if seg_len % b == 0]
    if block_size is None and even and pairs:
        # an even block draws two steps' increments from each hash (see `_normals`): the even
        # divisor of the segment nearest the default size, up to twice it (1000 steps: 8;
        # 10-step segments: 10), the larger on a tie
        block = min(even, key=lambda b: (abs(b - block), -b))
    else:
        # prefer a block that divides the segment (no padding steps) if one is at least half
        # as big (up to twice the requested size when that divides it)
        hi = min(2 * block if block_size is None else block, seg_len)
        divisor = next(b for b in range(hi, 0, -1) if seg_len % b == 0)
        if 2 * divisor >= block:
            block = divisor
    seg_len = -(-seg_len // block) * block
    dts_np_idx = np.full((n_saves_core, seg_len), -1, dtype=np.int64)
    for s_, (a_, b_) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        dts_np_idx[s_, : b_ - a_] = np.arange(a_, b_)
    idx = np.where(dts_np_idx < 0, 0, dts_np_idx)
    real = dts_np_idx >= 0
    steps = (bounds[:-1, None] + np.arange(seg_len)[None, :]).astype(np.uint32)
    if grid_np is not None:
        # host-side numpy: no small device computations (each would compile on first use)
        dts = np.where(real, np.diff(grid_np)[idx], 0.0).astype(dtype)
        t_starts = np.where(real, grid_np[:-1][idx], grid_np[bounds[1:]][:, None]).astype(dtype)
    else:
        dts = jnp.where(real, jnp.diff(grid)[idx], jnp.zeros((), dtype))
        t_starts = jnp.where(real, grid[:-1][idx], grid[jnp.asarray(bounds[1:])][:, None])
    ts_out = grid_np[save_idx].astype(dtype) if grid_np is not None else grid[np.asarray(save_idx)]
    aligned = block % 2 == 0 and bool(np.all(bounds[:-1] % 2 == 0))
    uniform = None
    if ts is None and save_at is None:
        if ends is not None:
            t0u, t1u = ends
        else:
            assert grid_np is not None
            t0u, t1u = np.asarray(grid_np[0], dtype), np.asarray(grid_np[-1], dtype)
        firsts, reals = bounds[:-1].astype(np.uint32), np.diff(bounds).astype(np.uint32)
        uniform = (t0u, t1u, n, seg_len, firsts, reals)
    return _Plan(ts_out, save_initial, t_starts, dts, steps, block, aligned, uniform)


def check_chunk_size(chunk_size: Any) -> int:
    """`chunk_size` as an int, or an error naming it (a bool or a non-positive value)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise ValueError(f"`chunk_size` must be a positive int, got {chunk_size!r}")
    if chunk_size <= 0:
        raise ValueError(f"`chunk_size` must be a positive int, got {chunk_size}")
    return int(chunk_size)


def _chunking(
    solver, state_shape, wshape, dtype, plan: _Plan, n_paths: int, chunk_size, mesh=None
) -> int:
    """Paths per chunk. By default, on a CPU about 2^17 Brownian components per step and a
    ~48 MiB working set; on an accelerator (GPU, TPU) up to 2^24 components and 1 GiB, and with
    a `mesh` at most an equal share of the paths per device (so every device gets work)."""
    size_s = math.prod(state_shape)
    size_w = math.prod(wshape)
    n_saves_core = plan.dts.shape[0]
    per_path = jnp.dtype(dtype).itemsize * (
        2 * size_s
        + plan.block * size_w * (2 if solver.needs_time_integral else 1)
        + n_saves_core * size_s
    )
    if chunk_size is None:
        platform = mesh.devices.flat[0].platform if mesh is not None else jax.default_backend()
        elements, budget = (
            (_CHUNK_ELEMENTS, _CHUNK_BYTES)
            if platform == "cpu"
            else (_ACCEL_CHUNK_ELEMENTS, _ACCEL_CHUNK_BYTES)
        )
        max_chunk = max(1, min(elements // max(size_w, 1), budget // per_path))
        if mesh is not None and platform != "cpu":
            max_chunk = min(max_chunk, -(-n_paths // mesh.size))
    else:
        max_chunk = check_chunk_size(chunk_size)
    n_chunks = -(-n_paths // max_chunk)
    return -(-n_paths // n_chunks)


def _leaf_flags(tree: PyTree, flags: bool | tuple[bool, ...]) -> list[bool]:
    """One per-path flag per leaf of `tree`: `flags` is one bool for all, or one per leaf."""
    n = len(jtu.tree_leaves(tree))
    if isinstance(flags, bool):
        return [flags] * n
    if len(flags) != n:
        raise ValueError(f"internal: {len(flags)} per-path flags for {n} leaves")
    return list(flags)


@eqx.filter_jit
def _simulate_core(
    solver,
    sde,
    x0,
    args,
    key,
    t_starts,
    dts,
    *,
    n_paths,
    chunk,
    block,
    x0_pp,
    args_pp,
    wshape,
    sde_pp=False,
    steps=None,
    aligned=False,
    uniform=None,
    seg_real=None,
    mesh=None,
):
    """t_starts, dts: (n_saves, seg_len). Returns (n_paths, n_saves, *S).

    `mesh`: a `Mesh` to deal the chunks out over (`simulate`'s `mesh`), or None.

    With `uniform` = ``(n, seg_len)`` (per-path keys only) the grid is the uniform one of `n`
    steps ``h = (t1 - t0) / n`` on ``[t_starts, dts]`` (then the two scalars t0, t1), computed
    step by step (``t_k = t0 + k h``) instead of read from arrays: `steps` holds each
    segment's first grid index and `seg_real` its number of real steps (memory O(saves), not
    O(steps)).

    One key for all paths (`key` a PRNG key), or one per path: `key` their words ``(n_paths,
    2)`` uint32 (`_normals.threefry_words`) and `steps` the grid index of every step (see
    `_plan`); `aligned`: every segment starts at an even step. `x0_pp`, `args_pp` and `sde_pp` say
    which inputs carry a leading ``n_paths`` axis: `args_pp` and `sde_pp` one bool for every
    array leaf, or a tuple of one per leaf (of `args`, of the arrays of `sde`).
    """
    dts, t_starts = jnp.asarray(dts), jnp.asarray(t_starts)
    dtype = dts.dtype
    if uniform is not None and steps is None:
        raise ValueError("internal: a computed uniform grid needs per-path keys")
    n_saves_core = dts.shape[0] if steps is None else len(steps)
    n_chunks = -(-n_paths // chunk)
    total = n_chunks * chunk
    state_shape = x0.shape[1:] if x0_pp else x0.shape
    sde_dyn, sde_static = eqx.partition(sde, eqx.is_array)
    # the inputs that may carry a per-path axis, flattened: the arrays of sde, then args
    p_leaves, p_def = jtu.tree_flatten((sde_dyn, args))
    p_flags = _leaf_flags(sde_dyn, sde_pp) + _leaf_flags(args, args_pp)
    per_key = steps is not None
    # shape checks run at trace time only (once per compilation), not on every call
    one = [leaf[0] if f else leaf for leaf, f in zip(p_leaves, p_flags, strict=True)]
    sde1, args1 = jtu.tree_unflatten(p_def, one)
    check_shapes(eqx.combine(sde1, sde_static), jnp.zeros(state_shape, dtype), args1)
    if n_saves_core == 0:  # only t0 is saved (see `_make_plan`): no steps to take
        return jnp.zeros((n_paths, 0, *state_shape), dtype)

    def per_chunk(a):  # (n_paths, ...) -> (n_chunks, chunk, ...), padding with the last path
        pad = total - n_paths
        if pad:
            a = jnp.concatenate([a, jnp.broadcast_to(a[-1:], (pad, *a.shape[1:]))])
        return a.reshape(n_chunks, chunk, *a.shape[1:])

    x0c = per_chunk(x0) if x0_pp else None
    pc = [per_chunk(leaf) if f else None for leaf, f in zip(p_leaves, p_flags, strict=True)]
    keyc = per_chunk(key) if per_key else None
    if uniform is None:
        n_saves, seg_len = dts.shape
        nb = seg_len // block
        tsb = t_starts.reshape(n_saves, nb, block)
        dtsb = dts.reshape(n_saves, nb, block)
        bidx = jnp.arange(n_saves * nb).reshape(n_saves, nb)
        stepsb = jnp.asarray(steps if per_key else np.zeros((n_saves, seg_len), np.uint32))
        stepsb = stepsb.reshape(n_saves, nb, block)
        seg_xs = (bidx, tsb, dtsb, stepsb)  # one row per segment
        block_grid = lambda xs: xs  # (block index, step start times, step sizes, step indices)
    else:
        assert steps is not None and seg_real is not None
        n_total, seg_len = uniform
        n_saves, nb = len(steps), seg_len // block
        seg_first = jnp.asarray(steps, np.uint32)
        seg_n = jnp.asarray(seg_real, np.uint32)
        seg_xs = jnp.arange(n_saves, dtype=np.uint32)  # the segment index; blocks are counted
        t0u, t1u = t_starts, dts
        # one step size for every real step, computed once: the batched and the single-path
        # programs then take the very same dt (times recomputed per step could round apart)
        h_u = (t1u - t0u) / n_total

        def time_at(k):  # t0 + k h, with t1 itself at the end of the grid
            return jnp.where(k == n_total, t1u, t0u + k.astype(dtype) * h_u)

        def block_grid(xs):  # the same four from (block, segment, block in the segment)
            b, s_, j = xs  # (block index: unused with per-path keys)
            i = j * np.uint32(block) + jax.lax.iota(np.uint32, block)
            k = seg_first[s_] + i
            real = i < seg_n[s_]
            # padding steps (zero length) sit at the segment's end time, a time of the grid
            tb = jnp.where(real, time_at(k), time_at(seg_first[s_] + seg_n[s_]))
            return b, tb, jnp.where(real, h_u, jnp.zeros((), dtype)), k

    ti = solver.needs_time_integral
    nd = len(wshape) + 1
    size_w = math.prod(wshape)
    sqrt3 = jnp.sqrt(jnp.asarray(3.0, dtype))
    # two normals per hash (see `_normals`): SRA1's dW and dZ parts, or two steps of a block
    pairs = (not per_key) and pairs_ok(key, dtype) and (ti or block % 2 == 0)
    # the streams (chunk, block) numbered in one uint32 word, so far as they fit
    pairs_unfolded = pairs and n_chunks * n_saves * nb < 2**32
    # per-path keys: an even-aligned block takes two steps from each hash (float32, Threefry)
    pp_pairs = per_key and aligned and not ti and block % 2 == 0 and dtype.itemsize < 8

    def step1(y, inc, p, t, dt):
        sde_d, a = jtu.tree_unflatten(p_def, p)
        sde_ = eqx.combine(sde_d, sde_static)
        return solver.step(sde_, SolverState(t, y), dt, inc, a).y.astype(dtype)

    vstep = jax.vmap(step1, in_axes=(0, 0, [0 if f else None for f in p_flags], None, None))

    def run_chunk(inputs):
        c, x0_chunk, p_chunk, key_chunk = inputs
        y = x0_chunk if x0_pp else jnp.broadcast_to(x0, (chunk, *state_shape))
        p = [pcl if f else leaf for pcl, leaf, f in zip(p_chunk, p_leaves, p_flags, strict=True)]
        if per_key:
            pk = PathKeys(key_chunk, size_w)
            ckey = None
        else:
            pk = None
            # the pair path hashes counters (chunk * n_blocks + block, position) under the key
            # itself: no fold_in per chunk (one threefry kernel less to compile)
            ckey = key if pairs_unfolded else jr.fold_in(key, c)

        def block_body(y, xs):
            b, tb, dtb, kb = block_grid(xs)
            h = dtb.reshape((block,) + (1,) * nd)
            sq = jnp.sqrt(h)
            if pk is not None:
                if ti:
                    z0, z1 = pk.step_normal_pairs(kb, dtype)
                    z0 = z0.reshape(block, chunk, *wshape)
                    z1 = z1.reshape(block, chunk, *wshape)
                    incs = (sq * z0, 0.5 * h * sq * (z0 + z1 / sqrt3))
                    return jax.lax.scan(step_body, y, (tb, dtb, incs))[0], None
                if pp_pairs:
                    half = block // 2
                    z0, z1 = pk.pair_normals(kb[0], half, dtype)
                    return pair_scan(y, tb, dtb, z0, z1)
                z = pk.step_normals(kb, dtype)
                incs = sq * z.reshape(block, chunk, *wshape)
                return jax.lax.scan(step_body, y, (tb, dtb, incs))[0], None
            assert ckey is not None
            bkey = None if pairs else jr.fold_in(ckey, b)
            if pairs_unfolded:
                stream = c.astype(np.uint32) * np.uint32(n_saves * nb) + b.astype(np.uint32)
            else:
                stream = b
            # drawn flat and reshaped (the same random numbers): with a short trailing axis
            # such as d = 16, XLA CPU hands LLVM a fully unrolled threefry kernel that is slow
            # to compile (OU d=16, 1e5 paths, 100 snapshots: 1.03 s -> 0.39 s of compile)
            if ti:
                if pairs:  # the two words of one hash: dW and the independent part of dZ
                    z0, z1 = normal_pair(ckey, block * chunk * size_w, dtype, stream=stream)
                else:
                    assert bkey is not None  # set whenever `pairs` is off
                    z = standard_normal(bkey, (2 * block * chunk * size_w,), dtype)
                    z0, z1 = z[: block * chunk * size_w], z[block * chunk * size_w :]
                z0 = z0.reshape(block, chunk, *wshape)
                z1 = z1.reshape(block, chunk, *wshape)
                incs = (sq * z0, 0.5 * h * sq * (z0 + z1 / sqrt3))
            elif pairs:
                # steps 2i and 2i + 1 of the block take the two words of hash i; the scan runs
                # over pairs of steps so that the two arrays are never stacked into one
                half = block // 2
                z0, z1 = normal_pair(ckey, half * chunk * size_w, dtype, stream=stream)
                return pair_scan(y, tb, dtb, z0, z1)
            else:
                assert bkey is not None  # set whenever `pairs` is off
                z = standard_normal(bkey, (block * chunk * size_w,), dtype)
                incs = sq * z.reshape(block, chunk, *wshape)
            return jax.lax.scan(step_body, y, (tb, dtb, incs))[0], None

        def step_body(y, xs2):
            t, dt, inc = xs2
            return vstep(y, inc, p, t, dt), None

        def pair_scan(y, tb, dtb, z0, z1):
            half = block // 2
            z0 = z0.reshape(half, chunk, *wshape)
            z1 = z1.reshape(half, chunk, *wshape)

            def pair_body(y, xs2):
                t, dt, w0, w1 = xs2
                y = vstep(y, jnp.sqrt(dt[0]) * w0, p, t[0], dt[0])
                return vstep(y, jnp.sqrt(dt[1]) * w1, p, t[1], dt[1]), None

            y, _ = jax.lax.scan(pair_body, y, (tb.reshape(half, 2), dtb.reshape(half, 2), z0, z1))
            return y, None

        def run_segment(y, xs):
            if uniform is None:
                return jax.lax.scan(block_body, y, xs)[0]

            # the block index in the carry, not in an array of blocks: memory O(1) in the steps
            def counted(carry, _):
                y, j = carry
                y, _ = block_body(y, (j, xs, j))
                return (y, j + np.uint32(1)), None

            return jax.lax.scan(counted, (y, jnp.zeros((), np.uint32)), None, length=nb)[0][0]

        if n_saves == 1:  # terminal saving: one segment, no outer loop to compile
            return run_segment(y, jtu.tree_map(lambda a: a[0], seg_xs))[:, None]

        def segment_body(y, xs):
            y = run_segment(y, xs)
            return y, y

        _, ys = jax.lax.scan(segment_body, y, seg_xs)  # (n_saves, chunk, *S)
        return jnp.moveaxis(ys, 0, 1)

    if mesh is not None:
        # every device runs whole chunks, numbered as in the one-device run (so each chunk draws
        # the same noise); the chunk count is padded to a multiple of the devices with copies of
        # the last chunk, whose paths are dropped
        n_dev = mesh.size
        n_pad = -(-n_chunks // n_dev) * n_dev

        def pad_chunks(a):
            if a is None or n_pad == n_chunks:
                return a
            return jnp.concatenate([a, jnp.broadcast_to(a[-1:], (n_pad - n_chunks, *a.shape[1:]))])

        inputs = (
            jnp.arange(n_pad),
            pad_chunks(x0c),
            [pad_chunks(a) for a in pc],
            pad_chunks(keyc),
        )
        spec = jax.sharding.PartitionSpec(tuple(mesh.axis_names))
        mapped = jax.shard_map(
            lambda xs: jax.lax.map(run_chunk, xs),
            mesh=mesh,
            in_specs=(spec,),
            out_specs=spec,
            check_vma=False,
        )
        out = mapped(inputs)
        return out.reshape(n_pad * chunk, *out.shape[2:])[:n_paths]
    if n_chunks == 1:  # one chunk: no loop over chunks to compile
        first = jtu.tree_map(lambda a: a[0], (x0c, pc, keyc))
        return run_chunk((jnp.asarray(0), *first))[:n_paths]
    out = jax.lax.map(run_chunk, (jnp.arange(n_chunks), x0c, pc, keyc))
    out = out.reshape(total, *out.shape[2:])
    return out[:n_paths]


def solve_increments(
    solver: AbstractSolver,
    sde: AbstractSDE,
    y0: Array,
    ts: Float[Array, " n_plus_1"],
    increments: Array | tuple[Array, Array],
    args: PyTree = None,
) -> Array:
    r"""Integrate one path on the grid `ts` driven by given Brownian increments.

    $Y_{k+1} = \Phi(Y_k, t_k, t_{k+1} - t_k, \Delta W_k)$ for the solver's one-step map $\Phi$.

    Args:
        solver: an `AbstractSolver`.
        sde: the SDE.
        y0: initial state, shape ``S``.
        ts: times ``(n + 1,)``, finite and strictly increasing (checked: eagerly when concrete,
            at run time under `jax.jit`).
        increments: ``dw`` ``(n, *W)`` or ``(dw, dz)`` (see `sample_increments`).
        args: passed to drift and diffusion.

    Returns:
        The path at every time in `ts`, shape ``(n + 1, *S)``.

    Examples:
        >>> from sdeml.sde import (GeometricBrownianMotion, Milstein, sample_increments,
        ...                        solve_increments)
        >>> gbm = GeometricBrownianMotion(mu=0.5, sigma=0.8)
        >>> ts = jnp.linspace(0.0, 1.0, 101)
        >>> dw = sample_increments(jnp.diff(ts), (1,), key=jr.key(0))
        >>> ys = solve_increments(Milstein(), gbm, jnp.ones(1), ts, dw)
        >>> ys.shape
        (101, 1)
        >>> bool(jnp.abs(ys[-1] - gbm.exact_solution(jnp.ones(1), ts, dw))[0] < 0.02)  # same path
        True

    References:
        Kloeden & Platen (1992), ch. 10.
    """
    # an integer start set the dtype of the times and increments: both were truncated
    y0 = as_float(y0)
    concrete_times("ts", ts, min_len=1)
    ts = jnp.asarray(ts, y0.dtype)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"`ts` must be a 1-D array of at least 1 time, got shape {ts.shape}")
    if isinstance(ts, jax.core.Tracer):
        ts = eqx.error_if(
            ts,
            ~jnp.all(jnp.isfinite(ts)) | jnp.any(jnp.diff(ts) <= 0),
            "`ts` must be finite and strictly increasing",
        )
    check_shapes(sde, y0, args)
    increments = jtu.tree_map(lambda a: jnp.asarray(a, y0.dtype), increments)
    dw0 = increments[0] if isinstance(increments, tuple) else increments
    n = ts.shape[0] - 1
    want = (n, *sde.brownian_shape(y0.shape))
    if dw0.shape != want:
        raise ValueError(
            f"increments must have shape (n_steps, *brownian_shape) = {want}, got {dw0.shape}"
        )
    state = solver.init(sde, ts[0], y0, args)

    def body(y, xs):
        t, dt, inc = xs
        y = solver.step(sde, SolverState(t, y), dt, inc, args).y.astype(y0.dtype)
        return y, y

    _, ys = jax.lax.scan(body, state.y, (ts[:-1], jnp.diff(ts), increments))
    return jnp.concatenate([y0[None], ys], axis=0)
