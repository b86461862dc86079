"""`fit`: run a pure step function for many steps, with logging, checkpoints and a NaN guard.

Steps run in compiled chunks (a `lax.fori_loop` of up to ``gcd(log_every, ckpt_every)`` steps per
call, with a dynamic trip count so the last, shorter chunk reuses the same program; a later call
with the same step function on a state of the same kind reuses it too). The host sees
the state only at chunk boundaries: that is where metrics are logged, the NaN guard looks and
checkpoints are written. Because a step's data and noise are a function of the step (see
`make_step`), resuming from a checkpoint replays the same computation and reaches bit-identical
parameters.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ..core._checks import check_int
from ..core._memory import on_release
from ._checkpoint import CheckpointDir
from ._sweep import gather_to_host, place


class TrainingError(RuntimeError):
    """Training stopped: a non-finite metric, or a failure (e.g. a solver's max_steps) in a step.

    Args:
        message: what happened, at which step, and the last good checkpoint.
        step: the 1-based step whose metric is non-finite, or the first step of the chunk that
            raised (attribute ``step``).
        checkpoint_step: the newest checkpoint written before it, or None (attribute
            ``checkpoint_step``).

    Examples:
        A loss that becomes NaN from the third step on (steps are 0-based in `batch_fn`):

        >>> import optax
        >>> from sdeml.train import TrainingError, fit, init_state, make_step
        >>> loss_fn = lambda w, step, key: jnp.where(step >= 2, jnp.nan, jnp.sum(w**2))
        >>> step_fn = make_step(loss_fn, optax.sgd(0.1), lambda key, step: step)
        >>> state = init_state(jnp.ones(2), optax.sgd(0.1), jr.key(0))
        >>> try:
        ...     fit(state, step_fn, 5, log_every=5, progress=False)
        ... except TrainingError as e:
        ...     print(e.step, e.checkpoint_step, "|", e)
        3 None | non-finite loss at step 3; no checkpoint had been written yet
    """

    def __init__(self, message: str, step: int, checkpoint_step: int | None):
        super().__init__(message)
        self.step = step
        self.checkpoint_step = checkpoint_step


@dataclass
class FitStats:
    """What `fit` measured.

    Attributes:
        steps: the steps taken in this call.
        start_step: 0, or the checkpoint step a resumed run started from.
        compile_time_s: tracing and XLA compilation of the chunk program, in seconds (about 0
            when the program of an earlier call was reused; see `compiled`).
        compiled: whether this call compiled its chunk program. A call with the same `step_fn`
            object, a state of the same structure, types and placement, and the same chunk
            length as one of the last 8 calls reuses that call's program.
        step_time_s: the steady-state wall time per step (compiled, synced), in seconds.
        wall_time_s: compilation plus running, in seconds.
        last_metrics: each metric's mean over the last chunk of steps (host floats, or lists
            of floats for a batched state).
        resume_note: which checkpoint a resumed run started from, and why ("" otherwise).

    Examples:
        >>> import optax
        >>> from sdeml.train import fit, init_state, make_step
        >>> opt = optax.sgd(0.25)
        >>> step_fn = make_step(lambda w, b, key: jnp.sum(w**2), opt, lambda key, s: None)
        >>> _, stats = fit(init_state(jnp.ones(2), opt, jr.key(0)), step_fn, 6, progress=False)
        >>> stats.steps, stats.start_step, sorted(stats.last_metrics)
        (6, 0, ['grad_norm', 'loss'])
        >>> stats.compile_time_s > 0 and stats.step_time_s > 0
        True
    """

    steps: int = 0  # steps taken in this call
    start_step: int = 0  # 0, or the checkpoint step a resumed run started from
    compile_time_s: float = 0.0  # tracing + XLA compilation of the chunk program
    compiled: bool = False  # whether this call compiled its chunk program (else reused one)
    step_time_s: float = float("nan")  # steady-state wall time per step (compiled, synced)
    wall_time_s: float = 0.0
    last_metrics: dict[str, Any] = field(default_factory=dict)
    resume_note: str = ""  # which checkpoint a resumed run started from, and why


def fit(
    state: Any,
    step_fn: Callable[[Any], tuple[Any, dict[str, jax.Array]]],
    n_steps: int,
    *,
    log_every: int = 100,
    ckpt_every: int = 0,
    ckpt_dir: str | Path | None = None,
    resume: bool = False,
    on_log: Callable[[int, dict[str, Any]], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    on_resume: Callable[[int], None] | None = None,
) -> tuple[Any, FitStats]:
    r"""Advance `state` to step `n_steps` with `step_fn`.

    Args:
        state: a PyTree with an integer ``step`` leaf (e.g. `TrainState`), or a batched one
            (`eqx.filter_vmap`);
            then ``step`` is an array and every entry must agree.
        step_fn: pure ``state -> (state, metrics)``; metrics a dict of scalars (or of ``(n,)``
            arrays for a batched state).
        n_steps: the total number of steps (a resumed run continues to the same total).
        log_every: steps between logged metrics (each logged value is the mean over those steps,
            or over the steps since the run started or resumed, if fewer).
        ckpt_every: steps between checkpoints; 0 writes one at the end only (with `ckpt_dir`).
            A positive value needs `ckpt_dir`.
        ckpt_dir: where checkpoints go; None keeps none.
        resume: start from the newest checkpoint in `ckpt_dir` (which it needs) whose checksum
            verifies (a truncated or corrupted newer one is passed over, and the choice printed
            to stderr); checkpoint files of which none verifies raise `CheckpointError` rather
            than start over.
        on_log: called as ``on_log(step, metrics)`` with host floats (or lists of floats).
        progress: show a progress bar (loss, it/s, ETA).
        desc: the progress bar's label.
        on_resume: with `resume`, called as ``on_resume(step)`` with the step training restarts
            from (0 without a checkpoint) before any step runs.

    Returns:
        The final state and a `FitStats`.

    Raises:
        TrainingError: a metric became NaN/Inf (the message names the step and metric), or a
            step raised (e.g. a diffrax solve hit max_steps); the newest checkpoint on disk is the
            last good one.

    Examples:
        SGD with step size 0.25 on $L(w) = \|w - b\|^2$ gives $w_k = b\,(1 - 2^{-k})$; a second
        call resumes from the checkpoint of the first and continues to the new total:

        >>> import optax
        >>> from sdeml.train import fit, init_state, make_step
        >>> opt = optax.sgd(0.25)
        >>> b = jnp.array([1.0, 3.0])
        >>> step_fn = make_step(lambda w, b, key: jnp.sum((w - b) ** 2), opt, lambda key, s: b)
        >>> state0 = init_state(jnp.zeros(2), opt, jr.key(0))
        >>> logged = []
        >>> state, stats = fit(
        ...     state0, step_fn, 8, log_every=4, ckpt_dir="fit_ckpt", progress=False,
        ...     on_log=lambda step, metrics: logged.append(step),
        ... )
        >>> int(state.step), logged, bool(jnp.allclose(state.model, b * (1 - 2.0**-8)))
        (8, [4, 8], True)
        >>> state, stats = fit(
        ...     state0, step_fn, 12, ckpt_dir="fit_ckpt", resume=True, progress=False
        ... )
        >>> stats.start_step, stats.steps, bool(jnp.allclose(state.model, b * (1 - 2.0**-12)))
        (8, 4, True)
    """
    # ints (NumPy's too), never bools or floats: a float reached the compiled loop's shapes and
    # failed there, and `log_every=True` ran as 1
    n_steps = check_int("n_steps", n_steps, 0)
    log_every = check_int("log_every", log_every, 1)
    ckpt_every = check_int("ckpt_every", ckpt_every, 0)
    if ckpt_dir is None and (ckpt_every or resume):  # both silently did nothing without it
        what = f"`ckpt_every={ckpt_every}`" if ckpt_every else "`resume=True`"
        raise ValueError(f"{what} needs `ckpt_dir`, the folder of the checkpoints")
    ckpts = CheckpointDir(ckpt_dir) if ckpt_dir is not None else None
    stats = FitStats()
    last_ckpt: int | None = None  # the newest checkpoint on disk of this run
    if ckpts is not None and resume:
        restored = ckpts.restore(state)  # the newest checkpoint that verifies (issue #17)
        if restored is not None:
            latest, loaded, stats.resume_note = restored
            print(f"sdeml: {desc}: {stats.resume_note}", file=sys.stderr)
            # keep the caller's placement (e.g. members sharded over devices by shard_batch)
            state = jax.tree.map(
                lambda new, old: place(new, old.sharding) if eqx.is_array(old) else new,
                loaded,
                state,
            )
            stats.start_step = last_ckpt = latest
    if on_resume is not None and resume:
        on_resume(stats.start_step)
    start = _step_of(state)
    if start != stats.start_step:
        stats.start_step = start
    if start > n_steps:
        raise ValueError(f"the state is at step {start}, past `n_steps` = {n_steps}")
    if start == n_steps:
        return state, stats

    chunk = math.gcd(log_every, ckpt_every) if ckpt_every else log_every
    chunk = min(chunk, n_steps)
    dyn, static = eqx.partition(state, eqx.is_array)
    t0 = time.perf_counter()
    compiled, stats.compiled = _chunk_program(step_fn, dyn, static, chunk)
    stats.compile_time_s = time.perf_counter() - t0

    step, run_time = start, 0.0
    # the chunks since the last log: a logged value is the mean over all of them (a chunk is
    # shorter than `log_every` when `ckpt_every` does not divide it)
    pending: list[dict[str, np.ndarray]] = []
    bar = tqdm(
        total=n_steps,
        initial=start,
        desc=desc,
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
        leave=True,
    )
    try:
        while step < n_steps:
            n = min(chunk - step % chunk, n_steps - step)  # chunk boundaries are multiples of chunk
            t1 = time.perf_counter()
            try:
                with _quiet_callback_log():
                    new_dyn, buf = compiled(dyn, jnp.int32(n))
                    buf = gather_to_host(buf)  # from every process under jax.distributed
                    host = {k: np.asarray(v)[:n] for k, v in jax.device_get(buf).items()}
            except Exception as e:  # e.g. an equinox runtime error from a diffrax solve
                raise TrainingError(
                    f"training failed in steps {step + 1}-{step + n}: {describe_error(e)}"
                    + _ckpt_note(last_ckpt),
                    step + 1,
                    last_ckpt,
                ) from e
            run_time += time.perf_counter() - t1
            bad = _first_non_finite(host)
            if bad is not None:
                i, name = bad
                raise TrainingError(
                    f"non-finite {name} at step {step + i + 1}" + _ckpt_note(last_ckpt),
                    step + i + 1,
                    last_ckpt,
                )
            dyn = new_dyn
            step += n
            means = {k: _host_mean(v) for k, v in host.items()}
            stats.last_metrics = means
            bar.update(n)
            if "loss" in means:
                bar.set_postfix(loss=f"{np.mean(means['loss']):.4g}", refresh=False)
            pending.append(host)
            if step % log_every == 0 or step == n_steps:
                if on_log is not None:
                    logged = {k: _host_mean(np.concatenate([h[k] for h in pending])) for k in host}
                    on_log(step, logged)
                pending = []
            if ckpts is not None and (step == n_steps or (ckpt_every and step % ckpt_every == 0)):
                ckpts.save(step, eqx.combine(dyn, static))
                last_ckpt = step
    finally:
        bar.close()
    stats.steps = step - start
    stats.wall_time_s = run_time + stats.compile_time_s
    stats.step_time_s = run_time / max(stats.steps, 1)
    return eqx.combine(dyn, static), stats


# `fit`'s compiled chunk programs, newest last, keyed by what determines the program: the step
# function (by identity, as `jax.jit` keys a function), the state's non-array parts, the arrays'
# types and placements, and the chunk length. A second `fit` of the same step on a state of the
# same kind (a resumed run, one seed after another, a notebook cell run again) reuses the program
# instead of compiling it again. Bounded: an entry keeps its step function, and what the function
# closes over, alive.
_PROGRAMS: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()
_MAX_PROGRAMS = 8
on_release(_PROGRAMS.clear)  # a crowded process frees these with jax's own caches


class _Identity:
    """Hashes and compares by the identity of the object it holds (which it keeps alive)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj


def _trace_context() -> Any:
    """The configuration `jax.jit` keys its own cache on (x64, matmul precision, ...)."""
    try:
        from jax._src import config as jax_config

        return jax_config.trace_context()
    except (ImportError, AttributeError):  # a JAX without it: the settings that matter most
        names = ("jax_enable_x64", "jax_default_matmul_precision")
        return tuple(getattr(jax.config, name, None) for name in names)


def _program_key(step_fn: Any, dyn: Any, static: Any, chunk: int) -> Any:
    """The cache key of a chunk program, or None when a part of the state cannot be hashed."""
    leaves, treedef = jax.tree_util.tree_flatten(static)
    arrays, array_def = jax.tree_util.tree_flatten(dyn)
    try:
        types = tuple((jax.typeof(x), getattr(x, "sharding", None)) for x in arrays)
        key = (
            _Identity(step_fn),
            _trace_context(),
            treedef,
            tuple((type(v), v) for v in leaves),  # the type too: 1, 1.0 and True are equal
            array_def,
            types,
            chunk,
        )
        hash(key)
    except TypeError:  # an unhashable non-array leaf of the state: compile every time
        return None
    return key


def _chunk_program(step_fn: Any, dyn: Any, static: Any, chunk: int) -> tuple[Any, bool]:
    """The compiled program running up to `chunk` steps, and whether it was compiled now."""
    key = _program_key(step_fn, dyn, static, chunk)
    if key is not None and key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key][0], False
    metric_shapes = jax.eval_shape(lambda d: step_fn(eqx.combine(d, static))[1], dyn)
    if not isinstance(metric_shapes, dict):
        raise TypeError("`step_fn` must return (state, metrics) with metrics a dict of arrays")

    def run_chunk(dyn, n):
        buf = {k: jnp.full((chunk, *s.shape), jnp.nan, s.dtype) for k, s in metric_shapes.items()}

        def body(i, carry):
            d, buf = carry
            st, metrics = step_fn(eqx.combine(d, static))
            buf = {k: buf[k].at[i].set(metrics[k]) for k in buf}
            return eqx.partition(st, eqx.is_array)[0], buf

        return jax.lax.fori_loop(0, n, body, (dyn, buf))

    compiled = jax.jit(run_chunk).lower(dyn, jnp.int32(chunk)).compile()
    if key is not None:
        _PROGRAMS[key] = (compiled, step_fn)
        while len(_PROGRAMS) > _MAX_PROGRAMS:
            _PROGRAMS.popitem(last=False)
    return compiled, True


def describe_error(e: BaseException) -> str:
    r"""The useful line of a runtime error raised from compiled code (equinox's, if any).

    Args:
        e: the exception, e.g. a `jax.errors.JaxRuntimeError` wrapping an equinox error.

    Returns:
        The message after ``EquinoxRuntimeError:`` or ``ODESolveError:`` when there is one, else
        the first non-empty line of the message, else the exception's type name.

    Examples:
        >>> from sdeml.train import describe_error
        >>> wrapped = RuntimeError(
        ...     "INTERNAL: CpuCallback error calling callback: Traceback ...\n"
        ...     "EquinoxRuntimeError: The maximum number of solver steps was reached.\n"
        ... )
        >>> describe_error(wrapped)
        'The maximum number of solver steps was reached.'
        >>> describe_error(ValueError())
        'ValueError'
    """
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        m = re.search(r"(?:EquinoxRuntimeError|ODESolveError): (.*)", ln)
        if m:
            return m.group(1)
    return lines[0] if lines else type(e).__name__


@contextlib.contextmanager
def _quiet_callback_log() -> Iterator[None]:
    """JAX logs a host-callback failure with its traceback; we re-raise it as one line instead."""
    log = logging.getLogger("jax._src.callback")
    old = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(old)


def _step_of(state: Any) -> int:
    step = getattr(state, "step", None)
    if step is None:
        raise TypeError("`state` must have a `step` leaf (use sdeml.train.init_state)")
    values = np.unique(np.asarray(gather_to_host(step)))
    if values.size != 1:
        raise ValueError(f"a batched state must have one step for all members, got {values}")
    return int(values[0])


def _first_non_finite(host: dict[str, np.ndarray]) -> tuple[int, str] | None:
    first: tuple[int, str] | None = None
    for name, v in host.items():
        if not np.issubdtype(v.dtype, np.inexact):
            continue
        finite = np.isfinite(v.reshape(v.shape[0], -1)).all(axis=1)
        if not finite.all():
            i = int(np.argmin(finite))
            if first is None or i < first[0]:
                first = (i, name)
    return first


def _host_mean(v: np.ndarray) -> float | list[float]:
    m = v.mean(axis=0)
    return float(m) if m.ndim == 0 else m.tolist()


def _ckpt_note(step: int | None) -> str:
    if step is None:
        return "; no checkpoint had been written yet"
    return f"; the last good checkpoint is at step {step}"
