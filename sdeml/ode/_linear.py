"""Closed-form solutions of linear ODEs dy/dt = A y + b, to compare numerical solvers against."""

from __future__ import annotations

import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, ArrayLike, Inexact, Num, Real

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
    # a complex system keeps its imaginary part (spelled out: strict promotion refuses mixing).
    # The default float counts only when no input is a float: float32 inputs under
    # jax_enable_x64 gave float64 results. Half precision (bfloat16, float16) is computed in
    # float32 (`expm` has no half-precision kernels) and the result cast back.
    b_arr = None if b is None else jnp.asarray(b)
    inexact = [
        d
        for d in (A.dtype, y0.dtype, ts.dtype) + (() if b_arr is None else (b_arr.dtype,))
        if jnp.issubdtype(d, jnp.inexact)
    ]
    default = jnp.dtype(jnp.result_type(float))
    bits = max([jnp.finfo(d).bits for d in inexact], default=jnp.finfo(default).bits)
    complex_ = any(jnp.issubdtype(d, jnp.complexfloating) for d in inexact)
    dtype = {
        (32, False): jnp.float32,
        (64, False): jnp.float64,
        (32, True): jnp.complex64,
        (64, True): jnp.complex128,
    }[(bits if bits in (32, 64) else 32, complex_)]
    halves = {jnp.dtype(d) for d in inexact if jnp.finfo(d).bits < 32}
    out = halves.pop() if bits < 32 and len(halves) == 1 else jnp.dtype(dtype)
    b = jnp.zeros(A.shape[0], dtype) if b_arr is None else b_arr
    if b.shape != (A.shape[0],):
        raise ValueError(f"`b` must have shape ({A.shape[0]},) to match `A`, got {b.shape}.")
    real = jnp.finfo(dtype).dtype  # times are real also for a complex system
    return A.astype(dtype), y0.astype(dtype), ts.astype(real), b.astype(dtype), out


def linear_ode_solution(
    A: Num[ArrayLike, "d d"],
    y0: Num[ArrayLike, " d"],
    ts: Real[ArrayLike, " n"],
    b: Num[ArrayLike, " d"] | None = None,
    t0: float | Real[ArrayLike, ""] = 0.0,
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
    A, y0, ts, b, out = _check(A, y0, ts, b, t0)
    return _expm_solution(A, y0, ts, b, jnp.asarray(t0, ts.dtype)).astype(out)


@jax.jit  # one compiled program per shape: expm's Pade branches are costly to trace
def _expm_solution(A, y0, ts, b, t0):
    d = A.shape[0]
    M = jnp.zeros((d + 1, d + 1), A.dtype).at[:d, :d].set(A).at[:d, d].set(b)
    z0 = jnp.concatenate([y0, jnp.ones(1, A.dtype)])
    return jax.vmap(lambda t: (_expm((t - t0).astype(M.dtype) * M) @ z0)[:d])(ts)


# The matrix exponential by scaling and squaring, around `jax.scipy.linalg.expm`'s Pade
# approximants. jax 0.10.2's own squaring is wrong twice: it scales by 2^floor(log2(|M|_1 /
# theta)), which leaves the scaled norm up to 2 theta, outside where its Pade approximant is
# accurate (theta = 5.37 for float64, 3.93 for float32; Higham 2005 scales by the ceiling): the
# harmonic oscillator's rotation at t = 10.6 was 1.3e-8 off in float64 and at t = 7.5 1.0e-3 off
# in float32, against 1e-15 and 1e-7 here. And it squares at most `max_squarings` = 16 times,
# returning NaN beyond (|M|_1 > 3.5e5, e.g. a decay rate of 1000 over t = 1000). So the matrix
# is scaled here to |M|_1 <= theta, where jax's approximant needs no squaring, and squared here:
# in blocks of 16 (enough for any finite float64 matrix), skipped with their matrix products
# beyond the largest count needed. A scan of conditionals, not a while loop, so that
# reverse-mode autodiff goes through; the skip's bound is unbatched (`unvmap_max`), so that
# under vmap (over the times) the blocks past every member's count stay skipped.
_EXPM_THETA = {32: 3.925724783138660, 64: 5.371920351148152}  # jax's (Higham 2005, Table 2.3)
_EXPM_BLOCK, _EXPM_BLOCKS = 16, 66  # up to 1056 squarings: |M|_1 up to 2^1058


def _expm(M):
    real = jnp.finfo(M.dtype).dtype
    theta = _EXPM_THETA[jnp.finfo(real).bits]
    s = jnp.ceil(jnp.log2(jnp.linalg.norm(M, 1) / theta))
    # (a non-finite M has a non-finite exponential however often it is squared)
    s = jnp.where(jnp.isfinite(s) & (s > 0), s, 0).astype(jnp.int32)
    # scaling by a power of two is exact
    R = jsl.expm(M * jnp.exp2(-s.astype(real)).astype(M.dtype))
    top = eqxi.unvmap_max(s)

    def block(X, k):
        def square(X, j):
            X2 = jnp.matmul(X, X, precision=jax.lax.Precision.HIGHEST)  # as jax's own
            return jnp.where(k * _EXPM_BLOCK + j < s, X2, X), None

        run = lambda X: jax.lax.scan(square, X, jnp.arange(_EXPM_BLOCK, dtype=jnp.int32))[0]
        return jax.lax.cond(k * _EXPM_BLOCK < top, run, lambda X: X, X), None

    return jax.lax.scan(block, R, jnp.arange(_EXPM_BLOCKS, dtype=jnp.int32))[0]


def _phi1(z):
    # phi_1(z) = (e^z - 1) / z, continued by 1 at z = 0; a series near 0 avoids cancellation.
    small = jnp.abs(z) < 1e-5
    zs = jnp.where(small, jnp.ones_like(z), z)
    return jnp.where(small, 1 + z / 2 + z**2 / 6, jnp.expm1(zs) / zs)


def linear_ode_solution_eig(
    A: Num[ArrayLike, "d d"],
    y0: Num[ArrayLike, " d"],
    ts: Real[ArrayLike, " n"],
    b: Num[ArrayLike, " d"] | None = None,
    t0: float | Real[ArrayLike, ""] = 0.0,
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
    A, y0, ts, b, out = _check(A, y0, ts, b, t0)
    return _eig_solution(A, y0, ts, b, jnp.asarray(t0, ts.dtype)).astype(out)


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
