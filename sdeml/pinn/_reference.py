"""Reference solutions of viscous Burgers on $[-1, 1]$ computed in the library, two ways.

`burgers_cole_hopf` evaluates the Cole–Hopf integral representation by quadrature; it is the
reference PINN errors are measured against. `burgers_spectral` is an independent check: a Fourier
pseudo-spectral discretisation integrated by the exponential time differencing scheme ETDRK4. The
two share nothing but the equation, so their agreement (tested to 1e-8) validates both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ..core._checks import check_int, check_positive_int, concrete_scalar


def _check_positive_number(name: str, value: object) -> float:
    """`value` as a float, or `ValueError` unless it is a finite real number > 0: a Python or
    NumPy scalar or a concrete 0-d array (``np.float32(0.1)`` was refused, ``True`` read as 1)."""
    v = concrete_scalar(value)  # None when traced or not a real scalar
    if v is None or np.asarray(value).dtype == bool or not (math.isfinite(v) and v > 0):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}")
    return v


def _check_nu(nu: float) -> float:
    return _check_positive_number("nu", nu)


def cole_hopf_window(nu: float) -> float:
    r"""Half-width $Z$ of the quadrature window in $z = \eta / \sqrt{4\nu t}$.

    The exponent of the integrand is $-z^2 - \cos(\pi y)/(2\pi\nu)$, whose second part spans
    $1/(\pi\nu)$; beyond $z^2 = 1/(\pi\nu) + 60$ every term is below $e^{-60} \approx 10^{-26}$
    of the largest one.
    """
    return math.sqrt(1.0 / (math.pi * _check_nu(nu)) + 60.0)


def burgers_cole_hopf(
    t: Float[ArrayLike, "..."],
    x: Float[ArrayLike, "..."],
    nu: float,
    *,
    n_nodes: int = 801,
) -> Float[Array, "..."]:
    r"""Viscous Burgers with $u(0, x) = -\sin(\pi x)$ by the Cole–Hopf integral.

    $u_t + u u_x = \nu u_{xx}$ becomes the heat equation for $\phi$ under $u = -2\nu\phi_x/\phi$;
    with $\phi(0, y) = \exp(-\cos(\pi y) / (2\pi\nu))$ and the heat kernel,

    $$u(t, x) = -\frac{\int \sin\pi(x - \eta)\, f(x - \eta)\, e^{-\eta^2/4\nu t}\, d\eta}
    {\int f(x - \eta)\, e^{-\eta^2/4\nu t}\, d\eta},\qquad f(y) = e^{-\cos(\pi y)/(2\pi\nu)}.$$

    The solution is odd and 2-periodic, so $u(t, \pm 1) = 0$. With $\eta = \sqrt{4\nu t}\,z$ both
    integrals are trapezoidal sums over $z \in [-Z, Z]$ (`cole_hopf_window`); the integrand is
    smooth and negligible at $\pm Z$, so the sums converge geometrically in `n_nodes`. Every
    weight is taken relative to the largest exponent (log-sum-exp), so nothing overflows even
    where $f$ spans $e^{\pm 1/(2\pi\nu)}$. At $t = 0$ the formula gives the initial data.

    Args:
        t, x: times in $[0, \infty)$ (a negative time gives NaN) and positions, broadcast
            together; traceable (jit, vmap and autodiff go through the quadrature).
        nu: the viscosity, > 0 (Raissi et al. take $0.01/\pi$).
        n_nodes: quadrature nodes; for $\nu = 0.01/\pi$, $t \le 1$ 401 nodes already agree
            with 1601 to 1e-15 (measured), the default leaves room for smaller $\nu$.

    Returns:
        $u(t, x)$ with the broadcast shape of `t` and `x`, in the default float dtype (use
        float64: ``jax.config.update("jax_enable_x64", True)``).

    Examples:
        >>> import math
        >>> from sdeml.pinn import burgers_cole_hopf
        >>> nu, x = 0.01 / math.pi, jnp.linspace(-1.0, 1.0, 9)
        >>> bool(jnp.allclose(burgers_cole_hopf(0.0, x, nu), -jnp.sin(jnp.pi * x), atol=1e-12))
        True
        >>> u = burgers_cole_hopf(jnp.array([[0.25], [1.0]]), x, nu)  # broadcast: (2, 1), (9,)
        >>> u.shape, bool(jnp.all(jnp.abs(u[:, [0, -1]]) < 1e-12))  # u(t, +-1) = 0
        ((2, 9), True)
        >>> bool(jnp.allclose(u, -u[:, ::-1], atol=1e-12))  # odd in x
        True

    References:
        Cole, On a quasi-linear parabolic equation occurring in aerodynamics, Q. Appl. Math. 9
        (1951); Hopf, Comm. Pure Appl. Math. 3 (1950). Basdevant et al., Spectral and finite
        difference solutions of the Burgers equation, Comput. Fluids 14 (1986).
    """
    nu = _check_nu(nu)
    n_nodes = check_int("n_nodes", n_nodes, 3)  # 100.5 failed inside jnp.linspace
    z_max = cole_hopf_window(nu)
    z = jnp.linspace(-z_max, z_max, n_nodes)  # trapezoid: end weights are ~e^-60, dropped
    t, x = jnp.broadcast_arrays(jnp.asarray(t, z.dtype), jnp.asarray(x, z.dtype))
    a = 1.0 / (2.0 * math.pi * nu)

    def one(tt: Array, xx: Array) -> Array:
        y = xx - jnp.sqrt(4.0 * nu * tt) * z
        log_w = -(z**2) - a * jnp.cos(jnp.pi * y)
        w = jnp.exp(log_w - jnp.max(log_w))
        return -jnp.sum(jnp.sin(jnp.pi * y) * w) / jnp.sum(w)

    flat = jax.lax.map(lambda p: one(p[0], p[1]), (t.ravel(), x.ravel()), batch_size=256)
    return flat.reshape(t.shape)


def _etdrk4_coefficients(lin: np.ndarray, dt: float, n_contour: int = 64) -> tuple[np.ndarray, ...]:
    """The ETDRK4 weights for the diagonal linear part `lin`, by contour integrals.

    phi-functions evaluated directly cancel catastrophically for small ``dt * lin``; averaging
    them over a circle of radius 1 around each ``dt * lin`` (Kassam & Trefethen) avoids that.
    """
    h = dt * lin
    roots = np.exp(1j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)
    lr = h[:, None] + roots[None, :]
    e = np.exp(h)
    e2 = np.exp(h / 2)
    q = dt * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
    f1 = dt * np.real(np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr**2)) / lr**3, axis=1))
    f2 = dt * np.real(np.mean((2 + lr + np.exp(lr) * (-2 + lr)) / lr**3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * lr - lr**2 + np.exp(lr) * (4 - lr)) / lr**3, axis=1))
    return e, e2, q, f1, f2, f3


def burgers_spectral(
    nu: float,
    times: Sequence[float],
    *,
    n_x: int = 2048,
    n_steps: int = 4000,
    t1: float | None = None,
    initial: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[Float[Array, " n_x"], Float[Array, "n_times n_x"]]:
    r"""Viscous Burgers on the periodic interval $[-1, 1)$ by Fourier collocation and ETDRK4.

    $\hat u_t = -\nu k^2 \hat u - \tfrac12 i k\,\widehat{u^2}$: the stiff diffusion is integrated
    exactly (exponential time differencing), the advection by a fourth-order Runge–Kutta stage
    structure; products are formed on the grid. A second, independent solution to check
    `burgers_cole_hopf` against; for $u(0, x) = -\sin\pi x$ the periodic solution is the
    Dirichlet one ($u(t, \pm1) = 0$ by symmetry).

    Args:
        nu: the viscosity, > 0.
        times: output times in $[0, t_1]$; each is rounded to the nearest time step.
        n_x: grid points (even); the front of width $\sim\nu$ needs $\gtrsim 4/\nu$ of them.
        n_steps: time steps over $[0, t_1]$.
        t1: the final time (default: the largest of `times`).
        initial: $u(0, x)$ as a NumPy function (default $-\sin\pi x$).

    Returns:
        The grid $x_j = -1 + 2j/n_x$, shape ``(n_x,)``, and $u$ at each requested time, shape
        ``(len(times), n_x)``.

    Examples:
        Against the Cole–Hopf reference, at a viscosity the grid resolves:

        >>> import math
        >>> from sdeml.pinn import burgers_cole_hopf, burgers_spectral
        >>> nu = 0.1 / math.pi
        >>> x, us = burgers_spectral(nu, [0.0, 0.5], n_x=256, n_steps=500)
        >>> x.shape, us.shape
        ((256,), (2, 256))
        >>> err = jnp.max(jnp.abs(us[1] - burgers_cole_hopf(0.5, x, nu)))
        >>> bool(err < 1e-8)
        True

    References:
        Cox & Matthews, Exponential time differencing for stiff systems, J. Comput. Phys. 176
        (2002). Kassam & Trefethen, Fourth-order time-stepping for stiff PDEs, SIAM J. Sci.
        Comput. 26 (2005).
    """
    nu = _check_nu(nu)
    n_x = check_positive_int("n_x", n_x)
    if n_x % 2:
        raise ValueError(f"`n_x` must be a positive even number, got {n_x}")
    n_steps = check_positive_int("n_steps", n_steps)  # 2.5 ran with dt = t1 / 2.5
    times = [float(s) for s in times]
    if not times:
        raise ValueError("`times` must not be empty")
    t1 = max(times) if t1 is None else float(t1)
    # NaN passed the comparisons below and failed later in `round` ("cannot convert float NaN")
    if not all(math.isfinite(s) for s in [*times, t1]):
        raise ValueError(f"`times` and `t1` must be finite, got {times}, t1={t1}")
    if t1 <= 0 or min(times) < 0 or max(times) > t1:
        raise ValueError(f"`times` must lie in [0, t1] with t1 > 0, got {times}, t1={t1}")
    dt = t1 / n_steps
    x = -1.0 + 2.0 * np.arange(n_x) / n_x
    k = np.pi * np.fft.rfftfreq(n_x, d=1.0 / n_x)  # wavenumbers of a period-2 domain
    lin = -nu * k**2
    # complex coefficients: products with the (complex) Fourier coefficients stay one dtype
    e, e2, q, f1, f2, f3 = (
        jnp.asarray(c.astype(np.complex128)) for c in _etdrk4_coefficients(lin, dt)
    )
    g = jnp.asarray(-0.5j * k)
    u0 = (-np.sin(np.pi * x)) if initial is None else np.asarray(initial(x), float)
    if u0.shape != (n_x,):
        raise ValueError(f"`initial` must return shape ({n_x},) on the grid, got {u0.shape}")

    def nonlin(v: Array) -> Array:
        return g * jnp.fft.rfft(jnp.fft.irfft(v, n=n_x) ** 2)

    def step(v: Array, _: None) -> tuple[Array, Array]:
        nv = nonlin(v)
        a = e2 * v + q * nv
        na = nonlin(a)
        b = e2 * v + q * na
        nb = nonlin(b)
        c = e2 * a + q * (2 * nb - nv)
        nc = nonlin(c)
        v = e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
        return v, jnp.fft.irfft(v, n=n_x)

    v0 = jnp.fft.rfft(jnp.asarray(u0))
    _, us = jax.lax.scan(step, v0, None, length=n_steps)
    us = jnp.concatenate([jnp.asarray(u0)[None], us])
    idx = jnp.asarray([round(s / dt) for s in times])
    return jnp.asarray(x), us[idx]
