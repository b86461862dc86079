"""Equilibria, Jacobians, eigenvalues and stability classes of autonomous ODEs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Complex, Float, Int

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
)


def stability_name(code: int | Int[ArrayLike, ""]) -> str:
    """The name of a stability code returned by `classify_equilibrium`.

    Args:
        code: an integer code in ``0..8``, a Python int or a 0-d integer array (concrete: not
            inside ``jit``).

    Returns:
        ``STABILITY_CLASSES[code]``, e.g. ``"saddle"``.

    Examples:
        >>> from sdeml.dynamics import classify_equilibrium, stability_name
        >>> stability_name(4)
        'saddle'
        >>> stability_name(classify_equilibrium(jnp.array([1.0, -2.0])))
        'saddle'
    """
    return STABILITY_CLASSES[int(np.asarray(code))]


def jacobian(
    f: Callable[..., Any],
    y: Float[ArrayLike, " d"],
    t: float | Float[ArrayLike, ""] = 0.0,
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
    y = jnp.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"`y` must have shape (d,), got {y.shape}; use jax.vmap to batch.")
    return jax.jacfwd(lambda z: jnp.asarray(f(t, z, args)))(y)


def classify_equilibrium(
    eigenvalues: Complex[ArrayLike, " d"], tol: float = 1e-8
) -> Int[Array, ""]:
    r"""Stability class of an equilibrium from the eigenvalues $\lambda_i$ of its Jacobian.

    Hartman–Grobman: if no $\operatorname{Re}\lambda_i = 0$ (hyperbolic) the linearisation decides.
    All $\operatorname{Re}\lambda < 0$: stable (node if all real, spiral if some complex); all
    $> 0$: unstable node/spiral; both signs: saddle (saddle-focus if some complex); all
    $\operatorname{Re}\lambda = 0$ and $\lambda \neq 0$: centre (of the linearisation); a
    positive real part with other zero ones: unstable non-hyperbolic; otherwise non-hyperbolic.
    "$= 0$" means $|\cdot| \le$ ``tol`` $\cdot s$, $s = \max(1, \max_i |\lambda_i|)$.

    Eigenvalues closer together than $\sqrt{\texttt{tol}}\,s$ are read as one multiple
    eigenvalue, their mean: a double eigenvalue with a single eigenvector (the critically damped
    oscillator, a Jordan block) is computed as a pair split by $O(\sqrt{\varepsilon})$, real
    or complex at random, while the mean of the pair is accurate to $O(\varepsilon)$. Without
    this, $\ddot x + 6\dot x + 9x = 0$ was a "stable spiral" and a nilpotent Jacobian a
    "saddle" or a "centre".

    Args:
        eigenvalues: the eigenvalues, shape ``(d,)`` (real or complex).
        tol: relative tolerance for treating a real or imaginary part as zero (and, through
            its square root, two eigenvalues as one).

    Returns:
        An integer code, shape ``()``; ``STABILITY_CLASSES[code]`` (or `stability_name`) is its
        name. Jit- and vmap-compatible.

    Examples:
        >>> from sdeml.dynamics import classify_equilibrium, stability_name
        >>> stability_name(classify_equilibrium(jnp.array([-1 + 2j, -1 - 2j])))
        'stable spiral'
        >>> codes = jax.vmap(classify_equilibrium)(jnp.array([[-1.0, -2.0], [1.0, -2.0]]))
        >>> [stability_name(c) for c in codes]
        ['stable node', 'saddle']

    References:
        Strogatz, Nonlinear Dynamics and Chaos, 2nd ed., §5.2 (the trace–determinant plane) and
        §6.3; Guckenheimer & Holmes, Nonlinear Oscillations, §1.3 (Hartman–Grobman).
    """
    lam = jnp.asarray(eigenvalues)
    if lam.ndim != 1:
        raise ValueError(f"`eigenvalues` must have shape (d,), got {lam.shape}.")
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(lam)))
    # A cluster within sqrt(tol) * scale is a (possibly defective) multiple eigenvalue, whose
    # computed members scatter by O(sqrt(eps)) but whose mean is accurate: classify the mean.
    close = (jnp.abs(lam[:, None] - lam[None, :]) <= tol**0.5 * scale).astype(lam.dtype)
    lam = (close @ lam) / jnp.sum(close, axis=1)
    re, im = jnp.real(lam), jnp.imag(lam)
    zero_re = jnp.abs(re) <= tol * scale
    neg = re < -tol * scale
    pos = re > tol * scale
    cplx = jnp.any(jnp.abs(im) > tol * scale)
    code = jnp.select(
        [
            jnp.all(neg) & ~cplx,
            jnp.all(neg),
            jnp.all(pos) & ~cplx,
            jnp.all(pos),
            jnp.any(pos) & jnp.any(neg) & ~cplx,
            jnp.any(pos) & jnp.any(neg),
            jnp.all(zero_re) & jnp.all(jnp.abs(im) > tol * scale),
            jnp.any(pos),
        ],
        [jnp.asarray(i) for i in range(8)],
        default=8,
    )
    return code.astype(jnp.int32)


class Equilibrium(eqx.Module):
    """An equilibrium $y^*$ with $f(y^*) = 0$, its Jacobian, eigenvalues and stability class.

    Returned by `find_equilibrium` (under ``jax.vmap`` every field gains a leading axis).

    Attributes:
        y: the point, shape ``(d,)``.
        residual: $\\|f(y^*)\\|_\\infty$, shape ``()``.
        jacobian: $\\partial f/\\partial y$ at ``y``, shape ``(d, d)``.
        eigenvalues: its eigenvalues (complex), shape ``(d,)``.
        stability: the integer class code, shape ``()``; ``label`` gives its name (eager only).
        converged: whether the root finder succeeded, a bool of shape ``()``.

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
    t: float | Float[ArrayLike, ""] = 0.0,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 256,
    tol: float = 1e-8,
    throw: bool = False,
) -> Equilibrium:
    r"""Find an equilibrium $f(t, y^*, \text{args}) = 0$ near ``y_guess`` and classify it.

    Newton's method (optimistix, with an SVD least-squares step so that non-isolated equilibria
    with a singular Jacobian are reached as well) on $f$; the Jacobian at the root by forward
    autodiff; its eigenvalues by ``jnp.linalg.eigvals``; the class by
    `classify_equilibrium`. To find several equilibria, ``jax.vmap`` over guesses.

    Args:
        f: vector field ``f(t, y, args)``.
        y_guess: starting point, shape ``(d,)``.
        args: passed to ``f``.
        t: the time at which the (autonomous) field is evaluated.
        rtol, atol: Newton's convergence tolerances, floored at what the dtype of ``y_guess``
            resolves: ``rtol >= 10 eps``, ``atol >= 10 eps`` (float32: 1.19e-6; float64: 2.2e-15,
            below the defaults). Tighter ones cannot be met: the pendulum's saddle at $\pi$ has
            a float32 residual $\sin(\mathrm{fl}(\pi)) \approx 8.7\times10^{-8}$ (issue #17).
        max_steps: most Newton iterations.
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
    rtol, atol, tol = equilibrium_tolerances(y_guess.dtype, rtol, atol, tol)
    return _find(f, y_guess, args, t, rtol, atol, max_steps, tol, throw)


def equilibrium_tolerances(
    dtype: Any, rtol: float = 1e-10, atol: float = 1e-12, tol: float = 1e-8
) -> tuple[float, float, float]:
    """The Newton ``rtol``, ``atol`` and classification ``tol`` `find_equilibrium` uses in `dtype`.

    Each is floored at a multiple of the dtype's machine epsilon (``10 eps``, ``10 eps``,
    ``100 eps``): below it the Newton iterates and residuals move by rounding alone, and a
    genuine equilibrium would be reported as not converged.
    """
    eps = float(jnp.finfo(dtype).eps)
    return max(float(rtol), 10 * eps), max(float(atol), 10 * eps), max(float(tol), 100 * eps)


@eqx.filter_jit  # cached per field (an equinox module with new parameter values reuses it)
def _find(f, y_guess, args, t, rtol, atol, max_steps, tol, throw):
    fn = lambda y, a: jnp.asarray(f(t, y, a))
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
        residual=jnp.max(jnp.abs(fn(y, args))),
        jacobian=jac,
        eigenvalues=lam,
        stability=classify_equilibrium(lam, tol),
        converged=sol.result == optx.RESULTS.successful,
    )
