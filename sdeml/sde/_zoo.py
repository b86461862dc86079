"""Analytic zoo: SDEs with exact solutions or exact moments, for tests and teaching."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, Float

from ..core._sde import AbstractSDE


def _expm1_ratio(x):
    r"""$(e^x - 1)/x$, with its limit 1 at $x = 0$ (value and gradient, 1/2, both finite).

    The variance of a linear SDE, $\sigma^2 (e^{2a\tau} - 1)/(2a)$, is $\sigma^2\tau$ times this
    at $x = 2a\tau$; written so, a rate $a = 0$ gives Brownian motion's $\sigma^2\tau$, not 0/0.
    """
    x = jnp.asarray(x)
    zero = x == 0
    safe = jnp.where(zero, jnp.ones_like(x), x)  # keeps the untaken branch's gradient finite
    return jnp.where(zero, 1 + x / 2, jnp.expm1(safe) / safe)


def _linear_noise_integral(a, sigma, ts, dw, dz):
    r"""$\sigma\int_{t_0}^{T} e^{a(T-s)}dW_s$ from fine increments, to $O(h^2)$ strong error.

    On each step $e^{a(T-s)} = e^{a(T-t_k)}(1 - a(s - t_k) + O(h^2))$ and
    $\int (s - t_k)\,dW_s = h\Delta W - \Delta Z$; without ``dz`` the midpoint weight is used
    ($O(h)$ error).
    """
    T = ts[-1]
    tk, h = ts[:-1], jnp.diff(ts)
    shape = (-1,) + (1,) * (dw.ndim - 1)
    w = jnp.exp(a * (T - tk)).reshape(shape)
    hk = h.reshape(shape)
    if dz is None:
        return sigma * jnp.sum(jnp.exp(a * (T - tk - h / 2)).reshape(shape) * dw, axis=0)
    return sigma * jnp.sum(w * (dw - a * (hk * dw - dz)), axis=0)


class BrownianMotion(AbstractSDE):
    r"""Scaled Brownian motion $dX = \sigma\,dW$ (additive noise), $X_t = X_0 + \sigma W_t$.

    Args:
        sigma: noise scale (scalar or broadcastable to the state).

    Examples:
        >>> from sdeml.sde import BrownianMotion, simulate
        >>> bm = BrownianMotion(sigma=0.5)
        >>> paths = simulate(bm, jnp.zeros(2), t1=4.0, n_steps=4, n_paths=20_000, key=jr.key(0))
        >>> paths.xs.shape
        (20000, 1, 2)
        >>> round(float(paths.xs.var()), 1), float(bm.variance(4.0, jnp.zeros(2))[0])  # sigma^2 t
        (1.0, 1.0)

    References:
        Øksendal (2003), ch. 2.
    """

    sigma: float | Float[Array, "..."] = 1.0
    noise: ClassVar[str] = "additive"
    brownian_dim: ClassVar[None] = None

    def drift(self, t, y, args):
        return jnp.zeros_like(y)

    def diffusion(self, t, y, args):
        return self.sigma * jnp.ones_like(y)

    def mean(self, t, x0, t0=0.0):
        """$E X_t = X_0$."""
        return jnp.asarray(x0) + 0.0 * (t - t0)

    def variance(self, t, x0, t0=0.0):
        r"""$\mathrm{Var}\,X_t = \sigma^2 (t - t_0)$."""
        return self.sigma**2 * (t - t0) * jnp.ones_like(jnp.asarray(x0))

    def exact_solution(self, x0, ts, dw, dz=None):
        """$X_T$ on the Brownian path given by the increments ``dw`` over the grid ``ts``."""
        return x0 + self.sigma * dw.sum(0)


class OrnsteinUhlenbeck(AbstractSDE):
    r"""Ornstein–Uhlenbeck process $dX = \theta(\mu - X)\,dt + \sigma\,dW$ (additive noise).

    $E X_t = \mu + (X_0 - \mu)e^{-\theta\tau}$,
    $\mathrm{Var}\,X_t = \sigma^2 (1 - e^{-2\theta\tau}) / (2\theta)$, $\tau = t - t_0$.

    Args:
        theta: mean-reversion rate (> 0 for a stationary law; 0 gives Brownian motion).
        mu: long-run mean.
        sigma: noise scale.

    Examples:
        >>> from sdeml.sde import OrnsteinUhlenbeck, simulate
        >>> ou = OrnsteinUhlenbeck(theta=2.0, mu=1.0, sigma=0.5)
        >>> paths = simulate(ou, jnp.zeros(4), n_steps=100, n_paths=5_000, method="sra1",
        ...                  key=jr.key(0))
        >>> x1 = paths.xs[:, -1]  # (5000, 4)
        >>> round(float(x1.mean()), 2), round(float(ou.mean(1.0, 0.0)), 2)  # 1 - e^{-2}
        (0.86, 0.86)
        >>> round(float(x1.var()), 3), round(float(ou.variance(1.0, 0.0)), 3)  # (1 - e^{-4}) / 16
        (0.061, 0.061)

    References:
        Uhlenbeck & Ornstein, On the theory of the Brownian motion, Phys. Rev. 36 (1930).
    """

    theta: float | Float[Array, "..."] = 1.0
    mu: float | Float[Array, "..."] = 0.0
    sigma: float | Float[Array, "..."] = 1.0
    noise: ClassVar[str] = "additive"
    brownian_dim: ClassVar[None] = None

    def drift(self, t, y, args):
        return self.theta * (self.mu - y)

    def diffusion(self, t, y, args):
        return self.sigma * jnp.ones_like(y)

    def mean(self, t, x0, t0=0.0):
        return self.mu + (x0 - self.mu) * jnp.exp(-self.theta * (t - t0))

    def variance(self, t, x0, t0=0.0):
        # expm1, not 1 - exp: in float32 at theta tau = 1e-6 the difference read 1.3 % high; as
        # tau (e^x - 1)/x so that theta = 0 gives Brownian motion's sigma^2 tau (was 0/0 = nan)
        tau = t - t0
        v = self.sigma**2 * tau * _expm1_ratio(-2 * self.theta * tau)
        return v * jnp.ones_like(jnp.asarray(x0))

    def exact_solution(self, x0, ts, dw, dz=None):
        r"""$X_T = \mu + (X_0-\mu)e^{-\theta\tau} + \sigma\int e^{-\theta(T-s)}dW_s$ on the given
        Brownian path; the integral from the fine increments to $O(h^2)$ (needs ``dz``)."""
        decay = jnp.exp(-self.theta * (ts[-1] - ts[0]))
        noise = _linear_noise_integral(-self.theta, self.sigma, ts, dw, dz)
        return self.mu + (x0 - self.mu) * decay + noise


class GeometricBrownianMotion(AbstractSDE):
    r"""Geometric Brownian motion $dX = \mu X\,dt + \sigma X\,dW$ (Itô, diagonal noise).

    $X_t = X_0 \exp((\mu - \sigma^2/2)\tau + \sigma W_\tau)$, $E X_t = X_0 e^{\mu\tau}$,
    $\mathrm{Var}\,X_t = X_0^2 e^{2\mu\tau}(e^{\sigma^2\tau} - 1)$.

    Args:
        mu: drift rate.
        sigma: volatility.

    Examples:
        >>> from sdeml.sde import GeometricBrownianMotion, simulate
        >>> gbm = GeometricBrownianMotion(mu=0.5, sigma=0.8)
        >>> paths = simulate(gbm, jnp.ones(1), method="milstein", n_steps=100, n_paths=20_000,
        ...                  key=jr.key(0))
        >>> round(float(paths.xs.mean()), 1), round(float(gbm.mean(1.0, 1.0)), 1)  # e^{1/2}
        (1.6, 1.6)

    References:
        Øksendal (2003), §5.1; Black & Scholes, J. Polit. Econ. 81 (1973).
    """

    mu: float | Float[Array, "..."] = 0.5
    sigma: float | Float[Array, "..."] = 0.8
    noise: ClassVar[str] = "diagonal"
    brownian_dim: ClassVar[None] = None

    def drift(self, t, y, args):
        return self.mu * y

    def diffusion(self, t, y, args):
        return self.sigma * y

    def mean(self, t, x0, t0=0.0):
        return x0 * jnp.exp(self.mu * (t - t0))

    def variance(self, t, x0, t0=0.0):
        tau = t - t0
        # expm1: in float32 at sigma^2 tau = 1e-8, exp(.) - 1 read 0
        return x0**2 * jnp.exp(2 * self.mu * tau) * jnp.expm1(self.sigma**2 * tau)

    def exact_solution(self, x0, ts, dw, dz=None):
        """Exact $X_T$ on the Brownian path given by ``dw``."""
        tau = ts[-1] - ts[0]
        return x0 * jnp.exp((self.mu - self.sigma**2 / 2) * tau + self.sigma * dw.sum(0))


class SineForcedSDE(AbstractSDE):
    r"""The textbook linear SDE $da = (\lambda a + A\sin\omega t)\,dt + \sigma\,dW$.

    Defaults give $da = (0.5a - 4\sin 10t)\,dt + 0.5\,dW$. With $\tau = t - t_0$ and
    $F(s) = e^{-\lambda s}(-\lambda\sin\omega s - \omega\cos\omega s)/(\lambda^2+\omega^2)$:
    $E a_t = e^{\lambda\tau}a_0 + A e^{\lambda t}(F(t) - F(t_0))$ (also the noise-free ODE
    solution), $\mathrm{Var}\,a_t = \sigma^2(e^{2\lambda\tau} - 1)/(2\lambda)$.

    Args:
        lam: $\lambda$, the growth rate.
        amp: $A$, the forcing amplitude.
        omega: $\omega$, the forcing frequency.
        sigma: $\sigma$, the noise scale.

    Examples:
        >>> from sdeml.sde import SineForcedSDE, simulate
        >>> sde = SineForcedSDE()
        >>> paths = simulate(sde, jnp.ones(()), n_steps=80, save_every=1, n_paths=10_000,
        ...                  key=jr.key(0))
        >>> paths.ts.shape, paths.xs.shape
        ((80,), (10000, 80))
        >>> bool(jnp.max(jnp.abs(paths.xs.mean(0) - sde.mean(paths.ts, 1.0))) < 0.05)  # E a_t
        True
        >>> round(float(paths.xs[:, -1].var()), 1), round(float(sde.variance(1.0, 1.0)), 1)
        (0.4, 0.4)

    References:
        Higham, SIAM Review 43(3), 2001; Kloeden & Platen (1992), §4.2 (linear SDEs).
    """

    lam: float | Float[Array, ""] = 0.5
    amp: float | Float[Array, ""] = -4.0
    omega: float | Float[Array, ""] = 10.0
    sigma: float | Float[Array, ""] = 0.5
    noise: ClassVar[str] = "additive"
    brownian_dim: ClassVar[None] = None

    def drift(self, t, y, args):
        return self.lam * y + self.amp * jnp.sin(self.omega * t)

    def diffusion(self, t, y, args):
        return self.sigma * jnp.ones_like(y)

    def _F(self, s):
        lam, om = self.lam, self.omega
        return (
            jnp.exp(-lam * s) * (-lam * jnp.sin(om * s) - om * jnp.cos(om * s)) / (lam**2 + om**2)
        )

    def mean(self, t, x0, t0=0.0):
        return jnp.exp(self.lam * (t - t0)) * x0 + self.amp * jnp.exp(self.lam * t) * (
            self._F(t) - self._F(t0)
        )

    def variance(self, t, x0, t0=0.0):
        tau = t - t0
        v = self.sigma**2 * tau * _expm1_ratio(2 * self.lam * tau)  # lam = 0: sigma^2 tau
        return v * jnp.ones_like(jnp.asarray(x0))

    def exact_solution(self, x0, ts, dw, dz=None):
        """$a_T$ on the given Brownian path (noise integral to $O(h^2)$ with ``dz``)."""
        return self.mean(ts[-1], x0, ts[0]) + _linear_noise_integral(
            self.lam, self.sigma, ts, dw, dz
        )
