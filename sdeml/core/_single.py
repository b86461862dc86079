"""One path at a time, at the engine's speed: `simulate_path` and the single-path schemes.

A researcher writes one path and `jax.vmap`s it (issue #23). The single-path functions here stream:
they draw their Brownian increments inside the loop, a block of steps at a time, and keep only
what is saved, so a path costs O(state + saves) memory. Under `jax.vmap` they do not run as a
vmapped scan: a `jax.custom_batching.custom_vmap` rule hands the whole batch to the engine's
chunked, blocked kernel (`_simulate._simulate_core`), with one key per path. The noise of a path
is a function of its key and of the step index alone (`_normals.PathKeys`), so element i of the
vmapped call is the unbatched call with the i-th inputs: the same normals, and the same values up
to the rounding of the arithmetic.

How the transformations compose (what JAX allows, and why it is laid out this way):

- `custom_vmap` functions support forward-mode autodiff (their JVP is again a `custom_vmap`)
  but not reverse mode: the JVP's `custom_vmap_call` has no partial-evaluation or transpose
  rule, so `jax.grad` fails once the primitive meets an autodiff trace before a batching trace.
  (Minimal reproduction, jax 0.10.2: ``f = jax.custom_batching.custom_vmap(jnp.sin)``,
  ``f.def_vmap(lambda n, b, x: (jnp.sin(x), b[0]))``; ``jax.grad(f)(1.0)`` raises
  ``ValueError: Linearization failed to produce known values for all output primals``.)
  So the batched function is wrapped in a `jax.custom_jvp` whose rule differentiates the
  *unwrapped* kernel, which is ordinary JAX:
  ``grad(f)``, ``vmap(grad(f))``, ``grad(vmap(f))``, ``jacfwd``, ``hessian`` all work.
- Under ``grad(vmap(f))`` (an expectation over paths, differentiated) the JVP rule itself runs
  under the batching trace; there it differentiates the engine's batched kernel (`_jvp_rule`),
  so gradients of expectations also run at engine speed, and parameters shared by all paths
  get one summed cotangent (memory O(parameters), not O(paths x parameters)). Elsewhere (the
  rule reached before any batching: ``vmap(grad(f))``) it differentiates the single-path
  kernel, and an outer `vmap` batches that as plain JAX: correct, at plain-vmap speed.
- Values that a drift or diffusion closes over are inputs too: a tracer closed over (a
  parameter being differentiated or vmapped, ``SDE(lambda t, y, a: -theta * y, ...)``) is
  lifted out of the closure (`_hoist`) and passed explicitly, because a `custom_vmap` rule
  cannot see batched closure constants and a `custom_jvp` rule cannot differentiate them.
- Nested `vmap` (paths x parameters): the engine call is itself a `custom_vmap` whose rule
  folds the new axis into the paths, so any depth runs as one engine call.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array, PRNGKeyArray, PyTree

from ._normals import threefry_words
from ._sde import AbstractSDE, check_sde, check_shapes
from ._sde_solvers import AbstractSolver
from ._simulate import (
    _check_x0,
    _chunking,
    _Plan,
    _plan,
    _resolve_dtype,
    _simulate_core,
    check_chunk_size,
    check_key,
)
from ._solvers import get_solver

__all__ = ["euler_maruyama", "milstein", "simulate_path", "sra1", "stochastic_heun"]


# --------------------------------------------------------------------------- closures
class _ClosedSDE(AbstractSDE):
    """An SDE whose drift and diffusion are jaxprs with their closed-over values as fields.

    Made by `_hoist` when a drift or diffusion closes over tracers: the tracers become array
    leaves (inputs to every transformation), the functions static jaxprs.
    """

    dyn: PyTree  # the arrays of the original SDE
    drift_consts: list
    diffusion_consts: list
    drift_jaxpr: Any = eqx.field(static=True)
    diffusion_jaxpr: Any = eqx.field(static=True)
    noise: str = eqx.field(static=True)
    brownian_dim: int | None = eqx.field(static=True)

    def _call(self, jaxpr, consts, t, y, args):
        from jax.extend.core import ClosedJaxpr, jaxpr_as_fun

        leaves = jtu.tree_leaves((self.dyn, t, y, args))
        return jaxpr_as_fun(ClosedJaxpr(jaxpr, consts))(*leaves)[0]

    def drift(self, t, y, args):
        return self._call(self.drift_jaxpr, self.drift_consts, t, y, args)

    def diffusion(self, t, y, args):
        return self._call(self.diffusion_jaxpr, self.diffusion_consts, t, y, args)


def _hoist(sde: AbstractSDE, y: Array, args: PyTree) -> AbstractSDE:
    """`sde` itself, or a `_ClosedSDE` if its drift or diffusion closes over tracers."""
    dyn, static = eqx.partition(sde, eqx.is_array)
    t = jax.ShapeDtypeStruct((), y.dtype)
    y_ = jax.ShapeDtypeStruct(y.shape, y.dtype)
    drift = jax.make_jaxpr(lambda d, t, y, a: eqx.combine(d, static).drift(t, y, a))
    diffusion = jax.make_jaxpr(lambda d, t, y, a: eqx.combine(d, static).diffusion(t, y, a))
    cd, cg = drift(dyn, t, y_, args), diffusion(dyn, t, y_, args)
    if not any(isinstance(c, jax.core.Tracer) for c in (*cd.consts, *cg.consts)):
        return sde
    return _ClosedSDE(
        dyn, list(cd.consts), list(cg.consts), cd.jaxpr, cg.jaxpr, sde.noise, sde.brownian_dim
    )


def _in_batch_trace() -> bool:
    """Whether the innermost transformation running now is `jax.vmap` (see module docstring)."""
    try:
        from jax.extend.core import take_current_trace

        with take_current_trace() as trace:
            pass
        return type(trace).__name__ == "BatchTrace"
    except Exception:  # an API change: fall back to the single-path derivative (correct, slower)
        return False


# --------------------------------------------------------------------------- the kernels
class _Static(NamedTuple):
    """What a compiled run depends on besides its array inputs."""

    solver: AbstractSolver
    sde_static: Any
    wshape: tuple[int, ...]
    plan: _Plan
    chunk_size: int | None


# inputs, in this order: key data, x0, the SDE's arrays, args, step start times, step sizes
_KD, _X0, _SDE, _ARGS, _TS, _DTS = range(6)


def _run(st: _Static, n: int, flags: tuple, inputs: tuple) -> Array:
    """The engine on `n` paths (plain JAX). `flags`: per input, whether it has a leading path
    axis (one bool, or for the SDE's arrays and args a tuple of one per leaf)."""
    kd, x0, sde_dyn, args, t_starts, dts = inputs
    sde = eqx.combine(sde_dyn, st.sde_static)
    state_shape = x0.shape[1:] if flags[_X0] else x0.shape
    chunk = _chunking(st.solver, state_shape, st.wshape, dts.dtype, st.plan, n, st.chunk_size)
    grid: dict[str, Any] = {"steps": st.plan.steps}
    if st.plan.uniform is not None:  # t_starts, dts are t0, t1: the grid is made step by step
        n_total, seg_len, firsts, reals = st.plan.uniform[2:]
        grid = {"steps": firsts, "seg_real": reals, "uniform": (n_total, seg_len)}
    return _simulate_core(
        st.solver,
        sde,
        x0,
        args,
        kd,
        t_starts,
        dts,
        n_paths=n,
        chunk=chunk,
        block=st.plan.block,
        x0_pp=flags[_X0],
        args_pp=flags[_ARGS],
        sde_pp=flags[_SDE],
        wshape=st.wshape,
        aligned=st.plan.aligned,
        **grid,
    )


def _single(st: _Static, inputs: tuple) -> Array:
    """One path (plain JAX): the engine on a batch of one."""
    kd = inputs[_KD][None]
    flags = (True, False, False, False, False, False)
    return _run(st, 1, flags, (kd, *inputs[1:]))[0]


def _to_paths(x: Any, n: int, has: bool, want: bool) -> Any:
    """Give `x` a leading axis of `n` paths if `want` and it has none."""
    if not want or has:
        return x
    if getattr(x, "dtype", None) == jax.dtypes.float0:  # the tangent of an integer input
        return np.zeros((n, *np.shape(x)), jax.dtypes.float0)
    return jnp.broadcast_to(x, (n, *jnp.shape(x)))


def _engine(st: _Static, n: int, flags: tuple):
    """The engine on `n` paths as a `custom_vmap` function: a further `vmap` (over `m`) folds
    its axis into the paths, ``m * n`` of them, and runs the engine once."""

    def plain(*inputs):
        return _run(st, n, flags, inputs)

    fn = jax.custom_batching.custom_vmap(plain)

    @fn.def_vmap
    def rule(m, in_batched, *inputs):
        outer = [_per_leaf(x, b) for x, b in zip(inputs, in_batched, strict=True)]
        inner = [_per_leaf(x, f) for x, f in zip(inputs, flags, strict=True)]
        if any(outer[_TS]) or any(outer[_DTS]):  # a time grid per element: no common grid
            axes = [jtu.tree_map(lambda b: 0 if b else None, b) for b in in_batched]
            return jax.vmap(plain, in_axes=tuple(axes))(*inputs), True
        merged, new_flags = [], []
        for x, o, i in zip(inputs, outer, inner, strict=True):
            leaves, tdef = jtu.tree_flatten(x)
            out, fl = [], []
            for leaf, ob, ib in zip(leaves, o, i, strict=True):
                if ob or ib:
                    # to (m, n, ...) then (m n, ...): path p of element e is row e n + p
                    if not ob:
                        leaf = jnp.broadcast_to(leaf, (m, *jnp.shape(leaf)))
                    if not ib:
                        leaf = jnp.broadcast_to(leaf[:, None], (m, n, *jnp.shape(leaf)[1:]))
                    leaf = leaf.reshape(m * n, *leaf.shape[2:])
                out.append(leaf)
                fl.append(ob or ib)
            merged.append(jtu.tree_unflatten(tdef, out))
            new_flags.append(tuple(fl))
        nf = (True, any(new_flags[_X0]), new_flags[_SDE], new_flags[_ARGS], False, False)
        ys = _engine(st, m * n, nf)(*merged)
        return ys.reshape(m, n, *ys.shape[1:]), True

    return fn


def _per_leaf(x: PyTree, flag: Any) -> list[bool]:
    """Per-array-leaf flags of input `x` from one bool or a pytree/tuple of bools."""
    n = len(jtu.tree_leaves(x))
    if isinstance(flag, bool):
        return [flag] * n
    fl = [bool(f) for f in jtu.tree_leaves(flag)]
    if len(fl) != n:
        raise AssertionError(f"internal: {len(fl)} batching flags for {n} leaves")
    return fl


def _flags_of(inputs: tuple, batched: list) -> tuple:
    """Engine flags from `custom_vmap`'s `in_batched` (x0: one bool; SDE arrays, args: tuples)."""
    per = [_per_leaf(x, b) for x, b in zip(inputs, batched, strict=True)]
    return (True, any(per[_X0]), tuple(per[_SDE]), tuple(per[_ARGS]), False, False)


def _batched_inputs(inputs: tuple, flags: tuple, n: int) -> tuple:
    """Broadcast the key data to one per path (a shared key: every path draws the same noise,
    as `vmap` semantics ask)."""
    kd = _to_paths(inputs[_KD], n, inputs[_KD].ndim == 2, True)
    return (kd, *inputs[1:])


def _path_function(st: _Static):
    """The single-path function of the inputs: `custom_jvp` around `custom_vmap`."""

    def single(*inputs):
        return _single(st, inputs)

    batched = jax.custom_batching.custom_vmap(single)

    @batched.def_vmap
    def rule(n, in_batched, *inputs):
        if any(_per_leaf(inputs[_TS], in_batched[_TS]) + _per_leaf(inputs[_DTS], in_batched[_DTS])):
            axes = [jtu.tree_map(lambda b: 0 if b else None, b) for b in in_batched]
            return jax.vmap(single, in_axes=tuple(axes))(*inputs), True
        flags = _flags_of(inputs, in_batched)
        return _engine(st, n, flags)(*_batched_inputs(inputs, flags, n)), True

    fn = jax.custom_jvp(lambda *inputs: batched(*inputs))

    def jvp(primals, tangents):
        if not all(isinstance(t, SymbolicZero) for t in (tangents[_TS], tangents[_DTS])):
            raise ValueError(
                "single-path simulation is not differentiable with respect to the time grid "
                "(`t0`, `t1`, `ts`); differentiate with respect to `x0`, `args` or the SDE's "
                "parameters"
            )
        live = [
            i
            for i in (_X0, _SDE, _ARGS)
            if not all(isinstance(t, SymbolicZero) for t in jtu.tree_leaves(tangents[i]))
        ]
        tans = tuple(jtu.tree_map(_instantiate, tangents[i]) for i in live)
        if _in_batch_trace():
            return _jvp_batched(st, primals, live, tans)

        def f(*diff):
            inputs = list(primals)
            for i, v in zip(live, diff, strict=True):
                inputs[i] = v
            return single(*inputs)

        return jax.jvp(f, tuple(primals[i] for i in live), tans)

    fn.defjvp(jvp, symbolic_zeros=True)
    return fn


def _jvp_batched(st: _Static, primals: tuple, live: list, tans: tuple):
    """The JVP when it runs under `vmap`: a `custom_vmap` whose rule differentiates the
    engine's batched kernel (plain JAX, so reverse mode can transpose it)."""

    def plain(prim, tan):
        def f(*diff):
            inputs = list(prim)
            for i, v in zip(live, diff, strict=True):
                inputs[i] = v
            return _single(st, tuple(inputs))

        return jax.jvp(f, tuple(prim[i] for i in live), tan)

    fn = jax.custom_batching.custom_vmap(plain)

    @fn.def_vmap
    def rule(n, in_batched, prim, tan):
        pb, tb = in_batched
        if any(_per_leaf(prim[_TS], pb[_TS]) + _per_leaf(prim[_DTS], pb[_DTS])):
            axes = lambda flags: tuple(jtu.tree_map(lambda b: 0 if b else None, f) for f in flags)
            return jax.vmap(plain, in_axes=(axes(pb), axes(tb)))(prim, tan), (True, True)
        # an input is per path if its primal or its tangent is
        both = list(pb)
        for j, i in enumerate(live):
            both[i] = jtu.tree_map(lambda a, b: bool(a) or bool(b), pb[i], tb[j])
        flags = _flags_of(prim, both)
        per = [_per_leaf(x, b) for x, b in zip(prim, both, strict=True)]
        has = [_per_leaf(x, b) for x, b in zip(prim, pb, strict=True)]

        def widen(x, want, got):
            leaves, tdef = jtu.tree_flatten(x)
            out = [_to_paths(v, n, g, w) for v, w, g in zip(leaves, want, got, strict=True)]
            return jtu.tree_unflatten(tdef, out)

        prim_b = [widen(x, per[i], has[i]) for i, x in enumerate(prim)]
        prim_b[_KD] = _to_paths(prim[_KD], n, bool(pb[_KD]), True)
        pairs = enumerate(zip(live, tan, strict=True))
        tan_b = [widen(t, per[i], _per_leaf(t, tb[j])) for j, (i, t) in pairs]

        def f(*diff):
            inputs = list(prim_b)
            for i, v in zip(live, diff, strict=True):
                inputs[i] = v
            return _run(st, n, flags, tuple(inputs))

        out = jax.jvp(f, tuple(prim_b[i] for i in live), tuple(tan_b))
        return out, (True, True)

    return fn(tuple(primals), tans)


def _instantiate(t: Any) -> Any:
    if not isinstance(t, SymbolicZero):
        return t
    aval: Any = t.aval
    if aval.dtype == jax.dtypes.float0:
        return np.zeros(aval.shape, jax.dtypes.float0)
    return jnp.zeros(aval.shape, aval.dtype)


# --------------------------------------------------------------------------- public API
def _key_words(key: Any) -> Array:
    """The two words that key a path's hashes (`threefry_words`), or a clear error."""
    hint = "to simulate several paths, jax.vmap over keys (or use sdeml.simulate)"
    check_key(key, hint)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or tuple(jnp.shape(key)) == (2,):
        return threefry_words(key)  # a typed key, or a legacy raw Threefry key
    raise ValueError(
        f"`key` must be a PRNG key (jax.random.key(seed)), got a raw uint32 key of shape "
        f"{jnp.shape(key)}; {hint}"
    )


def simulate_path(
    sde: AbstractSDE,
    x0: Any,
    *,
    t0: Any = 0.0,
    t1: Any = 1.0,
    n_steps: int | None = None,
    ts: Any = None,
    method: str | AbstractSolver = "euler_maruyama",
    save_every: int | None = None,
    save_at: Any = None,
    include_t0: bool = False,
    args: PyTree = None,
    dtype: Any = None,
    chunk_size: int | None = None,
    block_size: int | None = None,
    key: PRNGKeyArray,
) -> Array:
    r"""Simulate one path of $dX = f(t, X)\,dt + g(t, X)\,dW$; `jax.vmap` it for a batch.

    The path streams: its Brownian increments are drawn inside the loop, a block of steps at a
    time, and only the saved states are kept (memory O(state + saves); a uniform grid is made
    step by step, ``t_k = t0 + k h``). The normals of step $k$ depend on `key` and $k$ alone,
    so the path does not change with `save_every`, `include_t0` or `block_size` (nor, up to
    the rounding of the grid's times, with `save_at` times that lie on the grid). Batched with
    `jax.vmap` over keys, initial values, `args` or the SDE's parameters (nested vmaps, under
    `jax.jit`, under `jax.grad`), it runs as one call of `simulate`'s engine (chunked paths,
    blocked steps, two normals per hash), and element i equals the unbatched call with the
    i-th inputs.

    Args:
        sde: the SDE (`SDE`, a zoo class, or any `AbstractSDE`).
        x0: initial state, shape ``S``.
        t0, t1: time interval, with `n_steps` equal steps. Or give `ts` instead.
        n_steps: number of steps (positive int).
        ts: explicit increasing times ``(n_steps + 1,)``, possibly non-uniform.
        method: a registered SDE scheme (``"euler_maruyama"`` / ``"em"``, ``"milstein"``,
            ``"stochastic_heun"``, ``"sra1"``) or an `AbstractSolver` instance.
        save_every: save every k steps (and at `t1`); default: the terminal value only.
        save_at: times in ``[t0, t1]`` to save at (sorted); they are added to the grid.
        include_t0: also save the initial state.
        args: passed to drift and diffusion as their third argument.
        dtype: floating dtype; default that of `x0` (float32 for non-floating input).
        chunk_size: paths per chunk of the engine when batched (default as `simulate`).
        block_size: steps per block of drawn increments (speed only: the path is the same).
        key: one PRNG key (any implementation; the draws hash with Threefry, see
            `_normals.threefry_words`).

    Returns:
        The saved states, shape ``(n_saves, *S)`` (``(1, *S)`` by default), like one row of
        `simulate`'s ``xs``.

    Examples:
        >>> from sdeml.sde import OrnsteinUhlenbeck, simulate_path
        >>> ou = OrnsteinUhlenbeck(theta=1.0, mu=0.5, sigma=0.7)
        >>> simulate_path(ou, jnp.zeros(2), n_steps=100, save_every=25, include_t0=True,
        ...               key=jr.key(0)).shape
        (5, 2)
        >>> one = lambda k: simulate_path(ou, jnp.zeros(2), n_steps=100, key=k)[-1]
        >>> keys = jr.split(jr.key(0), 5000)
        >>> x1 = jax.jit(jax.vmap(one))(keys)  # one engine call for all 5000 paths
        >>> x1.shape
        (5000, 2)
        >>> bool(abs(x1.mean() - ou.mean(1.0, 0.0)) < 0.02)  # E X_1 = 0.5 (1 - e^{-1})
        True
        >>> bool(abs(x1.var() - ou.variance(1.0, 0.0)) < 0.02)  # Var X_1 = 0.49 (1 - e^-2) / 2
        True
        >>> bool(jnp.allclose(x1[3], one(keys[3])))  # element i is the unbatched call
        True

    References:
        Kloeden & Platen (1992); Salmon et al., Parallel random numbers: as easy as 1, 2, 3,
        SC 2011 (counter-based Threefry).
    """
    solver = get_solver(method, kind="sde")
    check_sde(sde)
    solver.check(sde)
    if dtype is None:
        dt0 = getattr(x0, "dtype", None)
        if dt0 is None:
            dt0 = jnp.asarray(x0).dtype
        dtype = dt0 if jnp.issubdtype(dt0, jnp.floating) else jnp.float32
    dtype = _resolve_dtype(dtype)
    x0 = _check_x0(x0, dtype, "simulate_path")
    kd = _key_words(key)
    wshape = tuple(sde.brownian_shape(x0.shape))
    pairs = not solver.needs_time_integral and jnp.dtype(dtype).itemsize < 8
    plan = _plan(t0, t1, n_steps, ts, save_every, save_at, include_t0, block_size, dtype, pairs)
    if chunk_size is not None:
        check_chunk_size(chunk_size)
    check_shapes(sde, x0, args)
    if plan.dts.shape[0] == 0:  # only t0 is saved (`save_at=[t0]`): no step to take
        return x0[None]
    sde = _hoist(sde, x0, args)
    sde_dyn, sde_static = eqx.partition(sde, eqx.is_array)
    st = _Static(solver, sde_static, wshape, plan, chunk_size)
    fn = _path_function(st)
    if plan.uniform is not None:  # the uniform grid by its ends: memory O(saves), not O(steps)
        t_starts, dts = jnp.asarray(plan.uniform[0]), jnp.asarray(plan.uniform[1])
    else:
        t_starts, dts = jnp.asarray(plan.t_starts), jnp.asarray(plan.dts)
    xs = fn(kd, x0, sde_dyn, args, t_starts, dts)
    if plan.save_initial:
        xs = jnp.concatenate([x0[None], xs], axis=0)
    return xs


_SAVE_ERROR = (
    "`save` must be 'all', 'final', a positive int (every k-th step) or an array of times, got {!r}"
)


def _scheme_path(method: str, sde, x0, ts, t0, t1, n_steps, save, args, dtype, block_size, key):
    """A scheme's single path with `save` = "all" | "final" | every-k int | times."""
    kw: dict[str, Any] = dict(t0=t0, t1=t1, n_steps=n_steps, ts=ts, method=method, args=args)
    kw.update(dtype=dtype, block_size=block_size, key=key)
    if isinstance(save, str) and save in ("all", "final"):
        if save == "all":
            return simulate_path(sde, x0, save_every=1, include_t0=True, **kw)
        return simulate_path(sde, x0, **kw)[0]
    if isinstance(save, str | bool) or save is None:
        raise ValueError(_SAVE_ERROR.format(save))
    if isinstance(save, int | np.integer):
        if save <= 0:  # was reported as a bad `save_every`, an argument the caller never gave
            raise ValueError(_SAVE_ERROR.format(save))
        return simulate_path(sde, x0, save_every=int(save), **kw)
    return simulate_path(sde, x0, save_at=save, **kw)


_SCHEME_DOC = r"""One {name} path on a time grid; `jax.vmap` it over keys, `x0`, `args`, parameters.

    $${equation}$$

    Streams (increments drawn a block at a time inside the loop; memory O(state + saves)) and,
    under `jax.vmap`, runs as one call of `simulate`'s engine; see `simulate_path`, which this
    is with ``method="{method}"``.

    Args:
        sde: the SDE{noise}.
        x0: initial state, shape ``S``.
        ts: times ``(n_steps + 1,)`` (increasing, possibly non-uniform); or give `t0`, `t1`,
            `n_steps`.
        t0, t1, n_steps: a uniform grid of `n_steps` steps on ``[t0, t1]`` (when `ts` is None).
        save: what to return: ``"all"`` (default; every time of the grid, `t0` included,
            ``(n_steps + 1, *S)``), ``"final"`` (the state at `t1`, shape ``S``), an int k
            (every k-th step and `t1`, ``(ceil(n_steps / k), *S)``) or an array of times in
            ``[t0, t1]`` (``(len(times), *S)``; times off the grid are added to it).
        args: passed to drift and diffusion.
        dtype: floating dtype; default that of `x0`.
        block_size: steps per block of drawn increments (speed only).
        key: one PRNG key.

    Returns:
        The saved states (see `save`).

    Examples:
        >>> from sdeml.sde import OrnsteinUhlenbeck, {fn}
        >>> ou = OrnsteinUhlenbeck(theta=1.0, mu=0.5, sigma=0.7)
        >>> ts = jnp.linspace(0.0, 1.0, 21)
        >>> {fn}(ou, jnp.zeros(2), ts, key=jr.key(0)).shape  # save="all"
        (21, 2)
        >>> keys = jr.split(jr.key(1), 4000)
        >>> x1 = jax.vmap(lambda k: {fn}(ou, jnp.zeros(2), ts, save="final", key=k))(keys)
        >>> x1.shape, bool(abs(x1.mean() - ou.mean(1.0, 0.0)) < 0.02)  # E X_1 = 0.5 (1 - e^-1)
        ((4000, 2), True)

    References:
        {refs}
    """


def _scheme(method: str, name: str, equation: str, noise: str, refs: str):
    """The public single-path function of the registered SDE scheme `method`."""

    def scheme(
        sde: AbstractSDE,
        x0: Any,
        ts: Any = None,
        *,
        t0: Any = 0.0,
        t1: Any = 1.0,
        n_steps: int | None = None,
        save: Any = "all",
        args: PyTree = None,
        dtype: Any = None,
        block_size: int | None = None,
        key: PRNGKeyArray,
    ) -> Array:
        return _scheme_path(
            method, sde, x0, ts, t0, t1, n_steps, save, args, dtype, block_size, key
        )

    scheme.__name__ = scheme.__qualname__ = method
    scheme.__doc__ = _SCHEME_DOC.format(
        name=name, method=method, fn=method, equation=equation, noise=noise, refs=refs
    )
    return scheme


euler_maruyama = _scheme(
    "euler_maruyama",
    name="Euler–Maruyama",
    equation=r"Y_{k+1} = Y_k + f(t_k, Y_k) h_k + g(t_k, Y_k)\Delta W_k",
    noise=" (any noise type)",
    refs="Maruyama (1955); Higham, SIAM Review 43(3), 2001.",
)
milstein = _scheme(
    "milstein",
    name="Itô Milstein",
    equation=r"Y_{k+1} = Y_k + f h + g\Delta W + \tfrac12 g g' (\Delta W^2 - h)",
    noise=" (any noise type; strong order 1 for commutative noise)",
    refs="Milstein, Theory Probab. Appl. 19 (1974); Kloeden & Platen (1992), §10.3.",
)
stochastic_heun = _scheme(
    "stochastic_heun",
    name="stochastic Heun (Stratonovich)",
    equation=r"Y_{k+1} = Y_k + \tfrac12[f(Y_k) + f(\tilde Y)]h + \tfrac12[g(Y_k) + g(\tilde Y)]"
    r"\Delta W,\ \tilde Y = Y_k + f h + g\Delta W",
    noise=", read in the Stratonovich sense",
    refs="Rümelin, SIAM J. Numer. Anal. 19 (1982); Kloeden & Platen (1992), §11.1.",
)
sra1 = _scheme(
    "sra1",
    name="SRA1 (strong order 3/2, additive noise)",
    equation=r"Y_{k+1} = Y_k + h[\tfrac13 f(t_k, Y_k) + \tfrac23 f(t_k + \tfrac34 h, H)]"
    r" + b(t_{k+1})\Delta W + [b(t_k) - b(t_{k+1})]\Delta Z / h",
    noise=' (noise="additive")',
    refs="Rößler, SIAM J. Numer. Anal. 48(3), 2010, Table 5.1.",
)
