"""Candidate libraries of sparse regression: polynomials of the state (and optionally sin/cos)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..core._checks import check_int

__all__ = ["Library", "format_equations", "polynomial_library"]


def _monomial_name(names: tuple[str, ...], exps: tuple[int, ...]) -> str:
    parts = [n if e == 1 else f"{n}^{e}" for n, e in zip(names, exps, strict=True) if e > 0]
    return " ".join(parts) if parts else "1"


class Library(eqx.Module):
    r"""A candidate library $\Theta(y) = [\theta_1(y), \dots, \theta_p(y)]$ of sparse regression.

    The terms are monomials $\prod_i y_i^{e_i}$, one per exponent tuple, followed (with
    ``trig=True``) by $\sin y_i$ and $\cos y_i$ of every state. A model linear in the library,
    $\dot y_j = \sum_k \xi_{kj}\,\theta_k(y)$, is read back as equations with
    `format_equations`.

    Args:
        names: one name per state, e.g. ``("x", "y")``; used in the term names.
        exponents: one tuple of ``len(names)`` non-negative ints per monomial term; the all-zero
            tuple is the constant term ``"1"``.
        trig: also $\sin y_i$, $\cos y_i$ for every state ``i``.

    Returns:
        ``library(y)`` with ``y`` of shape ``(d,)`` gives the terms, shape ``(p,)``;
        ``library.evaluate(ys)`` with ``ys`` of shape ``(n, d)`` gives $\Theta$, shape ``(n, p)``.

    Examples:
        >>> from sdeml.ude import Library, polynomial_library
        >>> lib = polynomial_library(("x", "y"), degree=2)
        >>> lib.term_names
        ('1', 'x', 'y', 'x^2', 'x y', 'y^2')
        >>> lib(jnp.array([2.0, 3.0])).tolist()
        [1.0, 2.0, 3.0, 4.0, 6.0, 9.0]
        >>> lib.evaluate(jnp.ones((7, 2))).shape
        (7, 6)
        >>> Library(("x", "y"), [(0, 0), (1, 1)], trig=True).term_names
        ('1', 'x y', 'sin(x)', 'cos(x)', 'sin(y)', 'cos(y)')

    References:
        Brunton, Proctor & Kutz, Discovering governing equations from data by sparse
        identification of nonlinear dynamical systems, PNAS 113 (2016).
    """

    names: tuple[str, ...] = eqx.field(static=True)
    exponents: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    trig: bool = eqx.field(static=True)

    def __init__(
        self,
        names: Sequence[str],
        exponents: Sequence[Sequence[int]],
        trig: bool = False,
    ):
        names = tuple(names)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"`names` must be a non-empty sequence of state names, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"`names` must be distinct, got {names!r}")
        exps = []
        for e in exponents:
            e = tuple(e)
            if len(e) != len(names) or not all(
                isinstance(k, int | np.integer) and not isinstance(k, bool) and k >= 0 for k in e
            ):
                raise ValueError(
                    f"`exponents`: every entry must be {len(names)} non-negative ints (one per "
                    f"state of {names}), got {e!r}"
                )
            exps.append(tuple(int(k) for k in e))
        if len(set(exps)) != len(exps):
            raise ValueError("`exponents` lists a monomial twice")
        if not exps and not trig:
            raise ValueError(
                "the library has no terms: give at least one monomial in `exponents` or trig=True"
            )
        self.names, self.exponents, self.trig = names, tuple(exps), bool(trig)

    @property
    def n_states(self) -> int:
        return len(self.names)

    @property
    def n_terms(self) -> int:
        return len(self.exponents) + (2 * self.n_states if self.trig else 0)

    @property
    def term_names(self) -> tuple[str, ...]:
        """Readable names, e.g. ``('1', 'x', 'y', 'x^2', 'x y', ..., 'sin(x)', 'cos(x)')``."""
        poly = tuple(_monomial_name(self.names, e) for e in self.exponents)
        trig = ()
        if self.trig:
            trig = tuple(f"{f}({n})" for n in self.names for f in ("sin", "cos"))
        return poly + trig

    def __call__(self, y: Float[Array, " d"]) -> Float[Array, " p"]:
        """The terms at one state ``y`` (shape ``(d,)``)."""
        if y.shape != (self.n_states,):
            raise ValueError(
                f"Library over {self.names} expects a state of shape ({self.n_states},), got "
                f"{y.shape}; use `evaluate` for a batch"
            )
        parts = []
        if self.exponents:
            top = max(max(e) for e in self.exponents)
            # powers[i, k] = y_i^k by repeated products (exact integer powers, any sign of y_i)
            powers = jnp.stack([jnp.ones_like(y)] + [y**k for k in range(1, top + 1)], axis=1)
            idx = np.asarray(self.exponents, dtype=np.int32)  # (p_poly, d)
            parts.append(jnp.prod(powers[np.arange(self.n_states)[None, :], idx], axis=1))
        if self.trig:
            parts.append(jnp.stack([jnp.sin(y), jnp.cos(y)], axis=1).reshape(-1))
        return jnp.concatenate(parts)

    def evaluate(self, ys: Float[Array, "n d"]) -> Float[Array, "n p"]:
        r"""$\Theta$: the terms at every row of ``ys`` (shape ``(n, d)``), shape ``(n, p)``."""
        if ys.ndim != 2 or ys.shape[1] != self.n_states:
            raise ValueError(
                f"`ys` must have shape (n, {self.n_states}) (states of {self.names}), got "
                f"{ys.shape}"
            )
        return jax.vmap(self)(ys)


def polynomial_library(
    names: Sequence[str] = ("x", "y"),
    degree: Any = 5,  # checked below, with its own message
    *,
    constant: bool = True,
    trig: bool = False,
) -> Library:
    r"""All monomials of the states up to total degree `degree` (and optionally sin/cos).

    Terms are ordered by degree, then with the first state's power decreasing:
    ``1, x, y, x^2, x y, y^2, x^3, x^2 y, ...``; $\binom{d + D}{D}$ monomials for ``d`` states
    and degree ``D`` (21 for two states and degree 5, with the constant).

    Args:
        names: the state names (one per state).
        degree: the largest total degree, an int >= 1.
        constant: include the constant term ``"1"``.
        trig: also $\sin y_i$ and $\cos y_i$ of every state.

    Returns:
        A `Library`.

    Examples:
        >>> from sdeml.ude import polynomial_library
        >>> polynomial_library(("x", "y"), 3).n_terms  # binomial(2 + 3, 3)
        10
        >>> polynomial_library(("x", "y", "z"), 2, constant=False).term_names
        ('x', 'y', 'z', 'x^2', 'x y', 'x z', 'y^2', 'y z', 'z^2')
    """
    if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree < 1:
        raise ValueError(f"`degree` must be an int >= 1, got {degree!r}")
    names = tuple(names)
    d = len(names)
    exps: list[tuple[int, ...]] = []
    for total in range(0 if constant else 1, int(degree) + 1):
        exps.extend(_compositions(total, d))
    return Library(names, exps, trig=trig)


def _compositions(total: int, d: int) -> Iterator[tuple[int, ...]]:
    """The exponent tuples of ``d`` states summing to ``total``, the first state's power
    decreasing (then the second's, ...): built directly, not filtered from all (total + 1)^d
    tuples (10 states at degree 5 took 8 s that way)."""
    if d == 1:
        yield (total,)
        return
    for k in range(total, -1, -1):
        for rest in _compositions(total - k, d - 1):
            yield (k, *rest)


def format_equations(
    library: Library,
    coefficients: Float[Array, "p m"] | np.ndarray,
    *,
    precision: int = 3,
    lhs: Sequence[str] | None = None,
) -> list[str]:
    r"""The model $\dot y_j = \sum_k \xi_{kj}\theta_k(y)$ as text, one line per equation.

    Zero coefficients are left out; e.g. ``"dx/dt = 1.300 x - 0.902 x y"``.

    Args:
        library: the `Library` whose terms the rows of `coefficients` multiply.
        coefficients: $\Xi$, shape ``(p, m)``.
        precision: digits after the decimal point.
        lhs: the left-hand sides, ``m`` of them (default ``d<name>/dt`` of the library's
            states, one per column; then ``m`` must be the number of states).

    Returns:
        One string per column of `coefficients`.

    Examples:
        The Lotka–Volterra equations over the terms ``1, x, y, x^2, x y, y^2``:

        >>> from sdeml.ude import format_equations, polynomial_library
        >>> lib = polynomial_library(("x", "y"), 2)
        >>> xi = jnp.array([[0, 0], [1.3, 0], [0, -1.8], [0, 0], [-0.9, 0.8], [0, 0]])
        >>> print("\n".join(format_equations(lib, xi)))
        dx/dt = 1.300 x - 0.900 x y
        dy/dt = -1.800 y + 0.800 x y
        >>> format_equations(lib, xi[:, :1], precision=1, lhs=["f(x, y)"])
        ['f(x, y) = 1.3 x - 0.9 x y']
    """
    precision = check_int("precision", precision, 0)  # -1 failed in the format specifier
    xi = np.asarray(coefficients)
    if np.iscomplexobj(xi):  # printed |c| with the sign of nothing: 1+1j read as 1.414
        raise ValueError(f"`coefficients` must be real, got dtype {xi.dtype}")
    if xi.ndim != 2 or xi.shape[0] != library.n_terms:
        raise ValueError(
            f"`coefficients` must have shape ({library.n_terms}, m) (one row per library term), "
            f"got {xi.shape}"
        )
    if lhs is None:
        if xi.shape[1] != library.n_states:
            raise ValueError(
                f"`coefficients` has {xi.shape[1]} columns but the library has "
                f"{library.n_states} states; give `lhs` to name the equations"
            )
        lhs = [f"d{n}/dt" for n in library.names]
    elif len(lhs) != xi.shape[1]:
        raise ValueError(
            f"`lhs` names {len(lhs)} equations, `coefficients` has {xi.shape[1]} columns"
        )
    lines = []
    for j, left in enumerate(lhs):
        text = ""
        for name, c in zip(library.term_names, xi[:, j], strict=True):
            if c == 0:
                continue
            mag = f"{abs(c):.{precision}f}"
            term = mag if name == "1" else f"{mag} {name}"
            if not text:
                text = f"-{term}" if c < 0 else term
            else:
                text += f" - {term}" if c < 0 else f" + {term}"
        lines.append(f"{left} = {text or '0'}")
    return lines
