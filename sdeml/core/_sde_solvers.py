"""Fixed-step SDE solvers as equinox modules with `init`/`step`; Brownian increments come in."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from ._checks import as_float
from ._sde import NOISE_TYPES, AbstractSDE, stratonovich_correction

# A Brownian increment over one step: `dw` (shape of W), or `(dw, dz)` where
# dz = int_t^{t+h} (W_s - W_t) ds is the time integral needed by SRA1 (Rößler 2010).
Increment = Any


class SolverState(eqx.Module):
    """The state a solver carries: the current time and value.

    Args:
        t: the current time, a 0-d array.
        y: the current value, shape ``S``.

    Examples:
        >>> from sdeml.sde import EulerMaruyama, OrnsteinUhlenbeck
        >>> state = EulerMaruyama().init(OrnsteinUhlenbeck(), 0.0, jnp.ones(3))
        >>> float(state.t), state.y.shape
        (0.0, (3,))
    """

    t: Float[Array, ""]
    y: Array


def _split(inc: Increment) -> tuple[Array, Array | None]:
    if isinstance(inc, tuple | list):
        return inc[0], inc[1]
    return inc, None


class AbstractSolver(eqx.Module):
    """Interface of a fixed-step SDE solver.

    A solver holds configuration only. ``init(sde, t0, y0, args)`` makes a `SolverState`;
    ``step(sde, state, dt, inc, args)`` advances it by ``dt`` given the Brownian increment ``inc``
    over the step (``dw``, or ``(dw, dz)`` for solvers with ``needs_time_integral``). Because the
    noise comes in, one Brownian path can drive every resolution (see `coarsen_increments`).

    Attributes:
        strong_order: the strong order (for the noise types it supports), a class attribute.
        weak_order: the weak order, a class attribute.
        calculus: ``"ito"`` or ``"stratonovich"``: the solution it converges to.
        noise_types: the noise types it supports (default: all).
        needs_time_integral: whether `step` needs ``(dw, dz)`` rather than ``dw``.

    Examples:
        >>> from sdeml.sde import (AbstractSolver, EulerMaruyama, OrnsteinUhlenbeck, SolverState,
        ...                        sample_increments, simulate, solve_increments)
        >>> class MyEM(AbstractSolver):  # Euler-Maruyama written out
        ...     strong_order = 0.5
        ...     weak_order = 1.0
        ...     def step(self, sde, state, dt, inc, args=None):
        ...         t, y = state.t, state.y
        ...         dy = sde.drift(t, y, args) * dt + sde.noise_term(sde.diffusion(t, y, args), inc)
        ...         return SolverState(t + dt, y + dy)
        >>> ou = OrnsteinUhlenbeck(theta=1.0, mu=0.0, sigma=0.5)
        >>> ts = jnp.linspace(0.0, 1.0, 11)
        >>> dw = sample_increments(jnp.diff(ts), (2,), key=jr.key(0))
        >>> mine = solve_increments(MyEM(), ou, jnp.ones(2), ts, dw)
        >>> bool(jnp.allclose(mine, solve_increments(EulerMaruyama(), ou, jnp.ones(2), ts, dw)))
        True
        >>> simulate(ou, jnp.ones(2), n_steps=10, n_paths=5, method=MyEM(), key=jr.key(0)).xs.shape
        (5, 1, 2)
    """

    strong_order: ClassVar[float]
    weak_order: ClassVar[float]
    calculus: ClassVar[str] = "ito"
    noise_types: ClassVar[tuple[str, ...]] = NOISE_TYPES  # all of them unless a solver says
    needs_time_integral: ClassVar[bool] = False

    def init(self, sde: AbstractSDE, t0: Any, y0: Array, args: PyTree = None) -> SolverState:
        """Initial state at time `t0` and value `y0`."""
        self.check(sde)
        y0 = as_float(y0)  # an integer y0 truncated t0 (0.5 read as 0) and every step
        return SolverState(jnp.asarray(t0, dtype=y0.dtype), y0)

    def check(self, sde: AbstractSDE) -> None:
        """Raise a ValueError if this solver cannot integrate `sde`'s noise type."""
        if sde.noise not in self.noise_types:
            raise ValueError(
                f"{type(self).__name__} supports noise types {self.noise_types}, "
                f"got an SDE with noise={sde.noise!r}"
            )

    @abc.abstractmethod
    def step(
        self, sde: AbstractSDE, state: SolverState, dt: Any, inc: Increment, args: PyTree = None
    ) -> SolverState:
        """Advance `state` by `dt` with Brownian increment `inc`."""


class EulerMaruyama(AbstractSolver):
    r"""Euler–Maruyama, $Y_{n+1} = Y_n + f(t_n, Y_n)\,h + g(t_n, Y_n)\,\Delta W_n$.

    Converges to the Itô solution with strong order 1/2 (1 for additive noise) and weak order 1.
    All noise types. Takes no arguments; ``init(sde, t0, y0, args)`` and
    ``step(sde, state, dt, dw, args)`` return a `SolverState`, ``dw`` of shape
    ``sde.brownian_shape(y.shape)``.

    Examples:
        >>> from sdeml.sde import EulerMaruyama, OrnsteinUhlenbeck, simulate
        >>> ou = OrnsteinUhlenbeck(theta=1.0, mu=0.0, sigma=0.5)
        >>> solver = EulerMaruyama()
        >>> state = solver.init(ou, 0.0, jnp.ones(2))
        >>> state = solver.step(ou, state, 0.1, jnp.array([0.2, -0.2]))  # h = 0.1, given dW
        >>> float(state.t), [round(float(v), 6) for v in state.y]  # 1 - 0.1 * 1 + 0.5 * dW
        (0.1, [1.0, 0.8])
        >>> paths = simulate(ou, jnp.ones(1), n_steps=50, n_paths=20_000, method=solver,
        ...                  key=jr.key(0))
        >>> bool(abs(paths.xs.mean() - ou.mean(1.0, 1.0)) < 0.01)  # E X_1 = e^{-1}; bias O(h)
        True

    References:
        Maruyama, Continuous Markov processes and stochastic equations, 1955.
        Kloeden & Platen (1992), §10.2 and §14.1.
    """

    strong_order: ClassVar[float] = 0.5
    weak_order: ClassVar[float] = 1.0

    def step(self, sde, state, dt, inc, args=None):
        dw, _ = _split(inc)
        t, y = state.t, state.y
        y1 = y + sde.drift(t, y, args) * dt + sde.noise_term(sde.diffusion(t, y, args), dw)
        return SolverState(t + dt, y1)


class Milstein(AbstractSolver):
    r"""Itô Milstein, $Y_{n+1} = Y_n + f h + g\,\Delta W
    + \tfrac12 \sum_{j,k} (L^j g_{\cdot k})(\Delta W_j \Delta W_k - \delta_{jk} h)$.

    $L^j = \sum_i g_{ij}\partial_i$; the $g\,g'$ terms come from Jacobian–vector products of the
    diffusion (autodiff, no hand-written derivative). Strong order 1 and weak order 1 for scalar,
    diagonal (each $g_i$ depending on $y_i$ only), additive and *commutative* general noise; for
    non-commutative general noise the Lévy areas it omits limit it to strong order 1/2.

    Takes no arguments; used like `EulerMaruyama`.

    Examples:
        >>> from sdeml.sde import EulerMaruyama, GeometricBrownianMotion, Milstein, solve_increments
        >>> gbm, solver = GeometricBrownianMotion(mu=0.5, sigma=0.8), Milstein()
        >>> state = solver.step(gbm, solver.init(gbm, 0.0, jnp.ones(1)), 0.01, jnp.array([0.2]))
        >>> round(float(state.y[0]), 6)  # 1 + 0.005 + 0.8 * 0.2 + 0.32 * (0.2**2 - 0.01)
        1.1746
        >>> ts = jnp.linspace(0.0, 1.0, 65)  # 64 steps; 500 independent components as 500 paths
        >>> dw = jnp.sqrt(1 / 64) * jr.normal(jr.key(0), (64, 500))
        >>> exact = gbm.exact_solution(jnp.ones(500), ts, dw)
        >>> def err(solver):  # mean strong error at t = 1
        ...     y1 = solve_increments(solver, gbm, jnp.ones(500), ts, dw)[-1]
        ...     return jnp.mean(jnp.abs(y1 - exact))
        >>> bool(err(Milstein()) < err(EulerMaruyama()) / 4)  # order 1 against order 1/2
        True

    References:
        Milstein, Approximate integration of stochastic differential equations, Theory Probab.
        Appl. 19 (1974). Kloeden & Platen (1992), §10.3, eq. (10.3.3).
    """

    strong_order: ClassVar[float] = 1.0
    weak_order: ClassVar[float] = 1.0

    def step(self, sde, state, dt, inc, args=None):
        dw, _ = _split(inc)
        t, y = state.t, state.y
        g_fn = lambda y_: sde.diffusion(t, y_, args)
        f = sde.drift(t, y, args)
        if sde.noise == "additive":
            g = g_fn(y)
            return SolverState(t + dt, y + f * dt + sde.noise_term(g, dw))
        if sde.noise in ("diagonal", "scalar"):
            # one JVP gives (g g')_i under the diagonal-noise convention (exact for scalar noise);
            # linearised once, so g is evaluated once (a jvp at g_fn(y) traced it twice)
            g, g_lin = jax.linearize(g_fn, y)
            ggp = g_lin(g)
            corr = 0.5 * ggp * (dw * dw - dt)
            return SolverState(t + dt, y + f * dt + g * dw + corr)
        # general, commutative: sum_jk L^j g_k dW_j dW_k = (dg[G dW]) dW: one JVP along G dW
        g, g_lin = jax.linearize(g_fn, y)
        gdw = jnp.tensordot(g, dw, axes=1)
        dg = g_lin(gdw)
        corr = 0.5 * (jnp.tensordot(dg, dw, axes=1) - dt * stratonovich_correction(sde, t, y, args))
        return SolverState(t + dt, y + f * dt + gdw + corr)


class StochasticHeun(AbstractSolver):
    r"""Stochastic Heun (trapezoidal predictor–corrector); converges to the *Stratonovich* solution.

    $\tilde Y = Y_n + f(t_n, Y_n) h + g(t_n, Y_n)\Delta W$,
    $Y_{n+1} = Y_n + \tfrac12[f(t_n, Y_n) + f(t_{n+1}, \tilde Y)]h
    + \tfrac12[g(t_n, Y_n) + g(t_{n+1}, \tilde Y)]\Delta W$.

    Strong order 1/2 in general, 1 for commutative (scalar, diagonal, additive) noise; weak
    order 1. Integrate an Itô SDE with it through `ito_to_stratonovich`.

    Takes no arguments; used like `EulerMaruyama`.

    Examples:
        >>> from sdeml.sde import (GeometricBrownianMotion, StochasticHeun, sample_increments,
        ...                        solve_increments)
        >>> gbm = GeometricBrownianMotion(mu=0.5, sigma=0.8)  # dX = 0.5 X dt + 0.8 X o dW
        >>> ts = jnp.linspace(0.0, 1.0, 101)
        >>> dw = sample_increments(jnp.diff(ts), (1,), key=jr.key(0))
        >>> y1 = solve_increments(StochasticHeun(), gbm, jnp.ones(1), ts, dw)[-1]
        >>> strat = jnp.exp(0.5 + 0.8 * dw.sum(0))  # the Stratonovich solution at t = 1
        >>> bool(jnp.abs(y1 - strat)[0] < 0.02)
        True

    References:
        Rümelin, Numerical treatment of stochastic differential equations, SIAM J. Numer. Anal.
        19 (1982). Kloeden & Platen (1992), §11.1.
    """

    strong_order: ClassVar[float] = 0.5
    weak_order: ClassVar[float] = 1.0
    calculus: ClassVar[str] = "stratonovich"

    def step(self, sde, state, dt, inc, args=None):
        dw, _ = _split(inc)
        t, y = state.t, state.y
        t1 = t + dt
        f0 = sde.drift(t, y, args)
        g0 = sde.diffusion(t, y, args)
        y_pred = y + f0 * dt + sde.noise_term(g0, dw)
        f1 = sde.drift(t1, y_pred, args)
        g1 = sde.diffusion(t1, y_pred, args)
        y1 = y + 0.5 * (f0 + f1) * dt + sde.noise_term(0.5 * (g0 + g1), dw)
        return SolverState(t1, y1)


class SRA1(AbstractSolver):
    r"""Rößler's SRA1 stochastic Runge–Kutta method for additive noise: strong order 3/2, weak 2.

    With $\Delta Z = \int_{t_n}^{t_{n+1}} (W_s - W_{t_n})\,ds$ and $b(t) = g(t)$:
    $H = Y_n + \tfrac34 f(t_n, Y_n) h + \tfrac32 b(t_{n+1}) \Delta Z / h$,
    $Y_{n+1} = Y_n + h[\tfrac13 f(t_n, Y_n) + \tfrac23 f(t_n + \tfrac34 h, H)]
    + b(t_{n+1})\Delta W + [b(t_n) - b(t_{n+1})]\Delta Z / h$.

    Needs the increment as ``(dw, dz)``; `simulate` and `sample_increments` draw both. Itô and
    Stratonovich coincide for additive noise.

    Takes no arguments; used like `EulerMaruyama`, with ``(dw, dz)`` increments.

    Examples:
        >>> from sdeml.sde import (SRA1, EulerMaruyama, OrnsteinUhlenbeck, sample_increments,
        ...                        solve_increments)
        >>> ou = OrnsteinUhlenbeck(theta=1.0, mu=0.5, sigma=0.7)
        >>> ts = jnp.linspace(0.0, 1.0, 17)  # 16 steps; 500 independent components as 500 paths
        >>> dw, dz = sample_increments(jnp.diff(ts), (500,), time_integral=True, key=jr.key(0))
        >>> exact = ou.exact_solution(jnp.ones(500), ts, dw, dz)  # O(h^2) from dw and dz
        >>> def err(solver, inc):  # mean strong error at t = 1
        ...     y1 = solve_increments(solver, ou, jnp.ones(500), ts, inc)[-1]
        ...     return jnp.mean(jnp.abs(y1 - exact))
        >>> bool(err(SRA1(), (dw, dz)) < err(EulerMaruyama(), dw) / 10)  # order 3/2 against 1
        True

    References:
        Rößler, Runge–Kutta methods for the strong approximation of solutions of stochastic
        differential equations, SIAM J. Numer. Anal. 48(3), 2010, Table 5.1 (SRA1).
    """

    strong_order: ClassVar[float] = 1.5
    weak_order: ClassVar[float] = 2.0
    noise_types: ClassVar[tuple[str, ...]] = ("additive",)
    needs_time_integral: ClassVar[bool] = True

    def step(self, sde, state, dt, inc, args=None):
        dw, dz = _split(inc)
        if dz is None:
            raise ValueError(
                "SRA1 needs the increment as (dw, dz) with dz = int (W_s - W_t) ds; "
                "draw it with sample_increments(..., time_integral=True)"
            )
        t, y = state.t, state.y
        t1 = t + dt
        f0 = sde.drift(t, y, args)
        b0 = sde.diffusion(t, y, args)  # additive: independent of y
        b1 = sde.diffusion(t1, y, args)
        # dz / dt with dt = 0 (padding steps) gives 0/0: dz is 0 there, so use a safe divisor
        safe_dt = jnp.where(dt == 0, jnp.ones_like(dt), dt)
        z = dz / safe_dt
        h2 = y + 0.75 * f0 * dt + 1.5 * sde.noise_term(b1, z)
        f1 = sde.drift(t + 0.75 * dt, h2, args)
        y1 = y + dt * (f0 / 3 + 2 * f1 / 3) + sde.noise_term(b1, dw) + sde.noise_term(b0 - b1, z)
        return SolverState(t1, y1)
