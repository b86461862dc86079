"""Laplace approximation (Newton to the mode, Hessian there) for preconditioning samplers."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ..core._checks import check_int, check_scalar_function


def laplace_approximation(
    potential: Callable[[Float[Array, " d"]], Float[Array, ""]],
    theta0: ArrayLike,  # (d,) floating: checked with a clear message
    n_newton: int = 30,
) -> tuple[Float[Array, " d"], Float[Array, "d d"]]:
    r"""The Gaussian approximation $N(\hat\theta, H^{-1})$ of $\pi \propto e^{-U}$.

    $$
    \theta_{k+1} = \theta_k - H(\theta_k)^{-1}\nabla U(\theta_k),\qquad
    H = \nabla^2 U(\hat\theta) = LL^T.
    $$

    Samplers run on $z$ with $\theta = \hat\theta + L^{-T}z$ see a target whose
    Hessian at the mode is the identity: a constant preconditioner that lets ULA/MALA/SGLD take
    $O(1)$ steps on badly conditioned posteriors (the law of $\theta$ is unchanged).

    Args:
        potential: $U$, ``(d,) -> ()``, strictly convex near the mode (e.g. a log-concave
            posterior).
        theta0: starting point of Newton's method, shape ``(d,)``.
        n_newton: Newton iterations (quadratic convergence: 30 is ample from a sensible start).

    Returns:
        ``(mode, whitening)`` of shapes ``(d,)`` and ``(d, d)``, where ``whitening`` is
        $L^{-T}$ (so ``theta = mode + whitening @ z`` maps $N(0, I)$ to
        $N(\hat\theta, H^{-1})$).

    Raises:
        EquinoxRuntimeError: (eagerly, and under ``jax.jit`` at run time) Newton did not end at
            a minimum: the Hessian there is not positive definite (Newton, which seeks any
            stationary point, went to a maximum or saddle, or diverged), or the Newton decrement
            $\nabla U^T H^{-1} \nabla U$ is above $\sqrt{\varepsilon}$ after ``n_newton``
            steps (it had returned NaN, or a point that is not the mode, in silence).

    Examples:
        On a Gaussian $U(\theta) = \tfrac12\theta^TP\theta - b^T\theta$ the approximation is
        exact: the mode is $P^{-1}b$ and the covariance $P^{-1}$.

        >>> from sdeml.langevin import laplace_approximation
        >>> P, b = jnp.array([[2.0, 0.5], [0.5, 1.0]]), jnp.array([1.0, -1.0])
        >>> U = lambda th: 0.5 * th @ P @ th - b @ th
        >>> mode, w = laplace_approximation(U, jnp.zeros(2))
        >>> bool(jnp.allclose(mode, jnp.linalg.solve(P, b)))
        True
        >>> bool(jnp.allclose(w @ w.T, jnp.linalg.inv(P)))
        True
        >>> U_z = lambda z: U(mode + w @ z)  # the whitened potential: unit Hessian at 0
        >>> bool(jnp.allclose(jax.hessian(U_z)(jnp.zeros(2)), jnp.eye(2)))
        True

    References:
        Tierney & Kadane, Accurate approximations for posterior moments and marginal densities,
        JASA 81, 1986; Girolami & Calderhead, Riemann manifold Langevin and Hamiltonian Monte
        Carlo, JRSS B 73, 2011 (preconditioned Langevin).
    """
    theta0 = jnp.asarray(theta0)
    if theta0.ndim != 1:
        raise ValueError(f"`theta0` must have shape (d,), got {theta0.shape}.")
    if not jnp.issubdtype(theta0.dtype, jnp.floating):
        raise ValueError(f"`theta0` must be a floating-point array, got dtype {theta0.dtype}.")
    n_newton = check_int("n_newton", n_newton, 0)  # 2.5 ran as 2 in silence
    check_scalar_function("potential", potential, theta0)
    grad, hess = jax.grad(potential), jax.hessian(potential)

    def newton(th, _):
        return th - jnp.linalg.solve(hess(th), grad(th)), None

    mode, _ = jax.lax.scan(newton, theta0, None, length=n_newton)
    chol = jnp.linalg.cholesky(hess(mode))  # NaN unless the Hessian is positive definite
    eye = jnp.eye(theta0.shape[0], dtype=theta0.dtype)
    whitening = jax.scipy.linalg.solve_triangular(chol, eye, lower=True).T  # L^{-T}
    # The Newton decrement g^T H^{-1} g = |L^{-1} g|^2, about 2 (U(theta) - U(mode)): affine
    # invariant, and at rounding level (far below sqrt(eps)) once Newton has converged.
    decrement = jnp.sum((whitening.T @ grad(mode)) ** 2)
    out = eqx.error_if(
        (mode, whitening),
        ~(jnp.all(jnp.isfinite(mode)) & jnp.all(jnp.isfinite(whitening))),
        "laplace_approximation: the Hessian of the potential is not positive definite where "
        "Newton's method ended (it went to a maximum or saddle, or diverged): start it nearer "
        "the mode, in the region where the potential is convex.",
    )
    return eqx.error_if(
        out,
        ~(decrement <= jnp.sqrt(jnp.finfo(theta0.dtype).eps)),
        "laplace_approximation: Newton's method did not converge in `n_newton` steps (the "
        "gradient at its last point is not zero): start it nearer the mode or raise `n_newton`.",
    )
