"""2-D toy distributions, each drawn i.i.d. on the fly from a PRNG key.

Every sampler here draws each point independently (label, angle, position all random). That
matters for two-sample metrics: scikit-learn's ``make_moons`` places points at evenly spaced
angles with an exact half/half split, which is not an i.i.d. sample and makes two-sample floors
several times too low (issue #7).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ..core._checks import check_float_dtype, check_positive, check_positive_int
from ..core._normals import standard_normal
from ._mixture import GaussianMixture


def _dtype(dtype):
    return check_float_dtype(dtype)  # an integer dtype is refused with a message naming `dtype`


def _noise(noise, dt) -> Array:
    """The noise scale, a finite number >= 0 (a negative one had been accepted silently), in
    the points' dtype (a NumPy float64 scale had made float32 points float64)."""
    check_positive("noise", noise, allow_zero=True)
    return jnp.asarray(noise, dt)


def _check_n(n: int) -> int:
    return check_positive_int("n", n)  # NumPy integers too, as a Python int


def eight_gaussians_mixture(
    radius: float | int = 2.0, std: float | int = 0.2, dtype=None
) -> GaussianMixture:
    r"""The 8-Gaussians toy as an exact `GaussianMixture`.

    $$p(x) = \tfrac18\sum_{k=0}^{7}\mathcal N\big(x;\ r(\cos\tfrac{k\pi}{4}, \sin\tfrac{k\pi}{4}),
    s^2 I\big).$$

    Args:
        radius: $r$, the radius of the circle of means.
        std: $s$, the standard deviation of each component.
        dtype: float dtype of the parameters (default: JAX's default float).

    Returns:
        A `GaussianMixture` with 8 equal weights, means ``(8, 2)``.

    Examples:
        >>> from sdeml.data import eight_gaussians_mixture
        >>> gm = eight_gaussians_mixture()
        >>> gm.means.shape, gm.sample(100, key=jr.key(0)).shape
        ((8, 2), (100, 2))
        >>> # at a mean, the other components are negligible: log(1 / (8 * 2 pi s^2)) = -0.6984
        >>> round(float(gm.log_prob(jnp.array([2.0, 0.0]))), 4)
        -0.6984

    References:
        Grathwohl et al., FFJORD, ICLR 2019 (the toy suite). arXiv:1810.01367
    """
    dt = _dtype(dtype)
    check_positive("radius", radius, allow_zero=True)
    check_positive("std", std)  # checked here: the cast below read True as 1
    ang = jnp.arange(8, dtype=dt) * (math.pi / 4)
    means = jnp.asarray(radius, dt) * jnp.stack([jnp.cos(ang), jnp.sin(ang)], axis=1)
    return GaussianMixture(jnp.ones(8, dt), means, jnp.full((8,), std, dt))


def gaussian_mixture_2d(dtype=None) -> GaussianMixture:
    r"""A fixed, deliberately irregular 2-D mixture (unequal weights, anisotropic components).

    $$p(x) = \sum_{k=1}^3 w_k\,\mathcal N(x; \mu_k, \mathrm{diag}(s_k^2)),\quad
    w = (0.5, 0.3, 0.2).$$

    with means $\mu = ((-1.5, 0), (1, 1), (1, -1.5))$ and standard deviations
    $s = ((0.3, 0.6), (0.5, 0.25), (0.4, 0.4))$. Used where the exact density and score must be
    known (tests, likelihood checks).

    Args:
        dtype: float dtype of the parameters (default: JAX's default float).

    Returns:
        A `GaussianMixture` with 3 components in 2-D.

    Examples:
        >>> from sdeml.data import gaussian_mixture_2d
        >>> gm = gaussian_mixture_2d()
        >>> g = jnp.linspace(-5.0, 5.0, 201)  # the density integrates to 1 on a grid
        >>> grid = jnp.stack(jnp.meshgrid(g, g), -1).reshape(-1, 2)
        >>> round(float(jnp.exp(jax.vmap(gm.log_prob)(grid)).sum() * (g[1] - g[0]) ** 2), 4)
        1.0
    """
    dt = _dtype(dtype)
    w = jnp.array([0.5, 0.3, 0.2], dt)
    mu = jnp.array([[-1.5, 0.0], [1.0, 1.0], [1.0, -1.5]], dt)
    s = jnp.array([[0.3, 0.6], [0.5, 0.25], [0.4, 0.4]], dt)
    return GaussianMixture(w, mu, s)


def eight_gaussians(
    n: int, *, key: PRNGKeyArray, radius: float | int = 2.0, std: float | int = 0.2, dtype=None
) -> Float[Array, "n 2"]:
    r"""`n` i.i.d. points of the 8-Gaussians toy (see `eight_gaussians_mixture`).

    Args:
        n: number of points.
        key: PRNG key.
        radius: the radius of the circle of the 8 means.
        std: the standard deviation of each component.
        dtype: float dtype (default: JAX's default float).

    Returns:
        Points of shape ``(n, 2)``.

    Examples:
        >>> from sdeml.data import eight_gaussians
        >>> x = eight_gaussians(512, key=jr.key(0))
        >>> x.shape, round(float(jnp.linalg.norm(x, axis=1).mean()), 1)  # on the circle r = 2
        ((512, 2), 2.0)

    References:
        Grathwohl et al., FFJORD, ICLR 2019 (the toy suite). arXiv:1810.01367
    """
    n = _check_n(n)
    return eight_gaussians_mixture(radius, std, dtype).sample(n, key=key)


def two_moons(
    n: int, *, key: PRNGKeyArray, noise: float | int = 0.1, dtype=None
) -> Float[Array, "n 2"]:
    r"""`n` i.i.d. points of the two-moons toy.

    Each point picks a moon with probability 1/2 and an angle $\theta\sim U[0,\pi]$:
    upper moon $(\cos\theta, \sin\theta)$, lower moon $(1-\cos\theta, \tfrac12-\sin\theta)$;
    then isotropic noise $\mathcal N(0, \text{noise}^2)$ is added and the result is centred and
    scaled by 2 (so the support is roughly $[-3, 3]\times[-1.5, 1.5]$, with mean zero).

    Args:
        n: number of points.
        key: PRNG key.
        noise: the standard deviation of the noise, before the scaling by 2.
        dtype: float dtype (default: JAX's default float).

    Returns:
        Points of shape ``(n, 2)``.

    Examples:
        >>> from sdeml.data import two_moons
        >>> x = two_moons(1000, key=jr.key(0))
        >>> x.shape, bool(jnp.all(jnp.abs(x.mean(0)) < 0.1))  # centred
        ((1000, 2), True)

    References:
        scikit-learn ``make_moons`` (same shape; here the angle and moon are random).
    """
    n = _check_n(n)
    dt = _dtype(dtype)
    kl, ka, kn = jr.split(key, 3)
    lower = jr.bernoulli(kl, 0.5, (n,))
    th = jr.uniform(ka, (n,), dt, 0.0, math.pi)
    x = jnp.where(lower, 1.0 - jnp.cos(th), jnp.cos(th))
    y = jnp.where(lower, 0.5 - jnp.sin(th), jnp.sin(th))
    pts = jnp.stack([x, y], axis=1) + _noise(noise, dt) * standard_normal(kn, (n, 2), dt)
    return 2.0 * (pts - jnp.array([0.5, 0.25], dt))


def swiss_roll(
    n: int, *, key: PRNGKeyArray, noise: float | int = 0.5, dtype=None
) -> Float[Array, "n 2"]:
    r"""`n` i.i.d. points of the 2-D swiss roll.

    $\tau = \tfrac{3\pi}{2}(1 + 2u)$, $u\sim U[0,1]$; $x = (\tau\cos\tau, \tau\sin\tau) + $
    noise $\mathcal N(0, \text{noise}^2 I)$, then divided by 5 (support about $[-3, 3]^2$).

    Args:
        n: number of points.
        key: PRNG key.
        noise: the standard deviation of the noise, before the division by 5.
        dtype: float dtype (default: JAX's default float).

    Returns:
        Points of shape ``(n, 2)``.

    Examples:
        >>> from sdeml.data import swiss_roll
        >>> x = swiss_roll(1000, key=jr.key(0))
        >>> x.shape, round(float(jnp.linalg.norm(x, axis=1).mean()), 1)  # E[tau] / 5 = 1.88
        ((1000, 2), 1.9)

    References:
        scikit-learn ``make_swiss_roll`` (its first and third coordinates).
    """
    n = _check_n(n)
    dt = _dtype(dtype)
    ku, kn = jr.split(key)
    tau = 1.5 * math.pi * (1.0 + 2.0 * jr.uniform(ku, (n,), dt))
    pts = jnp.stack([tau * jnp.cos(tau), tau * jnp.sin(tau)], axis=1)
    return (pts + _noise(noise, dt) * standard_normal(kn, (n, 2), dt)) / 5.0


def checkerboard(n: int, *, key: PRNGKeyArray, dtype=None) -> Float[Array, "n 2"]:
    r"""`n` i.i.d. points uniform on the 8 dark squares of a 4x4 board on $[-2, 2]^2$.

    Each point picks one of the 8 dark unit squares uniformly, then a uniform position inside.

    Args:
        n: number of points.
        key: PRNG key.
        dtype: float dtype (default: JAX's default float).

    Returns:
        Points of shape ``(n, 2)``.

    Examples:
        >>> from sdeml.data import checkerboard
        >>> x = checkerboard(512, key=jr.key(0))
        >>> cell = jnp.floor(x).astype(int)  # every point is on a dark square
        >>> x.shape, bool(jnp.all(cell.sum(1) % 2 == 0)), bool(jnp.all(jnp.abs(x) <= 2))
        ((512, 2), True, True)
    """
    n = _check_n(n)
    dt = _dtype(dtype)
    ks, ku = jr.split(key)
    sq = jr.randint(ks, (n,), 0, 8)
    row = sq // 2
    col = 2 * (sq % 2) + (row % 2)  # dark squares: (row + col) even
    u = jr.uniform(ku, (n, 2), dt)
    return jnp.stack([col.astype(dt) + u[:, 0], row.astype(dt) + u[:, 1]], axis=1) - 2.0


def circles(
    n: int, *, key: PRNGKeyArray, noise: float | int = 0.05, factor: float | int = 0.5, dtype=None
) -> Float[Array, "n 2"]:
    r"""`n` i.i.d. points on two concentric circles of radii 2 and ``2 * factor``.

    Each point picks a circle with probability 1/2 and an angle $\theta\sim U[0, 2\pi)$, then
    isotropic noise $\mathcal N(0, (2\,\text{noise})^2)$ is added.

    Args:
        n: number of points.
        key: PRNG key.
        noise: the standard deviation of the noise, before the scaling by 2.
        factor: the ratio of the inner radius to the outer one, in ``(0, 1)``.
        dtype: float dtype (default: JAX's default float).

    Returns:
        Points of shape ``(n, 2)``.

    Examples:
        >>> from sdeml.data import circles
        >>> x = circles(1000, key=jr.key(0))
        >>> r = jnp.linalg.norm(x, axis=1)
        >>> round(float(r[r > 1.5].mean()), 1), round(float(r[r < 1.5].mean()), 1)
        (2.0, 1.0)

    References:
        scikit-learn ``make_circles`` (same shape; here circle and angle are random).
    """
    n = _check_n(n)
    if isinstance(factor, bool) or not 0 < factor < 1:
        raise ValueError(f"`factor` must be in (0, 1), got {factor}")
    dt = _dtype(dtype)
    kc, ka, kn = jr.split(key, 3)
    r = jnp.where(jr.bernoulli(kc, 0.5, (n,)), factor, 1.0).astype(dt)
    th = jr.uniform(ka, (n,), dt, 0.0, 2 * math.pi)
    pts = r[:, None] * jnp.stack([jnp.cos(th), jnp.sin(th)], axis=1)
    return 2.0 * (pts + _noise(noise, dt) * standard_normal(kn, (n, 2), dt))


def mixture_2d(n: int, *, key: PRNGKeyArray, dtype=None) -> Float[Array, "n 2"]:
    """`n` i.i.d. points of `gaussian_mixture_2d` (a toy with an exact density).

    Args:
        n: number of points.
        key: PRNG key.
        dtype: float dtype (default: JAX's default float).

    Returns:
        Points of shape ``(n, 2)``.

    Examples:
        >>> from sdeml.data import mixture_2d
        >>> x = mixture_2d(10_000, key=jr.key(0))
        >>> # the mixture's mean: 0.5 (-1.5, 0) + 0.3 (1, 1) + 0.2 (1, -1.5) = (-0.25, 0)
        >>> x.shape, bool(jnp.allclose(x.mean(0), jnp.array([-0.25, 0.0]), atol=0.05))
        ((10000, 2), True)
    """
    n = _check_n(n)
    return gaussian_mixture_2d(dtype).sample(n, key=key)


TOYS: dict[str, Callable[..., Array]] = {
    "8gaussians": eight_gaussians,
    "moons": two_moons,
    "swissroll": swiss_roll,
    "checkerboard": checkerboard,
    "circles": circles,
    "mixture": mixture_2d,
}


def toy(name: str, n: int, *, key: PRNGKeyArray, dtype=None) -> Float[Array, "n 2"]:
    """`n` i.i.d. points of the 2-D toy called `name` (one of `TOYS`).

    Args:
        name: ``8gaussians``, ``moons``, ``swissroll``, ``checkerboard``, ``circles`` or
            ``mixture``.
        n: number of points.
        key: PRNG key.
        dtype: float dtype (default: JAX's default float).

    Returns:
        Array of shape ``(n, 2)``.

    Examples:
        >>> from sdeml.data import TOYS, toy
        >>> list(TOYS)
        ['8gaussians', 'moons', 'swissroll', 'checkerboard', 'circles', 'mixture']
        >>> toy("moons", 1000, key=jr.key(0)).shape
        (1000, 2)
    """
    if name not in TOYS:
        raise ValueError(f"unknown toy {name!r}; valid: {', '.join(TOYS)}")
    return TOYS[name](n, key=key, dtype=dtype)


def toy_mixture(name: str, dtype=None) -> GaussianMixture | None:
    """The exact `GaussianMixture` of a toy when it has one (``8gaussians``, ``mixture``).

    Args:
        name: a toy name, one of `TOYS`.
        dtype: float dtype of the parameters (default: JAX's default float).

    Returns:
        `eight_gaussians_mixture` or `gaussian_mixture_2d`, or ``None`` for the toys without
        a closed-form density.

    Examples:
        >>> from sdeml.data import toy_mixture
        >>> toy_mixture("8gaussians").means.shape, toy_mixture("moons") is None
        ((8, 2), True)
    """
    if name not in TOYS:
        raise ValueError(f"unknown toy {name!r}; valid: {', '.join(TOYS)}")
    return {"8gaussians": eight_gaussians_mixture, "mixture": gaussian_mixture_2d}.get(
        name, lambda dtype=None: None
    )(dtype=dtype)
