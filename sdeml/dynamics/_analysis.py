"""Equilibria, Jacobians, eigenvalues and stability classes of autonomous ODEs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Complex, Float, Inexact, Int, Real

from ..core._checks import as_float, check_positive, check_positive_int

__all__ = [
    "STABILITY_CLASSES",
    "Equilibrium",
    "classify_equilibrium",
    "equilibrium_tolerances",
    "find_equilibrium",
    "jacobian",
    "stability_name",
]

# Index = the integer code returned by `classify_equilibrium`.
STABILITY_CLASSES: tuple[str, ...] = (
    "stable node",  # 0: all Re < 0, all real
    "stable spiral",  # 1: all Re < 0, some complex
    "unstable node",  # 2: all Re > 0, all real
    "unstable spiral",  # 3: all Re > 0, some complex
    "saddle",  # 4: Re of both signs, all real
    "saddle-focus",  # 5: Re of both signs, some complex
    "centre",  # 6: all Re = 0, all purely imaginary and nonzero
    "unstable non-hyperbolic",  # 7: some Re > 0, none < 0, some = 0: unstable all the same
    "non-hyperbolic",  # 8: some Re = 0 (zero eigenvalue etc.): linearisation is inconclusive
    "non-finite",  # 9: an eigenvalue is NaN or inf (traced only; concrete ones are refused)
)


def stability_name(code: int | Int[ArrayLike, ""]) -> str:
    """The name of a stability code returned by `classify_equilibrium`.

    Args:
        code: an integer code in ``0..9``, a Python int or a 0-d integer array (concrete: not
            inside ``jit``).

    Returns:
        ``STABILITY_CLASSES[code]``, e.g. ``"saddle"``.

    Raises:
        ValueError: ``code`` is not a 0-d integer in ``0..9`` (``-1`` had read as
            ``STABILITY_CLASSES[-1]``, a float ``4.7`` as ``4``).

    Examples:
        >>> from sdeml.dynamics import classify_equilibrium, stability_name
        >>> stability_name(4)
        'saddle'
        >>> stability_name(classify_equilibrium(jnp.array([1.0, -2.0])))
        'saddle'
    """
    arr = np.asarray(code)
    n = len(STABILITY_CLASSES)
    if arr.shape != () or arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"`code` must be a single integer code in 0..{n - 1}, got {code!r}; for an array of "
            "codes (from jax.vmap), call stability_name on each one."
        )
    if not 0 <= int(arr) < n:
        raise ValueError(f"`code` must be in 0..{n - 1} (see STABILITY_CLASSES), got {int(arr)}.")
    return STABILITY_CLASSES[int(arr)]


def jacobian(
    f: Callable[..., Any],
    y: Real[ArrayLike, " d"],
    t: Real[ArrayLike, ""] = 0.0,
    args: Any = None,
) -> Float[Array, "d d"]:
    r"""Jacobian $J_{ij} = \partial f_i / \partial y_j$ of a vector field at ``y`` by autodiff.

    Args:
        f: vector field ``f(t, y, args)`` mapping shape ``(d,)`` to ``(d,)``.
        y: the point, shape ``(d,)``.
        t: the time, a scalar (for autonomous systems it does not matter).
        args: passed to ``f``.

    Returns:
        The Jacobian, shape ``(d, d)`` (forward-mode autodiff, ``jax.jacfwd``).

    Examples:
        Van der Pol at the origin has the rows $(0, 1)$ and $(-1, \mu)$:

        >>> J = sdeml.dynamics.jacobian(sdeml.dynamics.VanDerPol(1.0), jnp.zeros(2))
        >>> J.shape, J.tolist()
        ((2, 2), [[0.0, 1.0], [-1.0, 1.0]])
    """
    y = as_float(y)  # an integer point (y = [1, 0]) failed in jacfwd
    if y.ndim != 1:
        raise ValueError(f"`y` must have shape (d,), got {y.shape}; use jax.vmap to batch.")
    return jax.jacfwd(lambda z: jnp.asarray(f(t, z, args)))(y)


def classify_equilibrium(
    eigenvalues: Inexact[ArrayLike, " d"],  # real or complex
    tol: float | int = 1e-8,
    *,
    scale: Real[ArrayLike, ""] = 0.0,
) -> Int[Array, ""]:
    r"""Stability class of an equilibrium from the eigenvalues $\lambda_i$ of its Jacobian.

    Hartman–Grobman: if no $\operatorname{Re}\lambda_i = 0$ (hyperbolic) the linearisation decides.
    All $\operatorname{Re}\lambda < 0$: stable (node if all real, spiral if some complex); all
    $> 0$: unstable node/spiral; both signs: saddle (saddle-focus if some complex); all
    $\operatorname{Re}\lambda = 0$ and $\lambda \neq 0$: centre (of the linearisation); a
    positive real part with other zero ones: unstable non-hyperbolic; otherwise non-hyperbolic.
    "$= 0$" means $|\cdot| \le$ ``tol`` $\cdot s$ with $s = \max(\max_i |\lambda_i|,$
    ``scale``$)$: relative to the eigenvalues' own size, so the class does not depend on the
    unit of time ($f \to c f$, $c > 0$, scales every $\lambda_i$ and $s$ by $c$). A fixed floor
    $s \ge 1$ had made $\pm 10^{-5}$ a "non-hyperbolic" pair instead of a saddle.

    Eigenvalues closer together than $\sqrt{\texttt{tol}}\,s$ are read as one multiple
    eigenvalue, their mean: a double eigenvalue with a single eigenvector (the critically damped
    oscillator, a Jordan block) is computed as a pair split by $O(\sqrt{\varepsilon})$, real
    or complex at random, while the mean of the pair is accurate to $O(\varepsilon)$. Without
    this, $\ddot x + 6\dot x + 9x = 0$ was a "stable spiral" and a nilpotent Jacobian a
    "saddle" or a "centre". When every eigenvalue is such noise (a nilpotent Jacobian in
    rotated coordinates) the eigenvalues alone cannot tell it from a genuine tiny saddle: pass
    the Jacobian's size as ``scale`` (`find_equilibrium` does).

    Args:
        eigenvalues: the eigenvalues, shape ``(d,)`` (real or complex). Concrete ones must be
            finite; traced NaN or inf ones give the code of ``"non-finite"``.
        tol: relative tolerance for treating a real or imaginary part as zero (and, through
            its square root, two eigenvalues as one), in ``[0, 1)``; floored at ``100 eps`` of
            the eigenvalues' dtype (float32: 1.2e-5), as in `find_equilibrium`.
        scale: a lower bound on $s$, the size the eigenvalues are measured against, e.g. the
            size of the Jacobian they came from (it must scale with time like the
            eigenvalues, as a norm of the Jacobian does). Default 0: the eigenvalues alone.

    Returns:
        An integer code, shape ``()``; ``STABILITY_CLASSES[code]`` (or `stability_name`) is its
        name. Jit- and vmap-compatible.

    Raises:
        ValueError: (concrete values) ``tol`` outside ``[0, 1)``, ``scale`` negative or not
            finite, or an eigenvalue NaN or inf.

    Examples:
        >>> from sdeml.dynamics import classify_equilibrium, stability_name
        >>> stability_name(classify_equilibrium(jnp.array([-1 + 2j, -1 - 2j])))
        'stable spiral'
        >>> codes = jax.vmap(classify_equilibrium)(jnp.array([[-1.0, -2.0], [1.0, -2.0]]))
        >>> [stability_name(c) for c in codes]
        ['stable node', 'saddle']
        >>> stability_name(classify_equilibrium(jnp.array([1e-5, -1e-5])))  # a slow saddle
        'saddle'

    References:
        Strogatz, Nonlinear Dynamics and Chaos, 2nd ed., §5.2 (the trace–determinant plane) and
        §6.3; Guckenheimer & Holmes, Nonlinear Oscillations, §1.3 (Hartman–Grobman).
    """
    lam = jnp.asarray(eigenvalues)
    if lam.ndim != 1:
        raise ValueError(f"`eigenvalues` must have shape (d,), got {lam.shape}.")
    if not jnp.issubdtype(lam.dtype, jnp.inexact):
        lam = lam.astype(jnp.result_type(float))
    _check_unit_interval("tol", tol)
    # below 100 eps a real part that is rounding relative to s would read as nonzero
    tol_floor = 100 * float(jnp.finfo(lam.dtype).eps)
    traced_tol = isinstance(tol, jax.core.Tracer)
    rel = jnp.maximum(tol, tol_floor) if traced_tol else max(float(tol), tol_floor)
    check_positive("scale", scale, allow_zero=True)
    if not isinstance(lam, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(lam))):
        raise ValueError(f"`eigenvalues` must be finite (no NaN or inf), got {np.asarray(lam)}.")
    finite = jnp.all(jnp.isfinite(lam))
    lam = jnp.where(finite, lam, 0)  # a non-finite one is code 9 whatever the others are
    # No floor at 1: that made the class depend on the unit of time. s = 0 only when every
    # eigenvalue is exactly 0, and then the comparisons below read each one as zero.
    s = jnp.maximum(jnp.max(jnp.abs(lam)), jnp.asarray(scale, jnp.real(lam).dtype))
    # A cluster within sqrt(rel) * s is a (possibly defective) multiple eigenvalue, whose
    # computed members scatter by O(sqrt(eps)) but whose mean is accurate: classify the mean.
    close = (jnp.abs(lam[:, None] - lam[None, :]) <= rel**0.5 * s).astype(lam.dtype)
    lam = (close @ lam) / jnp.sum(close, axis=1)
    re, im = jnp.real(lam), jnp.imag(lam)
    zero_re = jnp.abs(re) <= rel * s
    neg = re < -rel * s
    pos = re > rel * s
    cplx = jnp.any(jnp.abs(im) > rel * s)
    code = jnp.select(
        [
            ~finite,
            jnp.all(neg) & ~cplx,
            jnp.all(neg),
            jnp.all(pos) & ~cplx,
            jnp.all(pos),
            jnp.any(pos) & jnp.any(neg) & ~cplx,
            jnp.any(pos) & jnp.any(neg),
            jnp.all(zero_re) & jnp.all(jnp.abs(im) > rel * s),
            jnp.any(pos),
        ],
        [jnp.asarray(i) for i in (9, 0, 1, 2, 3, 4, 5, 6, 7)],
        default=8,
    )
    return code.astype(jnp.int32)


def _check_unit_interval(name: str, value: Any) -> None:
    """Raise `ValueError` unless a concrete `value` is a finite number in ``[0, 1)``."""
    if isinstance(value, jax.core.Tracer):
        return
    v = np.asarray(value)
    if v.shape != () or not np.isfinite(v) or not 0 <= v < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1), got {value!r}.")


def _unit_free_scale(jac: Float[ArrayLike, "d d"]) -> Float[Array, ""]:
    r"""The size of a square matrix in any units of its coordinates: the largest geometric mean
    of $|J_{ij}|$ around a cycle $i_1 \to i_2 \to \dots \to i_k \to i_1$ (self-loops included).

    It equals $\min_D \max_{ij} |(D^{-1} J D)_{ij}|$ over positive diagonal $D$ (the
    max-times eigenvalue of $|J|$): the best a change of units of each coordinate (balancing,
    as LAPACK does before an eigenvalue solve) can make the largest entry. It bounds the
    rounding noise of the computed eigenvalues, scales like them under $J \to cJ$, and, unlike
    $\|J\|$, does not grow when one coordinate is measured in tiny units (the damped oscillator
    $\omega = 10^{-3}$ has $\|J\| = 1$ but eigenvalues of size $10^{-3}$). Karp's algorithm,
    $O(d^3)$.

    References:
        R. M. Karp, A characterization of the minimum cycle mean in a digraph, Discrete Math.
        23 (1978). Baccelli, Cohen, Olsder & Quadrat, Synchronization and Linearity (1992), §3.
    """
    jac = jax.lax.stop_gradient(jnp.asarray(jac))
    d = jac.shape[0]
    logs = jnp.log(jnp.abs(jac))  # edge i -> j of log-weight log|J_ij|; -inf where J_ij = 0

    def extend(w, _):  # the heaviest walk of one more edge ending at each vertex
        w = jnp.max(w[:, None] + logs, axis=0)
        return w, w

    w0 = jnp.zeros(d, logs.dtype)  # walks of 0 edges, from anywhere (a super-source)
    walks = jnp.concatenate([w0[None], jax.lax.scan(extend, w0, None, length=d)[1]])
    # Karp: the largest cycle mean is max_v min_{k<d} (W_d(v) - W_k(v)) / (d - k), over the
    # vertices some walk of d edges reaches (others lie on no cycle and after none).
    k = jnp.arange(d, dtype=logs.dtype)[:, None]
    no_walk = jnp.isneginf(walks[:d])
    ratio = jnp.where(no_walk, jnp.inf, (walks[d] - jnp.where(no_walk, 0, walks[:d])) / (d - k))
    per_vertex = jnp.where(jnp.isneginf(walks[d]), -jnp.inf, jnp.min(ratio, axis=0))
    return jnp.exp(jnp.max(per_vertex))


class Equilibrium(eqx.Module):
    """An equilibrium $y^*$ with $f(y^*) = 0$, its Jacobian, eigenvalues and stability class.

    Returned by `find_equilibrium` (under ``jax.vmap`` every field gains a leading axis).

    Attributes:
        y: the point, shape ``(d,)``.
        residual: $\\|f(y^*)\\|_\\infty$, shape ``()``.
        jacobian: $\\partial f/\\partial y$ at ``y``, shape ``(d, d)``.
        eigenvalues: its eigenvalues (complex), shape ``(d,)``.
        stability: the integer class code, shape ``()``; ``label`` gives its name (eager only).
        converged: whether the root finder succeeded, a bool of shape ``()`` (its residual
            test scales with the field's terms at the point: see `find_equilibrium`).

    Examples:
        >>> eq = sdeml.dynamics.find_equilibrium(sdeml.dynamics.VanDerPol(3.0), jnp.ones(2))
        >>> eq.y.shape, eq.jacobian.shape, bool(eq.converged), eq.label
        ((2,), (2, 2), True, 'unstable node')
        >>> float(eq.residual) < 1e-12
        True
    """

    y: Float[Array, " d"]
    residual: Float[Array, ""]
    jacobian: Float[Array, "d d"]
    eigenvalues: Complex[Array, " d"]
    stability: Int[Array, ""]
    converged: Array

    @property
    def label(self) -> str:
        """The stability class as a string, e.g. ``"saddle"`` (needs concrete values)."""
        return stability_name(self.stability)


def find_equilibrium(
    f: Callable[..., Any],
    y_guess: ArrayLike,  # (d,) floating: checked with a clear message
    *,
    args: Any = None,
    t: Real[ArrayLike, ""] = 0.0,
    rtol: float | int = 1e-10,
    atol: float | int = 1e-12,
    max_steps: int = 256,
    tol: float | int = 1e-8,
    throw: bool = False,
) -> Equilibrium:
    r"""Find an equilibrium $f(t, y^*, \text{args}) = 0$ near ``y_guess`` and classify it.

    Newton's method (optimistix, with an SVD least-squares step so that non-isolated equilibria
    with a singular Jacobian are reached as well) on $f$; the Jacobian at the root by forward
    autodiff; its eigenvalues by ``jnp.linalg.eigvals``; the class by
    `classify_equilibrium`, measured against the Jacobian's size in any units (so neither the
    unit of time nor those of the coordinates change it). To find several equilibria,
    ``jax.vmap`` over guesses.

    Newton stops when its step is below ``atol + rtol |y|`` and the residual
    $\|f(y)\|_\infty \le \max(\texttt{atol}, 10\,\varepsilon\,\|\,|J(y)|\,|y|\,\|_\infty)$: the
    second term is the rounding floor of $f$ at $y$. Moving each $y_j$ by its rounding
    $\varepsilon |y_j|$ changes $f_i$ by up to $\varepsilon\sum_j |J_{ij}||y_j|$, and for the
    usual polynomial fields that sum has the size of the terms that cancel in $f_i$ at the
    root, whose evaluation rounds by a few $\varepsilon$ of them. An absolute floor alone failed
    large fields: Lorenz's $C_\pm$ at $\rho = 28$ has terms $\approx 240$ and a float32 residual
    $6.5\times10^{-6}$, above $10\varepsilon = 1.2\times10^{-6}$. (One floor for all the
    components, their largest: per-component weights changed the conditioning of the SVD
    step, and the step test still holds each component to ``rtol``.) Constant terms much
    larger than $|J||y|$ that cancel at the root are not seen: raise ``atol`` for such a field.

    Args:
        f: vector field ``f(t, y, args)``.
        y_guess: starting point, shape ``(d,)``.
        args: passed to ``f``.
        t: the time at which the (autonomous) field is evaluated.
        rtol, atol: Newton's convergence tolerances, floored at what the dtype of ``y_guess``
            resolves: ``rtol >= 10 eps``, ``atol >= 10 eps`` (float32: 1.19e-6; float64: 2.2e-15,
            below the defaults), and the residual test at the rounding floor above. Tighter
            ones cannot be met: the pendulum's saddle at $\pi$ has a float32 residual
            $\sin(\mathrm{fl}(\pi)) \approx 8.7\times10^{-8}$ (issue #17).
        max_steps: most Newton iterations, a positive int.
        tol: relative tolerance of the classification (see `classify_equilibrium`),
            floored at ``100 eps`` of the dtype (eigenvalues carry rounding of that order).
        throw: raise if Newton does not converge (otherwise see ``converged``).

    Returns:
        An `Equilibrium`: the point ``y`` of shape ``(d,)``, its Jacobian, eigenvalues, class
        code and ``converged`` flag.

    Examples:
        Lotka–Volterra's coexistence point $(\gamma/\delta, \alpha/\beta) = (4, 2)$ is a
        centre; ``jax.vmap`` over guesses finds the saddle at the origin too.

        >>> from sdeml.dynamics import LotkaVolterra, find_equilibrium, stability_name
        >>> eq = find_equilibrium(LotkaVolterra(), jnp.array([3.0, 1.5]))
        >>> eq.y.tolist(), eq.label, bool(eq.converged)
        ([4.0, 2.0], 'centre', True)
        >>> guesses = jnp.array([[0.1, 0.2], [3.0, 1.5]])
        >>> eqs = jax.vmap(lambda g: find_equilibrium(LotkaVolterra(), g))(guesses)
        >>> [stability_name(c) for c in eqs.stability]
        ['saddle', 'centre']

    References:
        Kelley, Solving Nonlinear Equations with Newton's Method, SIAM 2003.
        Strogatz, Nonlinear Dynamics and Chaos, 2nd ed., §6.3.
    """
    y_guess = jnp.asarray(y_guess)
    if y_guess.ndim != 1:
        raise ValueError(
            f"`y_guess` must have shape (d,), got {y_guess.shape}; use jax.vmap over guesses."
        )
    if not jnp.issubdtype(y_guess.dtype, jnp.floating):
        raise ValueError(f"`y_guess` must be a floating-point array, got dtype {y_guess.dtype}.")
    out = jax.eval_shape(lambda y: jnp.asarray(f(t, y, args)), y_guess)
    if out.shape != y_guess.shape:
        raise ValueError(f"`f` must return the shape of `y` {y_guess.shape}, got {out.shape}.")
    max_steps = check_positive_int("max_steps", max_steps)
    rtol, atol, tol = equilibrium_tolerances(y_guess.dtype, rtol, atol, tol)
    return _find(f, y_guess, args, t, rtol, atol, max_steps, tol, throw)


def equilibrium_tolerances(
    dtype: Any, rtol: float = 1e-10, atol: float = 1e-12, tol: float = 1e-8
) -> tuple[float, float, float]:
    """The Newton ``rtol``, ``atol`` and classification ``tol`` `find_equilibrium` uses in `dtype`.

    Each is floored at a multiple of the dtype's machine epsilon (``10 eps``, ``10 eps``,
    ``100 eps``): below it the Newton iterates and residuals move by rounding alone, and a
    genuine equilibrium would be reported as not converged. These are the absolute floors, for
    a field of size about 1; the residual test also scales with the field's terms at the point
    (`find_equilibrium`: ``max_i |f_i| <= max(atol, 10 eps max_i sum_j |J_ij| |y_j|)``), so a
    large field (Lorenz's terms of about 240) converges as well.
    """
    eps = float(jnp.finfo(dtype).eps)
    return max(float(rtol), 10 * eps), max(float(atol), 10 * eps), max(float(tol), 100 * eps)


def _rounding_floor(f, t, y, args, eps):
    """``10 eps max_i sum_j |J_ij| |y_j|``: what rounding alone leaves of ``f`` at ``y``."""
    jac = jax.lax.stop_gradient(jacobian(f, y, t, args))
    return 10 * eps * jnp.max(jnp.abs(jac) @ jnp.abs(jax.lax.stop_gradient(y)))


@eqx.filter_jit  # cached per field (an equinox module with new parameter values reuses it)
def _find(f, y_guess, args, t, rtol, atol, max_steps, tol, throw):
    eps = jnp.finfo(y_guess.dtype).eps

    def fn(y, a):
        # Newton's residual test is max_i |fn_i| < atol: weighting f by atol / max(atol, floor)
        # makes it max_i |f_i| < max(atol, floor), the rounding floor where the field is
        # large. One scalar weight held constant (no gradient): the Newton step, and the SVD's
        # relative cutoff, are f's own.
        weight = atol / jnp.maximum(atol, _rounding_floor(f, t, y, a, eps))
        return jnp.asarray(f(t, y, a)) * weight

    sol = optx.root_find(
        fn,
        # The SVD (pseudo-inverse) step keeps Newton working where the Jacobian is singular:
        # on a line of equilibria (SIR's disease-free states) it converges to a nearby one.
        optx.Newton(rtol=rtol, atol=atol, linear_solver=lx.SVD()),
        y_guess,
        args=args,
        max_steps=max_steps,
        throw=throw,
    )
    y = sol.value
    jac = jacobian(f, y, t, args)
    lam = jnp.linalg.eigvals(jac)
    return Equilibrium(
        y=y,
        residual=jnp.max(jnp.abs(jnp.asarray(f(t, y, args)))),
        jacobian=jac,
        eigenvalues=lam,
        stability=classify_equilibrium(lam, tol, scale=_unit_free_scale(jac)),
        converged=sol.result == optx.RESULTS.successful,
    )
