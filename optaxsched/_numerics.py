"""Numerics shared by the transforms: norms that cannot overflow, decay rates, storage casts.

Norms. A float32 sum of squares overflows once the norm passes about 1.8e19, long before the norm
itself (up to 3.4e38) stops being representable; a spike-aware transform must not turn such a finite
spike into ``inf`` (and then ``inf * 0 = NaN``). Rescaling every reduction by the largest magnitude
first would cost a second pass over the data on every step, so the cheap sum is kept and the
rescaled norm is computed only when that sum has overflowed, under ``lax.cond``: the common path
costs what it did. Under ``vmap`` the ``cond`` becomes a select and both branches run.

Decay rates and steps (the Adam family). A rate given as a Python float is expanded in float64
before rounding to float32 (``1 - 0.999`` computed in float32 is off by 1.3e-5, relative), and a
bias correction ``1 - b^k`` is ``-expm1(k log b)``, accurate for ``b`` close to 1. Step counts are
int32 and saturate at :data:`INT32_MAX`.

Products. :func:`saturating_product` (``optaxsched.multiply``'s) multiplies mantissas and adds
exponents, so that finite factors give a finite product, saturated like a stored moment.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["INT32_MAX", "compute_dtype", "rescaled_norm", "norm_from_sum_squares",
           "scaled_sum_squares", "finite_or_zero", "largest", "saturate", "saturating_product",
           "store", "Rate", "rate",
           "scaled_rate", "debias", "step_number", "saturating_add"]

INT32_MAX = 2**31 - 1
"""The largest int32: where step counts and counters saturate, and the bound of step arguments."""


def compute_dtype(dtype: Any) -> Any:
    """The dtype arithmetic is done in: float32 for 16-bit leaves, the leaf's dtype if wider."""
    return jnp.promote_types(dtype, jnp.float32)



def rescaled_norm(x: jax.Array, axis: tuple[int, ...] | None = None) -> jax.Array:
    """``‖x‖₂`` over ``axis`` as ``m · sqrt(Σ (x/m)²)`` with ``m = max |x|``: finite whenever the
    true norm is (inf entries give inf, NaN entries NaN). Computed in float32 or wider.

    One pass, as LAPACK's ``nrm2`` does it: each partial result is a pair ``(m, q)`` with the
    norm ``m sqrt(q)``, and two pairs combine as ``(M, q1 (m1/M)² + q2 (m2/M)²)``,
    ``M = max(m1, m2)``. So ``x`` is read once and never written out (a max followed by a
    scaled sum would read it twice and, on XLA's CPU backend, materialise its producer).
    """
    dtype = compute_dtype(x.dtype)
    a = jnp.abs(x.astype(dtype))
    axes = tuple(range(x.ndim)) if axis is None else tuple(a % x.ndim for a in axis)
    zero = jnp.zeros((), dtype)

    def combine(p, r):
        (m1, q1), (m2, q2) = p, r
        m = jnp.maximum(m1, m2)
        safe = jnp.where(m > 0, m, 1.0)
        r1, r2 = m1 / safe, m2 / safe
        return m, q1 * r1 * r1 + q2 * r2 * r2

    ones = jnp.where(a > 0, 1.0, 0.0).astype(dtype)
    m, q = jax.lax.reduce((a, ones), (zero, zero), combine, axes)
    # An inf entry gives inf / inf = NaN in the scaled sum; keep the norm inf there.
    return jnp.where(jnp.isinf(m), m, m * jnp.sqrt(q))


def norm_from_sum_squares(sum_squares: jax.Array, operand: Callable[[], jax.Array],
                          axis: tuple[int, ...] | None = None) -> jax.Array:
    """``sqrt(sum_squares)``, or, where that sum overflowed, the rescaled norm of ``operand()``.

    ``sum_squares`` is the cheap ``Σ x²`` the caller already reduced (possibly fused with other
    reductions); ``operand`` rebuilds ``x`` from already materialised arrays, so that its
    elementwise producer runs only inside the rare branch and no temporary is kept for it.
    A NaN sum (a NaN entry) stays NaN: the caller's non-finite policy decides what that means.
    """
    overflowed = jnp.any(jnp.isposinf(sum_squares))
    return jax.lax.cond(
        overflowed,
        lambda: rescaled_norm(operand(), axis).astype(sum_squares.dtype),
        lambda: jnp.sqrt(sum_squares),
    )


def scaled_sum_squares(parts: Sequence[jax.Array], axes: Sequence[tuple[int, ...]]
                       ) -> tuple[jax.Array, jax.Array]:
    """``(c, Σᵢ Σ (c·xᵢ)²)`` over each part's ``axes`` (the kept axes must agree), with ``c = 1``
    unless that cheap sum overflowed, in which case ``c`` is a power of two near ``1/max |x|``.

    The norm is ``sqrt(s) / c`` and the unit direction ``(c·x) / sqrt(s)``; the caller forms
    the latter to stay finite even where the norm itself is not representable. Only the sum is
    computed on the common path; the maximum and the rescaled sum run under ``lax.cond`` when
    some entry of the sum is ``+inf``. Non-finite parts give a non-finite ``s`` on both paths
    (``c = 1`` then). A power of two keeps ``c·x`` exact; it is kept normal (XLA's CPU backend
    flushes subnormals to zero).
    """
    squares = sum(jnp.sum(jnp.square(x), axis=a) for x, a in zip(parts, axes, strict=True))

    def rescaled():
        # initial=0: an empty block (a leaf of shape (0,)) has no maximum to reduce.
        m = functools.reduce(jnp.maximum, [jnp.max(jnp.abs(x), axis=a, initial=0.0)
                                           for x, a in zip(parts, axes, strict=True)])
        _, exponent = jnp.frexp(m)  # m < 2**exponent
        usable = jnp.isfinite(m) & (m > 0)
        c = jnp.where(usable, jnp.ldexp(jnp.ones_like(m), -jnp.clip(exponent, -125, 125)), 1.0)
        total = sum(jnp.sum(jnp.square(x * jnp.expand_dims(c, a)), axis=a)
                    for x, a in zip(parts, axes, strict=True))
        return c.astype(squares.dtype), total.astype(squares.dtype)

    def cheap(s):
        # c = 1 typed like the sum: s * 0 + 1 keeps its sharding under explicit mesh axes,
        # where ones_like inside a cond branch did not; s is finite-or-NaN here, never inf.
        return jnp.where(jnp.isnan(s), 1.0, s * 0 + 1).astype(s.dtype), s

    return jax.lax.cond(jnp.any(jnp.isposinf(squares)), lambda s: rescaled(), cheap, squares)


def finite_or_zero(x: jax.Array) -> jax.Array:
    """``x`` with its NaN and ±inf entries replaced by 0 (one select per entry, no reduction).

    The spike transforms' per-coordinate non-finite policy: such a coordinate is a spike of
    unknown size, dropped, so that nothing non-finite reaches a moment or the parameters.
    """
    return jnp.where(jnp.isfinite(x), x, jnp.zeros((), x.dtype))


def largest(dtype: Any) -> float:
    """The largest finite value of the floating ``dtype``, as a Python float."""
    return float(jnp.finfo(dtype).max)


def saturate(x: jax.Array, dtype: Any) -> jax.Array:
    """``x`` clipped to ``±largest(dtype)`` (still in ``x``'s dtype), so that casting it to
    ``dtype`` cannot give inf. A no-op on every value that is finite in ``dtype``; an
    overflowed ``+inf`` (a finite but huge input squared) becomes the largest finite value.

    Used on every moment a transform stores: a second moment of a float16 parameter would
    otherwise overflow at 65504, and ``inf`` in a moment becomes NaN at the next reset or
    division. Saturation keeps the state finite; the moment is then an underestimate until
    it decays below the limit (at ``b2 = 0.999`` a saturated ``v`` halves in about 700 steps).
    """
    big = largest(dtype)
    return jnp.clip(x, -big, big)


def saturating_product(factors: Sequence[jax.Array], exponent: int = 0) -> jax.Array:
    """The elementwise product of float32 arrays, times ``2**exponent``, saturated at
    ``±largest(float32)`` (the bound :func:`saturate` clips to): finite whenever every factor is
    finite.

    A running product overflows once it passes float32's range (two factors of 1e20), and the
    ``inf`` turns into NaN against a later 0; a partial product can also underflow to 0 although
    the whole product is representable (1e-30 · 1e-30 · 1e30). So each factor is split into a
    mantissa in [0.5, 1) and a power of two (``frexp``, exact): the mantissas are multiplied and
    renormalised, the exponents added, and the range is left, if at all, only at the end. Where
    the plain running product stays in the normal range the result is that product, bit for bit.
    JAX differentiates ``frexp`` and ``ldexp``: the gradient is the product's, and 0 where it
    saturates (the exponent is capped before ``ldexp``, whose gradient would otherwise be
    ``0 · inf``). Subnormal factors count as 0, as XLA's CPU backend flushes them (``frexp``
    misreads them there). A non-finite factor gives what a plain product gives.

    ``exponent`` (a static Python int) is added to the exponents, exactly: a constant factor
    beyond float32's range, or the product of several that leaves it, is passed as its mantissa
    and this power of two (``optaxsched.multiply`` does), so that it reaches the result even
    where it alone would be 0 or ``inf`` in float32 (``1e-30 · 1e-30`` against a factor of 1e30).
    """
    if not factors:
        raise ValueError("saturating_product: at least one factor is needed.")
    tiny = float(jnp.finfo(jnp.float32).tiny)

    def split(factor: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        factor = jnp.asarray(factor, jnp.float32)
        factor = jnp.where(jnp.abs(factor) < tiny, jnp.zeros_like(factor), factor)
        mantissa, exponent = jnp.frexp(factor)
        return mantissa, exponent, jnp.isfinite(factor)

    mantissa, total, finite = split(factors[0])
    total = total + exponent
    for factor in factors[1:]:
        m, e, ok = split(factor)
        mantissa, carry = jnp.frexp(mantissa * m)
        total, finite = total + e + carry, finite & ok
    # |mantissa| is in [0.5, 1) (or 0): the product is beyond float32's range exactly when the
    # exponent exceeds 128. Far below the range ldexp gives 0 (flushed like any float32 result).
    beyond = finite & (total > 128)
    product = jnp.ldexp(mantissa, jnp.minimum(total, 128))
    return jnp.where(beyond, jnp.sign(mantissa) * largest(jnp.float32), product)


def store(x: jax.Array, dtype: Any) -> jax.Array:
    """``x`` cast to a moment's or an update's storage ``dtype``: as it is for 32/64-bit dtypes,
    saturated at the largest finite value for 16-bit ones.

    A 16-bit moment can overflow (a normalised entry of 256 squares past float16's 65504), and a
    16-bit second moment can underflow to 0 while the first does not, which makes a float32
    direction ``m / (sqrt(v) + eps)`` too large for float16. (Saturating 32-bit values too made
    XLA copy both of Stable-SPAM's moments every step; AdaGN bounds what they see.)
    """
    if jnp.finfo(dtype).bits < 32:
        x = saturate(x, dtype)
    return x.astype(dtype)


class Rate(NamedTuple):
    """A decay rate ``b`` as float32 ``b``, ``1 - b`` and ``log b`` (for ``1 - b^k``)."""

    value: jax.Array
    complement: jax.Array
    log: jax.Array


def rate(b: Any) -> Rate:
    """The :class:`Rate` of ``b``. Python floats are expanded in float64 first: float32(0.999)
    is 0.99900001, so ``1 - b`` computed in float32 would be off by 1.3e-5 (relative), and
    ``1 - b^k`` likewise. Traced (injected) values are expanded in float32."""
    if isinstance(b, (int, float)):
        b = float(b)
        log = math.log(b) if b > 0 else -math.inf
        return Rate(jnp.float32(b), jnp.float32(1.0 - b), jnp.float32(log))
    b = jnp.asarray(b, jnp.float32)
    return Rate(b, 1.0 - b, jnp.log(b))


def scaled_rate(r: Rate, scale: jax.Array, one_minus_scale: jax.Array) -> Rate:
    """The rate ``b · s``, given ``s`` and ``1 - s`` (``1 - b s = (1 - b) + b (1 - s)``)."""
    return Rate(r.value * scale, r.complement + r.value * one_minus_scale,
                r.log + jnp.log(scale))


def debias(r: Rate, k: jax.Array) -> jax.Array:
    """The bias correction ``1 - b^k`` for a float32 step ``k >= 1``, accurate for ``b`` near 1."""
    return -jnp.expm1(k * r.log)


def step_number(count: jax.Array) -> jax.Array:
    """The 1-based step ``k = count + 1`` of the update at optax's ``count`` (int32, saturating;
    the papers' code numbers steps from 1, optax counts updates from 0)."""
    return jnp.minimum(jnp.asarray(count, jnp.int32), INT32_MAX - 1) + 1


def saturating_add(total: jax.Array, n: jax.Array) -> jax.Array:
    """``total + n`` for int32 ``total, n >= 0``, saturating at :data:`INT32_MAX`."""
    return jnp.where(total > INT32_MAX - n, INT32_MAX, total + n)
