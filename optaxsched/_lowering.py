"""How the spike transforms are lowered: devices for XLA's CPU backend, kept out of the algorithms.

XLA's GPU and TPU backends fuse elementwise producers and reductions into one kernel and several
outputs into one loop. Its CPU backend compiles each fusion into its own loop over memory, with
no multi-output fusion, so a step costs about the number of full-size arrays its loops read and
write. The update functions in :mod:`optaxsched._spam` and :mod:`optaxsched._stable_spam` are
written as the papers' algorithm boxes; the few places where the literal form would cost a full-size
pass or a copy on CPU call a function of this module instead. Each one computes the same values (up
to float rounding where said) and carries the measurement that justifies it. On an accelerator each
is close to neutral: the exact divisions and multiplications by a runtime 1 and the recomputation
identity are elementwise work inside memory-bound loops, and the library reductions are what XLA
uses there anyway. (Optimisation barriers are not used: XLA's CPU pipeline removes them before
fusion, so they had no effect; the compiled HLO holds none.) Not yet measured on a GPU.

Measurements: ``benchmarks/step_time.py`` on the project's shared 2-core CPU, 16M float32
parameters, ratio to ``optax.adam`` in the same process (``benchmarks/RESULTS.md``), and XLA's
buffer assignment (``tests/test_footprint.py``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from optaxsched import _numerics, _reductions

__all__ = ["each_loop", "runtime_one", "stored", "spam_clip_from_new_moment", "count_true",
           "max_abs_and_sum_squares", "sum_squares_under", "clipped_norm", "finite_max_abs",
           "finite_norm", "reduce_accurate"]


def each_loop(x: Any, fn: Any, one: jax.Array, n: int = 2) -> tuple:
    """``n`` copies of ``fn(x)`` (``x`` an array or a list of them) that XLA computes inside
    each loop that reads one, instead of writing one shared copy out.

    XLA merges identical expressions and then writes a producer shared by several loops out
    as a full-size temporary. The copies here are ``fn`` of ``x * one``, ``x - (one - 1)`` and
    ``x / one`` with ``one`` a runtime 1 (:func:`runtime_one`): exact, but not identical to
    XLA. (An optimisation barrier would be the natural tool, but XLA's CPU pipeline removes
    barriers before fusion.) Measured on SPAM, 512x512 leaf: the NaN-dropped gradient shared by
    the ``v`` and ``m`` loops was one parameter-sized temporary, none with this; likewise
    Stable-SPAM's clipped, normalised gradient shared by its reduction and moment loops.
    """
    variants = (lambda y, o: y * o, lambda y, o: y - (o - 1), lambda y, o: y / o)
    if n > len(variants):
        raise ValueError(f"each_loop: at most {len(variants)} copies")
    return tuple(fn(jax.tree.map(lambda y, i=i: variants[i](y, one.astype(y.dtype)), x))
                 for i in range(n))


def runtime_one(count: jax.Array) -> jax.Array:
    """A float32 scalar equal to 1 that XLA cannot fold into a constant (see :func:`stored`)."""
    return jnp.where(jnp.asarray(count) > -(2**31), 1.0, 2.0).astype(jnp.float32)


def stored(x: jax.Array, one: jax.Array) -> jax.Array:
    """``x`` (exactly: ``x / 1``), written once to memory and read by the later loops.

    XLA's CPU fusion duplicates a *cheap* elementwise producer into each of its consumers
    rather than read it back. For a moment update that is wrong: recomputing the new ``m`` or
    ``v`` in a later loop needs the *old* one, so it cannot be updated in place, and a square
    root the copies share is written out as a full-size temporary. (An optimisation barrier
    does not help: the CPU pipeline removes barriers before fusion.) A division by a runtime
    1 makes the producer "expensive" to XLA, so it is computed in one loop and read back;
    the division is exact and free in a memory-bound loop. Measured on SPAM, 512x512 leaf:
    3-4 parameter-sized temporaries and two moment copies without it, none with it; at 16M
    parameters 6.4x ``optax.adam`` without it (RESULTS.md, step_time section).
    """
    return x / one.astype(x.dtype)


def spam_clip_from_new_moment(g: jax.Array, v_new: jax.Array, threshold: jax.Array,
                              b2: _numerics.Rate, clip_on: jax.Array
                              ) -> tuple[jax.Array, jax.Array]:
    """SPAM's clipped gradient and spike mask, recomputed from the *updated* second moment.

    The algorithm clips against the old ``v`` (``g² > θ v_old`` -> ``sign(g) sqrt(θ v_old)``)
    and then updates ``m`` and ``v`` with the clipped value (``threshold`` is θ, ``b2`` the
    second-moment rate). With ``c = b2 + (1 - b2) θ``: a spike has ``v_new = c v_old``, hence
    ``θ v_old = θ v_new / c``; otherwise ``v_new <= c v_old`` and ``g² <= θ v_new / c``. So
    ``g² > θ v_new / c`` is the same test and ``sqrt(θ v_new / c)`` the same clipped value
    (equal up to float rounding; the parity tests hold to 1e-5). Only where ``v`` saturated at the
    largest finite value does the identity clip a little differently (both sides are then ~1e19 or
    beyond).

    Why: if the ``m`` pass read the old ``v``, ``v`` could not be updated in place: XLA copied
    the whole of ``v`` on every step (a full-size copy in the compiled step, which
    ``tests/test_footprint.py`` now refuses). Reading the new ``v`` costs the same read. The
    new ``v`` passes an optimisation barrier: without it XLA recomputed ``v_new`` (from the old
    ``v``) inside the ``m`` loop, which again needs the old ``v`` (two copies of the moments and
    a materialised ``sqrt(θ v)``: 4 parameter-sized temporaries, 6.4x ``optax.adam`` at 16M).
    """
    growth = b2.value + b2.complement * threshold  # c: v_new = c v_old on a spike
    limit_ratio = jnp.where(growth > 0, threshold / jnp.where(growth > 0, growth, 1.0), 0.0)
    v_new = jax.lax.optimization_barrier(v_new)
    limit = limit_ratio.astype(g.dtype) * v_new.astype(g.dtype)
    spike = clip_on & (g * g > limit)
    return jnp.where(spike, jnp.copysign(jnp.sqrt(limit), g), g), spike


def count_true(mask_a: jax.Array, mask_b: jax.Array) -> jax.Array:
    """The number of True entries of ``mask_a`` plus those of ``mask_b`` (int32, saturating),
    as one variadic reduction by rows first.

    Why two masks in one reduction: XLA turns a single-operand count into a plain reduction,
    which its CPU backend does not fuse with the mask's producer: the int32 mask was written
    out as a full-size temporary (SPAM with counters: 2.4x ``optax.adam`` at 16M). A variadic
    reduction with both outputs used is one loop; the spike transforms count clipped and
    non-finite coordinates, which is two masks anyway.
    """
    a, b = reduce_accurate([mask_a.astype(jnp.int32), mask_b.astype(jnp.int32)], [0, 0],
                           ["add", "add"])
    big = _numerics.INT32_MAX
    return jnp.where(a > big - b, big, a + b)


# Leaves up to this size are counted in one sequential loop; larger ones by rows first.
_SEQUENTIAL_SUM = 2**16


def max_abs_and_sum_squares(raw: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(``max |raw|``, ``Σ raw²``) in float32, in one pass over the gradient as passed in: one
    variadic reduction of ``x²`` and of the bit pattern of ``|x|`` read as an int32.

    Why the bit pattern: for non-negative IEEE floats the integer order of the bit patterns is
    the order of the values, so the int32 maximum, read back as float32, is ``max |x|`` exactly
    (``-0`` gives ``+0``; a NaN's pattern lies above inf's, so a NaN entry gives a NaN maximum,
    as the sum is then NaN too). XLA's CPU backend vectorises that integer maximum inside its
    own loop, but not a float maximum (NaN-propagating): a variadic (float max, sum) loop took
    42 ms on one 4000x4000 leaf against 7.4 ms for two library reductions (load average 2),
    which is why the two passes were used before. Measured on that leaf in one run (load 31,
    median [min] of 11 rounds): this reduction 43.9 [36.1] ms, the two library reductions
    (``max |x|``, ``Σ x²``) 88.9 [81.3] ms; the library max with its ``abs`` runs at about 0.6x
    the speed of the library sum, so the two cost about 2.6 passes of time. The gradient's
    finiteness is read off the sum (NaN and inf propagate), so the common step makes no other
    pass; the rest happens under ``lax.switch`` (:func:`clipped_norm`).
    """
    x = raw if raw.dtype == jnp.float32 else raw.astype(jnp.float32)
    bits = jax.lax.bitcast_convert_type(x, jnp.int32) & jnp.int32(0x7FFFFFFF)
    operands = [jnp.square(x), bits]
    if x.ndim < 2:
        operands = [o.reshape(-1) for o in operands]
    sum_sq, top = reduce_accurate(operands, [0, 0], ["add", "max"])
    # A subnormal maximum reads as 0, as XLA's float arithmetic on CPU (and the library max
    # before) flushes subnormals to zero.
    top = jnp.where(top < _SMALLEST_NORMAL_BITS, 0, top)
    return jax.lax.bitcast_convert_type(top, jnp.float32), sum_sq


# The bit pattern of float32's smallest normal number, 2**-126.
_SMALLEST_NORMAL_BITS = 0x00800000


def clipped_norm(raw: jax.Array, sanitize: Any, limit_of: Any, clip: Any, track: bool
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """AdaClip's ``max |g|`` and the ℓ2 norm of the clipped gradient, for one leaf:
    ``(max |g|, ‖clip(g)‖, clipped + dropped entries)`` (the count is 0 unless ``track``).

    ``sanitize(raw)`` drops non-finite entries, ``limit_of(max)`` is AdaClip's threshold
    (``inf`` where nothing may be clipped) and ``clip(g, max)`` returns (clipped g, mask).
    Three cases, chosen under ``lax.switch`` so that each step runs one of them:

    * the common one (finite sum, ``max |g| <= M̂``): nothing is clipped, the norm is
      ``sqrt(Σ g²)`` from the one pass above; no other pass;
    * AdaClip clips (finite sum, ``max |g| > M̂``): ``Σ_{|g| <= M̂} g²`` is summed again
      (:func:`sum_squares_under`, one more pass) and the clipped entries add
      ``(M̂ / max)² (Σ g² - that)``; the difference is accurate to float32 relative to the
      clipped part, whose factor is at most 1. This branch is not rare: with fresh gradients
      each step, some leaf's ``max |g|`` exceeds its running estimate on most steps;
    * a non-finite entry or an overflowed sum: the sanitised, clipped gradient's norm by the
      one-pass scaled reduction of ``_numerics.rescaled_norm`` (exact for any finite input).
    """
    g_max, sum_sq = max_abs_and_sum_squares(raw)
    zero = jnp.zeros((), jnp.int32)

    def count(mask_a, mask_b):
        return count_true(mask_a, mask_b) if track else zero

    def common():
        return g_max, jnp.sqrt(sum_sq), zero

    def clipped():
        limit = limit_of(g_max)
        under, over = sum_squares_under(raw.astype(jnp.float32), limit)
        ratio = limit / jnp.maximum(g_max, jnp.finfo(jnp.float32).tiny)
        norm = jnp.sqrt(under + ratio * ratio * jnp.maximum(sum_sq - under, 0.0))
        return g_max, norm, over if track else zero

    def slow():
        x = sanitize(raw)
        m = jnp.max(jnp.abs(x), initial=0.0).astype(jnp.float32)
        gc, mask = clip(x, m)
        return m, _numerics.rescaled_norm(gc).astype(jnp.float32), count(mask,
                                                                         ~jnp.isfinite(raw))

    case = jnp.where(jnp.isfinite(sum_sq), jnp.where(g_max > limit_of(g_max), 1, 0), 2)
    return jax.lax.switch(case, (common, clipped, slow))


def sum_squares_under(x: jax.Array, limit: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(``Σ_{|x| <= limit} x²``, the number of entries with ``|x| > limit``, int32), in one pass
    over ``x`` and without a temporary.

    Why one variadic reduction with both outputs used: the masked sum alone is a plain sum of
    a ``select``, which XLA's CPU backend hands to its library reduction only after writing
    the masked squares out as a full-size temporary (3 passes: read, write, read back). A
    variadic reduction of (float32 sum, int32 count) stays one fused loop. Measured on one
    4000x4000 float32 leaf (shared 2-core machine, load average 21; median [min] of 11
    rounds): 21.9 [17.7] ms against 77.7 [61.0] ms for the masked library sum, and 17.7
    [14.4] ms for a library ``Σ x²`` (one pass). With a float32 count instead of int32 the same
    reduction took 144 ms, and a (max, sum) pair 6x the two library reductions (see
    :func:`max_abs_and_sum_squares`). The count is kept alive when the caller does not use it
    (``+ 0 * count``; exact), or XLA would drop it and split the loop again.
    """
    masked = jnp.where(jnp.abs(x) <= limit, jnp.square(x), jnp.zeros((), x.dtype))
    over = (jnp.abs(x) > limit).astype(jnp.int32)
    flat = [masked.reshape(-1), over.reshape(-1)] if x.ndim < 2 else [masked, over]
    under, count = reduce_accurate(flat, [0, 0], ["add", "add"])
    return under + count.astype(under.dtype) * jnp.zeros((), under.dtype), count


def finite_max_abs(raw: jax.Array, sanitize: Any) -> jax.Array:
    """``max |sanitize(raw)|`` (float32): the library ``max`` of the gradient as passed in, and
    the sanitised maximum only when that is not finite (see :func:`max_abs_and_sum_squares`)."""
    m = jnp.max(jnp.abs(raw), initial=0.0).astype(jnp.float32)
    return jax.lax.cond(jnp.isfinite(m), lambda: m,
                        lambda: jnp.max(jnp.abs(sanitize(raw)), initial=0.0).astype(jnp.float32))


def finite_norm(raw: jax.Array, sanitize: Any) -> jax.Array:
    """``‖sanitize(raw)‖₂`` (float32): ``sqrt`` of the library ``Σ raw²``, or, when that sum is
    not finite (a non-finite entry, or an overflow), the one-pass scaled norm of the sanitised
    gradient (``_numerics.rescaled_norm``), finite whenever the true norm is."""
    x = raw if raw.dtype == jnp.float32 else raw.astype(jnp.float32)
    sum_sq = jnp.sum(jnp.square(x))
    return jax.lax.cond(jnp.isfinite(sum_sq), lambda: jnp.sqrt(sum_sq),
                        lambda: _numerics.rescaled_norm(sanitize(raw)).astype(jnp.float32))


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


