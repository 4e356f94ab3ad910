"""How the spike transforms are lowered: devices for XLA's CPU backend, kept out of the algorithms.

XLA's GPU and TPU backends fuse elementwise producers and reductions into one kernel and several
outputs into one loop. Its CPU backend compiles each fusion into its own loop over memory, with
no multi-output fusion, so a step costs about the number of full-size arrays its loops read and
write. The update functions in :mod:`optaxsched.spikes` are written as the papers' algorithm
boxes; the few places where the literal form would cost a full-size pass or a copy on CPU call a
function of this module instead. Each one computes the same values (up to float rounding where
said) and carries the measurement that justifies it. On an accelerator each is neutral: an
optimisation barrier only separates fusions that would have been separate kernels anyway, and
the recomputation identities are elementwise.

Measurements: ``benchmarks/step_time.py`` on the project's shared 2-core CPU, 16M float32
parameters, ratio to ``optax.adam`` in the same process (``benchmarks/RESULTS.md``), and XLA's
buffer assignment (``tests/test_footprint.py``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from optaxsched import _reductions

__all__ = ["aliases", "spam_clip_from_new_moment", "count_true", "max_abs", "adaclip_reduce",
           "sum_squares", "reduce_accurate", "adaclip_sum_squares"]


def aliases(tree: Any, n: int) -> tuple:
    """``n`` copies of ``tree`` that XLA cannot merge (an optimisation barrier; no data is copied).

    An expression computed from each copy is then fused into its own consumer (recomputed in
    each loop) instead of being written out once as a full-size temporary and read back by all
    of them. Why: Stable-SPAM's clipped, normalised gradient feeds the norm, ``v`` and ``m``;
    without the barrier XLA's CPU backend materialised it (one parameter-sized temporary, a
    fresh ``mmap`` faulted in on every step). Together with the variadic reductions below this
    took Stable-SPAM from 2.8-3.7x to about 1.3x ``optax.adam`` (RESULTS.md, step_time section).
    """
    return jax.lax.optimization_barrier((tree,) * n)


def spam_clip_from_new_moment(g: jax.Array, v_new: jax.Array, limit_ratio: jax.Array,
                              clip_on: jax.Array) -> tuple[jax.Array, jax.Array]:
    """SPAM's clipped gradient and spike mask, recomputed from the *updated* second moment.

    The algorithm clips against the old ``v`` (``g² > θ v_old`` -> ``sign(g) sqrt(θ v_old)``)
    and then updates ``m`` and ``v`` with the clipped value. With ``c = b2 + (1 - b2) θ`` and
    ``limit_ratio = θ / c``: a spike has ``v_new = c v_old``, hence ``θ v_old = θ v_new / c``;
    otherwise ``v_new <= c v_old`` and ``g² <= θ v_new / c``. So ``g² > θ v_new / c`` is the same
    test and ``sqrt(θ v_new / c)`` the same clipped value (equal up to float rounding; the
    parity tests hold to 1e-5). Only where ``v`` saturated at the largest finite value does
    the identity clip a little differently (both sides are then ~1e19 or beyond).

    Why: if the ``m`` pass read the old ``v``, ``v`` could not be updated in place: XLA copied
    the whole of ``v`` on every step (a full-size copy in the compiled step, which
    ``tests/test_footprint.py`` now refuses). Reading the new ``v`` costs the same read.
    """
    limit = limit_ratio.astype(g.dtype) * v_new.astype(g.dtype)
    spike = clip_on & (g * g > limit)
    return jnp.where(spike, jnp.copysign(jnp.sqrt(limit), g), g), spike


def count_true(mask: jax.Array) -> jax.Array:
    """The number of True entries, int32, as a variadic-style reduction by rows first.

    Why: ``jnp.sum(mask)`` made XLA's CPU backend materialise the int32 cast of the mask as a
    full-size array; the row-first reduction is one loop spread over the threads (a full
    reduction runs on one).
    """
    (n,) = reduce_accurate([mask.astype(jnp.int32)], [0], ["add"])
    return n


def max_abs(x: jax.Array) -> jax.Array:
    """``max |x|`` as float32 (``x`` finite), reduced by rows first (one loop, all threads)."""
    (m,) = reduce_accurate([jnp.abs(x).astype(jnp.float32)], [0.0], ["max"])
    return m


# Leaves up to this size are summed in one sequential loop; larger ones by rows first (float
# sums accumulated sequentially over millions of entries lose digits).
_SEQUENTIAL_SUM = 2**16


def sum_squares(x: jax.Array) -> jax.Array:
    """``Σ x²`` in float32, accurate for large leaves (rows first, then the row sums)."""
    (total,) = reduce_accurate([jnp.square(x.astype(jnp.float32))], [0.0], ["add"])
    return total


def adaclip_reduce(g: jax.Array, floor: jax.Array, finite_mask: jax.Array | None = None
                   ) -> tuple[jax.Array, ...]:
    """One pass over a (finite) leaf for AdaClip and AdaGN: ``max|g|``, ``Σ_{|g|<=floor} g²``,
    ``#{|g| > floor}`` and, given ``finite_mask`` (the raw gradient's finiteness), the number
    of non-finite entries.

    Stable-SPAM needs ``max|g|`` before it can clip, and the clipped gradient's norm before it
    can normalise: literally two reductions over ``g``. But the threshold is
    ``M̂ = a + b max|g|`` with ``a, b >= 0`` known before the pass and ``b < 1`` after the first
    step, so an entry can be clipped only if ``|g| > floor = a / (1 - b)``. When at most one
    entry is above ``floor`` (the usual case: it is the largest entry, if any), the clipped
    norm follows from these sums alone (:func:`adaclip_sum_squares`); only steps with two or
    more entries above ``floor`` pay for the second pass, under ``lax.cond``.

    Why: the second full-size reduction costs about one read of the gradient, 1/7 of Adam's
    step (RESULTS.md, step_time section, measured with and without it).
    """
    a = jnp.abs(g).astype(jnp.float32)
    low = a <= floor
    operands = [a, jnp.where(low, a * a, 0.0), (~low).astype(jnp.int32)]
    inits: list = [0.0, 0.0, 0]
    ops = ["max", "add", "add"]
    if finite_mask is not None:
        operands.append((~finite_mask).astype(jnp.int32))
        inits.append(0)
        ops.append("add")
    return reduce_accurate(operands, inits, ops)


def reduce_accurate(operands: list, inits: list, ops: list) -> tuple[jax.Array, ...]:
    """:func:`_reductions.reduce_all`, with long vectors cut into rows first too (a float32 sum
    accumulated sequentially over 10^5 entries loses digits; by rows it is also spread over
    the threads)."""
    x = operands[0]
    if x.ndim != 1 or x.size <= _SEQUENTIAL_SUM:
        return _reductions.reduce_all(operands, inits, ops)
    width = 1024
    head = (x.size // width) * width
    parts = [_reductions.reduce_all([o[:head].reshape(-1, width) for o in operands], inits, ops)]
    if head < x.size:
        parts.append(_reductions.reduce_all([o[head:] for o in operands], inits, ops))
    out = []
    for i, op in enumerate(ops):
        values = [p[i] for p in parts]
        combined = values[0]
        for v in values[1:]:
            combined = jnp.maximum(combined, v) if op == "max" else combined + v
        out.append(combined)
    return tuple(out)


def adaclip_sum_squares(clipped: Any, g_max: jax.Array, low_sum: jax.Array, n_high: jax.Array,
                        limit: jax.Array, active: jax.Array
                        ) -> tuple[jax.Array, jax.Array]:
    """(``Σ clip(g)²``, number of clipped entries) from :func:`adaclip_reduce`'s sums.

    ``clipped()`` rebuilds ``(clip(g), spike mask)`` from arrays already in memory; it runs
    (one more pass) only when two or more entries lie above the floor. Otherwise:
    no entry above it -> nothing is clipped, the sum is ``low_sum``; one entry -> it is the
    largest, clipped to exactly ``M̂`` iff ``max|g| > M̂``, adding ``min(max|g|, M̂)²``.
    """
    single = jnp.where(active & (g_max > limit), limit, g_max)

    def one_pass():
        return (low_sum + jnp.where(n_high > 0, single * single, 0.0),
                jnp.where((n_high > 0) & active & (g_max > limit), 1, 0).astype(jnp.int32))

    def two_passes():
        gc, spike = clipped()
        sums = reduce_accurate([jnp.square(gc.astype(jnp.float32)), spike.astype(jnp.int32)],
                               [0.0, 0], ["add", "add"])
        return sums[0], sums[1]

    return jax.lax.cond(n_high <= 1, one_pass, two_passes)
