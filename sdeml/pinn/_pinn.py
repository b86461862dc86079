"""Physics-informed networks: the network, its loss, adaptive sampling and its error."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ..core._checks import check_int, check_positive_int, concrete_scalar
from ..core._normals import standard_normal
from ._problems import AbstractPDE, Collocation, Field, check_domain
from ._reference import _check_positive_number


def _finite_nonnegative(v: object) -> bool:
    """False for a concrete number (Python, NumPy or a 0-d JAX array) that is NaN, infinite or
    negative; True for a traced one (a weight that moves under jit is the caller's).

    Checking Python numbers alone let ``np.float32(-1)`` and ``jnp.array(nan)`` through."""
    x = concrete_scalar(v)
    return x is None or (math.isfinite(x) and x >= 0)


def _interval(name: str, r: tuple[float, float] | None) -> tuple[float, float] | None:
    if r is None:
        return None
    lo, hi = (float(v) for v in r)
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise ValueError(f"`{name}` must be (lo, hi) with finite lo < hi, got {r}")
    return lo, hi


class PINN(eqx.Module):
    r"""A network $u_\theta(t, x)$: an MLP with tanh activations on features of $(t, x)$.

    tanh is smooth, so the second derivatives the residuals need are well defined. The inputs can
    be encoded first (each option off by default):

    - ``t_range``, ``x_range``: map $t$ and $x$ affinely onto $[-1, 1]$ (Raissi et al. do);
    - ``harmonics`` $K > 0$: replace $x$ by $\cos(k\omega x), \sin(k\omega x)$, $k = 1..K$,
      $\omega = 2\pi / (x_{hi} - x_{lo})$: the network is then exactly periodic in $x$, so a
      periodic boundary condition holds by construction (needs ``x_range``);
    - ``fourier_features`` $m > 0$: append $\cos 2\pi Bz, \sin 2\pi Bz$ to the features $z$,
      with a fixed random $B \in \mathbb R^{m \times \dim z}$, $B_{ij} \sim N(0,
      \sigma^2)$, $\sigma$ = ``fourier_scale`` (not trained).

    Args:
        width, depth: the MLP's hidden width and number of hidden layers.
        key: PRNG key for the initial weights (and $B$).
        t_range, x_range: the domain ``(lo, hi)``, for the input scaling and the periodic
            features.
        harmonics: periodic features in $x$ (0: none).
        fourier_features, fourier_scale: random Fourier features (0: none).

    Returns:
        ``u(t, x)`` with scalar ``t`` and ``x`` (shape ``()``) gives $u_\theta(t, x)$, shape
        ``()``; ``jax.vmap(u)(ts, xs)`` evaluates ``(n,)`` points at once.

    Examples:
        >>> u = sdeml.PINN(32, 3, key=jr.key(0))
        >>> u(jnp.array(0.1), jnp.array(0.5)).shape
        ()
        >>> jax.vmap(u)(jnp.zeros(5), jnp.linspace(0.0, 1.0, 5)).shape
        (5,)

        With ``harmonics`` the network is periodic in $x$ by construction:

        >>> p = sdeml.PINN(16, 2, key=jr.key(1), x_range=(0.0, 2 * jnp.pi), harmonics=2)
        >>> t = jnp.array(0.3)
        >>> bool(jnp.allclose(p(t, jnp.array(0.0)), p(t, jnp.array(2 * jnp.pi)), atol=1e-12))
        True

    References:
        Tancik et al., Fourier features let networks learn high frequency functions in low
        dimensional domains, NeurIPS 2020. Dong & Ni, A method for representing periodic
        functions and enforcing exactly periodic boundary conditions with deep neural networks,
        J. Comput. Phys. 435 (2021).
    """

    mlp: eqx.nn.MLP
    fourier: Float[Array, "m k"] | None
    t_range: tuple[float, float] | None = eqx.field(static=True)
    x_range: tuple[float, float] | None = eqx.field(static=True)
    harmonics: int = eqx.field(static=True)

    def __init__(
        self,
        width: int = 32,
        depth: int = 3,
        *,
        key: PRNGKeyArray,
        t_range: tuple[float, float] | None = None,
        x_range: tuple[float, float] | None = None,
        harmonics: int = 0,
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
    ):
        # ints (NumPy's too), bools refused: harmonics=2.5 was truncated to 2, width=True read as 1
        width, depth = check_positive_int("width", width), check_positive_int("depth", depth)
        harmonics = check_int("harmonics", harmonics, 0)
        fourier_features = check_int("fourier_features", fourier_features, 0)
        fourier_scale = _check_positive_number("fourier_scale", fourier_scale)
        self.t_range = _interval("t_range", t_range)
        self.x_range = _interval("x_range", x_range)
        if harmonics and self.x_range is None:
            raise ValueError("`harmonics` > 0 needs `x_range` (the period is hi - lo)")
        self.harmonics = harmonics
        k_mlp, k_b = jr.split(key)
        n_base = 1 + (2 * self.harmonics if self.harmonics else 1)
        if fourier_features:
            self.fourier = fourier_scale * standard_normal(k_b, (fourier_features, n_base))
            n_in = n_base + 2 * fourier_features
        else:
            self.fourier = None
            n_in = n_base
        self.mlp = eqx.nn.MLP(n_in, "scalar", width, depth, activation=jnp.tanh, key=k_mlp)

    def features(self, t: Float[Array, ""], x: Float[Array, ""]) -> Float[Array, " k"]:
        """The network's input vector for the point ``(t, x)``."""
        if self.t_range is not None:
            lo, hi = self.t_range
            t = 2.0 * (t - lo) / (hi - lo) - 1.0
        if self.harmonics:
            assert self.x_range is not None  # checked in __init__
            lo, hi = self.x_range
            k = jnp.arange(1, self.harmonics + 1, dtype=x.dtype)
            phase = (2.0 * jnp.pi / (hi - lo)) * k * (x - lo)
            z = jnp.concatenate([t[None], jnp.cos(phase), jnp.sin(phase)])
        else:
            if self.x_range is not None:
                lo, hi = self.x_range
                x = 2.0 * (x - lo) / (hi - lo) - 1.0
            z = jnp.stack([t, x])
        if self.fourier is not None:
            proj = 2.0 * jnp.pi * (jax.lax.stop_gradient(self.fourier) @ z)
            z = jnp.concatenate([z, jnp.cos(proj), jnp.sin(proj)])
        return z

    def __call__(self, t: Float[Array, ""], x: Float[Array, ""]) -> Float[Array, ""]:
        return self.mlp(self.features(t, x))


def pinn_loss(
    u: Field,
    problem: AbstractPDE,
    points: Collocation,
    *,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    causal_chunks: int = 0,
    causal_eps: float = 1.0,
) -> tuple[Float[Array, ""], dict[str, Float[Array, ""]]]:
    r"""The physics-informed loss $w_r\,\mathcal L_r + w_0\,\overline{(u - u_0)^2} +
    w_b\,\overline{b^2}$.

    $r$ is the PDE residual at the interior points (derivatives by autodiff), $u_0$ the initial
    data on $t = 0$ and $b$ the boundary residual (`AbstractPDE.boundary_residual`). Without
    causal weighting $\mathcal L_r = \overline{r^2}$. With ``causal_chunks`` $M > 0$, $[0, T]$
    is cut into $M$ equal slabs with mean squared residuals $\mathcal L_i$, and

    $$\mathcal L_r = \frac1M \sum_{i=1}^M w_i \mathcal L_i,\qquad
    w_i = \exp\Big(-\varepsilon \sum_{k<i} \mathcal L_k\Big)\ \text{(no gradient)}:$$

    a later slab counts only once the earlier ones are solved, as the flow of time demands.

    Args:
        u: the network, ``u(t, x)`` with scalar ``t``, ``x`` (e.g. a `PINN`; any such callable).
        problem: any `AbstractPDE`.
        points: the collocation points (`sample_collocation`).
        weights: $(w_r, w_0, w_b)$, each >= 0.
        causal_chunks: $M$ (0: no causal weighting).
        causal_eps: $\varepsilon \ge 0$.

    Returns:
        The loss, shape ``()``, and its parts, a dict of shape-``()`` arrays (``residual``,
        ``initial``, ``boundary``; with causal weighting also ``causal_weight_min``, the last
        slab's weight, which approaches 1 once training has propagated the solution through the
        whole interval).

    Examples:
        The exact solution has zero loss; an untrained network does not:

        >>> from sdeml.pinn import Heat1D, pinn_loss, sample_collocation
        >>> problem = Heat1D(alpha=0.1)
        >>> pts = sample_collocation(problem, 64, 16, 16, key=jr.key(0))
        >>> loss_fn = eqx.filter_jit(pinn_loss)  # compiled once, called at every step
        >>> loss, parts = loss_fn(problem.exact, problem, pts)
        >>> bool(loss < 1e-20)
        True
        >>> u = sdeml.PINN(16, 2, key=jr.key(1))
        >>> loss, parts = loss_fn(u, problem, pts, causal_chunks=4)
        >>> sorted(parts), bool(loss > 0)
        (['boundary', 'causal_weight_min', 'initial', 'residual'], True)
        >>> bool(0 < parts["causal_weight_min"] <= 1)
        True

    References:
        Raissi, Perdikaris & Karniadakis, Physics-informed neural networks, J. Comput. Phys. 378
        (2019). doi:10.1016/j.jcp.2018.10.045. Wang, Sankaran & Perdikaris, Respecting causality
        for training physics-informed neural networks, Comput. Methods Appl. Mech. Engrg. 421
        (2024). arXiv:2203.07404
    """
    # an int: 2.5 and np.int64(2) failed inside the slab arithmetic, True meant 1 slab
    causal_chunks = check_int("causal_chunks", causal_chunks, 0)
    # concrete numbers are checked here; traced ones (weights that move under jit) are the caller's
    if len(weights) != 3 or not all(_finite_nonnegative(w) for w in weights):
        raise ValueError(f"`weights` must be three finite numbers >= 0, got {weights!r}")
    if not _finite_nonnegative(causal_eps):
        raise ValueError(f"`causal_eps` must be a finite number >= 0, got {causal_eps!r}")
    res = jax.vmap(lambda t, x: problem.residual(u, t, x))(points.t_in, points.x_in)
    zeros = jnp.zeros_like(points.x_init)
    u0 = jax.vmap(u)(zeros, points.x_init)
    bres = jax.vmap(lambda t, x: problem.boundary_residual(u, t, x))(points.t_bc, points.x_bc)
    parts = {
        "residual": jnp.mean(res**2),
        "initial": jnp.mean((u0 - problem.initial(points.x_init)) ** 2),
        "boundary": jnp.mean(bres**2),
    }
    w_r, w_0, w_b = weights
    residual_term = parts["residual"]
    if causal_chunks:
        m = causal_chunks
        slab = jnp.floor(points.t_in * (m / problem.t1)).astype(jnp.int32)
        slab = jnp.clip(slab, 0, m - 1)
        sums = jax.ops.segment_sum(res**2, slab, num_segments=m)
        counts = jax.ops.segment_sum(jnp.ones_like(res), slab, num_segments=m)
        per_slab = sums / jnp.maximum(counts, 1.0)
        before = jnp.cumsum(per_slab) - per_slab
        w = jax.lax.stop_gradient(jnp.exp(-causal_eps * before))
        residual_term = jnp.mean(w * per_slab)
        parts["causal_weight_min"] = w[-1]
    loss = w_r * residual_term + w_0 * parts["initial"] + w_b * parts["boundary"]
    return loss, parts


def residuals(
    u: Field, problem: AbstractPDE, t: Float[Array, " n"], x: Float[Array, " n"]
) -> Float[Array, " n"]:
    r"""The PDE residual $\mathcal N[u](t_i, x_i)$ of `u` at the points ``(t[i], x[i])``.

    Args:
        u: the field ``u(t, x)`` (a `PINN`, or an exact solution).
        problem: any `AbstractPDE`.
        t, x: the points' times and positions, shape ``(n,)`` each.

    Returns:
        The residuals, shape ``(n,)``.

    Examples:
        For the heat equation $u_t = \alpha u_{xx}$, $u = x(1 - x)$ has residual $2\alpha$:

        >>> from sdeml.pinn import Heat1D, residuals
        >>> problem = Heat1D(alpha=0.1)
        >>> t, x = jnp.linspace(0.0, 1.0, 5), jnp.linspace(0.0, 1.0, 5)
        >>> r = residuals(lambda t, x: x * (1 - x), problem, t, x)
        >>> r.shape, bool(jnp.allclose(r, 0.2))
        ((5,), True)
        >>> float(jnp.max(jnp.abs(residuals(problem.exact, problem, t, x)))) < 1e-12
        True
    """
    return jax.vmap(lambda a, b: problem.residual(u, a, b))(t, x)


def rad_resample(
    u: Field,
    problem: AbstractPDE,
    t_pool: Float[Array, " p"],
    x_pool: Float[Array, " p"],
    n: int,
    *,
    k: float = 1.0,
    c: float = 1.0,
    key: PRNGKeyArray,
) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    r"""Residual-based adaptive distribution (RAD): `n` of the pool's points, drawn by residual.

    Point $j$ of the pool is drawn (with replacement) with probability proportional to
    $|r_j|^k / \overline{|r|^k} + c$: $c \to \infty$ is uniform sampling, $c = 0$ samples the
    residual alone. The residuals are constants here (no gradient flows through the choice).

    Args:
        u, problem: the network and the PDE.
        t_pool, x_pool: candidate points, shape ``(p,)`` each (e.g. `sample_interior`).
        n: how many to draw.
        k, c: the density's exponent and floor (finite, $k \ge 0$, $c \ge 0$, not both 0;
            any $k$ with $c > 0$ is safe). With $c = 0$ and every residual exactly zero there
            is no density to follow, and the draw is uniform.
        key: PRNG key.

    Returns:
        ``(t, x)``, the drawn points, shape ``(n,)`` each.

    Raises:
        EquinoxRuntimeError: (eagerly, and under ``jax.jit`` at run time) a residual in the
            pool is NaN or infinite, so there is no density to draw by (the draw used to fall
            back to uniform sampling without a word).

    Examples:
        For $u = x^4$ in `Heat1D` the residual is $-12\alpha x^2$, so with $k = 1$, $c = 0$
        the draws have density $3x^2$ on $[0, 1]$, whose mean is $3/4$ (uniform: $1/2$):

        >>> from sdeml.pinn import Heat1D, rad_resample, sample_interior
        >>> problem = Heat1D()
        >>> t_pool, x_pool = sample_interior(problem, 4000, key=jr.key(0))
        >>> t, x = rad_resample(lambda t, x: x**4, problem, t_pool, x_pool, 2000, c=0.0,
        ...                     key=jr.key(1))
        >>> t.shape, x.shape
        ((2000,), (2000,))
        >>> bool(abs(x.mean() - 0.75) < 0.02)
        True

    References:
        Wu, Zhu, Tan, Kartha & Lu, A comprehensive study of non-adaptive and residual-based
        adaptive sampling for physics-informed neural networks, Comput. Methods Appl. Mech.
        Engrg. 403 (2023). arXiv:2207.10289
    """
    n = check_positive_int("n", n)  # 2.5 failed inside jr.choice, True drew 1 point
    if jnp.ndim(t_pool) != 1 or jnp.shape(t_pool) != jnp.shape(x_pool) or not jnp.size(t_pool):
        raise ValueError(
            "`t_pool` and `x_pool` must have the same shape (p,) with p >= 1, got "
            f"{jnp.shape(t_pool)} and {jnp.shape(x_pool)}"
        )
    kc, cc = concrete_scalar(k), concrete_scalar(c)
    if (
        (kc is not None and not (math.isfinite(kc) and kc >= 0))
        or (cc is not None and not (math.isfinite(cc) and cc >= 0))
        or (kc == 0 and cc == 0)
    ):
        raise ValueError(f"need finite `k` >= 0 and `c` >= 0, not both 0; got k={k}, c={c}")
    r = jax.lax.stop_gradient(jnp.abs(residuals(u, problem, t_pool, x_pool)))
    r = eqx.error_if(
        r,
        ~jnp.all(jnp.isfinite(r)),
        "rad_resample: the PDE residual is NaN or infinite at some pool points (the network's "
        "output or its derivatives are not finite there), so there is no density to draw by.",
    )
    # |r|^k / mean |r|^k does not change when r is scaled: take r relative to its largest value,
    # so that a large residual or a large k cannot overflow to inf (inf / inf = NaN)
    tiny = jnp.finfo(r.dtype).tiny
    rk = (r / jnp.maximum(jnp.max(r), tiny)) ** k
    density = rk / jnp.maximum(jnp.mean(rk), tiny) + c
    # every residual exactly zero with c = 0 leaves no density to sample by: draw uniformly
    # (0/0 would hand jr.choice NaN probabilities, which repeat one pool point)
    density = jnp.where(jnp.sum(density) > 0, density, jnp.ones_like(density))
    idx = jr.choice(key, t_pool.shape[0], (n,), p=density / jnp.sum(density))
    return t_pool[idx], x_pool[idx]


def pinn_error(
    u: Field,
    problem: AbstractPDE,
    n: int | None = None,
    *,
    n_t: int = 100,
    n_x: int = 256,
    reference: Float[Array, "n_t n_x"] | None = None,
) -> dict[str, Array]:
    r"""Relative $L^2$ and max errors of `u` against the problem's reference on a dense grid.

    The grid is $n_t$ equally spaced times in $[0, T]$ (ends included) by $n_x$ equally spaced
    points in $[x_{lo}, x_{hi}]$ (Raissi's Burgers data: 100 x 256).

    Args:
        u, problem: the network ``u(t, x)`` and the PDE.
        n: one size for both axes (overrides `n_t` and `n_x`).
        n_t, n_x: the grid's sizes, each >= 2.
        reference: the reference on that grid, shape ``(n_t, n_x)``, if already computed
            (`reference_grid`).

    Returns:
        A dict: ``rel_l2`` = $\|u - u^*\|_2 / \|u^*\|_2$ and ``max_abs`` = $\max |u - u^*|$
        (shape ``()``), the grid ``t`` ``(n_t,)`` and ``x`` ``(n_x,)``, and both fields ``u`` and
        ``exact``, shape ``(n_t, n_x)``, for plotting.

    Examples:
        A field 1 % off the solution has relative error 0.01:

        >>> from sdeml.pinn import Heat1D, pinn_error
        >>> problem = Heat1D()
        >>> err = pinn_error(lambda t, x: 1.01 * problem.exact(t, x), problem, n_t=11, n_x=21)
        >>> round(float(err["rel_l2"]), 6), err["u"].shape, err["x"].shape
        (0.01, (11, 21), (21,))
        >>> bool(pinn_error(problem.exact, problem, n=16)["max_abs"] < 1e-14)
        True
    """
    if n is not None:
        n_t = n_x = check_int("n", n, 2)  # named as given, not as `n_t`
    t, x, exact = (
        reference_grid(problem, n_t, n_x)
        if reference is None
        else (*_grid(problem, n_t, n_x), reference)
    )
    tt, xx = jnp.meshgrid(t, x, indexing="ij")
    pred = jax.vmap(jax.vmap(u))(tt, xx)
    if pred.shape != exact.shape:
        raise ValueError(f"`reference` has shape {exact.shape}, the grid is {pred.shape}")
    return {
        "rel_l2": jnp.linalg.norm(pred - exact) / jnp.linalg.norm(exact),
        "max_abs": jnp.max(jnp.abs(pred - exact)),
        "t": t,
        "x": x,
        "u": pred,
        "exact": exact,
    }


def _grid(problem: AbstractPDE, n_t: int, n_x: int) -> tuple[Array, Array]:
    n_t, n_x = check_int("n_t", n_t, 2), check_int("n_x", n_x, 2)
    lo, hi, t1 = check_domain(problem)
    return jnp.linspace(0.0, t1, n_t), jnp.linspace(lo, hi, n_x)


def reference_grid(
    problem: AbstractPDE, n_t: int = 100, n_x: int = 256
) -> tuple[Float[Array, " n_t"], Float[Array, " n_x"], Float[Array, "n_t n_x"]]:
    """The evaluation grid of `pinn_error` and the reference on it: ``(t, x, u_ref)``.

    Compute the reference once and pass it to `pinn_error` as ``reference=`` when it is costly
    (`RaissiBurgers`'s quadrature).

    Args:
        problem: any `AbstractPDE`.
        n_t, n_x: the grid's sizes, each >= 2: ``n_t`` times in $[0, T]$ and ``n_x`` positions in
            $[x_{lo}, x_{hi}]$, ends included.

    Returns:
        ``t``, shape ``(n_t,)``; ``x``, shape ``(n_x,)``; ``u_ref[i, j]`` $= u^*(t_i, x_j)$,
        shape ``(n_t, n_x)``.

    Examples:
        >>> from sdeml.pinn import Heat1D, pinn_error, reference_grid
        >>> problem = Heat1D()
        >>> t, x, u_ref = reference_grid(problem, 5, 9)
        >>> t.shape, x.shape, u_ref.shape
        ((5,), (9,), (5, 9))
        >>> bool(jnp.allclose(u_ref[0], jnp.sin(jnp.pi * x)))  # the initial data at t = 0
        True
        >>> err = pinn_error(problem.exact, problem, n_t=5, n_x=9, reference=u_ref)
        >>> bool(err["rel_l2"] < 1e-14)
        True
    """
    t, x = _grid(problem, n_t, n_x)
    tt, xx = jnp.meshgrid(t, x, indexing="ij")
    return t, x, problem.reference(tt, xx)
