"""Sparse regression (SINDy): sequentially thresholded least squares, model selection by AIC/BIC
(and extended BIC)."""

from __future__ import annotations

import math
from typing import Literal, get_args

import equinox as eqx
import jax
import jax.core  # explicit submodule import: makes `jax.core.Tracer` visible to pyright
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._typing import ScalarLike
from ..core._checks import as_float, check_int, check_positive
from ._library import Library, format_equations

__all__ = [
    "LibraryField",
    "SINDyResult",
    "information_criterion",
    "lstsq_on_support",
    "sindy",
    "stlsq",
    "stlsq_path",
]

Criterion = Literal["aic", "aicc", "bic", "ebic"]
CRITERIA = get_args(Criterion)


def _check_kind(kind: str) -> None:
    if kind not in CRITERIA:
        raise ValueError(f"`kind` must be 'aic', 'aicc', 'bic' or 'ebic', got {kind!r}")


def criterion_penalty(k: Array, n: int, kind: str, n_candidates: int | None = None) -> Array:
    """The complexity penalty of `information_criterion` for `k` fitted terms out of
    `n_candidates` (needed by ``"ebic"`` only), with `n` residuals; ``inf`` where AICc is
    undefined (``k >= n - 1``)."""
    _check_kind(kind)
    # math.log, a Python float: NumPy's float64 made a float32 `k` float64 (or failed under
    # strict promotion)
    if kind == "bic":
        return k * math.log(n)
    if kind == "ebic":
        if n_candidates is None:
            raise ValueError(
                "the 'ebic' criterion needs `n_candidates` >= 1 (the library's terms), got None"
            )
        # an int: 5.5 gave a binomial of a non-integer count
        n_candidates = check_int("n_candidates", n_candidates, 1)
        # Chen & Chen's extended BIC with gamma = 1: BIC + 2 ln C(P, k), the log-count of the
        # models of k terms among P candidates
        kk = jnp.minimum(k, n_candidates)  # keeps gammaln off negative arguments
        log_binom = (
            jax.scipy.special.gammaln(n_candidates + 1.0)
            - jax.scipy.special.gammaln(kk + 1.0)
            - jax.scipy.special.gammaln(n_candidates - kk + 1.0)
        )
        return k * math.log(n) + 2.0 * log_binom
    pen = 2.0 * k
    if kind == "aic":
        return pen
    # AICc's correction is defined for k < n - 1 only; a model with as many coefficients as
    # rows has no penalised fit left to compare, so it can never be selected (+inf)
    denom = n - k - 1.0
    return jnp.where(
        denom > 0, pen + 2.0 * k * (k + 1.0) / jnp.where(denom > 0, denom, 1.0), jnp.inf
    )


def _is_concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def _check_regression(theta: Array, targets: Array) -> None:
    """Shapes (always) and finiteness (eagerly; under a trace `_guard_finite` does it)."""
    if theta.ndim != 2:
        raise ValueError(f"`theta` must have shape (n, p), got {theta.shape}")
    if targets.ndim != 2 or targets.shape[0] != theta.shape[0]:
        raise ValueError(
            f"`targets` must have shape (n, m) with n = {theta.shape[0]} rows like `theta`, got "
            f"{targets.shape}"
        )
    for name, x in (("theta", theta), ("targets", targets)):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"`{name}` must be a floating array, got dtype {x.dtype}")
        if _is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
            bad = int(np.sum(~np.isfinite(np.asarray(x))))
            raise ValueError(f"`{name}` contains {bad} NaN/inf entries; remove or fill them")


def _guard_finite(theta: Array, targets: Array) -> tuple[Array, Array]:
    theta = eqx.error_if(theta, ~jnp.all(jnp.isfinite(theta)), "`theta` contains NaN/inf.")
    targets = eqx.error_if(targets, ~jnp.all(jnp.isfinite(targets)), "`targets` contains NaN/inf.")
    return theta, targets


def _check_thresholds(thresholds: Array, name: str) -> Array:
    if not jnp.issubdtype(thresholds.dtype, jnp.floating):
        raise ValueError(f"`{name}` must be a floating value, got dtype {thresholds.dtype}")
    if _is_concrete(thresholds):
        host = np.asarray(thresholds)
        if not np.all(np.isfinite(host)) or np.any(host < 0):
            raise ValueError(f"`{name}` must be finite and >= 0, got {host}")
        return thresholds
    return eqx.error_if(
        thresholds,
        jnp.any(~(thresholds >= 0)) | jnp.any(~jnp.isfinite(thresholds)),
        f"`{name}` must be finite and >= 0.",
    )


def _check_ridge(ridge: ScalarLike) -> None:
    # finite too (ridge = inf zeroed every coefficient); a traced ridge passes (jit, vmap)
    if jnp.shape(ridge) != ():
        raise ValueError(f"`ridge` must be a scalar, got shape {jnp.shape(ridge)}")
    check_positive("ridge", ridge, allow_zero=True)


def _masked_lstsq(
    a: Float[Array, "n p"], y: Float[Array, " n"], mask: Bool[Array, " p"], ridge: Array
) -> Float[Array, " p"]:
    """Least squares of `y` on the columns of `a` where `mask` holds; zero elsewhere.

    Masked-out columns are zeroed, and their rows of the ridge block too, so the SVD solution
    (minimum norm) gives them exactly zero: one fixed-shape solve for every support.
    """
    m = mask.astype(a.dtype)
    p = a.shape[1]
    a_aug = jnp.concatenate([a * m, jnp.sqrt(ridge) * jnp.diag(m)], axis=0)
    y_aug = jnp.concatenate([y, jnp.zeros((p,), y.dtype)])
    coef = jnp.linalg.lstsq(a_aug, y_aug)[0]
    return jnp.where(mask, coef, jnp.zeros_like(coef))


def _stlsq(
    theta: Array, targets: Array, threshold: Array, n_iter: int, ridge: Array, normalize: bool
) -> tuple[Array, Array]:
    if normalize:
        # root mean square relative to the column's largest entry: theta**2 overflowed (float32
        # columns beyond ~1e19, e.g. x^5 for x ~ 1e4, got scale inf and dropped out) or
        # underflowed to 0 (columns below ~1e-19 were left unscaled)
        top = jnp.max(jnp.abs(theta), axis=0)
        safe = jnp.where(top > 0, top, jnp.ones_like(top))
        scale = safe * jnp.sqrt(jnp.mean((theta / safe) ** 2, axis=0))
        scale = jnp.where(top > 0, scale, jnp.ones_like(scale))
    else:
        scale = jnp.ones(theta.shape[1], theta.dtype)
    a = theta / scale

    def solve(mask: Array) -> Array:  # mask (p, m) -> coefficients (p, m)
        return jax.vmap(_masked_lstsq, in_axes=(None, 1, 1, None), out_axes=1)(
            a, targets, mask, ridge
        )

    def body(_, carry):
        mask, xi = carry
        mask = mask & (jnp.abs(xi) >= threshold)  # once a term is out it stays out
        return mask, solve(mask)

    mask0 = jnp.ones((theta.shape[1], targets.shape[1]), bool)
    mask, xi = jax.lax.fori_loop(0, n_iter, body, (mask0, solve(mask0)))
    # A last thresholding step, so that no kept coefficient is below the threshold.
    mask = mask & (jnp.abs(xi) >= threshold)
    xi = jnp.where(mask, xi, jnp.zeros_like(xi))
    return xi / scale[:, None], mask


def stlsq(
    theta: Float[Array, "n p"],
    targets: Float[Array, "_n m"],
    threshold: ScalarLike,
    *,
    n_iter: int = 10,
    ridge: float = 0.0,
    normalize: bool = False,
) -> Float[Array, "p m"]:
    r"""Sequentially thresholded least squares: a sparse $\Xi$ with $Y \approx \Theta\Xi$.

    Starting from the least-squares solution, repeat `n_iter` times: zero every coefficient with
    $|\xi_{kj}| < \lambda$ and refit each column by least squares on the terms that remain
    (a term once removed stays removed). A fixed iteration count and boolean masks (no Python
    loop over data-dependent supports) make it jit-, vmap- and grad-compatible: `stlsq_path`
    vmaps it over a grid of thresholds. The support stops changing after at most ``p``
    iterations; 10 suffice in practice.

    Args:
        theta: the library evaluated at the samples, $\Theta$, shape ``(n, p)``.
        targets: the derivatives (or missing terms) to explain, shape ``(n, m)``.
        threshold: $\lambda \ge 0$ (0: plain least squares).
        n_iter: thresholding rounds, an int >= 1.
        ridge: $\alpha \ge 0$ of a ridge penalty $\alpha\|\xi\|^2$ in every refit (on the
            normalised columns when `normalize`).
        normalize: scale every column of $\Theta$ to unit root-mean-square before the regression,
            so that $\lambda$ thresholds the contribution of a term rather than its raw
            coefficient; the returned coefficients are in the original units either way.

    Returns:
        $\Xi$, shape ``(p, m)``, exactly zero off the support.

    Raises:
        ValueError: `threshold` < 0, NaN/inf in `theta` or `targets`, mismatched shapes,
            `n_iter` < 1, `ridge` < 0 or not finite (under ``jax.jit`` the value checks are
            runtime errors; a traced `ridge` is not checked).

    Examples:
        Least squares alone keeps every term; thresholding finds the damped oscillator
        $\dot x = v$, $\dot v = -x - 0.2 v$ from noisy rates:

        >>> from sdeml.ude import format_equations, polynomial_library, stlsq
        >>> lib = polynomial_library(("x", "v"), 2)  # 1, x, v, x^2, x v, v^2
        >>> ys = jr.uniform(jr.key(0), (200, 2), minval=-2.0, maxval=2.0)
        >>> x, v = ys[:, 0], ys[:, 1]
        >>> rates = jnp.stack([v, -x - 0.2 * v], axis=1) + 0.01 * jr.normal(jr.key(1), (200, 2))
        >>> theta = lib.evaluate(ys)
        >>> int(jnp.sum(stlsq(theta, rates, 0.0) != 0))
        12
        >>> xi = stlsq(theta, rates, 0.1)
        >>> xi.shape, int(jnp.sum(xi != 0))
        ((6, 2), 3)
        >>> print("\n".join(format_equations(lib, xi, precision=2)))
        dx/dt = 1.00 v
        dv/dt = -1.00 x - 0.20 v

    References:
        Brunton, Proctor & Kutz, PNAS 113 (2016), the STLSQ algorithm;
        Zhang & Schaeffer, On the convergence of the SINDy algorithm, SIAM MMS 17 (2019).
    """
    theta, targets = jnp.asarray(theta), jnp.asarray(targets)
    _check_regression(theta, targets)
    n_iter = check_int("n_iter", n_iter, 1)
    _check_ridge(ridge)
    lam = _check_thresholds(jnp.asarray(threshold, theta.dtype), "threshold")
    if lam.ndim != 0:
        raise ValueError(f"`threshold` must be a scalar, got shape {lam.shape}; see stlsq_path")
    theta, targets = _guard_finite(theta, targets)
    return _stlsq(theta, targets, lam, n_iter, jnp.asarray(ridge, theta.dtype), normalize)[0]


def stlsq_path(
    theta: Float[Array, "n p"],
    targets: Float[Array, "_n m"],
    thresholds: Float[ArrayLike, " k"],
    *,
    n_iter: int = 10,
    ridge: float = 0.0,
    normalize: bool = False,
) -> Float[Array, "k p m"]:
    """`stlsq` at every threshold of a grid, as one vmapped program.

    Args:
        theta: the library evaluated at the samples, shape ``(n, p)``.
        targets: what to explain, shape ``(n, m)``.
        thresholds: the grid, shape ``(k,)``, every entry >= 0.
        n_iter, ridge, normalize: as `stlsq`.

    Returns:
        The coefficients at each threshold, shape ``(k, p, m)``; entry ``i`` equals
        ``stlsq(theta, targets, thresholds[i])``.

    Examples:
        >>> from sdeml.ude import format_equations, polynomial_library, stlsq, stlsq_path
        >>> lib = polynomial_library(("x", "y"), 2)  # 1, x, y, x^2, x y, y^2
        >>> ys = jr.uniform(jr.key(0), (200, 2), minval=0.5, maxval=3.0)
        >>> x, y = ys[:, 0], ys[:, 1]
        >>> dydt = jnp.stack([1.3 * x - 0.9 * x * y, 0.8 * x * y - 1.8 * y], axis=1)
        >>> dydt = dydt + 0.01 * jr.normal(jr.key(1), dydt.shape)  # noisy Lotka-Volterra
        >>> theta, lams = lib.evaluate(ys), jnp.array([0.0, 0.1, 2.0])
        >>> path = stlsq_path(theta, dydt, lams)
        >>> path.shape, jnp.sum(path != 0, axis=(1, 2)).tolist()  # terms left per threshold
        ((3, 6, 2), [12, 4, 0])
        >>> bool(jnp.allclose(path[1], stlsq(theta, dydt, 0.1)))
        True
    """
    theta, targets = jnp.asarray(theta), jnp.asarray(targets)
    _check_regression(theta, targets)
    n_iter = check_int("n_iter", n_iter, 1)
    _check_ridge(ridge)
    lams = jnp.asarray(thresholds, theta.dtype)
    if lams.ndim != 1 or lams.shape[0] < 1:
        raise ValueError(f"`thresholds` must have shape (k,) with k >= 1, got {lams.shape}")
    lams = _check_thresholds(lams, "thresholds")
    theta, targets = _guard_finite(theta, targets)
    r = jnp.asarray(ridge, theta.dtype)
    one = lambda lam: _stlsq(theta, targets, lam, n_iter, r, normalize)[0]
    return jax.vmap(one)(lams)


def lstsq_on_support(
    theta: Float[Array, "n p"], targets: Float[Array, "n m"], coefficients: Float[Array, "p m"]
) -> Float[Array, "p m"]:
    """Refit: least squares of every column of `targets` on the nonzero terms of `coefficients`.

    STLSQ's coefficients already are this refit at convergence; after a support is chosen by
    other means (a criterion on trajectories, a different data set) this fits it again.

    Args:
        theta: the library at the samples, shape ``(n, p)``.
        targets: what to explain, shape ``(n, m)``.
        coefficients: any coefficients of shape ``(p, m)``; only where they are nonzero (the
            support) matters.

    Returns:
        Coefficients of shape ``(p, m)`` with the support of `coefficients`.

    Examples:
        >>> from sdeml.ude import lstsq_on_support
        >>> theta = jr.normal(jr.key(0), (50, 3))
        >>> targets = theta @ jnp.array([[2.0], [0.0], [-1.0]])
        >>> xi = lstsq_on_support(theta, targets, jnp.array([[1.0], [0.0], [1.0]]))
        >>> [round(float(v), 6) for v in xi[:, 0]]
        [2.0, 0.0, -1.0]
    """
    theta, targets = jnp.asarray(theta), jnp.asarray(targets)
    _check_regression(theta, targets)
    coefficients = jnp.asarray(coefficients)
    if coefficients.shape != (theta.shape[1], targets.shape[1]):
        raise ValueError(
            f"`coefficients` must have shape ({theta.shape[1]}, {targets.shape[1]}), got "
            f"{coefficients.shape}"
        )
    theta, targets = _guard_finite(theta, targets)
    mask = coefficients != 0
    zero = jnp.zeros((), theta.dtype)
    return jax.vmap(_masked_lstsq, in_axes=(None, 1, 1, None), out_axes=1)(
        theta, targets, mask, zero
    )


def information_criterion(
    rss: Float[ArrayLike, "..."],
    n: int,
    k: Int[ArrayLike, "..."] | Float[ArrayLike, "..."],
    kind: Criterion = "bic",
    n_candidates: int | None = None,
) -> Float[Array, "..."]:
    r"""AIC, AICc, BIC or extended BIC of a least-squares fit with Gaussian errors of unknown
    variance.

    With $\hat\sigma^2 = \text{RSS}/n$ (the maximum-likelihood variance), up to a constant
    shared by every model of the same data:

    $$\text{AIC} = n\ln(\text{RSS}/n) + 2k,\quad
      \text{AICc} = \text{AIC} + \frac{2k(k+1)}{n-k-1},\quad
      \text{BIC} = n\ln(\text{RSS}/n) + k\ln n,$$

    and the extended BIC (Chen & Chen 2008, $\gamma = 1$) of a model chosen among
    $P$ = `n_candidates` candidate terms, $\text{EBIC} = \text{BIC} + 2\ln\binom{P}{k}$. BIC's
    prior gives every *model* the same weight, so the many models of $k + 1$ terms outnumber
    those of $k$ by a factor $(P - k)/(k + 1)$ and a spurious term is selected far more often
    than BIC's per-model error rate suggests; EBIC gives every model *size* the same weight
    instead, and stays consistent as $P$ grows with $n$. It is the criterion for a sparse
    regression over a large library.

    Smaller is better. Works elementwise on arrays of candidates.

    Args:
        rss: residual sum(s) of squares, > 0.
        n: the number of residuals.
        k: the number of fitted parameters (nonzero coefficients) of each model.
        kind: ``"aic"``, ``"aicc"``, ``"bic"`` or ``"ebic"``.
        n_candidates: the number of candidate terms $P$ the `k` were chosen from (``"ebic"``
            only; e.g. the library's terms).

    Returns:
        The criterion, with the broadcast shape of `rss` and `k`.

    Examples:
        >>> from sdeml.ude import information_criterion
        >>> round(float(information_criterion(2.0, 10, 3, "aic")), 3)  # 10 ln 0.2 + 6
        -10.094
        >>> bic = information_criterion(jnp.array([1.0, 0.9]), 50, jnp.array([2, 5]))
        >>> int(jnp.argmin(bic))  # 10 % less RSS does not pay for 3 more terms
        0
        >>> # 25 % less RSS pays for a third term under BIC, not among 21 candidates under EBIC
        >>> rss, k = jnp.array([1.0, 0.75]), jnp.array([2, 3])
        >>> int(jnp.argmin(information_criterion(rss, 20, k, "bic")))
        1
        >>> int(jnp.argmin(information_criterion(rss, 20, k, "ebic", n_candidates=21)))
        0

    References:
        Akaike, IEEE TAC 19 (1974); Schwarz, Ann. Stat. 6 (1978); Hurvich & Tsai, Biometrika 76
        (1989); Chen & Chen, Extended Bayesian information criteria for model selection with
        large model spaces, Biometrika 95 (2008); Mangan, Kutz, Brunton & Proctor, Model
        selection for dynamical systems via sparse regression and information criteria,
        Proc. R. Soc. A 473 (2017).
    """
    n = check_int("n", n, 1)
    rss = as_float(rss)  # an integer RSS failed under strict promotion
    # concrete values are checked (a negative RSS gave NaN, a zero one -inf); traced ones pass
    if _is_concrete(rss) and not np.all(np.asarray(rss) > 0):
        raise ValueError(f"`rss` must be > 0 (inf for a failed fit), got {rss}")
    if _is_concrete(k) and not np.all(np.asarray(k) >= 0):
        raise ValueError(f"`k` must be >= 0, got {k}")
    k = jnp.asarray(k).astype(rss.dtype)
    return n * jnp.log(rss / n) + criterion_penalty(k, n, kind, n_candidates)


class SINDyResult(eqx.Module):
    r"""What `sindy` returns: the threshold path, its criteria and the selected model.

    Attributes:
        thresholds: the grid, shape ``(k,)``.
        path: coefficients at every threshold, shape ``(k, p, m)``.
        rss: residual sum of squares of every equation at every threshold, shape ``(k, m)``.
        n_terms: nonzero terms per equation and threshold, shape ``(k, m)``.
        criterion: the information criterion, shape ``(k, m)``.
        best: the selected threshold index of every equation, shape ``(m,)``.
        coefficients: the selected model, shape ``(p, m)`` (column ``j`` from ``path[best[j]]``).

    Examples:
        Logistic growth $\dot y = y - y^2$ from noisy rates, library $1, y, y^2, y^3$:

        >>> from sdeml.ude import polynomial_library, sindy
        >>> lib = polynomial_library(("y",), 3)
        >>> y = jnp.linspace(0.1, 2.0, 100)[:, None]
        >>> rates = y - y**2 + 0.01 * jr.normal(jr.key(0), y.shape)
        >>> res = sindy(lib.evaluate(y), rates, jnp.linspace(0.0, 0.5, 6))
        >>> res.path.shape, res.criterion.shape, res.coefficients.shape
        ((6, 4, 1), (6, 1), (4, 1))
        >>> int(res.n_terms[res.best[0], 0]), res.coefficients[:, 0].round(2).tolist()
        (2, [0.0, 1.0, -1.0, 0.0])
    """

    thresholds: Float[Array, " k"]
    path: Float[Array, "k p m"]
    rss: Float[Array, "k m"]
    n_terms: Int[Array, "k m"]
    criterion: Float[Array, "k m"]
    best: Int[Array, " m"]
    coefficients: Float[Array, "p m"]


def sindy(
    theta: Float[Array, "n p"],
    targets: Float[Array, "_n m"],
    thresholds: Float[ArrayLike, " k"],
    *,
    kind: Criterion = "bic",
    n_iter: int = 10,
    ridge: float = 0.0,
    normalize: bool = False,
) -> SINDyResult:
    """STLSQ over a threshold grid, and per equation the model with the smallest criterion.

    Every column of `targets` is one equation; each picks its own threshold, the one whose
    model has the smallest `information_criterion` of its regression residual (``n`` rows,
    ``k`` nonzero terms). The criterion presumes residuals that are noise: on noiseless or
    systematically misfit targets it rewards every extra term, and a criterion on the
    trajectories (see `sdeml.ude.trajectory_criterion`) is the one to use.

    Args:
        theta, targets, thresholds, n_iter, ridge, normalize: as `stlsq_path`.
        kind: ``"aic"``, ``"aicc"``, ``"bic"`` or ``"ebic"`` (over the library's ``p`` terms).

    Returns:
        A `SINDyResult`.

    Examples:
        >>> from sdeml.ude import format_equations, polynomial_library, sindy
        >>> lib = polynomial_library(("x", "y"), 2)  # 1, x, y, x^2, x y, y^2
        >>> ys = jr.uniform(jr.key(0), (200, 2), minval=0.5, maxval=3.0)
        >>> x, y = ys[:, 0], ys[:, 1]
        >>> dydt = jnp.stack([1.3 * x - 0.9 * x * y, 0.8 * x * y - 1.8 * y], axis=1)
        >>> dydt = dydt + 0.01 * jr.normal(jr.key(1), dydt.shape)  # noisy Lotka-Volterra
        >>> res = sindy(lib.evaluate(ys), dydt, jnp.linspace(0.0, 1.0, 11))
        >>> print("\\n".join(format_equations(lib, res.coefficients, precision=2)))
        dx/dt = 1.30 x - 0.90 x y
        dy/dt = -1.80 y + 0.80 x y

    References:
        Mangan, Kutz, Brunton & Proctor, Model selection for dynamical systems via sparse
        regression and information criteria, Proc. R. Soc. A 473 (2017).
    """
    theta, targets = jnp.asarray(theta), jnp.asarray(targets)
    path = stlsq_path(theta, targets, thresholds, n_iter=n_iter, ridge=ridge, normalize=normalize)
    resid = targets[None] - jnp.einsum("np,kpm->knm", theta, path)
    rss = jnp.sum(resid**2, axis=1)
    # an exact fit has RSS 0 and log(0) = -inf: floor it at the rounding level of the targets
    floor = jnp.finfo(theta.dtype).eps ** 2 * jnp.sum(targets**2, axis=0)
    rss = jnp.maximum(rss, jnp.maximum(floor, jnp.finfo(theta.dtype).tiny))
    n_terms = jnp.sum(path != 0, axis=1).astype(jnp.int32)
    crit = information_criterion(rss, theta.shape[0], n_terms, kind, n_candidates=theta.shape[1])
    best = jnp.argmin(crit, axis=0).astype(jnp.int32)
    coefs = path[best, :, jnp.arange(targets.shape[1])].T
    return SINDyResult(
        thresholds=jnp.asarray(thresholds, theta.dtype),
        path=path,
        rss=rss,
        n_terms=n_terms,
        criterion=crit,
        best=best,
        coefficients=coefs,
    )


class LibraryField(eqx.Module):
    r"""The vector field $f(t, y) = \Xi^\top\Theta(y)$ of a model linear in a library.

    What sparse regression recovers, and how known terms are written: called as
    ``field(t, y, args)`` like every vector field of sdeml (`sdeml.solve_ode`).

    Args:
        library: a `Library` over the ``d`` states.
        coefficients: $\Xi$, shape ``(p, d)``.

    Returns:
        ``field(t, y, args)`` with ``y`` of shape ``(d,)`` gives $\Xi^\top\Theta(y)$, shape
        ``(d,)``; ``field.terms(y)`` the same without ``t``; ``field.equations()`` the text.

    Examples:
        >>> from sdeml.ude import LV_Y0, LibraryField, lotka_volterra_truth, polynomial_library
        >>> lib = polynomial_library(("x", "y"), 2)  # 1, x, y, x^2, x y, y^2
        >>> xi = jnp.array([[0, 0], [1.3, 0], [0, -1.8], [0, 0], [-0.9, 0.8], [0, 0]])
        >>> lv = LibraryField(lib, xi)
        >>> print("\n".join(lv.equations()))
        dx/dt = 1.300 x - 0.900 x y
        dy/dt = -1.800 y + 0.800 x y
        >>> [round(float(v), 6) for v in lv(0.0, jnp.array([1.0, 2.0]))]  # 1.3 - 1.8, 1.6 - 3.6
        [-0.5, -2.0]
        >>> ts = jnp.linspace(0.0, 3.0, 7)
        >>> sol = sdeml.solve_ode(lv, jnp.array(LV_Y0), 0.0, 3.0, ts=ts, rtol=1e-10, atol=1e-12)
        >>> bool(jnp.allclose(sol.ys, lotka_volterra_truth(ts), atol=1e-7))
        True
    """

    library: Library
    coefficients: Float[Array, "p d"]

    def __check_init__(self):
        shape = (self.library.n_terms, self.library.n_states)
        if self.coefficients.shape != shape:
            raise ValueError(
                f"`coefficients` must have shape {shape} (library terms x states), got "
                f"{self.coefficients.shape}"
            )

    def __call__(self, t: ScalarLike, y: Float[Array, " d"], args=None) -> Float[Array, " d"]:
        return self.terms(y)

    def terms(self, y: Float[Array, " d"]) -> Float[Array, " d"]:
        r"""$\Xi^\top\Theta(y)$ without the time: the form `UDE` takes as its ``net``."""
        return self.library(y) @ self.coefficients

    def equations(self, precision: int = 3) -> list[str]:
        """The equations as text, e.g. ``["dx/dt = 1.300 x - 0.900 x y", ...]``."""
        return format_equations(self.library, self.coefficients, precision=precision)
