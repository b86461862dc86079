"""Small vector-field networks for neural ODEs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from .._typing import ScalarLike
from ..core._checks import check_int, check_positive_int


class MLPField(eqx.Module):
    r"""A multilayer perceptron vector field $f_\theta(t, y) = \mathrm{MLP}([y^p, t])$.

    With ``power=3`` and ``time_dependent=False`` it is the vector field of the classic spiral
    demo, $f_\theta(y) = W_2 \tanh(W_1 y^3 + b_1) + b_2$ (the cube is elementwise).

    Args:
        dim: the state dimension $d$ (input and output size).
        width: hidden width.
        depth: number of hidden layers.
        time_dependent: append $t$ to the input.
        power: elementwise input power $p$ (1: the state itself).
        activation: the hidden nonlinearity.
        dtype: parameter dtype (float64 for accuracy claims).
        key: PRNG key for the initial weights.

    Returns:
        Calling ``field(t, y, args=None)`` (the vector-field signature of sdeml) with ``y`` of
        shape ``(d,)`` returns ``dy/dt``, shape ``(d,)``.
        ``field.batch_divergence(t, hb)`` gives the field and the exact trace of its Jacobian for
        a whole batch at once (what a `CNF` with the exact divergence uses).

    Examples:
        >>> f = sdeml.MLPField(2, 50, 1, power=3, time_dependent=False, key=jr.key(0))
        >>> f(0.0, jnp.ones(2), None).shape
        (2,)
        >>> bool(jnp.array_equal(f(0.0, jnp.ones(2)), f(5.0, jnp.ones(2))))  # autonomous
        True

    References:
        Chen et al., Neural Ordinary Differential Equations, NeurIPS 2018 (the spiral demo of
        torchdiffeq's examples/ode_demo.py). arXiv:1806.07366
    """

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)
    time_dependent: bool = eqx.field(static=True)
    power: int = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int = 64,
        depth: int = 2,
        *,
        time_dependent: bool = True,
        power: int = 1,
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
        key: PRNGKeyArray,
    ):
        dim = check_positive_int("dim", dim)  # NumPy integers too, as Python ints
        width = check_positive_int("width", width)
        power = check_positive_int("power", power)
        depth = check_int("depth", depth, 0)
        self.dim, self.time_dependent, self.power = dim, time_dependent, power
        in_size = dim + (1 if time_dependent else 0)
        self.mlp = eqx.nn.MLP(
            in_size, dim, width, depth, activation=activation, dtype=dtype, key=key
        )

    def __call__(
        self, t: ScalarLike, y: Float[Array, " d"], args: Any = None
    ) -> Float[Array, " d"]:
        """$dy/dt$ at ``(t, y)``; `args` is unused (the vector-field signature of sdeml)."""
        if y.shape != (self.dim,):
            raise ValueError(f"MLPField expects a state of shape ({self.dim},), got {y.shape}")
        x = y**self.power if self.power != 1 else y
        if self.time_dependent:
            x = jnp.concatenate([x, jnp.reshape(jnp.asarray(t, y.dtype), (1,))])
        return self.mlp(x)

    def batch_divergence(
        self, t: ScalarLike, h: Float[Array, "*b d"], *, frobenius: bool = False
    ) -> tuple[Float[Array, "*b d"], Float[Array, " *b"], Float[Array, " *b"] | None]:
        r"""The field, its exact divergence and optionally its squared Jacobian norm, for a batch.

        Written out for the MLP rather than by automatic differentiation. With hidden
        pre-activations $a_l$, slopes $s_l = \sigma'(a_l)$ and
        $P = \operatorname{diag}(p\,h^{p-1})$, the Jacobian is
        $J = W_{L+1} D_L W_L \cdots D_1 W_1^{(h)} P$ with $D_l = \operatorname{diag}(s_l)$ and
        $W_1^{(h)}$ the first layer's columns that read $h$. Its trace is cyclic, so
        for one or two hidden layers it collapses onto batch-independent matrices:

        - one layer: $\operatorname{tr} J = \sum_j P_j\, s_1^\top u_j$ with
          $(u_j)_k = W_1^{(h)}{}_{kj} W_2{}_{jk}$;
        - two layers: $\operatorname{tr} J = \sum_j P_j\, s_2^\top Q_j s_1$ with
          $Q_j = W_2 \odot (W_1^{(h)}{}_{:j} W_3{}_{j:})^\top$ ($P = I$ merges the $Q_j$ into one),

        one matrix product of the batch instead of $d$ forward-mode passes, and a gradient about
        half the cost of differentiating `jax.jvp`. Deeper networks, or ``frobenius=True``, carry
        the $d$ Jacobian columns through the layers (still one primal pass).

        Args:
            t: the time (scalar).
            h: a batch of states, shape ``(b, d)``.
            frobenius: also return $\sum_{ij} J_{ij}^2$ per point (RNODE's Jacobian penalty).

        Returns:
            ``(f, div, frob)``: shapes ``(b, d)``, ``(b,)`` and ``(b,)`` (``frob`` is None unless
            requested). Agrees with ``jnp.trace(jax.jacfwd(lambda y: field(t, y))(h_i))``.

        Examples:
            >>> from sdeml.neural_ode import MLPField
            >>> f = MLPField(2, 64, 2, key=jr.key(0))
            >>> h = jr.normal(jr.key(1), (8, 2))
            >>> dz, div, frob = f.batch_divergence(0.5, h, frobenius=True)
            >>> jac = jax.vmap(jax.jacfwd(lambda y: f(0.5, y)))(h)  # (8, 2, 2), autodiff
            >>> dz.shape, div.shape, frob.shape
            ((8, 2), (8,), (8,))
            >>> bool(jnp.allclose(div, jnp.trace(jac, axis1=1, axis2=2), atol=1e-12))
            True
            >>> bool(jnp.allclose(frob, jnp.sum(jac**2, axis=(1, 2)), atol=1e-12))
            True
        """
        if h.ndim != 2 or h.shape[1] != self.dim:
            raise ValueError(f"batch_divergence expects h of shape (b, {self.dim}), got {h.shape}")
        d, layers, act = self.dim, self.mlp.layers, self.mlp.activation
        x = h**self.power if self.power != 1 else h
        # P_j = d x_j / d h_j, per point (None when p = 1)
        pw = None if self.power == 1 else self.power * h ** (self.power - 1)
        first = layers[0]
        wh = first.weight[:, :d]  # the columns that read h
        const = first.bias if first.bias is not None else 0.0
        if self.time_dependent:
            const = const + jnp.asarray(t, h.dtype) * first.weight[:, d]
        a = x @ wh.T + const
        if len(layers) == 1:  # depth 0: an affine field, J = W P
            diag = jnp.broadcast_to(jnp.diagonal(wh), h.shape)  # (b, d): J_jj
            div = jnp.sum(diag if pw is None else diag * pw, axis=1)
            frob = None
            if frobenius:
                cols = jnp.broadcast_to(wh, (h.shape[0], *wh.shape))  # (b, d, d)
                cols = cols if pw is None else cols * pw[:, None, :]
                frob = jnp.sum(cols**2, axis=(1, 2))
            return a, div, frob

        def hidden(a):  # activation and its slope, elementwise
            return jax.jvp(act, (a,), (jnp.ones_like(a),))

        y, s = hidden(a)
        slopes = [s]
        for lin in layers[1:-1]:
            y, s = hidden(y @ lin.weight.T + _bias(lin))
            slopes.append(s)
        last = layers[-1]
        out = y @ last.weight.T + _bias(last)  # MLPField's MLP has no final activation
        n_hidden = len(slopes)
        if not frobenius and n_hidden <= 2:
            w_out = last.weight[:d]  # (d, width): output rows that meet the trace
            if n_hidden == 1:
                u = wh.T * w_out  # (d, width): u_j[k] = W1[k, j] W2[j, k]
                terms = slopes[0] @ u.T  # (b, d)
            else:
                mid = layers[1].weight  # (width, width)
                if pw is None:
                    q = mid * (wh @ w_out).T
                    return out, jnp.sum((slopes[1] @ q) * slopes[0], axis=1), None
                qs = [mid * jnp.outer(wh[:, j], w_out[j]).T for j in range(d)]
                terms = jnp.stack([jnp.sum((slopes[1] @ q) * slopes[0], 1) for q in qs], axis=1)
            div = jnp.sum(terms if pw is None else terms * pw, axis=1)
            return out, div, None
        # the d Jacobian columns, carried through the layers
        div = jnp.zeros(h.shape[:1], h.dtype)
        frob = jnp.zeros(h.shape[:1], h.dtype) if frobenius else None
        for j in range(d):
            col = slopes[0] * wh[:, j]
            if pw is not None:
                col = col * pw[:, j : j + 1]
            for lin, s in zip(layers[1:-1], slopes[1:], strict=True):
                col = s * (col @ lin.weight.T)
            jcol = col @ last.weight.T  # (b, d): column j of J
            div = div + jcol[:, j]
            if frob is not None:  # frobenius=True
                frob = frob + jnp.sum(jcol**2, axis=1)
        return out, div, frob


def field_dtype(field: eqx.Module) -> jnp.dtype:
    """The dtype of a field's first floating parameter (float32 when it has none)."""
    leaves = [x for x in jax.tree.leaves(field) if eqx.is_inexact_array(x)]
    return leaves[0].dtype if leaves else jnp.dtype(jnp.float32)


def _bias(lin: eqx.nn.Linear) -> Array | float:
    return lin.bias if lin.bias is not None else 0.0
