"""Forward diffusion SDEs with linear drift: VP, sub-VP and VE (Song et al. 2021), and the
reverse-time SDE of a score; all are `sdeml.core.AbstractSDE`s, so the engine simulates them."""

import abc
import math
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from ..core import AbstractSDE
from ..core._checks import as_float as _as_float
from ..core._checks import check_positive, concrete_scalar
from ..core._normals import standard_normal

# (t, x) -> score. `t` is a float or a 0-d array (the engine passes arrays, direct calls may pass
# floats): Any, so that score functions annotated `t: Array` still fit.
ScoreFn = Callable[[Any, Array], Array]


class _StateDtype(eqx.Module):
    """``model(t, x)`` with its output cast to ``x``'s dtype.

    The samplers' one dtype rule: the state keeps the dtype the caller asked for (``dtype``,
    else ``x_T``'s), whatever dtype the model computes in, and the model's output is cast to it
    here, where it enters the update (a float32 network in a bfloat16 sampler made a
    `lax.scan` carry change dtype). A module holding the model as a field, not a closure:
    under `eqx.filter_jit` a closure's arrays would be static, baked in and retraced.
    """

    model: ScoreFn

    def __call__(self, t: Any, x: Array) -> Array:
        return _cast_like(self.model(t, x), x)


def _cast_like(out: ArrayLike, x: Array) -> Array:
    return jnp.asarray(out).astype(jnp.result_type(x))


def _param(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A constructor's scalar as a Python float: finite, > 0 (>= 0 with `allow_zero`), not a
    bool. ``float(v)`` read True as 1.0 and a string "0.1" as 0.1, and let inf through (an
    infinite beta_max or sigma_max gave NaN or infinite marginals at every t > 0)."""
    if concrete_scalar(value) is None or isinstance(value, str):
        raise ValueError(f"`{name}` must be a real number, got {value!r}")
    check_positive(name, value, allow_zero=allow_zero)
    return float(value)


def as_state_dtype(model: ScoreFn) -> ScoreFn:
    """`model` with its output cast to the state's dtype (`_StateDtype`; wrapped once)."""
    return model if isinstance(model, _StateDtype) else _StateDtype(model)


class AbstractDiffusionSDE(AbstractSDE):
    r"""A forward SDE with linear drift and state-independent (additive, diagonal) diffusion.

    $$dX_t = f(t)\,X_t\,dt + g(t)\,dW_t,\qquad t\in[0, T],$$

    an `AbstractSDE` with ``drift(t, y, args) = f(t) y`` and ``diffusion(t, y, args) = g(t)``
    (broadcast to `y`'s shape, ``noise="additive"``), whose marginal given $X_0 = x_0$ is
    $\mathcal N(\alpha(t)x_0, \sigma(t)^2 I)$. Subclasses give the scalar coefficients $f$
    (`drift_coef`) and $g$ (`diffusion_coef`), $\log\alpha$, $\sigma$, the prior's standard
    deviation and the inverse of the log-SNR $\lambda(t) = \log\alpha(t) - \log\sigma(t)$ (used by
    DPM-Solver).

    The reverse-time SDE (`reverse`) and the probability-flow ODE for a score
    $s(t, x)\approx\nabla\log p_t$:

    $$dX = [f X - g^2 s]\,dt + g\,d\bar W,\qquad \frac{dx}{dt} = f x - \tfrac12 g^2 s.$$

    Attributes:
        T: the end time $T > 0$ (a float).

    Examples:
        >>> from sdeml.diffusion import VPSDE
        >>> sde = VPSDE()                              # a concrete AbstractDiffusionSDE
        >>> a, s = sde.alpha(0.5), sde.sigma(0.5)      # X_t | x_0 ~ N(a x_0, s^2 I)
        >>> round(float(a**2 + s**2), 6)               # variance preserving
        1.0
        >>> round(float(sde.t_from_log_snr(sde.log_snr(0.3))), 6)  # lambda^{-1}(lambda(t)) = t
        0.3

    References:
        Song et al., Score-Based Generative Modeling through SDEs, ICLR 2021. arXiv:2011.13456
        Anderson, Reverse-time diffusion equation models, Stoch. Proc. Appl. 1982.
    """

    T: eqx.AbstractVar[float]

    def __check_init__(self):
        if not self.T > 0:
            raise ValueError(f"`T` must be positive, got {self.T}")

    noise: ClassVar[str] = "additive"
    brownian_dim: ClassVar[None] = None

    @abc.abstractmethod
    def drift_coef(self, t: ArrayLike) -> Array:
        r"""$f(t)$, with drift $f(t)\,x$."""

    @abc.abstractmethod
    def diffusion_coef(self, t: ArrayLike) -> Array:
        r"""$g(t)$, the scalar diffusion coefficient."""

    @abc.abstractmethod
    def log_alpha(self, t: ArrayLike) -> Array:
        r"""$\log\alpha(t)$, the log of the marginal mean's scale."""

    @abc.abstractmethod
    def sigma(self, t: ArrayLike) -> Array:
        r"""$\sigma(t)$, the marginal standard deviation."""

    @abc.abstractmethod
    def t_from_log_snr(self, lam: ArrayLike) -> Array:
        r"""The inverse of $\lambda(t) = \log\alpha(t) - \log\sigma(t)$."""

    @abc.abstractmethod
    def corrector_alpha(self, t: ArrayLike, dt: ArrayLike) -> Array:
        """The factor of the Langevin corrector's step size (1 except for VP, Song et al.)."""

    @property
    @abc.abstractmethod
    def prior_std(self) -> float:
        """Standard deviation of the Gaussian prior $p_T$ used to start sampling."""

    # -- the AbstractSDE interface -------------------------------------------------------------
    def drift(self, t: ArrayLike, y: Array, args: PyTree = None) -> Array:
        r"""$f(t)\,y$."""
        return self.drift_coef(t) * y

    def diffusion(self, t: ArrayLike, y: Array, args: PyTree = None) -> Array:
        r"""$g(t)$ broadcast to `y`'s shape (additive diagonal noise)."""
        return jnp.broadcast_to(self.diffusion_coef(t), jnp.shape(y)).astype(jnp.result_type(y))

    # -- derived quantities ------------------------------------------------------------------
    def alpha(self, t: ArrayLike) -> Array:
        return jnp.exp(self.log_alpha(t))

    def log_snr(self, t: ArrayLike) -> Array:
        r"""$\lambda(t) = \log\alpha(t) - \log\sigma(t)$ (half the log signal-to-noise ratio)."""
        return self.log_alpha(t) - jnp.log(self.sigma(t))

    def marginal(self, x0: Array, t: ArrayLike) -> tuple[Array, Array]:
        r"""Mean $\alpha(t)x_0$ and standard deviation $\sigma(t)$ of $X_t\mid X_0=x_0$."""
        return self.alpha(t) * x0, self.sigma(t)

    def transition(self, x_s: Array, s: ArrayLike, t: ArrayLike) -> tuple[Array, Array]:
        r"""Mean and standard deviation of the exact forward transition $X_t \mid X_s = x_s$.

        $$X_t\mid X_s \sim \mathcal N\Big(r\,x_s,\ \big(\sigma(t)^2 - r^2\sigma(s)^2\big) I\Big),
        \qquad r = \alpha(t)/\alpha(s),\quad s \le t,$$

        from the linear SDE's variation of constants (the noise added on $[s, t]$ is independent
        of $X_s$, and with $s = 0$ this is `marginal`).

        Args:
            x_s: the state at time `s`, any shape ``(...)``.
            s, t: scalar times with ``s <= t``.

        Returns:
            ``(mean, std)``: `mean` of `x_s`'s shape, `std` a scalar (the same for every
            coordinate).

        Examples:
            >>> from sdeml.diffusion import VPSDE
            >>> sde, x = VPSDE(), jnp.array([1.0, -2.0])
            >>> mean, std = sde.transition(x, 0.2, 0.5)
            >>> mean.shape, std.shape
            ((2,), ())
            >>> # the variances add up: sigma(t)^2 = r^2 sigma(s)^2 + std^2
            >>> r = sde.alpha(0.5) / sde.alpha(0.2)
            >>> bool(jnp.allclose(sde.sigma(0.5) ** 2, (r * sde.sigma(0.2)) ** 2 + std**2))
            True
            >>> bool(jnp.allclose(sde.transition(x, 0.0, 0.5)[0], sde.marginal(x, 0.5)[0]))
            True

        References:
            Song et al., ICLR 2021, appendix B (eq. (29)); Särkkä & Solin, Applied Stochastic
            Differential Equations, 2019, §6.1.
        """
        lo, hi = concrete_scalar(s), concrete_scalar(t)
        if lo is not None and hi is not None and lo > hi:
            # r > 1 and a variance clipped to 0: a silent backward "transition"
            raise ValueError(f"`transition` needs s <= t, got s={s}, t={t}")
        r = jnp.exp(self.log_alpha(t) - self.log_alpha(s))
        return r * x_s, jnp.sqrt(jnp.maximum(self._transition_var(s, t), 0.0))

    def _transition_var(self, s: ArrayLike, t: ArrayLike) -> Array:
        r"""$\sigma(t)^2 - (\alpha(t)/\alpha(s))^2\sigma(s)^2$; subclasses write it without the
        cancellation of the two squares when $s$ is near $t$."""
        r = jnp.exp(self.log_alpha(t) - self.log_alpha(s))
        return self.sigma(t) ** 2 - (r * self.sigma(s)) ** 2

    def perturb(self, x0: Array, t: ArrayLike, *, key: PRNGKeyArray) -> tuple[Array, Array]:
        r"""A draw $x_t = \alpha(t)x_0 + \sigma(t)z$ and the noise $z$."""
        z = standard_normal(key, jnp.shape(x0), jnp.result_type(x0))
        mean, std = self.marginal(x0, t)
        return mean + std * z, z

    def forward_sample(self, x_s: Array, s: ArrayLike, t: ArrayLike, *, key: PRNGKeyArray) -> Array:
        r"""A draw of $X_t \mid X_s = x_s$ from the exact transition (see `transition`)."""
        mean, std = self.transition(x_s, s, t)
        return mean + std * standard_normal(key, jnp.shape(x_s), jnp.result_type(x_s))

    def prior_sample(self, shape: tuple[int, ...], *, key: PRNGKeyArray, dtype=None) -> Array:
        r"""Draws from the prior $\mathcal N(0, \sigma_T^2 I)$ of the given shape."""
        return self.prior_std * standard_normal(key, shape, dtype)

    def prior_logp(self, x: ArrayLike) -> Float[Array, ""]:
        r"""$\log\mathcal N(x; 0, \sigma_T^2 I)$ summed over all entries of one sample `x`."""
        x = _as_float(x)  # a list or integer array: (x**2) failed on a list
        s = self.prior_std
        return -0.5 * jnp.sum(x**2) / s**2 - x.size * (math.log(s) + 0.5 * math.log(2 * math.pi))

    def reverse(self, score_fn: ScoreFn) -> "ReverseSDE":
        r"""The reverse-time SDE of this forward SDE for the score `score_fn`, as an
        `AbstractSDE` in the forward-running time $u = T - t$ (see `ReverseSDE`).

        Args:
            score_fn: ``score_fn(t, x)`` for one sample ``x`` of shape ``(d,)``.

        Returns:
            The `ReverseSDE` of this SDE and `score_fn`.

        Examples:
            >>> from sdeml.diffusion import VPSDE
            >>> sde = VPSDE()
            >>> rev = sde.reverse(lambda t, x: -x)  # the exact score of N(0, I) data under VP
            >>> type(rev).__name__
            'ReverseSDE'
            >>> # at u = 0 (t = T) its drift is g(T)^2 s - f(T) x = -(beta(T) / 2) x
            >>> round(float(rev.drift(0.0, jnp.ones(1))[0]), 6), -0.5 * float(sde.beta(1.0))
            (-10.0, -10.0)
        """
        return ReverseSDE(self, score_fn)

    def probability_flow(self, score_fn: ScoreFn) -> ScoreFn:
        r"""$(t, x) \mapsto f(t)x - \tfrac12 g(t)^2 s(t, x)$, the probability-flow ODE (the score
        cast to `x`'s dtype)."""
        return lambda t, x: (
            self.drift_coef(t) * x
            - 0.5 * self.diffusion_coef(t) ** 2 * _cast_like(score_fn(t, x), x)
        )

    def check_times(self, eps: float) -> None:
        """Raise a clear `ValueError` unless ``0 < eps < 1`` and ``eps < T`` (concrete `eps`:
        Python, NumPy or JAX scalars; a traced one passes)."""
        value = concrete_scalar(eps)
        if value is None:
            return
        eps = value
        if not 0 < eps < 1:
            raise ValueError(f"`eps` (the small-time cut-off) must be in (0, 1), got {eps}")
        if self.T <= eps:
            raise ValueError(f"`T` must be greater than `eps`, got T={self.T}, eps={eps}")


class ReverseSDE(AbstractSDE):
    r"""The reverse-time SDE of a forward diffusion SDE, in the forward-running time $u = T - t$.

    With $Y_u = X_{T-u}$ and the score $s(t, x)\approx\nabla\log p_t(x)$ (Anderson 1982),

    $$dY_u = -\big[f(T-u)\,Y_u - g(T-u)^2\,s(T-u, Y_u)\big]\,du + g(T-u)\,d\bar W_u,$$

    so $Y_0 \sim p_T$ and $Y_{T-\epsilon}\sim p_\epsilon$. Its Euler–Maruyama step on
    $u_i = i h$ is the reverse-diffusion step of Song et al.; `sdeml.simulate` integrates it with
    the engine's speed (paired normal draws, blocking, chunking).

    Args:
        forward: the forward SDE (VP, sub-VP, VE).
        score_fn: ``score_fn(t, x)`` for one sample ``x`` of shape ``(d,)`` (or any sample
            shape), in the forward SDE's time $t$; returns ``x``'s shape (cast to the state's
            dtype, so the state keeps its dtype whatever the model computes in).

    Examples:
        Sample 1-D data $\mathcal N(0, 0.5^2)$ with its exact score:

        >>> from sdeml.data import GaussianMixture
        >>> from sdeml.diffusion import MixtureScore, ReverseSDE, VPSDE
        >>> data = GaussianMixture(jnp.ones(1), jnp.zeros((1, 1)), jnp.array([0.5]))
        >>> sde = VPSDE()
        >>> rev = ReverseSDE(sde, MixtureScore(data, sde))  # or sde.reverse(score)
        >>> x_T = sde.prior_sample((1000, 1), key=jr.key(0))
        >>> paths = sdeml.simulate(rev, x_T, t1=1.0 - 1e-3, n_steps=100, n_paths=1000,
        ...                        x0_per_path=True, key=jr.key(1))
        >>> x_eps = paths.xs[:, -1]                          # (1000, 1): draws of p_eps
        >>> round(float(jnp.std(x_eps)), 1)                  # the data's standard deviation
        0.5

    References:
        Anderson, Stoch. Proc. Appl. 12(3), 1982; Song et al., ICLR 2021, eq. (6) and sec. 4.2.
    """

    forward: AbstractDiffusionSDE
    score_fn: ScoreFn

    noise: ClassVar[str] = "additive"
    brownian_dim: ClassVar[None] = None

    def drift(self, u: ArrayLike, y: Array, args: PyTree = None) -> Array:
        r"""$-[f(t)y - g(t)^2 s(t, y)]$ at $t = T - u$."""
        t = self.forward.T - u
        g = self.forward.diffusion_coef(t)
        return g**2 * _cast_like(self.score_fn(t, y), y) - self.forward.drift_coef(t) * y

    def diffusion(self, u: ArrayLike, y: Array, args: PyTree = None) -> Array:
        r"""$g(T - u)$ broadcast to `y`'s shape."""
        return self.forward.diffusion(self.forward.T - u, y, args)


class _AbstractLinearBetaSDE(AbstractDiffusionSDE):
    r"""The linear noise schedule shared by VP and sub-VP.

    $\beta(t) = \beta_{\min} + t(\beta_{\max}-\beta_{\min})$,
    $B(t) = \int_0^t\beta = \beta_{\min}t + \tfrac12(\beta_{\max}-\beta_{\min})t^2$, drift
    coefficient $f = -\tfrac12\beta$, $\log\alpha = -\tfrac12 B$ (both SDEs have the same mean);
    `t_from_log_snr` inverts $B$ after the subclass maps $\lambda$ to $B$ (`int_beta_from_log_snr`).
    """

    beta_min: eqx.AbstractVar[float]
    beta_max: eqx.AbstractVar[float]

    def __check_init__(self):
        if not 0 <= self.beta_min < self.beta_max:
            raise ValueError(
                f"need 0 <= beta_min < beta_max, got beta_min={self.beta_min}, "
                f"beta_max={self.beta_max}"
            )

    @abc.abstractmethod
    def int_beta_from_log_snr(self, lam: ArrayLike) -> Array:
        r"""$B(t)$ at the time where the log-SNR is $\lambda$."""

    def beta(self, t: ArrayLike) -> Array:
        return self.beta_min + jnp.asarray(t) * (self.beta_max - self.beta_min)

    def int_beta(self, t: ArrayLike) -> Array:
        t = jnp.asarray(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def _int_beta_between(self, s: ArrayLike, t: ArrayLike) -> Array:
        r"""$B(t) - B(s) = (t - s)\,[\beta_{\min} + \tfrac12(\beta_{\max}-\beta_{\min})(t + s)]$,
        without subtracting the two integrals."""
        s, t = jnp.asarray(s), jnp.asarray(t)
        return (t - s) * (self.beta_min + 0.5 * (self.beta_max - self.beta_min) * (t + s))

    def drift_coef(self, t):
        return -0.5 * self.beta(t)

    def log_alpha(self, t):
        return -0.5 * self.int_beta(t)

    def t_from_log_snr(self, lam):
        # the t >= 0 with beta_min t + (beta_max - beta_min) t^2 / 2 = c: a stable quadratic root
        c = self.int_beta_from_log_snr(lam)
        a = 0.5 * (self.beta_max - self.beta_min)
        den = self.beta_min + jnp.sqrt(self.beta_min**2 + 4.0 * a * c)
        # c = 0 (t = 0, an infinite log-SNR) with beta_min = 0 made 0/0 = NaN
        return jnp.where(den > 0, 2.0 * c / jnp.where(den > 0, den, 1.0), 0.0)


class VPSDE(_AbstractLinearBetaSDE):
    r"""Variance-preserving SDE $dX = -\tfrac12\beta(t)X\,dt + \sqrt{\beta(t)}\,dW$.

    $\beta(t) = \beta_{\min} + t(\beta_{\max}-\beta_{\min})$ (with $T=1$ the DDPM schedule),
    $\log\alpha(t) = -\tfrac12\int_0^t\beta$, $\sigma(t)^2 = 1-\alpha(t)^2$,
    prior $\mathcal N(0, I)$.

    Args:
        beta_min, beta_max: $\beta(0)$ and $\beta(1)$, ``0 <= beta_min < beta_max``.
        T: the end time (> 0).

    Examples:
        >>> from sdeml.diffusion import VPSDE
        >>> vp = VPSDE(0.1, 20.0)
        >>> mean, std = vp.marginal(jnp.ones(2), 0.5)
        >>> # log alpha(1/2) = -(beta_min / 2 + (beta_max - beta_min) / 8) / 2
        >>> bool(jnp.allclose(mean, jnp.exp(-0.5 * (0.05 + 19.9 / 8))))
        True
        >>> round(float(mean[0] ** 2 + std**2), 6)            # alpha^2 + sigma^2 = 1
        1.0

    References:
        Song et al., ICLR 2021, eq. (11). Ho et al., DDPM, NeurIPS 2020.
    """

    beta_min: float = eqx.field(static=True)
    beta_max: float = eqx.field(static=True)
    T: float = eqx.field(static=True)

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0):
        self.beta_min = _param("beta_min", beta_min, allow_zero=True)
        self.beta_max, self.T = _param("beta_max", beta_max), _param("T", T)

    def diffusion_coef(self, t):
        return jnp.sqrt(self.beta(t))

    def sigma(self, t):
        return jnp.sqrt(-jnp.expm1(-self.int_beta(t)))

    def int_beta_from_log_snr(self, lam):
        return jnp.logaddexp(0.0, -2.0 * jnp.asarray(lam))  # B = log(1 + e^{-2 lam})

    def _transition_var(self, s, t):
        # 1 - (alpha_t / alpha_s)^2 = 1 - e^{-(B(t) - B(s))}: the difference of the squares
        # lost all but ~1e-3 of its digits in float32 for t - s = 1e-6
        return -jnp.expm1(-self._int_beta_between(s, t))

    @property
    def prior_std(self) -> float:
        return 1.0

    def corrector_alpha(self, t, dt):
        # score_sde's discrete alpha_i = 1 - beta_i (beta_i = beta(t) dt) as exp(-beta(t) dt):
        # equal to first order, and positive for coarse grids (10 steps: 1 - beta h = -1, a
        # negative Langevin step and NaN samples)
        return jnp.exp(-self.beta(t) * dt)


class SubVPSDE(_AbstractLinearBetaSDE):
    r"""Sub-VP SDE $dX = -\tfrac12\beta(t)X\,dt + \sqrt{\beta(t)(1-e^{-2\int_0^t\beta})}\,dW$.

    Same mean as VP; $\sigma(t) = 1 - e^{-\int_0^t\beta}$ (below VP's at every $t$). Prior
    $\mathcal N(0, I)$.

    Args:
        beta_min, beta_max: $\beta(0)$ and $\beta(1)$, ``0 <= beta_min < beta_max``.
        T: the end time (> 0).

    Examples:
        >>> from sdeml.diffusion import SubVPSDE, VPSDE
        >>> sub = SubVPSDE(0.1, 20.0)
        >>> round(float(sub.sigma(0.5)), 4), round(float(VPSDE(0.1, 20.0).sigma(0.5)), 4)
        (0.9209, 0.9597)
        >>> bool(jnp.allclose(sub.sigma(0.5), 1 - jnp.exp(-sub.int_beta(0.5))))
        True

    References:
        Song et al., ICLR 2021, eq. (29) and appendix C.
    """

    beta_min: float = eqx.field(static=True)
    beta_max: float = eqx.field(static=True)
    T: float = eqx.field(static=True)

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0):
        self.beta_min = _param("beta_min", beta_min, allow_zero=True)
        self.beta_max, self.T = _param("beta_max", beta_max), _param("T", T)

    def diffusion_coef(self, t):
        return jnp.sqrt(self.beta(t) * -jnp.expm1(-2.0 * self.int_beta(t)))

    def sigma(self, t):
        return -jnp.expm1(-self.int_beta(t))

    def int_beta_from_log_snr(self, lam):
        # sigma = 1 - alpha^2 and lam = log alpha - log sigma  =>  sigma = 2 / (1 + sqrt(1 + 4
        # e^{2 lam})), and B = -log(1 - sigma) = -2 log alpha = -2 (lam + log sigma). Small t
        # (sigma < 1/2) through log1p(-sigma): the log alpha form cancelled near alpha = 1
        # (float32: t = 1e-3 came back as 1.0056e-3). Each exponential is taken of a
        # non-positive argument, so neither branch overflows.
        lam = jnp.asarray(lam)
        u = jnp.exp(-jnp.maximum(lam, 0.0))  # e^{-lam} for lam > 0
        root_u = jnp.sqrt(u * u + 4.0)
        v = jnp.exp(2.0 * jnp.minimum(lam, 0.0))  # e^{2 lam} for lam <= 0
        root_v = jnp.sqrt(1.0 + 4.0 * v)
        high = lam > 0
        sigma = jnp.where(high, 2.0 * u / (u + root_u), 2.0 / (1.0 + root_v))
        log_sigma = jnp.where(
            high,
            math.log(2.0) - jnp.maximum(lam, 0.0) - jnp.log(u + root_u),
            -jnp.log1p(root_v) + math.log(2.0),
        )
        small = sigma < 0.5
        return jnp.where(small, -jnp.log1p(-jnp.where(small, sigma, 0.0)), -2.0 * (lam + log_sigma))

    def _transition_var(self, s, t):
        # (1 - e^{-B_t})^2 - e^{-(B_t - B_s)} (1 - e^{-B_s})^2 = (1 - e^{-(B_t - B_s)})
        # (1 - e^{-(B_t + B_s)}): a product, no cancellation as s -> t
        d = self._int_beta_between(s, t)
        return jnp.expm1(-d) * jnp.expm1(-(self.int_beta(s) + self.int_beta(t)))

    @property
    def prior_std(self) -> float:
        return 1.0

    def corrector_alpha(self, t, dt):
        return jnp.ones_like(jnp.asarray(t))


class VESDE(AbstractDiffusionSDE):
    r"""Variance-exploding SDE $dX = \sqrt{d[\varsigma(t)^2]/dt}\,dW$, $\varsigma(t) =
    \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^{t/T}$.

    $\alpha = 1$; the marginal standard deviation is the exact
    $\sigma(t) = \sqrt{\varsigma(t)^2 - \sigma_{\min}^2}$ (so $\sigma(0) = 0$ and the mixture
    marginals are exact); prior $\mathcal N(0, \sigma(T)^2 I)$. Pick $\sigma_{\max}$ about the
    largest distance between data points (Song & Ermon 2020, technique 1).

    Args:
        sigma_min, sigma_max: ``0 < sigma_min < sigma_max``.
        T: the end time (> 0).

    Examples:
        >>> from sdeml.diffusion import VESDE
        >>> ve = VESDE(0.01, 10.0)
        >>> float(ve.sigma(0.0)), round(float(ve.sigma(1.0)), 4)   # sqrt(10^2 - 0.01^2)
        (0.0, 10.0)
        >>> round(ve.prior_std, 4), float(ve.alpha(0.5))
        (10.0, 1.0)

    References:
        Song et al., ICLR 2021, eq. (9). Song & Ermon, Improved Techniques for Training
        Score-Based Generative Models, NeurIPS 2020.
    """

    sigma_min: float = eqx.field(static=True)
    sigma_max: float = eqx.field(static=True)
    T: float = eqx.field(static=True)

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0, T: float = 1.0):
        self.sigma_min = _param("sigma_min", sigma_min)
        self.sigma_max, self.T = _param("sigma_max", sigma_max), _param("T", T)

    def __check_init__(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}"
            )

    @property
    def _log_ratio(self) -> float:
        return math.log(self.sigma_max / self.sigma_min) / self.T

    def drift_coef(self, t):
        return jnp.zeros_like(_as_float(t))

    def diffusion_coef(self, t):
        r = self._log_ratio
        return self.sigma_min * jnp.exp(r * jnp.asarray(t)) * math.sqrt(2.0 * r)

    def log_alpha(self, t):
        return jnp.zeros_like(_as_float(t))

    def sigma(self, t):
        return self.sigma_min * jnp.sqrt(jnp.expm1(2.0 * self._log_ratio * jnp.asarray(t)))

    def _transition_var(self, s, t):
        # varsigma(t)^2 - varsigma(s)^2 = sigma_min^2 e^{2 r s} (e^{2 r (t - s)} - 1)
        s, t = jnp.asarray(s), jnp.asarray(t)
        r = self._log_ratio
        return self.sigma_min**2 * jnp.exp(2.0 * r * s) * jnp.expm1(2.0 * r * (t - s))

    def t_from_log_snr(self, lam):
        s2 = jnp.exp(-2.0 * jnp.asarray(lam)) / self.sigma_min**2
        return jnp.log1p(s2) / (2.0 * self._log_ratio)

    @property
    def prior_std(self) -> float:
        return self.sigma_min * math.sqrt(math.expm1(2.0 * self._log_ratio * self.T))

    def corrector_alpha(self, t, dt):
        return jnp.ones_like(jnp.asarray(t))


SDES: dict[str, type[AbstractDiffusionSDE]] = {"vp": VPSDE, "subvp": SubVPSDE, "ve": VESDE}


def get_sde(name: str, **kwargs) -> AbstractDiffusionSDE:
    """Build a forward SDE by name: ``vp``, ``subvp`` or ``ve`` (keyword arguments forwarded).

    Args:
        name: a key of `SDES`: ``"vp"``, ``"subvp"`` or ``"ve"``.
        **kwargs: forwarded to the class (`VPSDE`, `SubVPSDE`, `VESDE`).

    Returns:
        The forward SDE, an `AbstractDiffusionSDE`.

    Examples:
        >>> from sdeml.diffusion import get_sde
        >>> get_sde("ve", sigma_min=0.01, sigma_max=5.0)
        VESDE(sigma_min=0.01, sigma_max=5.0, T=1.0)
        >>> get_sde("vp").beta_max
        20.0
    """
    if name not in SDES:
        raise ValueError(f"unknown SDE {name!r}; valid: {', '.join(SDES)}")
    return SDES[name](**kwargs)
