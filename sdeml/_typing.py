"""Shared jaxtyping aliases."""

from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree, Shaped

Scalar = Float[Array, ""]
ScalarLike = Float[ArrayLike, ""]
Key = PRNGKeyArray

__all__ = [
    "Array",
    "ArrayLike",
    "Float",
    "Int",
    "Key",
    "PRNGKeyArray",
    "PyTree",
    "Scalar",
    "ScalarLike",
    "Shaped",
]
