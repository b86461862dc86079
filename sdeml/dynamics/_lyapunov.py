"""Lyapunov functions: the derivative along the flow, a sampled check, and quadratic ones for A."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Real

from ..core._checks import as_float, check_bool, check_positive, common_float_dtype

__all__ = ["LyapunovCheck", "check_lyapunov", "lyapunov_derivative", "quadratic_lyapunov"]


def lyapunov_derivative(
    V: Callable[[Array], Array],
    f: Callable[..., Any],
    y: Real[ArrayLike, " d"],
    t: Real[ArrayLike, ""] = 0.0,
    args: Any = None,
) -> Float[Array, ""]:
    r"""Derivative of $V$ along the flow: $\dot V(y) = \nabla V(y) \cdot f(t, y)$.

    Args:
        V: scalar function of the state, ``V(y) -> ()`` for ``y`` of shape ``(d,)``.
        f: vector field ``f(t, y, args)``, shape ``(d,)`` to ``(d,)``.
        y: the point, shape ``(d,)``.
        t, args: passed to ``f``.

    Returns:
        $\dot V(y)$, shape ``()`` (one jvp: no Jacobian is formed).

    Examples:
        $V = |y|^2$ along $\dot y = -y$: $\dot V = 2y \cdot (-y) = -2|y|^2 = -4$ at $(1, 1)$.

        >>> from sdeml.dynamics import lyapunov_derivative
        >>> float(lyapunov_derivative(lambda y: y @ y, lambda t, y, args: -y, jnp.ones(2)))
        -4.0
    """
    y = as_float(y)  # an integer point: jvp needs a float primal
    return jax.jvp(V, (y,), (jnp.asarray(f(t, y, args), y.dtype),))[1]


class LyapunovCheck(eqx.Module):
    """Outcome of `check_lyapunov` on sample points (bool arrays: use ``bool(...)``).

    Attributes:
        positive_definite: $V(y) > V(y^*)$ at every sample point $y \\ne y^*$; shape ``()``.
        decreasing: $\\dot V \\le 0$ (or $< 0$ with ``strict``) at every sample point; ``()``.
        is_lyapunov: both; evidence (on the samples), not a proof; shape ``()``.
        max_vdot: the largest $\\dot V$ over the samples (where it is most nearly violated); ``()``.
        argmax_vdot: the sample point where it occurs, shape ``(d,)``.
        min_v_gap: the smallest $V(y) - V(y^*)$ over the samples, shape ``()``.

    Examples:
        $V = |y|^2$ is not a Lyapunov function of the unstable $\\dot y = y$: the check says
        where it fails.

        >>> pts = jr.uniform(jr.key(0), (100, 2), minval=-1.0, maxval=1.0)
        >>> V, f = lambda y: y @ y, lambda t, y, args: y
        >>> chk = sdeml.dynamics.check_lyapunov(V, f, jnp.zeros(2), pts)
        >>> bool(chk.positive_definite), bool(chk.decreasing), bool(chk.is_lyapunov)
        (True, False, False)
        >>> bool(jnp.isclose(chk.max_vdot, 2 * jnp.max(jnp.sum(pts**2, axis=1))))
        True
    """

    positive_definite: Bool[Array, ""]
    decreasing: Bool[Array, ""]
    is_lyapunov: Bool[Array, ""]
    max_vdot: Float[Array, ""]
    argmax_vdot: Float[Array, " d"]
    min_v_gap: Float[Array, ""]


def check_lyapunov(
    V: Callable[[Array], Array],
    f: Callable[..., Any],
    y_eq: Real[ArrayLike, " d"],
    points: Real[ArrayLike, "n _d"],  # its d is checked against y_eq's with a clear message
    *,
    t: Real[ArrayLike, ""] = 0.0,
    args: Any = None,
    strict: bool = False,
    tol: float | int = 1e-12,
) -> LyapunovCheck:
    r"""Check Lyapunov's conditions for ``V`` at ``y_eq`` on sample points.

    $V(y) - V(y^*) > 0$ for $y \neq y^*$ and $\dot V(y) = \nabla V \cdot f \le 0$ (Lyapunov
    stability) or $< 0$ (``strict``: asymptotic stability) at every sample point. Points closer
    to ``y_eq`` than $10^{-12}$ are ignored. This gives numerical evidence on a region, not a proof.

    Args:
        V: candidate Lyapunov function ``V(y) -> ()``.
        f: vector field ``f(t, y, args)``.
        y_eq: the equilibrium, shape ``(d,)``.
        points: sample points, shape ``(n, d)`` (e.g. a grid or uniform samples of a region).
        t, args: passed to ``f``.
        strict: require $\dot V < 0$ instead of $\le 0$.
        tol: slack for round-off: $\dot V \le$ ``tol`` passes the non-strict test,
            $\dot V < -$``tol`` the strict one, $V - V^* >$ ``tol`` positivity.

    Returns:
        A `LyapunovCheck` of bool and float arrays (``argmax_vdot`` of shape ``(d,)``).

    Examples:
        The energy of a damped oscillator, $\dot E = -2\zeta\omega v^2 \le 0$:

        >>> osc = sdeml.dynamics.DampedOscillator(omega=1.0, zeta=0.2)
        >>> pts = jr.uniform(jr.key(0), (1000, 2), minval=-2.0, maxval=2.0)
        >>> chk = sdeml.dynamics.check_lyapunov(osc.energy, osc, jnp.zeros(2), pts)
        >>> bool(chk.is_lyapunov), float(chk.max_vdot) <= 0.0
        (True, True)

    References:
        A. M. Lyapunov, The General Problem of the Stability of Motion (1892).
        Khalil, Nonlinear Systems, 3rd ed., Thm 4.1.
    """
    # one float dtype for both (integer grids and equilibria, e.g. y_eq = [0, 0], failed)
    dtype = common_float_dtype(y_eq, points)
    y_eq, points = jnp.asarray(y_eq).astype(dtype), jnp.asarray(points).astype(dtype)
    check_bool("strict", strict)  # a string "False" had read as True
    check_positive("tol", tol, allow_zero=True)  # a negative slack flipped the tests' meaning
    if y_eq.ndim != 1:
        raise ValueError(f"`y_eq` must have shape (d,), got {y_eq.shape}.")
    if points.ndim != 2 or points.shape[1] != y_eq.shape[0]:
        raise ValueError(
            f"`points` must have shape (n, {y_eq.shape[0]}) to match `y_eq`, got {points.shape}."
        )
    return _check(V, f, y_eq, points, t, args, strict, tol)


@eqx.filter_jit
def _check(V, f, y_eq, points, t, args, strict, tol):
    away = jnp.linalg.norm(points - y_eq, axis=-1) > 1e-12
    v_eq = V(y_eq)
    gap = jax.vmap(V)(points) - v_eq
    vdot = jax.vmap(lambda y: lyapunov_derivative(V, f, y, t, args))(points)
    gap_m = jnp.where(away, gap, jnp.inf)
    vdot_m = jnp.where(away, vdot, -jnp.inf)
    pos_def = jnp.all(gap_m > tol)
    decreasing = jnp.all(vdot_m < -tol) if strict else jnp.all(vdot_m <= tol)
    i = jnp.argmax(vdot_m)
    return LyapunovCheck(
        positive_definite=pos_def,
        decreasing=decreasing,
        is_lyapunov=pos_def & decreasing,
        max_vdot=vdot_m[i],
        argmax_vdot=points[i],
        min_v_gap=jnp.min(gap_m),
    )


def quadratic_lyapunov(
    A: Real[ArrayLike, "d d"], Q: Real[ArrayLike, "d d"] | None = None
) -> Float[Array, "d d"]:
    r"""Solve the Lyapunov equation $A^\top P + P A = -Q$ for $P$ (default $Q = I$).

    For a Hurwitz $A$ (all $\operatorname{Re}\lambda < 0$) and $Q \succ 0$, $P \succ 0$ and
    $V(y) = y^\top P y$ is a Lyapunov function of $\dot y = A y$ with $\dot V = -y^\top Q y$;
    for a linearisation $A = \partial f/\partial y(y^*)$ it proves local asymptotic stability.
    Solved as the linear system $(I \otimes A^\top + A^\top \otimes I)\,\mathrm{vec} P =
    -\mathrm{vec} Q$ (fine for the small $d$ of phase-plane analysis).

    Args:
        A: system matrix, shape ``(d, d)``.
        Q: symmetric positive-definite right-hand side, shape ``(d, d)``; default identity. A
            concrete ``Q`` must be symmetric to rounding
            ($|Q - Q^\top| \le 100\,\varepsilon \max|Q|$); a traced one is not checked and
            only its symmetric part $(Q + Q^\top)/2$ counts.

    Returns:
        ``P`` of shape ``(d, d)``, symmetric.

    Raises:
        ValueError: a concrete ``Q`` is not symmetric: $A^\top P + P A$ is symmetric for a
            symmetric $P$, so no symmetric $P$ solves the equation (a symmetrised $P$ had
            come back that solved it for $(Q + Q^\top)/2$ instead).
        EquinoxRuntimeError: (eagerly, and under ``jax.jit`` at run time) the equation has no
            unique solution: $\lambda_i + \lambda_j = 0$ for two eigenvalues of $A$, as at a
            centre ($\pm i\omega$), a saddle with eigenvalues $\pm\lambda$ or a zero
            eigenvalue (the linear system is numerically singular; it had returned NaN).

    Examples:
        $A = -I$ gives $P = I/2$; for the damped oscillator $\ddot x + 3\dot x + 2x = 0$,
        $P$ solves the equation and is positive definite.

        >>> from sdeml.dynamics import quadratic_lyapunov
        >>> bool(jnp.allclose(quadratic_lyapunov(-jnp.eye(2)), 0.5 * jnp.eye(2)))
        True
        >>> A = jnp.array([[0.0, 1.0], [-2.0, -3.0]])
        >>> P = quadratic_lyapunov(A)
        >>> P.shape, bool(jnp.allclose(A.T @ P + P @ A, -jnp.eye(2)))
        ((2, 2), True)
        >>> bool(jnp.all(jnp.linalg.eigvalsh(P) > 0))
        True

    References:
        Khalil, Nonlinear Systems, 3rd ed., Thm 4.6. Bartels & Stewart, CACM 15 (1972).
    """
    A = jnp.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"`A` must be a square matrix (d, d), got shape {A.shape}.")
    d = A.shape[0]
    Q = jnp.eye(d, dtype=as_float(A).dtype) if Q is None else jnp.asarray(Q)
    if Q.shape != A.shape:
        raise ValueError(f"`Q` must have the shape of `A` {A.shape}, got {Q.shape}.")
    # one float dtype (an integer A, or a float64 Q with a float32 A, had failed in the solve)
    dtype = common_float_dtype(A, Q)
    if not isinstance(Q, jax.core.Tracer):
        q = np.asarray(Q)
        eps = np.finfo(q.dtype).eps if np.issubdtype(q.dtype, np.floating) else 0.0
        if np.max(np.abs(q - q.T)) > 100 * eps * np.max(np.abs(q)):
            raise ValueError(
                "`Q` must be symmetric: A^T P + P A = -Q has no symmetric solution P otherwise; "
                f"got Q - Q^T with largest entry {np.max(np.abs(q - q.T)):.3g}. Pass "
                "(Q + Q.T) / 2 if that is what you mean."
            )
    A, Q = A.astype(dtype), Q.astype(dtype)
    Q = 0.5 * (Q + Q.T)  # exactly symmetric: rounding-level asymmetry (or a traced Q) removed
    eye = jnp.eye(d, dtype=A.dtype)
    # Row-major vec: vec(A^T P) = (A^T kron I) vec P, vec(P A) = (I kron A^T) vec P.
    K = jnp.kron(A.T, eye) + jnp.kron(eye, A.T)
    P = jnp.linalg.solve(K, -Q.reshape(-1)).reshape(d, d)
    # K's eigenvalues are the sums lambda_i + lambda_j: singular (numpy's rank tolerance) when
    # one vanishes. No gradient flows through the check.
    sv = jnp.linalg.svd(jax.lax.stop_gradient(K), compute_uv=False)
    singular = (sv[-1] <= sv[0] * d * d * jnp.finfo(sv.dtype).eps) | ~jnp.all(jnp.isfinite(P))
    P = eqx.error_if(
        P,
        singular,
        "quadratic_lyapunov: A^T P + P A = -Q has no unique solution, because two eigenvalues "
        "of A sum to zero (a centre, a saddle with eigenvalues +-lambda, or a zero eigenvalue).",
    )
    return 0.5 * (P + P.T)
