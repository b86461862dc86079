"""Standard normal draws that use both 32-bit words of each Threefry-2x32 hash.

`jax.random.normal` in float32 (with JAX's default partitionable Threefry) hashes one counter
per number and XORs the hash's two 32-bit output words into one. Each word is already a full
pseudo-random 32-bit output of the block cipher (the non-partitionable implementation uses both),
so two independent normals per hash halve the hashing, which is most of the cost of a draw on a
CPU (float32 EM, 1e5 paths x 1000 steps: 1.09-1.78x a scan drawing one `jax.random.normal` per
step). `normal_pair` returns the two arrays separately; `simulate` takes step 2i of a block
from one and step 2i + 1 from the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np


def pairs_supported(key, dtype) -> bool:
    """Whether `normal_pair` takes both words of each hash for this key and dtype."""
    dt = getattr(key, "dtype", None)
    # float64 normals take both words already (as one 64-bit number)
    if dt is None or jnp.dtype(dtype) != jnp.float32:
        return False
    if jnp.issubdtype(dt, jax.dtypes.prng_key):
        return str(jr.key_impl(key)) == "threefry2x32"
    return dt == jnp.uint32 and key.shape == (2,)  # a legacy raw threefry key


def _bits_to_normal(bits, dtype) -> jax.Array:
    """uint32 -> standard normal, the transform of `jax.random.normal` (uniform, sqrt(2) erfinv)."""
    nmant = jnp.finfo(dtype).nmant
    one = np.array(1.0, dtype).view(np.uint32)
    u01 = jax.lax.bitcast_convert_type((bits >> np.uint32(32 - nmant)) | one, dtype) - 1.0
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    u = jnp.maximum(lo, u01 * (np.array(1.0, dtype) - lo) + lo)
    return jax.lax.erf_inv(u) * np.array(np.sqrt(2.0), dtype)  # jax Array first: typed as Array


def normal_pair(key, n: int, dtype, *, stream=None) -> tuple[jax.Array, jax.Array]:
    """Two independent arrays of `n` standard normals from one pass of `n` hashes.

    For float32 and a Threefry key; otherwise two halves of one `jax.random.normal` draw from
    ``fold_in(key, stream)``. With the Threefry path the hashed counters are the pairs
    ``(stream, 0..n-1)`` (``stream`` a uint32 scalar, default 0): draws with different streams
    under one key are independent without a `fold_in` (one hash pass less per draw).
    """
    if not pairs_supported(key, dtype):
        k = key if stream is None else jr.fold_in(key, stream)
        z = standard_normal(k, (2 * n,), dtype)
        return z[:n], z[n:]
    k = jr.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    counts = jax.lax.iota(np.uint32, n)
    hi = np.uint32(0) if stream is None else jnp.asarray(stream, np.uint32)
    b1, b2 = _hash(k[0], k[1], hi, counts)  # the bits of `threefry2x32_p`, unrolled (see _hash)
    return _bits_to_normal(b1, dtype), _bits_to_normal(b2, dtype)


# --------------------------------------------------------------------------- per-path keys
# A path with its own key draws the normals of step k from counters that depend on k alone
# (issue #23), never on how many paths run with it, how they are chunked or which steps are saved:
# so `jax.vmap` of a single-path function, which the engine runs as one batch, draws for path i
# exactly what the unbatched call with key i draws. With the key's two 32-bit words (k0, k1):
#   float32, one normal per step (EM, Milstein, Heun): word (k mod 2) of hash(key, (k // 2, j)),
#       so an even-aligned pair of steps shares each hash (see `normal_pair`);
#   float32, two per step (SRA1's dW and dZ): the two words of hash(key, (k, j));
#   float64: hash(key, (k, j)) as one 64-bit number (and hash(key, (k, j + size)) for a second).
# Component j runs over the `size` entries of the Brownian motion; hash is Threefry-2x32.


def is_threefry(key) -> bool:
    """Whether `key` (typed, or a legacy raw uint32 pair) is a Threefry-2x32 key."""
    dt = getattr(key, "dtype", None)
    if dt is not None and jnp.issubdtype(dt, jax.dtypes.prng_key):
        return str(jr.key_impl(key)) == "threefry2x32"
    return dt == jnp.uint32 and tuple(key.shape)[-1:] == (2,)


def threefry_words(key) -> jax.Array:
    """The two 32-bit words that key the per-path hashes of one PRNG key, shape ``(2,)``.

    A Threefry key's own words; the words of another implementation's key (RBG: four) are
    folded into two by XOR. (JAX's RBG generators are not invariant under `jax.vmap`, so the
    per-path draws hash with Threefry whatever the key.)
    """
    dt = getattr(key, "dtype", None)
    typed = dt is not None and jnp.issubdtype(dt, jax.dtypes.prng_key)
    kd = jr.key_data(key) if typed else jnp.asarray(key)
    kd = kd.reshape(-1).astype(np.uint32)
    if kd.shape[0] == 2:
        return kd
    w0, w1 = kd[0::2], kd[1::2]
    fold = lambda w: jax.lax.reduce(w, np.uint32(0), jax.lax.bitwise_xor, (0,))
    return jnp.stack([fold(w0), fold(w1 if w1.shape[0] else w0)])


# Threefry-2x32 with 20 rounds (Salmon et al. 2011, Table 4): rotation constants of the rounds,
# in groups of four between key injections.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotl(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _hash(k0, k1, hi, lo) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 of the counter (hi, lo) under the key (k0, k1), broadcasting; the same bits
    as `threefry2x32_p`, written out as elementwise operations.

    JAX's CPU lowering runs the five groups of rounds as a loop whose carry includes the key
    schedule: with a key per element (one per path) that is five full arrays written and read
    back per group. Unrolled, XLA fuses the whole hash into one elementwise kernel (2^17 paths x
    1000 steps of pairs: 0.26 s against 0.42 s for the primitive, measured on 2 cores).
    """
    k0, k1, x0, x1 = (jnp.asarray(a, np.uint32) for a in (k0, k1, hi, lo))
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for s in range(5):
        for r in _ROTATIONS[s % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[(s + 1) % 3]
        x1 = x1 + ks[(s + 2) % 3] + np.uint32(s + 1)
    shape = jnp.broadcast_shapes(jnp.shape(x0), jnp.shape(x1))
    return jnp.broadcast_to(x0, shape), jnp.broadcast_to(x1, shape)


def _words_to_normal(w0, w1, dtype) -> tuple[jax.Array, jax.Array | None]:
    """Normals from hash words: two (one per word) below 64 bits, one 64-bit normal otherwise."""
    dtype = jnp.dtype(dtype)
    if dtype.itemsize < 8:
        f32 = jnp.dtype(jnp.float32)
        return _bits_to_normal(w0, f32).astype(dtype), _bits_to_normal(w1, f32).astype(dtype)
    bits = (w0.astype(np.uint64) << np.uint64(32)) | w1.astype(np.uint64)
    nmant = jnp.finfo(dtype).nmant
    one = np.array(1.0, dtype).view(np.uint64)
    u01 = jax.lax.bitcast_convert_type((bits >> np.uint64(64 - nmant)) | one, dtype) - 1.0
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    u = jnp.maximum(lo, u01 * (np.array(1.0, dtype) - lo) + lo)
    return jax.lax.erf_inv(u) * np.array(np.sqrt(2.0), dtype), None


class PathKeys:
    """The keys of a batch of paths, laid out for drawing ``(steps, paths * size)`` normals.

    Args:
        kd: the paths' key words, ``(P, 2)`` uint32 (see `threefry_words`).
        size: Brownian components per path and step.
    """

    def __init__(self, kd: jax.Array, size: int):
        self.size = size
        # one entry per (path, component), paths major: the normals come out as (P, size)
        self.k0 = jnp.repeat(kd[:, 0], size)
        self.k1 = jnp.repeat(kd[:, 1], size)
        self.lo = jnp.tile(jnp.arange(size, dtype=np.uint32), kd.shape[0])

    def step_normals(self, steps, dtype) -> jax.Array:
        """One standard normal per component at each step index of `steps` ``(B,)``:
        ``(B, P * size)``."""
        col = jnp.asarray(steps, np.uint32)[:, None]
        if jnp.dtype(dtype).itemsize < 8:
            w0, w1 = _hash(self.k0, self.k1, col >> 1, self.lo)
            w = jnp.where((col & 1) == 1, w1, w0)  # the word first: one conversion per normal
            return _bits_to_normal(w, jnp.dtype(jnp.float32)).astype(dtype)
        return _words_to_normal(*_hash(self.k0, self.k1, col, self.lo), dtype)[0]

    def pair_normals(self, first, half: int, dtype) -> tuple[jax.Array, jax.Array]:
        """Steps ``first + 2i`` and ``first + 2i + 1`` for ``i < half`` (`first` even, below
        64-bit floats): two arrays ``(half, P * size)`` from one pass of hashes."""
        hi = (jnp.asarray(first, np.uint32) >> 1) + jax.lax.iota(np.uint32, half)[:, None]
        a, b = _words_to_normal(*_hash(self.k0, self.k1, hi, self.lo), dtype)
        assert b is not None
        return a, b

    def step_normal_pairs(self, steps, dtype) -> tuple[jax.Array, jax.Array]:
        """Two independent normals per component and step (SRA1): two ``(B, P * size)``."""
        col = jnp.asarray(steps, np.uint32)[:, None]
        if jnp.dtype(dtype).itemsize < 8:
            a, b = _words_to_normal(*_hash(self.k0, self.k1, col, self.lo), dtype)
            assert b is not None
            return a, b
        a = _words_to_normal(*_hash(self.k0, self.k1, col, self.lo), dtype)[0]
        b = _words_to_normal(*_hash(self.k0, self.k1, col, self.lo + self.size), dtype)[0]
        return a, b


def _bits_to_uniform(w0, w1, dtype) -> jax.Array:
    """A uniform number in [0, 1) from hash words (word 0 below 64 bits, both for float64)."""
    dtype = jnp.dtype(dtype)
    if dtype.itemsize < 8:
        f32 = jnp.dtype(jnp.float32)
        one = np.array(1.0, f32).view(np.uint32)
        u = jax.lax.bitcast_convert_type((w0 >> np.uint32(32 - 23)) | one, f32) - 1.0
        return u.astype(dtype)
    bits = (w0.astype(np.uint64) << np.uint64(32)) | w1.astype(np.uint64)
    one = np.array(1.0, dtype).view(np.uint64)
    nmant = jnp.finfo(dtype).nmant
    return jax.lax.bitcast_convert_type((bits >> np.uint64(64 - nmant)) | one, dtype) - 1.0


def chain_draws(kw: jax.Array, step, size: int, dtype) -> tuple[jax.Array, jax.Array]:
    """The draws of one chain (a Metropolis-adjusted sampler) at step `step`: `size` standard
    normals, as `PathKeys.step_normals` gives a path, and one uniform in [0, 1) from the counter
    (step, size), which no normal uses.

    Args:
        kw: the chain's key words ``(2,)`` (`threefry_words`).
        step: the step index (uint32 scalar).
        size: normals per step.
        dtype: floating dtype.

    Returns:
        ``(normals (size,), uniform ())``.
    """
    step = jnp.asarray(step, np.uint32)
    z = PathKeys(kw[None], size).step_normals(step[None], dtype)[0]
    w0, w1 = _hash(kw[0], kw[1], step, np.uint32(size))
    return z, _bits_to_uniform(w0, w1, dtype)


def standard_normal(key: jax.Array, shape: Sequence[int] = (), dtype: Any = None) -> jax.Array:
    """`jax.random.normal`, except that a floating dtype narrower than 32 bits is drawn in
    float32 and rounded: JAX draws those from a uniform of their own few bits, and the result is
    biased (4e6 bfloat16 draws had mean -0.011, 22 standard errors from 0; float16 -0.0018).
    Every normal draw of sdeml goes through here; float32 and float64 draws are JAX's own, bit
    for bit.

    Examples:
        >>> z = standard_normal(jr.key(0), (400_000,), jnp.bfloat16)
        >>> z.dtype, abs(float(z.astype(jnp.float32).mean())) < 0.01
        (dtype(bfloat16), True)
        >>> bool(jnp.all(standard_normal(jr.key(1), (3,)) == jr.normal(jr.key(1), (3,))))
        True
    """
    dtype = float if dtype is None else dtype  # `jax.random.normal`'s default
    want = jax.dtypes.canonicalize_dtype(dtype)
    if jnp.issubdtype(want, jnp.floating) and want.itemsize < 4:
        return jr.normal(key, shape, jnp.float32).astype(want)
    return jr.normal(key, shape, dtype)
