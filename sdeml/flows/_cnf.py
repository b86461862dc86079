"""Continuous normalizing flows (FFJORD): exact or Hutchinson divergence, RNODE regularisation."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from ..core._checks import as_float, check_bool, check_positive, check_positive_int
from ..core._normals import standard_normal
from ..core._ode import ODESolution, integrate_ode
from ..neural_ode import (
    AbstractODEModel,
    check_field_signature,
    check_solve_options,
    set_solve_options,
    solve_options,
)

CNF_DIVERGENCES = ("exact", "hutchinson")
CNF_PROBES = ("rademacher", "gaussian")


class CNFOutput(eqx.Module):
    """Log-density of one point and the RNODE integrals of its trajectory.

    Attributes:
        log_prob: $\\log p_1(x)$.
        z0: the base point $z(0)$ the flow maps to $x$.
        kinetic: $\\int_0^1 \\lVert f(t, z)\\rVert^2 dt$.
        jacobian: $\\int_0^1 \\lVert \\partial f/\\partial z\\rVert_F^2 dt$ (exact, or the
            Hutchinson estimate $\\lVert \\varepsilon^\\top \\partial f/\\partial z\\rVert^2$);
            None when the solve was asked not to carry it (``jacobian_norm=False``).
        nfe: forward evaluations of the augmented field, as counted by the core ODE front
            (`sdeml.ODESolution.nfe`: exact for explicit solvers; -1 for implicit ones unless
            the CNF was built with ``count_evals=True``).

    Examples:
        The linear flow $\\dot z = z/2$ has $z(t) = e^{t/2}z(0)$, $\\lVert f\\rVert^2 =
        \\tfrac14\\lVert z(0)\\rVert^2 e^t$ and $\\lVert\\partial f/\\partial z\\rVert_F^2 = d/4$:

        >>> from sdeml.flows import CNF
        >>> cnf = CNF(lambda t, z, args: 0.5 * z, rtol=1e-8, atol=1e-8)
        >>> x = jnp.array([0.3, -1.2])
        >>> out = cnf.log_prob_and_stats(x)  # a CNFOutput
        >>> z0 = x * jnp.exp(-0.5)
        >>> bool(jnp.allclose(out.z0, z0, atol=1e-7)), round(float(out.jacobian), 6)
        (True, 0.5)
        >>> bool(jnp.isclose(out.kinetic, 0.25 * jnp.sum(z0**2) * (jnp.e - 1), rtol=1e-6))
        True
    """

    log_prob: Float[Array, " *batch"]
    z0: Float[Array, "*batch d"]
    kinetic: Float[Array, " *batch"]
    jacobian: Float[Array, " *batch"] | None
    nfe: Int[Array, "..."]


def _state_norm(err: Any) -> Array:
    """RMS of the scaled error over the flow state and log-density (not the RNODE integrals)."""
    return optx.rms_norm((err[0], err[1]))


def standard_normal_logp(z: Real[ArrayLike, "*batch d"]) -> Float[Array, " *batch"]:
    r"""$\log \mathcal N(z; 0, I) = -\tfrac12\lVert z\rVert^2 - \tfrac d2\log 2\pi$.

    Args:
        z: one point, shape ``(d,)``, or a batch ``(..., d)`` (one density per row).

    Returns:
        The log-density, shape ``()`` for one point or ``(...)`` for a batch.

    Examples:
        >>> from sdeml.flows import standard_normal_logp
        >>> z = jnp.array([0.3, -1.2])
        >>> bool(jnp.isclose(standard_normal_logp(z), jax.scipy.stats.norm.logpdf(z).sum()))
        True
        >>> round(float(standard_normal_logp(jnp.zeros(2))), 6)  # -log 2 pi
        -1.837877
    """
    # a batch (b, d) had summed all b * d squares into one number with d read as b; integer
    # points had failed (or truncated) in integer arithmetic
    z = as_float(jnp.asarray(z))
    if z.ndim == 0:
        raise ValueError("`z` must have shape (d,) or (..., d), got a scalar")
    return -0.5 * jnp.sum(z**2, axis=-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


class _Augmented(eqx.Module):
    r"""The augmented field $(f, \operatorname{tr} J, \lVert f\rVert^2[, \lVert J\rVert_F^2])$.

    Called as ``field(t, state, (params, eps, args))``: the field's arrays and the probe travel
    in the solve's `args`; the non-array parts of the field are held here. A module rather than
    a closure, so that eager solves of equal fields hit the compilation cache.
    """

    static: Any
    exact: bool = eqx.field(static=True)
    batched: bool = eqx.field(static=True)
    frobenius: bool = eqx.field(static=True)

    def _one(self, f, t, z, eps, args):
        if self.exact:  # one primal and d tangent evaluations; the primal comes back as aux
            jac, dz = jax.jacfwd(lambda y: (f(t, y, args), f(t, y, args)), has_aux=True)(z)
            div, frob = jnp.trace(jac), jnp.sum(jac**2)
        else:
            dz, vjp = jax.vjp(lambda y: f(t, y, args), z)
            e_jac = vjp(eps)[0]
            div, frob = jnp.dot(e_jac, eps), jnp.sum(e_jac**2)
        return dz, div, jnp.sum(dz**2), frob

    def _batch(self, f, t, z, eps, args):
        # The field applied to the whole batch at once, differentiated as a batch function:
        # d forward-mode passes of the batch (exact) or one reverse pass (Hutchinson). Its
        # gradient is about half the cost of differentiating a vmapped per-point Jacobian.
        fb = jax.vmap(lambda y: f(t, y, args))
        if self.exact and hasattr(f, "batch_divergence"):
            # a field that writes out its own exact trace (`sdeml.MLPField`): one matrix
            # product of the batch for two hidden layers, about half the gradient cost
            dz, div, frob = f.batch_divergence(t, z, frobenius=self.frobenius)
        elif self.exact:
            div = frob = jnp.zeros(z.shape[0], z.dtype)
            for i in range(z.shape[1]):
                dz, col = jax.jvp(fb, (z,), (jnp.zeros_like(z).at[:, i].set(1.0),))
                div, frob = div + col[:, i], frob + jnp.sum(col**2, axis=1)
        else:
            dz, vjp = jax.vjp(fb, z)
            e_jac = vjp(eps)[0]
            div, frob = jnp.sum(e_jac * eps, axis=1), jnp.sum(e_jac**2, axis=1)
        return dz, div, jnp.sum(dz**2, axis=1), frob

    def __call__(self, t, state, args):
        params, eps, user_args = args
        f = eqx.combine(params, self.static)
        step = self._batch if self.batched else self._one
        dz, div, energy, frob = step(f, t, state[0], eps, user_args)
        return (dz, div, energy) + ((frob,) if self.frobenius else ())


class CNF(AbstractODEModel):
    r"""A continuous normalizing flow (FFJORD) from $\mathcal N(0, I)$ at $t=0$ to data at $t=1$.

    $\dot z = f_\theta(t, z, \text{args})$ carries $z(0) \sim \mathcal N(0, I)$ to
    $x = z(1)$, and the instantaneous change of variables gives
    $$\log p_1(x) = \log \mathcal N(z(0); 0, I) - \int_0^1 \operatorname{tr}
    \frac{\partial f_\theta}{\partial z}(t, z(t))\,dt,$$
    computed by solving the augmented state $(z, \ell, E, J)$ from $t=1$ ($z = x$) back to $t=0$.
    The trace is exact (a $d\times d$ Jacobian, for low $d$) or Hutchinson's estimate
    $\varepsilon^\top (\partial f/\partial z)\varepsilon$ with one probe $\varepsilon$ (Rademacher
    or Gaussian) held fixed for the whole solve. $E$ and $J$ accumulate RNODE's kinetic energy
    $\int\lVert f\rVert^2$ and Jacobian norm $\int\lVert\partial f/\partial z\rVert_F^2$.
    The augmented state is solved through the core's ODE front (`sdeml.core.integrate_ode`,
    backwards in time), whose step-size controller measures the error of $(z, \ell)$ only: the
    RNODE integrals ride along without forcing extra steps.

    Args:
        func: the vector field ``func(t, z, args) -> dz/dt``, ``z`` of shape ``(d,)`` (the
            signature of every vector field in sdeml; a network ``model(t, z)`` is adapted by
            ``lambda t, z, args: model(t, z)``).
        divergence: ``exact`` or ``hutchinson``.
        probe: ``rademacher`` or ``gaussian`` (Hutchinson only).
        solver, adjoint: names or diffrax objects (see `sdeml.NeuralODE`); any registered ODE
            solver (``sdeml.core.solver_names("ode")``).
        rtol, atol: tolerances of the adaptive solver (default ``1e-5``, FFJORD's training
            tolerance, looser than the core's default: a likelihood to train on).
        dt0: initial step (adaptive) or constant step (constant-step solves).
        adaptive: use the PID controller; default: exactly when the solver has an error
            estimate, read from the registry (`sdeml.core.solver_info`: not Euler, not RK4).
        max_steps: step budget of one solve.
        count_evals: count evaluations on the host so that ``nfe`` is exact for implicit
            solvers too (not under ``jax.vmap``; see `sdeml.solve_ode`).

    Returns:
        ``cnf.log_prob(x, key=..., args=...)`` for one point; ``cnf.sample(n, d, key=...)``
        draws samples.

    Examples:
        The linear flow $\dot z = z/2$ maps $\mathcal N(0, I)$ to $\mathcal N(0, eI)$, whose
        log-density is known; a learned flow uses a network such as
        ``sdeml.MLPField(2, 64, 2, key=...)`` as `func`.

        >>> from jax.scipy.stats import norm
        >>> cnf = sdeml.CNF(lambda t, z, args: 0.5 * z, rtol=1e-8, atol=1e-8)
        >>> x = jnp.array([0.3, -1.2])
        >>> exact = norm.logpdf(x, scale=jnp.exp(0.5)).sum()
        >>> bool(jnp.isclose(cnf.log_prob(x), exact, atol=1e-6))  # exact trace: no key
        True

        Hutchinson's estimate needs a key for its probe; for this field a Rademacher probe
        gives $\varepsilon^\top(I/2)\varepsilon = d/2$, the exact trace:

        >>> hutch = sdeml.CNF(lambda t, z, args: 0.5 * z, divergence="hutchinson",
        ...                   rtol=1e-8, atol=1e-8)
        >>> bool(jnp.isclose(hutch.log_prob(x, key=jr.key(0)), exact, atol=1e-6))
        True

    References:
        Grathwohl et al., FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative
        Models, ICLR 2019. arXiv:1810.01367. Chen et al., Neural ODEs, NeurIPS 2018.
        Finlay et al., How to Train Your Neural ODE (RNODE), ICML 2020. arXiv:2002.02798.
        Hutchinson, A stochastic estimator of the trace, 1989.
    """

    func: Callable[..., Any]
    divergence: str = eqx.field(static=True)
    probe: str = eqx.field(static=True)

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        divergence: str = "exact",
        probe: str = "rademacher",
        solver: str | diffrax.AbstractSolver = "tsit5",
        adjoint: str | diffrax.AbstractAdjoint = "checkpoint",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        dt0: float | None = None,
        adaptive: bool | None = None,
        max_steps: int = 4096,
        count_evals: bool = False,
    ):
        check_field_signature(func, "CNF")
        if divergence not in CNF_DIVERGENCES:
            raise ValueError(
                f"unknown divergence {divergence!r}; valid: {', '.join(CNF_DIVERGENCES)}"
            )
        if probe not in CNF_PROBES:
            raise ValueError(f"unknown probe {probe!r}; valid: {', '.join(CNF_PROBES)}")
        options = check_solve_options(
            "CNF", solver, adjoint, rtol, atol, dt0, adaptive, max_steps, count_evals
        )
        set_solve_options(self, options)
        self.func, self.divergence, self.probe = func, divergence, probe

    # -- the augmented dynamics -----------------------------------------------------------------
    def _draw_probe(self, key: PRNGKeyArray | None, shape, dtype) -> Array:
        if self.divergence == "exact":
            return jnp.zeros(shape, dtype)  # unused
        if key is None:
            raise ValueError("the Hutchinson divergence needs a PRNG `key` for its probe")
        if self.probe == "rademacher":
            return jr.rademacher(key, shape, dtype)
        return standard_normal(key, shape, dtype)

    def _check(self, x: ArrayLike, name: str, args: Any) -> Array:
        """Check one point and return it as a float array (an integer point in the default
        float, as `cnf_loss` reads integer data; it had been refused here)."""
        x = as_float(jnp.asarray(x))
        if x.ndim != 1:
            raise ValueError(f"`{name}` must have shape (d,), got {x.shape}; use jax.vmap to batch")
        try:
            out = jax.eval_shape(lambda: self.func(jnp.zeros((), x.dtype), x, args))
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"the vector field cannot take `{name}` of shape {x.shape}: {e}"
            ) from None
        if getattr(out, "shape", None) != x.shape:
            raise ValueError(
                f"the vector field maps shape {x.shape} to {getattr(out, 'shape', out)}"
            )
        return x

    def _solve(
        self,
        x: Array,
        t_start: float,
        t_end: float,
        eps: Array,
        args: Any,
        frobenius: bool = True,
    ) -> ODESolution:
        # x of shape (d,) is one point; (b, d) is a batch solved as one ODE (shared steps).
        # Only arrays travel in `args` (every adjoint, backsolve included, differentiates them);
        # the non-array parts of the field are static in `_Augmented`.
        params, static = eqx.partition(self.func, eqx.is_array)
        zero = jnp.zeros(x.shape[:-1], x.dtype)
        field = _Augmented(static, self.divergence == "exact", x.ndim == 2, frobenius)
        return integrate_ode(
            field,
            (x, zero, zero) + ((zero,) if frobenius else ()),
            t_start,
            t_end,
            # the step size follows (z, log p) only: the RNODE integrals ride along
            norm=_state_norm,
            args=(params, eps, args),
            name="CNF",
            **solve_options(self),
        )

    # -- public ---------------------------------------------------------------------------------
    def log_prob_and_stats(
        self,
        x: Real[ArrayLike, "..."],  # (d,): checked with a clear message
        *,
        key: PRNGKeyArray | None = None,
        jacobian_norm: bool = True,
        args: Any = None,
    ) -> CNFOutput:
        """$\\log p_1(x)$ with the RNODE integrals and NFE (see the class docstring).

        Args:
            x: one point, shape ``(d,)``.
            key: the probe's key (Hutchinson only).
            jacobian_norm: also integrate $\\lVert\\partial f/\\partial z\\rVert_F^2$ (``False``
                leaves ``jacobian`` None and lets a field with a written-out trace skip the
                Jacobian columns).
            args: passed to the field as its third argument.

        Returns:
            A `CNFOutput` (log-density, base point, RNODE integrals, ``nfe``).
        """
        check_bool("jacobian_norm", jacobian_norm)
        x = self._check(x, "x", args)
        eps = self._draw_probe(key, x.shape, x.dtype)
        sol = self._solve(x, 1.0, 0.0, eps, args, jacobian_norm)
        return self._output(sol, standard_normal_logp)

    def _output(self, sol: ODESolution, base_logp: Callable[[Array], Array]) -> CNFOutput:
        z0, ell, energy = sol.y_final[:3]
        # Integrating from 1 down to 0 gives ell = -∫_0^1 tr J dt, energy = -∫ ||f||^2 dt, etc.
        frob = -sol.y_final[3] if len(sol.y_final) == 4 else None
        return CNFOutput(base_logp(z0) + ell, z0, -energy, frob, sol.nfe)

    def batch_log_prob_and_stats(
        self,
        x: Real[ArrayLike, "..."],  # (b, d): checked with a clear message
        *,
        key: PRNGKeyArray | None = None,
        jacobian_norm: bool = True,
        args: Any = None,
    ) -> CNFOutput:
        """`log_prob_and_stats` of a batch solved as one ODE, FFJORD's way.

        The batch shares one step-size sequence (the error norm runs over all points), so the
        solver's bookkeeping is paid once per step rather than once per point; the result agrees
        with ``jax.vmap(cnf.log_prob_and_stats)`` to the solver tolerance.

        Args:
            x: a batch, shape ``(b, d)``.
            key: the probes' key (Hutchinson only; one probe per point).
            jacobian_norm: as in `log_prob_and_stats`.
            args: passed to the field (per point) as its third argument.

        Returns:
            A `CNFOutput` with a leading batch axis; ``nfe`` is that of the one joint solve.
        """
        check_bool("jacobian_norm", jacobian_norm)
        x = as_float(jnp.asarray(x))  # integer points, as `log_prob_and_stats`
        if x.ndim != 2 or x.shape[0] < 1:  # an empty batch failed with an IndexError
            raise ValueError(f"`x` must have shape (b, d) with b >= 1, got {x.shape}")
        self._check(x[0], "x[0]", args)
        eps = self._draw_probe(key, x.shape, x.dtype)
        sol = self._solve(x, 1.0, 0.0, eps, args, jacobian_norm)
        return self._output(sol, jax.vmap(standard_normal_logp))

    def log_prob(
        self, x: Real[ArrayLike, "..."], *, key: PRNGKeyArray | None = None, args: Any = None
    ) -> Float[Array, ""]:
        """$\\log p_1(x)$ of one point (vmap for a batch)."""
        return self.log_prob_and_stats(x, key=key, jacobian_norm=False, args=args).log_prob

    def transform(
        self, z0: Real[ArrayLike, " d"], *, key: PRNGKeyArray | None = None, args: Any = None
    ) -> tuple[Float[Array, " d"], Float[Array, ""]]:
        """Push a base point forward: ``(x, log p_1(x))`` with $x = z(1)$."""
        z0 = self._check(z0, "z0", args)
        eps = self._draw_probe(key, z0.shape, z0.dtype)
        sol = self._solve(z0, 0.0, 1.0, eps, args, frobenius=False)
        x, ell = sol.y_final[0], sol.y_final[1]
        return x, standard_normal_logp(z0) - ell

    def sample(
        self, n: int, dim: int, *, dtype: Any = None, args: Any = None, key: PRNGKeyArray
    ) -> tuple[Float[Array, "n d"], Float[Array, " n"]]:
        """`n` samples $x = z(1)$, $z(0)\\sim\\mathcal N(0, I_d)$, with their log-densities.

        The log-density uses the exact trace for ``divergence="exact"`` and one Hutchinson probe
        per sample otherwise.

        Returns:
            ``(x, log_p)``: shapes ``(n, dim)`` and ``(n,)``.

        Examples:
            >>> from jax.scipy.stats import norm
            >>> cnf = sdeml.CNF(lambda t, z, args: 0.5 * z, rtol=1e-8, atol=1e-8)
            >>> xs, lps = cnf.sample(4, 2, key=jr.key(1))  # x = e^{1/2} z(0) ~ N(0, e I)
            >>> xs.shape, bool(jnp.allclose(lps, norm.logpdf(xs, scale=jnp.exp(0.5)).sum(1)))
            ((4, 2), True)
        """
        n = check_positive_int("n", n)  # NumPy integers too, as Python ints
        dim = check_positive_int("dim", dim)
        kz, kp = jr.split(key)
        z0 = standard_normal(kz, (n, dim), dtype)
        return jax.vmap(lambda z, k: self.transform(z, key=k, args=args))(z0, jr.split(kp, n))


def _float_points(x: Any, name: str) -> Array:
    """A batch ``(b, d)`` as a float array (a list, or integer data, in the default float)."""
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"`{name}` must have shape (b, d) with b >= 1, got {x.shape}")
    return as_float(x)


def cnf_loss(
    cnf: CNF,
    x: Real[ArrayLike, "b d"],
    *,
    kinetic: float = 0.0,
    jacobian: float = 0.0,
    key: PRNGKeyArray | None = None,
    joint: bool = True,
) -> tuple[Float[Array, ""], dict[str, Array]]:
    r"""Negative log-likelihood of a batch plus RNODE regularisation.

    $L = \frac1b\sum_i\big[-\log p_1(x_i) + \lambda_K \int_0^1\lVert f\rVert^2 dt +
    \lambda_J\int_0^1\lVert\partial f/\partial z\rVert_F^2 dt\big]$.

    Args:
        cnf: the flow.
        x: a batch, shape ``(b, d)``.
        kinetic, jacobian: $\lambda_K$ and $\lambda_J$ (0 switches a term off).
        key: one probe key per point is split from it (Hutchinson only).
        joint: solve the batch as one ODE with shared steps (FFJORD's convention, several times
            faster on small points); ``False`` gives every point its own adaptive solve.

    Returns:
        ``(loss, aux)`` with aux ``nll``, ``kinetic``, ``nfe`` and, when ``jacobian > 0``,
        ``jacobian`` (batch means); the shape `sdeml.train.make_step` expects.

    Examples:
        For the linear flow $\dot z = z/2$ (data law $\mathcal N(0, eI)$, Jacobian norm
        $d/4$):

        >>> from jax.scipy.stats import norm
        >>> from sdeml.flows import CNF, cnf_loss
        >>> cnf = CNF(lambda t, z, args: 0.5 * z, rtol=1e-8, atol=1e-8)
        >>> x = jr.normal(jr.key(0), (16, 2))
        >>> loss, aux = cnf_loss(cnf, x, kinetic=0.1, jacobian=0.1)
        >>> sorted(aux)
        ['jacobian', 'kinetic', 'nfe', 'nll']
        >>> nll = -jnp.mean(norm.logpdf(x, scale=jnp.exp(0.5)).sum(1))
        >>> bool(jnp.isclose(aux["nll"], nll, atol=1e-6)), round(float(aux["jacobian"]), 6)
        (True, 0.5)
        >>> bool(jnp.isclose(loss, aux["nll"] + 0.1 * aux["kinetic"] + 0.1 * aux["jacobian"]))
        True

    References:
        Finlay et al., How to Train Your Neural ODE, ICML 2020. arXiv:2002.02798
    """
    x = _float_points(x, "x")
    check_bool("joint", joint)
    for name, v in (("kinetic", kinetic), ("jacobian", jacobian)):
        check_positive(name, v, allow_zero=True)  # NaN passed `< 0` and made the loss NaN
    frob = bool(jacobian > 0)  # the Jacobian norm is only integrated when it is penalised
    if joint:
        out = cnf.batch_log_prob_and_stats(x, key=key, jacobian_norm=frob)
    elif key is None:
        out = jax.vmap(lambda xi: cnf.log_prob_and_stats(xi, jacobian_norm=frob))(x)
    else:
        out = jax.vmap(lambda xi, k: cnf.log_prob_and_stats(xi, key=k, jacobian_norm=frob))(
            x, jr.split(key, x.shape[0])
        )
    nll = -jnp.mean(out.log_prob)
    ke = jnp.mean(out.kinetic)
    aux = {"nll": nll, "kinetic": ke, "nfe": jnp.mean(out.nfe.astype(x.dtype))}
    loss = nll + kinetic * ke
    if frob and out.jacobian is not None:
        aux["jacobian"] = jnp.mean(out.jacobian)
        loss = loss + jacobian * aux["jacobian"]
    return loss, aux
