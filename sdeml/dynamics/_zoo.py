"""The systems zoo: classic ODEs with their textbook equilibria, stability classes and invariants.

Each system is an equinox module whose parameters are array leaves (new values do not recompile)
and which is called like a diffrax vector field, ``system(t, y, args=None) -> dy/dt``, so it goes
straight into `sdeml.solve_ode` or ``diffrax.ODETerm``.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from ..core._checks import as_float, check_positive, common_float_dtype
from ..ode import linear_ode_solution

__all__ = [
    "SIR",
    "AbstractODESystem",
    "DampedOscillator",
    "ExponentialGrowth",
    "HarmonicOscillator",
    "Lorenz",
    "LotkaVolterra",
    "VanDerPol",
]


def _scalar(x) -> Array:
    return jnp.asarray(x, dtype=jnp.result_type(x, float))


def _check_finite(name: str, value) -> None:
    """Raise `ValueError` if a concrete `value` is NaN or inf; traced values pass."""
    if not isinstance(value, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(value))):
        raise ValueError(f"`{name}` must be finite, got {value!r}.")


def _state(system: AbstractODESystem, y, name: str = "y") -> Array:
    """`y` as an array after checking it has the system's shape ``(dim,)``: the fields index
    ``y[0]``, ``y[1]``, ..., and JAX clamps an index past the end, so a state of the wrong
    length gave a wrong field silently (Lorenz at a 2-vector: ``[0, 26, -1.67]``). An integer
    state (``y = [1, 0]``) comes back in the default float (it had failed against the float
    parameters)."""
    y = as_float(y)
    if y.shape != (system.dim,):
        raise ValueError(
            f"`{name}` must have shape ({system.dim},) for {type(system).__name__}, got "
            f"{y.shape}; use jax.vmap to batch states."
        )
    return y


def _states(system: AbstractODESystem, y, name: str = "y") -> Array:
    """`y` of shape ``(..., dim)`` (a state or a batch of them, e.g. ``sol.ys``), floating."""
    y = as_float(y)
    if y.shape[-1:] != (system.dim,):
        raise ValueError(
            f"`{name}` must have shape (..., {system.dim}) for {type(system).__name__}, got "
            f"{y.shape}."
        )
    return y


def _times(ts) -> Array:
    ts = jnp.asarray(ts)
    if ts.ndim != 1:
        raise ValueError(f"`ts` must have shape (n,), got {ts.shape}.")
    return ts


def _solution_inputs(y0: Array, ts: Array, *params: Array) -> tuple[Array, ...]:
    """``y0``, ``ts`` and the parameters in one float dtype, that of the float inputs (float32
    stays float32), else the default float: the float64 parameters had made a float32 solution
    float64, or failed under strict promotion, and an integer ``y0`` had failed."""
    dtype = common_float_dtype(y0, ts)
    return tuple(jnp.asarray(a).astype(dtype) for a in (y0, ts, *params))


def _like(y: Array, *params: Array) -> tuple[Array, ...]:
    """The parameters in the dtype of a floating state `y`, so that the field keeps its dtype: a
    float32 state under float64 parameters (``jax_enable_x64``) stays float32 (a float64 field
    of a float32 state failed inside the ODE solver's step)."""
    y = jnp.asarray(y)
    dtype = y.dtype if jnp.issubdtype(y.dtype, jnp.floating) else jnp.result_type(float)
    return tuple(jnp.asarray(p, dtype) for p in params)


class AbstractODESystem(eqx.Module):
    """An autonomous ODE $\\dot y = f(y)$ with known (textbook) equilibria.

    Final classes set the class variable ``dim`` ($d$) and implement ``__call__(t, y, args=None)``
    (the vector field, shape ``(d,)`` to ``(d,)``; the zoo's fields refuse another shape with a
    `ValueError`) and ``textbook_equilibria()`` returning
    ``(points, labels)``: the equilibria of shape ``(k, d)`` and their stability classes as
    named in dynamical-systems textbooks (the names of `sdeml.dynamics.STABILITY_CLASSES`).

    Examples:
        The logistic equation $\\dot y = y(1 - y)$, checked against
        `sdeml.dynamics.find_equilibrium`:

        >>> class Logistic(sdeml.dynamics.AbstractODESystem):
        ...     dim = 1
        ...     def __call__(self, t, y, args=None):
        ...         return y * (1 - y)
        ...     def textbook_equilibria(self):
        ...         return jnp.array([[0.0], [1.0]]), ("unstable node", "stable node")
        >>> points, labels = Logistic().textbook_equilibria()
        >>> [sdeml.dynamics.find_equilibrium(Logistic(), p + 0.1).label for p in points]
        ['unstable node', 'stable node']
    """

    dim: ClassVar[int]

    @abc.abstractmethod
    def __call__(
        self, t: Float[ArrayLike, ""], y: Float[Array, " d"], args=None
    ) -> Float[Array, " d"]: ...

    @abc.abstractmethod
    def textbook_equilibria(self) -> tuple[Float[Array, "k d"], tuple[str, ...]]: ...


class ExponentialGrowth(AbstractODESystem):
    r"""Exponential growth or decay $\dot y = r y$, solution $y(t) = y_0 e^{r t}$.

    Args:
        rate: $r$, a finite scalar; $r > 0$ growth (the origin is an unstable node), $r < 0$
            decay (stable node). The field acts elementwise, so a state of any shape works.

    Examples:
        $y(2) = e^{0.5 \cdot 2} = e$ from $y_0 = 1$:

        >>> sol = sdeml.solve_ode(sdeml.dynamics.ExponentialGrowth(0.5), jnp.ones(1), 0.0, 2.0)
        >>> sol.ys.shape, round(float(sol.ys[-1, 0]), 5), round(float(jnp.e), 5)
        ((2, 1), 2.71828, 2.71828)

    References:
        Strogatz, Nonlinear Dynamics and Chaos, 2nd ed., §2.3.
    """

    rate: Float[Array, ""]
    dim: ClassVar[int] = 1

    def __init__(self, rate: Real[ArrayLike, ""] = 1.0):
        self.rate = _scalar(rate)

    def __check_init__(self):
        _check_finite("rate", self.rate)  # NaN had given a NaN field and a "stable node"

    def __call__(self, t, y, args=None):
        y = as_float(y)
        (rate,) = _like(y, self.rate)
        return rate * y

    def solution(self, y0: Real[ArrayLike, "..."], ts: Real[ArrayLike, " n"]) -> Array:
        """Exact $y(t) = y_0 e^{r t}$ at ``ts`` (shape ``(n, *y0.shape)``)."""
        y0, ts, rate = _solution_inputs(jnp.asarray(y0), _times(ts), self.rate)
        # one growth factor per time, broadcast over y0's own axes (``[:, None]`` had given
        # ``(n, 1)`` for a scalar y0 and failed for a y0 of two axes)
        growth = jnp.exp(rate * ts).reshape(ts.shape + (1,) * y0.ndim)
        return growth * y0[None]

    def textbook_equilibria(self):
        r = float(self.rate)
        # r = 0: every point is an equilibrium, and the linearisation (0) decides nothing
        label = "unstable node" if r > 0 else "stable node" if r < 0 else "non-hyperbolic"
        return jnp.zeros((1, 1)), (label,)


class HarmonicOscillator(AbstractODESystem):
    r"""Harmonic oscillator $\ddot x = -\omega^2 x$ as $(\dot x, \dot v) = (v, -\omega^2 x)$.

    Energy $E = \tfrac12 (v^2 + \omega^2 x^2)$ is conserved; the origin is a centre.

    Args:
        omega: angular frequency $\omega > 0$, a scalar.

    Examples:
        One period $2\pi/\omega = \pi$ brings $(x, v) = (1, 0)$ back, and the energy
        $E = \omega^2/2 = 2$ is conserved:

        >>> osc = sdeml.dynamics.HarmonicOscillator(2.0)
        >>> ts = jnp.linspace(0.0, jnp.pi, 5)
        >>> sol = sdeml.solve_ode(osc, jnp.array([1.0, 0.0]), 0.0, jnp.pi, ts=ts)
        >>> sol.ys.shape, bool(jnp.allclose(sol.ys[-1], jnp.array([1.0, 0.0]), atol=1e-5))
        ((5, 2), True)
        >>> bool(jnp.allclose(sol.ys, osc.solution(jnp.array([1.0, 0.0]), ts), atol=1e-5))
        True
        >>> bool(jnp.allclose(osc.energy(sol.ys), 2.0, atol=1e-5))
        True

    References:
        Strogatz, Nonlinear Dynamics and Chaos, 2nd ed., §5.1.
    """

    omega: Float[Array, ""]
    dim: ClassVar[int] = 2

    def __init__(self, omega: Real[ArrayLike, ""] = 1.0):
        self.omega = _scalar(omega)

    def __check_init__(self):
        check_positive("omega", self.omega)

    def __call__(self, t, y, args=None):
        y = _state(self, y)
        (w,) = _like(y, self.omega)
        return jnp.stack([y[1], -(w**2) * y[0]])

    @property
    def matrix(self) -> Float[Array, "2 2"]:
        """The system matrix $A$ with $\\dot y = A y$."""
        w = self.omega
        zero, one = jnp.zeros_like(w), jnp.ones_like(w)
        return jnp.stack([jnp.stack([zero, one]), jnp.stack([-(w**2), zero])])

    def energy(self, y: Real[ArrayLike, "... d"]) -> Array:  # d = 2: checked with a clear message
        """$E = \\tfrac12 (v^2 + \\omega^2 x^2)$."""
        y = _states(self, y)
        (w,) = _like(y, self.omega)
        return 0.5 * (y[..., 1] ** 2 + w**2 * y[..., 0] ** 2)

    def solution(self, y0: Real[ArrayLike, " d"], ts: Real[ArrayLike, " n"]) -> Array:
        r"""Exact $x = x_0 \cos\omega t + (v_0/\omega)\sin\omega t$, $v = \dot x$; ``y0`` of
        shape ``(2,)``."""
        y0, ts, w = _solution_inputs(_state(self, y0, "y0"), _times(ts), self.omega)
        x = y0[0] * jnp.cos(w * ts) + y0[1] / w * jnp.sin(w * ts)
        v = -y0[0] * w * jnp.sin(w * ts) + y0[1] * jnp.cos(w * ts)
        return jnp.stack([x, v], axis=-1)

    def textbook_equilibria(self):
        return jnp.zeros((1, 2)), ("centre",)


class DampedOscillator(AbstractODESystem):
    r"""Damped oscillator $\ddot x + 2\zeta\omega\dot x + \omega^2 x = 0$ as a first-order system.

    Eigenvalues $\lambda = \omega(-\zeta \pm \sqrt{\zeta^2 - 1})$: the origin is a stable spiral
    for $0 < \zeta < 1$ (underdamped) and a stable node for $\zeta \ge 1$ (critically/over-damped).

    Args:
        omega: natural frequency $\omega > 0$, a scalar.
        zeta: damping ratio $\zeta > 0$, a scalar.

    Examples:
        The exact ``solution`` (a matrix exponential) against a numerical solve; the
        eigenvalues $-0.1 \pm 0.995i$ make the origin a stable spiral:

        >>> osc = sdeml.dynamics.DampedOscillator(omega=1.0, zeta=0.1)
        >>> ts = jnp.linspace(0.0, 10.0, 5)
        >>> exact = osc.solution(jnp.array([1.0, 0.0]), ts)
        >>> sol = sdeml.solve_ode(osc, jnp.array([1.0, 0.0]), 0.0, 10.0, ts=ts)
        >>> exact.shape, bool(jnp.allclose(sol.ys, exact, atol=1e-5))
        ((5, 2), True)
        >>> lam = jnp.linalg.eigvals(osc.matrix)
        >>> sdeml.dynamics.stability_name(sdeml.dynamics.classify_equilibrium(lam))
        'stable spiral'

    References:
        Strogatz, Nonlinear Dynamics and Chaos, 2nd ed., §5.2 and §6.5.
    """

    omega: Float[Array, ""]
    zeta: Float[Array, ""]
    dim: ClassVar[int] = 2

    def __init__(self, omega: Real[ArrayLike, ""] = 1.0, zeta: Real[ArrayLike, ""] = 0.1):
        self.omega = _scalar(omega)
        self.zeta = _scalar(zeta)

    def __check_init__(self):
        check_positive("omega", self.omega)
        check_positive("zeta", self.zeta)  # zeta = 0 is the harmonic oscillator's centre

    def __call__(self, t, y, args=None):
        y = _state(self, y)
        w, z = _like(y, self.omega, self.zeta)
        return jnp.stack([y[1], -(w**2) * y[0] - 2 * z * w * y[1]])

    @property
    def matrix(self) -> Float[Array, "2 2"]:
        """The system matrix $A$ with $\\dot y = A y$."""
        w, z = self.omega, self.zeta
        return jnp.stack(
            [jnp.stack([jnp.zeros_like(w), jnp.ones_like(w)]), jnp.stack([-(w**2), -2 * z * w])]
        )

    def energy(self, y: Real[ArrayLike, "... d"]) -> Array:  # d = 2: checked with a clear message
        """$E = \\tfrac12 (v^2 + \\omega^2 x^2)$; $\\dot E = -2\\zeta\\omega v^2 \\le 0$."""
        y = _states(self, y)
        (w,) = _like(y, self.omega)
        return 0.5 * (y[..., 1] ** 2 + w**2 * y[..., 0] ** 2)

    def solution(self, y0: Real[ArrayLike, " d"], ts: Real[ArrayLike, " n"]) -> Array:
        """Exact solution at ``ts`` (the matrix exponential of ``matrix``); ``y0`` of shape
        ``(2,)``."""
        y0, ts, A = _solution_inputs(_state(self, y0, "y0"), _times(ts), self.matrix)
        # linear_ode_solution works in at least the default float: back to the inputs' dtype
        return linear_ode_solution(A, y0, ts).astype(y0.dtype)

    def textbook_equilibria(self):
        label = "stable spiral" if float(self.zeta) < 1 else "stable node"
        return jnp.zeros((1, 2)), (label,)


class VanDerPol(AbstractODESystem):
    r"""Van der Pol oscillator $\dot x = v$, $\dot v = \mu(1 - x^2) v - x$.

    A limit cycle for $\mu > 0$; relaxation oscillations of period $\approx (3 - 2\ln 2)\mu$ and
    stiffness ratio $\sim \mu^2$ for large $\mu$ ($\mu = 1000$ is the classic stiff benchmark).
    The origin has eigenvalues $(\mu \pm \sqrt{\mu^2 - 4})/2$: an unstable spiral for
    $0 < \mu < 2$, an unstable node for $\mu \ge 2$, a centre for $\mu = 0$.

    Args:
        mu: nonlinearity and damping strength $\mu \ge 0$, a scalar.

    Examples:
        From near the unstable origin the orbit settles on the limit cycle, of amplitude
        $\approx 2.01$ for $\mu = 1$ (stiff $\mu$ needs ``solver="kvaerno5"``):

        >>> vdp = sdeml.dynamics.VanDerPol(1.0)
        >>> ts = jnp.linspace(20.0, 40.0, 401)
        >>> sol = sdeml.solve_ode(vdp, jnp.array([0.1, 0.0]), 0.0, 40.0, ts=ts)
        >>> round(float(jnp.max(jnp.abs(sol.ys[:, 0]))), 2)
        2.01
        >>> vdp.textbook_equilibria()[1]
        ('unstable spiral',)

    References:
        B. van der Pol, On relaxation-oscillations, Phil. Mag. 2 (1926).
        Hairer & Wanner, Solving ODEs II, §IV.1 (VDPOL).
    """

    mu: Float[Array, ""]
    dim: ClassVar[int] = 2

    def __init__(self, mu: Real[ArrayLike, ""] = 1.0):
        self.mu = _scalar(mu)

    def __check_init__(self):
        check_positive("mu", self.mu, allow_zero=True)  # mu < 0: the origin is stable

    def __call__(self, t, y, args=None):
        y = _state(self, y)
        x, v = y[0], y[1]
        (mu,) = _like(y, self.mu)
        return jnp.stack([v, mu * (1 - x**2) * v - x])

    def textbook_equilibria(self):
        mu = float(self.mu)
        label = "centre" if mu == 0 else ("unstable spiral" if mu < 2 else "unstable node")
        return jnp.zeros((1, 2)), (label,)


class LotkaVolterra(AbstractODESystem):
    r"""Lotka–Volterra predator–prey model.

    $$\dot x = \alpha x - \beta x y, \qquad \dot y = \delta x y - \gamma y.$$

    First integral $H(x, y) = \delta x - \gamma \ln x + \beta y - \alpha \ln y$ (constant along
    orbits in $x, y > 0$). Equilibria: the origin (saddle) and
    $(\gamma/\delta, \alpha/\beta)$ (a centre, surrounded by closed orbits).

    Args:
        alpha, beta, gamma, delta: prey growth, predation, predator death, conversion (all > 0,
            scalars).

    Examples:
        $H$ stays constant along a numerical orbit (to the solver's tolerance):

        >>> lv = sdeml.dynamics.LotkaVolterra()
        >>> ts = jnp.linspace(0.0, 20.0, 50)
        >>> sol = sdeml.solve_ode(lv, jnp.array([1.0, 1.0]), 0.0, 20.0, ts=ts)
        >>> H = lv.first_integral(sol.ys)
        >>> H.shape, bool(jnp.max(jnp.abs(H - H[0])) < 1e-4)
        ((50,), True)
        >>> lv.textbook_equilibria()[0].tolist()
        [[0.0, 0.0], [4.0, 2.0]]

    References:
        A. J. Lotka, Elements of Physical Biology (1925); V. Volterra (1926).
        Hirsch, Smale & Devaney, ch. 11.
    """

    alpha: Float[Array, ""]
    beta: Float[Array, ""]
    gamma: Float[Array, ""]
    delta: Float[Array, ""]
    dim: ClassVar[int] = 2

    def __init__(self, alpha=1.0, beta=0.5, gamma=1.0, delta=0.25):
        self.alpha, self.beta = _scalar(alpha), _scalar(beta)
        self.gamma, self.delta = _scalar(gamma), _scalar(delta)

    def __check_init__(self):
        for name in ("alpha", "beta", "gamma", "delta"):
            check_positive(name, getattr(self, name))

    def __call__(self, t, y, args=None):
        y = _state(self, y)
        x, p = y[0], y[1]
        a, b, g, d = _like(y, self.alpha, self.beta, self.gamma, self.delta)
        return jnp.stack([a * x - b * x * p, d * x * p - g * p])

    def first_integral(self, y: Real[ArrayLike, "... d"]) -> Array:  # d = 2: checked clearly
        """$H = \\delta x - \\gamma\\ln x + \\beta y - \\alpha\\ln y$."""
        y = _states(self, y)
        x, p = y[..., 0], y[..., 1]
        a, b, g, d = _like(y, self.alpha, self.beta, self.gamma, self.delta)
        return d * x - g * jnp.log(x) + b * p - a * jnp.log(p)

    def textbook_equilibria(self):
        pts = jnp.stack(
            [jnp.zeros(2), jnp.stack([self.gamma / self.delta, self.alpha / self.beta])]
        )
        return pts, ("saddle", "centre")


class SIR(AbstractODESystem):
    r"""SIR epidemic model.

    $$\dot S = -\beta S I / N, \quad \dot I = \beta S I / N - \gamma I, \quad \dot R = \gamma I.$$

    $S + I + R = N$ is conserved. Every state $(S, 0, N - S)$ is an equilibrium (disease-free);
    the textbook one, $(N, 0, 0)$, has eigenvalues $0, 0, \beta - \gamma$: it is unstable when
    the basic reproduction number $R_0 = \beta/\gamma > 1$ (an epidemic takes off) and otherwise
    non-hyperbolic (a line of equilibria, linearisation inconclusive).

    Args:
        beta: transmission rate $\beta > 0$, a scalar.
        gamma: recovery rate $\gamma > 0$, a scalar.
        n: population size $N$ (the states may be fractions with ``n=1``).

    Examples:
        $S + I + R$ is conserved, and the final susceptible fraction $S_\infty$ obeys the
        final-size relation $\ln(S_0/S_\infty) = R_0\,(1 - S_\infty)$ (here $N = 1$, $R_0 = 3$):

        >>> sir = sdeml.dynamics.SIR(beta=0.3, gamma=0.1)
        >>> ts = jnp.linspace(0.0, 160.0, 9)
        >>> sol = sdeml.solve_ode(sir, jnp.array([0.99, 0.01, 0.0]), 0.0, 160.0, ts=ts)
        >>> bool(jnp.allclose(sol.ys.sum(-1), 1.0))
        True
        >>> s_inf = sol.ys[-1, 0]
        >>> round(float(sir.r0), 3), round(float(jnp.log(0.99 / s_inf) / (1 - s_inf)), 3)
        (3.0, 3.0)

    References:
        Kermack & McKendrick, A contribution to the mathematical theory of epidemics,
        Proc. R. Soc. A 115 (1927).
        Hethcote, The mathematics of infectious diseases, SIAM Rev. 42 (2000).
    """

    beta: Float[Array, ""]
    gamma: Float[Array, ""]
    n: Float[Array, ""]
    dim: ClassVar[int] = 3

    def __init__(self, beta=0.3, gamma=0.1, n=1.0):
        self.beta, self.gamma, self.n = _scalar(beta), _scalar(gamma), _scalar(n)

    def __check_init__(self):
        for name in ("beta", "gamma", "n"):
            check_positive(name, getattr(self, name))

    def __call__(self, t, y, args=None):
        y = _state(self, y)
        s, i = y[0], y[1]
        beta, gamma, n = _like(y, self.beta, self.gamma, self.n)
        infection = beta * s * i / n
        recovery = gamma * i
        return jnp.stack([-infection, infection - recovery, recovery])

    def reduced(self, t, y: Real[ArrayLike, " d"], args=None) -> Float[Array, " d"]:
        """The $(S, I)$ plane field ($R = N - S - I$ eliminated), for phase portraits; ``y`` of
        shape ``(2,)``."""
        y = as_float(y)
        if y.shape != (2,):
            raise ValueError(f"`y` must have shape (2,) for SIR.reduced (S, I), got {y.shape}.")
        (n,) = _like(y, self.n)
        return self(t, jnp.stack([y[0], y[1], n - y[0] - y[1]]), args)[:2]

    @property
    def r0(self) -> Array:
        """Basic reproduction number $R_0 = \\beta / \\gamma$."""
        return self.beta / self.gamma

    def textbook_equilibria(self):
        label = "unstable non-hyperbolic" if float(self.r0) > 1 else "non-hyperbolic"
        return jnp.stack([self.n, jnp.zeros_like(self.n), jnp.zeros_like(self.n)])[None], (label,)


class Lorenz(AbstractODESystem):
    r"""Lorenz system $\dot x = \sigma(y - x)$, $\dot y = x(\rho - z) - y$, $\dot z = xy - \beta z$.

    For $\rho > 1$ the origin is a saddle and $C_\pm = (\pm c, \pm c, \rho - 1)$,
    $c = \sqrt{\beta(\rho - 1)}$, exist; they are stable spirals below the Hopf value
    $\rho_H = \sigma(\sigma + \beta + 3)/(\sigma - \beta - 1)$ ($\approx 24.74$ for the classic
    $\sigma = 10, \beta = 8/3$) and saddle-foci (one stable real direction, an unstable spiral
    plane) above it, e.g. at the chaotic $\rho = 28$. For $\sigma \le \beta + 1$ there is no
    Hopf bifurcation: $C_\pm$ stay stable for every $\rho > 1$ (`rho_hopf` is then ``inf``).

    Args:
        sigma, rho, beta: scalars $\sigma > 0$, $\rho \ge 0$, $\beta > 0$ (the physical range,
            where the textbook facts below hold: $\beta < 0$ puts $C_\pm$ at $\sqrt{<0}$, and
            $\sigma < 0$ or $\rho < 0$ change the classes); the classic parameters default to
            $10, 28, 8/3$.

    Examples:
        At $\rho = 28 > \rho_H$, $C_+ = (6\sqrt2, 6\sqrt2, 27)$ is a saddle-focus:

        >>> lorenz = sdeml.dynamics.Lorenz()
        >>> round(float(lorenz.rho_hopf), 2)
        24.74
        >>> eq = sdeml.dynamics.find_equilibrium(lorenz, jnp.array([8.0, 8.0, 26.0]))
        >>> bool(jnp.allclose(eq.y, jnp.array([6 * 2**0.5, 6 * 2**0.5, 27.0]))), eq.label
        (True, 'saddle-focus')
        >>> lorenz.textbook_equilibria()[1]
        ('saddle', 'saddle-focus', 'saddle-focus')

    References:
        E. N. Lorenz, Deterministic nonperiodic flow, J. Atmos. Sci. 20 (1963).
        Strogatz, Nonlinear Dynamics and Chaos, 2nd ed., §9.2.
    """

    sigma: Float[Array, ""]
    rho: Float[Array, ""]
    beta: Float[Array, ""]
    dim: ClassVar[int] = 3

    def __init__(self, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
        self.sigma, self.rho, self.beta = _scalar(sigma), _scalar(rho), _scalar(beta)

    def __check_init__(self):
        check_positive("sigma", self.sigma)
        check_positive("rho", self.rho, allow_zero=True)  # rho < 0: the origin can be a spiral
        check_positive("beta", self.beta)

    def __call__(self, t, y, args=None):
        y = _state(self, y)
        x, yy, z = y[0], y[1], y[2]
        sigma, rho, beta = _like(y, self.sigma, self.rho, self.beta)
        return jnp.stack([sigma * (yy - x), x * (rho - z) - yy, x * yy - beta * z])

    @property
    def rho_hopf(self) -> Array:
        """$\\rho_H = \\sigma(\\sigma + \\beta + 3)/(\\sigma - \\beta - 1)$ for
        $\\sigma > \\beta + 1$; ``inf`` otherwise, where there is no Hopf bifurcation and
        $C_\\pm$ stay stable for every $\\rho > 1$ (the formula would be negative there)."""
        s, b = self.sigma, self.beta
        return jnp.where(s > b + 1, s * (s + b + 3) / (s - b - 1), jnp.inf)

    def textbook_equilibria(self):
        rho = float(self.rho)
        if rho < 1:
            return jnp.zeros((1, 3)), ("stable node",)
        if rho == 1:  # eigenvalues -(sigma + 1), 0, -beta: the pitchfork itself
            return jnp.zeros((1, 3)), ("non-hyperbolic",)
        c = jnp.sqrt(self.beta * (self.rho - 1))
        pts = jnp.stack(
            [jnp.zeros(3), jnp.stack([c, c, self.rho - 1]), jnp.stack([-c, -c, self.rho - 1])]
        )
        # C+- : the characteristic polynomial l^3 + p2 l^2 + p1 l + p0, with p2 = s + b + 1,
        # p1 = b(s + r), p0 = 2bs(r - 1), all positive for r > 1, has one negative real root.
        # Routh-Hurwitz: every root has Re < 0 iff p2 p1 > p0 (for s > b + 1 that is r < r_H;
        # for s <= b + 1 it always holds). The other two roots are a complex pair when the cubic
        # discriminant is negative, and real (nodes, or a saddle) otherwise.
        s_, b_ = float(self.sigma), float(self.beta)
        p2, p1, p0 = s_ + b_ + 1, b_ * (s_ + rho), 2 * b_ * s_ * (rho - 1)
        disc = 18 * p2 * p1 * p0 - 4 * p2**3 * p0 + p2**2 * p1**2 - 4 * p1**3 - 27 * p0**2
        if p2 * p1 == p0:  # a purely imaginary pair: the Hopf point itself
            cpm = "non-hyperbolic"
        elif disc >= 0:
            cpm = "stable node" if p2 * p1 > p0 else "saddle"
        else:
            cpm = "stable spiral" if p2 * p1 > p0 else "saddle-focus"
        return pts, ("saddle", cpm, cpm)
