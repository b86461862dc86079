"""Laplace approximation (Newton to the mode, Hessian there) for preconditioning samplers."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..core._checks import check_scalar_function


def laplace_approximation(
    potential: Callable[[Float[Array, " d"]], Float[Array, ""]],
    theta0: Float[Array, " d"],
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
    check_scalar_function("potential", potential, theta0)
    grad, hess = jax.grad(potential), jax.hessian(potential)

    def newton(th, _):
        return th - jnp.linalg.solve(hess(th), grad(th)), None

    mode, _ = jax.lax.scan(newton, theta0, None, length=n_newton)
    chol = jnp.linalg.cholesky(hess(mode))
    eye = jnp.eye(theta0.shape[0], dtype=theta0.dtype)
    whitening = jax.scipy.linalg.solve_triangular(chol, eye, lower=True).T  # L^{-T}
    return mode, whitening
