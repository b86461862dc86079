"""Closed-form solutions of linear ODEs dy/dt = A y + b, to compare numerical solvers against."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, ArrayLike, Float, Inexact

__all__ = ["linear_ode_solution", "linear_ode_solution_eig"]


def _check(A, y0, ts, b, t0):
    if jnp.ndim(t0) != 0:
        raise ValueError(f"`t0` must be a scalar time, got shape {jnp.shape(t0)}.")
    A = jnp.asarray(A)
    y0 = jnp.asarray(y0)
    ts = jnp.asarray(ts)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"`A` must be a square matrix (d, d), got shape {A.shape}.")
    if y0.shape != (A.shape[0],):
        raise ValueError(f"`y0` must have shape ({A.shape[0]},) to match `A`, got {y0.shape}.")
    if ts.ndim != 1:
        raise ValueError(f"`ts` must be a 1-D array of times, got shape {ts.shape}.")
    # the widest float among the inputs (the default float if none); complex if any input is:
    # a complex system keeps its imaginary part (spelled out: strict promotion refuses mixing)
    inexact = [
        d
        for d in (A.dtype, y0.dtype, ts.dtype, jnp.result_type(b if b is not None else 0.0))
        if jnp.issubdtype(d, jnp.inexact)
    ]
    bits = max([jnp.finfo(d).bits for d in inexact] + [jnp.finfo(jnp.result_type(float)).bits])
    complex_ = any(jnp.issubdtype(d, jnp.complexfloating) for d in inexact)
    dtype = {
        (32, False): jnp.float32,
        (64, False): jnp.float64,
        (32, True): jnp.complex64,
        (64, True): jnp.complex128,
    }[(bits if bits in (32, 64) else 32, complex_)]
    if b is None:
        b = jnp.zeros(A.shape[0], dtype)
    b = jnp.asarray(b)
    if b.shape != (A.shape[0],):
        raise ValueError(f"`b` must have shape ({A.shape[0]},) to match `A`, got {b.shape}.")
    real = jnp.finfo(dtype).dtype  # times are real also for a complex system
    return A.astype(dtype), y0.astype(dtype), ts.astype(real), b.astype(dtype)


def linear_ode_solution(
    A: Inexact[ArrayLike, "d d"],
    y0: Inexact[ArrayLike, " d"],
    ts: Float[ArrayLike, " n"],
    b: Inexact[ArrayLike, " d"] | None = None,
    t0: float | Float[ArrayLike, ""] = 0.0,
) -> Inexact[Array, "n d"]:
    r"""Exact solution of $\dot y = A y + b$, $y(t_0) = y_0$, by the matrix exponential.

    $$\begin{pmatrix} y(t) \\ 1 \end{pmatrix} = \exp\!\left((t - t_0)
      \begin{pmatrix} A & b \\ 0 & 0 \end{pmatrix}\right) \begin{pmatrix} y_0 \\ 1 \end{pmatrix},$$
    which equals $e^{A\tau} y_0 + \int_0^\tau e^{A s} ds\, b$ and needs no inverse of $A$.

    Args:
        A: the system matrix, shape ``(d, d)``.
        y0: initial state, shape ``(d,)``.
        ts: output times, shape ``(n,)`` (any order; may lie before ``t0``).
        b: constant forcing, shape ``(d,)``; default zero.
        t0: time of the initial condition.

    Returns:
        ``ys`` of shape ``(n, d)`` with ``ys[i] = y(ts[i])``.

    Examples:
        >>> from sdeml.ode import linear_ode_solution
        >>> A = jnp.array([[0.0, 1.0], [-1.0, 0.0]])  # harmonic oscillator: y = (cos t, -sin t)
        >>> ys = linear_ode_solution(A, jnp.array([1.0, 0.0]), jnp.array([jnp.pi / 2, jnp.pi]))
        >>> ys.shape, bool(jnp.allclose(ys, jnp.array([[0.0, -1.0], [-1.0, 0.0]]), atol=1e-12))
        ((2, 2), True)
        >>> ys = linear_ode_solution(jnp.zeros((1, 1)), jnp.ones(1), jnp.array([2.0]), jnp.ones(1))
        >>> round(float(ys[0, 0]), 12)  # singular A = 0, b = 1: y(t) = y0 + b t
        3.0

    References:
        Moler & Van Loan, Nineteen Dubious Ways to Compute the Exponential of a Matrix, Twenty-Five
        Years Later, SIAM Review 45 (2003); Van Loan, Computing integrals involving the matrix
        exponential, IEEE TAC 23 (1978) (the augmented-matrix trick).
    """
    A, y0, ts, b = _check(A, y0, ts, b, t0)
    return _expm_solution(A, y0, ts, b, jnp.asarray(t0, ts.dtype))


@jax.jit  # one compiled program per shape: expm's Pade branches are costly to trace
def _expm_solution(A, y0, ts, b, t0):
    d = A.shape[0]
    M = jnp.zeros((d + 1, d + 1), A.dtype).at[:d, :d].set(A).at[:d, d].set(b)
    z0 = jnp.concatenate([y0, jnp.ones(1, A.dtype)])
    return jax.vmap(lambda t: (jsl.expm((t - t0).astype(M.dtype) * M) @ z0)[:d])(ts)


def _phi1(z):
    # phi_1(z) = (e^z - 1) / z, continued by 1 at z = 0; a series near 0 avoids cancellation.
    small = jnp.abs(z) < 1e-5
    zs = jnp.where(small, jnp.ones_like(z), z)
    return jnp.where(small, 1 + z / 2 + z**2 / 6, jnp.expm1(zs) / zs)


def linear_ode_solution_eig(
    A: Inexact[ArrayLike, "d d"],
    y0: Inexact[ArrayLike, " d"],
    ts: Float[ArrayLike, " n"],
    b: Inexact[ArrayLike, " d"] | None = None,
    t0: float | Float[ArrayLike, ""] = 0.0,
) -> Inexact[Array, "n d"]:
    r"""Exact solution of $\dot y = A y + b$ by eigendecomposition (diagonalisable $A$).

    With $A = V \Lambda V^{-1}$ and $z = V^{-1} y$, each mode solves
    $\dot z_i = \lambda_i z_i + c_i$, so $z_i(\tau) = e^{\lambda_i \tau} z_i(0) +
    \tau\,\varphi_1(\lambda_i \tau)\, c_i$ with $\varphi_1(x) = (e^x - 1)/x$; then $y = V z$.
    This exposes the modes ($\lambda_i$ = growth rates and frequencies) and handles singular $A$.

    The eigenbasis loses about $\kappa(V)\,\epsilon$ relative accuracy ($\kappa$ the condition
    number, $\epsilon$ the dtype's machine epsilon), and a defective $A$ (a Jordan block, e.g.
    the critically damped oscillator) has no eigenbasis at all. Where $\kappa(V) >
    \epsilon^{-1/3}$ (1.7e5 in float64, 200 in float32), the solution is computed by the matrix
    exponential instead, as `linear_ode_solution` does, so the result stays exact to round-off
    for every $A$.

    Args:
        A: system matrix, shape ``(d, d)``; diagonalisable for the eigenbasis to be used (see
            above).
        y0: initial state, shape ``(d,)``.
        ts: output times, shape ``(n,)``.
        b: constant forcing, shape ``(d,)``; default zero.
        t0: time of the initial condition.

    Returns:
        ``ys`` of shape ``(n, d)``: for a real system its real part (the imaginary part is
        round-off there), complex for a complex ``A``, ``y0`` or ``b``.
        Uses ``jnp.linalg.eig``, which JAX implements on CPU only.

    Examples:
        >>> from sdeml.ode import linear_ode_solution, linear_ode_solution_eig
        >>> A = jnp.array([[-1.0, 0.0], [0.0, -2.0]])
        >>> ys = linear_ode_solution_eig(A, jnp.ones(2), jnp.array([1.0]))
        >>> ys.shape, bool(jnp.allclose(ys[0], jnp.exp(jnp.array([-1.0, -2.0]))))  # e^{-t}, e^{-2t}
        ((1, 2), True)
        >>> A = jnp.array([[0.0, 1.0], [-1.0, -0.1]])  # damped oscillator: complex eigenvalues
        >>> ts, y0, b = jnp.linspace(0.0, 5.0, 6), jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
        >>> ys = linear_ode_solution_eig(A, y0, ts, b)
        >>> bool(jnp.allclose(ys, linear_ode_solution(A, y0, ts, b)))  # the expm solution
        True
        >>> A = jnp.array([[0.0, 1.0], [-1.0, -2.0]])  # critically damped: a Jordan block at -1
        >>> ys = linear_ode_solution_eig(A, jnp.array([1.0, 0.0]), jnp.array([1.0]))
        >>> bool(jnp.allclose(ys[0, 0], 2 * jnp.exp(-1.0)))  # y = (1 + t) e^{-t}
        True

    References:
        Hirsch, Smale & Devaney, Differential Equations, Dynamical Systems, and an Introduction
        to Chaos, 3rd ed., ch. 3 and 6.
    """
    A, y0, ts, b = _check(A, y0, ts, b, t0)
    return _eig_solution(A, y0, ts, b, jnp.asarray(t0, ts.dtype))


@jax.jit
def _eig_solution(A, y0, ts, b, t0):
    lam, V = jnp.linalg.eig(A)
    # kappa(V) eps is the eigenbasis's relative error; a defective A gives kappa ~ 1/eps or inf
    # (and a singular V whose inverse is NaN), so the condition is read before any inverse.
    kappa = jnp.linalg.cond(V)
    usable = jnp.isfinite(kappa) & (kappa <= jnp.finfo(A.dtype).eps ** (-1 / 3))

    def by_modes(_):
        Vinv = jnp.linalg.inv(V)
        z0 = Vinv @ y0.astype(V.dtype)
        c = Vinv @ b.astype(V.dtype)

        def at(t):
            tau = (t - t0).astype(lam.dtype)
            z = jnp.exp(lam * tau) * z0 + tau * _phi1(lam * tau) * c
            y = V @ z  # complex for a real A with complex modes; keep a complex A's imaginary
            return (y if jnp.iscomplexobj(A) else jnp.real(y)).astype(A.dtype)  # part

        return jax.vmap(at)(ts)

    return jax.lax.cond(usable, by_modes, lambda _: _expm_solution(A, y0, ts, b, t0), None)
