"""Tests for the combinators (with_warmup, join, multiply, sample_every, rewarm) against the
float64 references in tests/reference. ``tabulated`` and ``in_tokens`` share the property tests
of every schedule built here (``BUILT``); their own tests are in test_tabulated / test_tokens.

Inner schedules are optax's own (linear, cosine decay, constant) with NumPy twins in
``tests/reference/combinators_np.py``; a few tests compose with optaxsched's schedules and their
references in ``tests/reference/schedules_np.py``. Every hypothesis example evaluates a schedule
once, on one fixed-shape array of counts; jit is used only on fixed configurations.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import optaxsched as oxs
from optaxsched import _combinators as combinators
from optaxsched import _numerics
from tests._schedule_helpers import (
    COUNTS,
    FAR,
    INT32_MAX,
    OK,
    Stateful,
    assert_examples_run,
    assert_exported,
    assert_named_error,
    close,
    decreasing,
    inner,
    nondecreasing,
    nonincreasing,
    shapes,
    small,
    values,
)
from tests.reference import combinators_np as ref
from tests.reference import schedules_np

# Finite float32 values of every magnitude; subnormals are left out, as XLA's CPU backend flushes
# them to 0 in any product.
FINITE32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)


def _constant(value):
    return lambda count: jnp.full(jnp.shape(count), value, jnp.float32)

# ------------------------------------------------------------------------------------------------
# with_warmup
# ------------------------------------------------------------------------------------------------

@given(pair=inner(), warm=st.integers(0, 400), shape=shapes, init=small)
def test_with_warmup_matches_reference(pair, warm, shape, init):
    jax_fn, np_fn, scale = pair
    out = values(oxs.with_warmup(jax_fn, warm, shape, init))
    close(out, ref.evaluate(ref.with_warmup(np_fn, warm, shape, init), COUNTS), max(scale, init))


@given(pair=inner(), warm=st.integers(1, 400), shape=shapes, init=small)
def test_with_warmup_shifts_the_schedule_and_ramps_within_bounds(pair, warm, shape, init):
    jax_fn, _, _ = pair
    schedule = oxs.with_warmup(jax_fn, warm, shape, init)
    out = values(schedule)
    inner_values = np.broadcast_to(np.asarray(jax_fn(jnp.arange(2000.0)), np.float32), (2000,))
    # From count W on, the inner schedule runs from its own count 0.
    np.testing.assert_allclose(out[warm:2000], inner_values[: 2000 - warm], rtol=1e-6, atol=1e-7)
    assert out[0] == np.float32(init)
    target = float(inner_values.reshape(-1)[0])
    lo, hi = min(init, target), max(init, target)
    ramp = out[: warm + 1]
    assert ramp.min() >= lo - 1e-6 and ramp.max() <= hi + 1e-6
    assert (nondecreasing(ramp) if init <= target else nonincreasing(ramp))
    # Continuous at the end of the warmup (as a function of a real count).
    edge = np.asarray(schedule(np.float32([warm - 1e-3, warm])))
    assert abs(edge[1] - edge[0]) <= 2e-3 * abs(target - init) / warm * 2 + 1e-5


@given(pair=decreasing(), warm=st.integers(1, 400), shape=shapes)
def test_with_warmup_of_a_decay_rises_then_falls(pair, warm, shape):
    out = values(oxs.with_warmup(pair[0], warm, shape, 0.0))
    assert nondecreasing(out[: warm + 1]) and nonincreasing(out[warm:])


def _ramps(init, target, counts, warm, shape):
    """with_warmup's ramp, and rewarm's after a restart at 3, from ``init`` to ``target``."""
    return (oxs.with_warmup(_constant(target), warm, shape, init)(counts),
            oxs.rewarm(_constant(target), [3], warm, init, shape)(counts + 3))


_ramps_jit = jax.jit(_ramps, static_argnums=(3, 4))


@given(init=FINITE32, target=FINITE32, warm=st.sampled_from([1, 6, 50]), shape=shapes)
def test_warmup_ramps_between_finite_ends_stay_finite(init, target, warm, shape):
    """Ends of opposite signs further apart than float32's range (init -3e38 to 3e38): the gap
    overflows, the ramp does not."""
    counts = jnp.arange(warm + 2, dtype=jnp.int32)
    # The reference ramp in float64: it never leaves [min(ends), max(ends)].
    x = np.clip(np.arange(warm + 2) / warm, 0.0, 1.0)
    rise = x if shape == "linear" else 0.5 * (1.0 - np.cos(np.pi * x))
    expected = float(init) + (float(target) - float(init)) * rise
    scale = max(abs(float(init)), abs(float(target)), F32_TINY)
    ends = (jnp.float32(init), jnp.float32(target))
    for out in (*_ramps(*ends, counts, warm, shape), *_ramps_jit(*ends, counts, warm, shape)):
        out = np.asarray(out)
        assert np.all(np.isfinite(out)), (init, target, out)
        np.testing.assert_allclose(out, expected, rtol=0, atol=4e-7 * scale)
        assert out[0] == np.float32(init) and out[warm] == np.float32(target)


def test_with_warmup_zero_steps_is_the_schedule():
    decay = optax.cosine_decay_schedule(1.0, 300)
    np.testing.assert_array_equal(values(oxs.with_warmup(decay, 0)),
                                  np.asarray(decay(COUNTS.astype(np.float32))))


# ------------------------------------------------------------------------------------------------
# join
# ------------------------------------------------------------------------------------------------

@given(data=st.data(), k=st.integers(1, 4))
def test_join_matches_reference_and_optax(data, k):
    pairs = [data.draw(inner()) for _ in range(k)]
    bounds = sorted(data.draw(st.lists(st.integers(0, 1900), min_size=k - 1, max_size=k - 1,
                                       unique=True)))
    out = values(oxs.join([p[0] for p in pairs], bounds))
    expected = ref.evaluate(ref.join([p[1] for p in pairs], bounds), COUNTS)
    close(out, expected, max(p[2] for p in pairs))
    theirs = optax.join_schedules([p[0] for p in pairs], bounds)(jnp.asarray(COUNTS))
    close(out, np.asarray(theirs, np.float64), max(p[2] for p in pairs))


@given(levels=st.lists(small, min_size=3, max_size=6), data=st.data())
def test_join_of_chained_pieces_is_continuous(levels, data):
    # Linear pieces from levels[i] to levels[i + 1]: each piece starts where the last one ended.
    k = len(levels) - 1
    lengths = data.draw(st.lists(st.integers(1, 300), min_size=k, max_size=k))
    pieces = [optax.linear_schedule(levels[i], levels[i + 1], lengths[i]) for i in range(k)]
    bounds = np.cumsum(lengths[:-1])  # a NumPy array of int64 is accepted
    schedule = oxs.join(pieces, bounds)
    out = values(schedule)
    steepest = max(abs(levels[i + 1] - levels[i]) / lengths[i] for i in range(k))
    assert np.max(np.abs(np.diff(out[:2000]))) <= steepest * (1 + 1e-4) + 1e-5
    if all(a >= b for a, b in zip(levels, levels[1:], strict=False)):
        assert nonincreasing(out)
    edges = np.asarray(bounds, np.float32)
    before, at = np.asarray(schedule(edges - 1e-3)), np.asarray(schedule(edges))
    assert np.all(np.abs(before - at) <= 2e-3 * steepest + 1e-5)


def test_join_single_schedule_and_zero_boundary():
    decay = optax.linear_schedule(1.0, 0.0, 100)
    np.testing.assert_array_equal(values(oxs.join([decay], [])),
                                  np.asarray(decay(COUNTS.astype(np.float32))))
    # A first boundary at 0: the first schedule is never used.
    other = optax.constant_schedule(7.0)
    np.testing.assert_array_equal(values(oxs.join([other, decay], [0])),
                                  np.asarray(decay(COUNTS.astype(np.float32))))


def test_join_never_gives_inner_schedules_a_negative_count():
    def undefined_below_minus_one(count):
        return jnp.sqrt(count + 1.0)  # NaN (value and slope) for counts below -1.

    schedule = oxs.join([optax.constant_schedule(1.0), undefined_below_minus_one], [100])
    assert np.all(np.isfinite(values(schedule)))
    grads = jax.vmap(jax.grad(schedule))(jnp.arange(0.0, 200.0))
    assert np.all(np.isfinite(np.asarray(grads)))
    # optax.join_schedules hands the masked branch count - 100 and its gradient is NaN there.
    theirs = optax.join_schedules([optax.constant_schedule(1.0), undefined_below_minus_one],
                                  [100])
    assert np.isnan(np.asarray(jax.grad(theirs)(jnp.float32(10.0))))


# ------------------------------------------------------------------------------------------------
# multiply
# ------------------------------------------------------------------------------------------------

@given(data=st.data(), k=st.integers(1, 3), constants=st.lists(
    st.floats(-3, 3, allow_nan=False, width=32), max_size=2))
def test_multiply_matches_reference(data, k, constants):
    pairs = [data.draw(inner()) for _ in range(k)]
    order = data.draw(st.permutations([*range(k), *(-1 - i for i in range(len(constants)))]))
    factors = [pairs[i][0] if i >= 0 else constants[-1 - i] for i in order]
    factors_np = [pairs[i][1] if i >= 0 else constants[-1 - i] for i in order]
    scale = math.prod(p[2] for p in pairs) * math.prod(abs(c) for c in constants)
    close(values(oxs.multiply(*factors)), ref.evaluate(ref.multiply(*factors_np), COUNTS), scale)


@given(a=decreasing(), b=decreasing(), peak=st.floats(0.0, 1.0))
def test_multiply_of_bounded_decays_is_bounded_and_decreasing(a, b, peak):
    out = values(oxs.multiply(a[0], peak, b[0]))
    assert out.min() >= 0.0 and out.max() <= peak * a[2] * b[2] * (1 + 1e-6) + 1e-7
    assert nonincreasing(out)


def _product(values, counts):
    return oxs.multiply(*map(_constant, values))(counts)


_product_jit = jax.jit(_product)  # the values are arguments: compiled once per number of factors


@given(values=st.lists(FINITE32, min_size=1, max_size=5))
def test_multiply_of_finite_values_is_the_clipped_float64_product(values):
    counts = jnp.arange(3, dtype=jnp.int32)
    factors = tuple(jnp.float32(v) for v in values)
    eager = np.asarray(_product(factors, counts))
    np.testing.assert_array_equal(np.asarray(_product_jit(factors, counts)), eager)
    assert np.all(np.isfinite(eager)), (values, eager)
    expected = np.clip(math.prod(float(v) for v in values), -F32_MAX, F32_MAX)
    # One float32 rounding per factor; below float32's normal range results flush to 0.
    np.testing.assert_allclose(eager, np.full(3, expected), rtol=len(values) * 2.0**-24,
                               atol=F32_TINY)
    if abs(expected) >= F32_TINY:
        assert np.all(np.sign(eager) == np.sign(expected))


def test_multiply_saturates_instead_of_overflowing():
    big, small_ = _constant(1e20), _constant(1e-30)
    counts = np.arange(4, dtype=np.int32)
    for factors, expected in [
            ((big, big), F32_MAX),                        # 1e40: saturated, not inf
            ((big, _constant(-1e20)), -F32_MAX),          # keeps the sign
            ((big, big, 1e-10), 1e30),                    # no partial product overflows
            ((big, big, _constant(0.0)), 0.0),            # inf * 0 would be NaN
            ((small_, small_, _constant(1e30)), 1e-30),   # no partial product underflows
            # Constants whose product leaves float32's range, brought back by a schedule (they
            # were multiplied in float64 and cast: 1e-60 became 0; 1e40 was refused).
            ((_constant(1e30), 1e-30, 1e-30), 1e-30),
            ((_constant(1e-10), 1e20, 1e20), 1e30),
            ((_constant(1.0), 1e20, 1e20), F32_MAX),
            ((_constant(0.0), 1e20, 1e20), 0.0),
            ((_constant(-1e38), 2e-38, 2e-38, 1e38), -4.0)]:
        schedule = oxs.multiply(*factors)
        for out in (schedule(counts), jax.jit(schedule)(counts)):
            np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-6)
    # Within the range: the plain product, bit for bit, and its gradient.
    a, b = optax.cosine_decay_schedule(2.0, 500, alpha=0.05), optax.linear_schedule(0.0, 1.0, 50)
    plain = np.asarray(a(COUNTS)).astype(np.float32) * np.float32(0.5) * np.asarray(b(COUNTS))
    np.testing.assert_array_equal(values(oxs.multiply(0.5, a, b)), plain)
    assert float(jax.grad(oxs.multiply(lambda c: c * c, 3.0))(2.0)) == 12.0
    # Saturated: the gradient is 0, not NaN (ldexp's would be 0 * inf).
    assert float(jax.grad(oxs.multiply(big, big, lambda c: c))(2.0)) == 0.0
    # A non-finite factor is not hidden: it gives what a plain product gives.
    assert np.isinf(oxs.multiply(_constant(np.inf), 2.0)(0))
    assert np.isnan(oxs.multiply(_constant(np.inf), _constant(0.0))(0))
    assert np.isnan(oxs.multiply(_constant(np.nan), 2.0)(0))


_EDGE_CONSTANTS = [0.0, -0.0, F32_TINY, -F32_TINY, F32_MAX, -F32_MAX, 1e-30, 1e30, 1e-20, 1e20,
                   1e-39, 1e-45, 1e-50, 1e39, 0.1, -3.0]


@given(constants=st.lists(st.one_of(st.sampled_from(_EDGE_CONSTANTS), FINITE32,
                                    st.floats(-1e40, 1e40)), min_size=1, max_size=3),
       scheduled=st.lists(FINITE32, max_size=2))
def test_multiply_takes_constants_exactly_or_refuses_them(constants, scheduled):
    """A constant is never silently lost: one that float32 cannot hold (1e-50, flushed to 0;
    1e39) is a named error; the others' product is taken exactly, so it may leave float32's
    range where a schedule brings it back. Checked against exact rational arithmetic."""
    factors = [*constants, *map(_constant, scheduled)]
    if any(c != 0 and not F32_TINY <= abs(c) <= F32_MAX for c in constants):
        assert_named_error(lambda: oxs.multiply(*factors),
                           r"multiply: factors\[\d\] must be a finite number")
        return
    constant = math.prod(Fraction(c) for c in constants)
    if not scheduled and constant != 0 and not F32_TINY <= abs(constant) <= F32_MAX:
        assert_named_error(lambda: oxs.multiply(*factors),
                           "multiply: factors must be numbers whose product is within the "
                           "float32 range when no schedule is among them")
        return
    exact = constant * math.prod(Fraction(float(v)) for v in scheduled)
    expected = float(min(max(exact, Fraction(-F32_MAX)), Fraction(F32_MAX)))
    out = np.asarray(_product_with_constants(factors))
    assert np.all(np.isfinite(out)), (constants, scheduled, out)
    # One rounding of the constants' product, one per schedule factor; below float32's normal
    # range results flush to 0.
    np.testing.assert_allclose(out, np.full(3, expected), rtol=(2 + len(scheduled)) * 2.0**-24,
                               atol=F32_TINY)
    if abs(expected) >= F32_TINY:
        assert np.all(np.sign(out) == np.sign(expected))


def _product_with_constants(factors):
    return oxs.multiply(*factors)(np.arange(3, dtype=np.int32))


def test_saturating_product_adds_a_static_exponent_exactly():
    ones = jnp.ones(3, jnp.float32)
    for factors, exponent, expected in [
            ([ones * 0.75], 0, 0.75), ([ones * 0.75], -130, 0.0),  # below the normal range
            ([ones * 0.75, ones * 2.0**100], -200, 0.75 * 2.0**-100),
            ([ones * 0.5, ones * 2.0**-120], 300, F32_MAX),         # saturated
            ([ones * -0.5, ones * 2.0**-120], 300, -F32_MAX),
            ([ones * 0.0, ones * 3e38], 4000, 0.0), ([ones * 0.75], -4000, 0.0)]:
        out = np.asarray(_numerics.saturating_product(factors, exponent=exponent))
        np.testing.assert_array_equal(out, np.float32(expected))
    grad = jax.grad(lambda x: _numerics.saturating_product([x, jnp.float32(0.5)], exponent=-60))
    assert float(grad(jnp.float32(3.0))) == 2.0**-61


def test_multiply_constants_only_and_broadcast():
    out = values(oxs.multiply(2.0, np.float32(0.5), 3))
    assert out.shape == COUNTS.shape and np.all(out == np.float32(3.0))
    lr = oxs.multiply(oxs.tabulated([1.0, 0.0]), 3e-4)
    assert float(lr(0)) == pytest.approx(3e-4) and float(lr(1)) == 0.0


# ------------------------------------------------------------------------------------------------
# sample_every
# ------------------------------------------------------------------------------------------------

@given(pair=inner(), interval=st.integers(1, 700))
def test_sample_every_matches_reference(pair, interval):
    jax_fn, np_fn, scale = pair
    close(values(oxs.sample_every(jax_fn, interval)),
          ref.evaluate(ref.sample_every(np_fn, interval), COUNTS), scale)


@given(pair=decreasing(), interval=st.integers(1, 700))
def test_sample_every_is_a_staircase(pair, interval):
    jax_fn = pair[0]
    out = values(oxs.sample_every(jax_fn, interval))[:2000]
    inner_values = np.asarray(jax_fn(jnp.arange(2000.0)), np.float32)
    at_starts = inner_values[np.arange(0, 2000, interval)]
    np.testing.assert_allclose(out, np.repeat(at_starts, interval)[:2000], rtol=1e-6, atol=1e-7)
    assert nonincreasing(out)


def test_sample_every_floor_is_exact_for_large_counts():
    identity = lambda c: c  # noqa: E731  (the schedule that returns its count)
    k = 3
    counts = np.arange(2**24 - 3000, 2**24, dtype=np.int32)
    out = np.asarray(oxs.sample_every(identity, k)(counts))
    np.testing.assert_array_equal(out, (counts // k * k).astype(np.float32))
    assert float(oxs.sample_every(identity, 1)(12345)) == 12345.0


# ------------------------------------------------------------------------------------------------
# rewarm
# ------------------------------------------------------------------------------------------------

@st.composite
def restarts(draw, max_size=4):
    return sorted(draw(st.lists(st.integers(1, 1900), min_size=1, max_size=max_size,
                                unique=True)))


@given(pair=inner(), points=restarts(), warm=st.integers(0, 300), shape=shapes,
       init=st.one_of(st.none(), small))
def test_rewarm_matches_reference(pair, points, warm, shape, init):
    jax_fn, np_fn, scale = pair
    out = values(oxs.rewarm(jax_fn, points, warm, init, shape))
    expected = ref.evaluate(ref.rewarm(np_fn, points, warm, init, shape), COUNTS)
    close(out, expected, max(scale, init or 0.0))


@given(pair=decreasing(), points=restarts(), warm=st.integers(1, 300), shape=shapes)
def test_rewarm_is_continuous_and_ramps_monotonically(pair, points, warm, shape):
    jax_fn, _, scale = pair
    schedule = oxs.rewarm(jax_fn, points, warm, shape=shape)
    # Continuous at each restart and at the end of each re-warmup (real counts).
    edges = np.resize(np.asarray([*points, *(r + warm for r in points)], np.float32), 8)
    before, at = np.asarray(schedule(edges - 1e-3)), np.asarray(schedule(edges))
    assert np.all(np.abs(before - at) <= 2e-3 * scale + 2e-5)
    out = values(schedule)
    assert out.min() >= -1e-7 and out.max() <= scale * (1 + 1e-6)
    # Each re-warmup moves monotonically from where the run was to s(W).
    target = float(jax_fn(jnp.float32(warm)))
    bounds = [*points, 2000]
    for r, nxt in zip(points, bounds[1:], strict=False):
        ramp = out[r: min(r + warm + 1, nxt)]
        assert nondecreasing(ramp) if ramp[0] <= target else nonincreasing(ramp)
        lo, hi = min(ramp[0], target), max(ramp[0], target)
        assert ramp.min() >= lo - 1e-6 and ramp.max() <= hi + 1e-6


def test_rewarm_hard_restarts_and_fixed_start():
    decay = optax.cosine_decay_schedule(1.0, 100, alpha=0.1)
    inner_values = np.asarray(decay(jnp.arange(500.0)))
    out = values(oxs.rewarm(decay, [300, 700], warmup_steps=0))
    np.testing.assert_allclose(out[300:700], inner_values[:400], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out[:300], inner_values[:300], rtol=1e-6, atol=1e-7)
    out = values(oxs.rewarm(decay, jnp.asarray(300), warmup_steps=10, init_value=0.0))
    assert out[300] == 0.0 and out[305] == pytest.approx(0.5 * inner_values[10], rel=1e-6)
    np.testing.assert_allclose(out[310:700], inner_values[10:400], rtol=1e-6, atol=1e-7)


def test_rewarm_restart_inside_a_rewarmup_starts_from_the_ramp():
    decay = optax.linear_schedule(1.0, 0.0, 100)
    schedule = oxs.rewarm(decay, [200, 205], warmup_steps=10)
    out = values(schedule)
    # First ramp: 0 -> s(10) = 0.9; at 205 it is at 0.45, and the second ramp starts there.
    assert out[205] == pytest.approx(0.45, abs=1e-6)
    assert out[210] == pytest.approx(0.45 + 0.45 * 0.5, abs=1e-6)
    assert out[215] == pytest.approx(0.9, abs=1e-6)


# ------------------------------------------------------------------------------------------------
# Properties shared by every combinator (fixed configurations).
# ------------------------------------------------------------------------------------------------

COSINE = optax.cosine_decay_schedule(2.0, 500, alpha=0.05)
LINEAR = optax.linear_schedule(0.0, 1.0, 50)

BUILT = {
    "tabulated": lambda: oxs.tabulated(np.linspace(1.0, 0.0, 33) ** 2, total_steps=1500),
    "with_warmup": lambda: oxs.with_warmup(COSINE, 100, "cosine", 0.1),
    "join": lambda: oxs.join([LINEAR, COSINE, optax.constant_schedule(0.3)], [50, 700]),
    "multiply": lambda: oxs.multiply(COSINE, 0.5, LINEAR),
    "sample_every": lambda: oxs.sample_every(COSINE, 37),
    "in_tokens": lambda: oxs.in_tokens(optax.cosine_decay_schedule(1.0, 5e8), 2**20),
    "rewarm": lambda: oxs.rewarm(COSINE, [600, 1200, 1210], 40),
    "composed": lambda: oxs.multiply(
        3e-4, oxs.sample_every(oxs.rewarm(oxs.with_warmup(COSINE, 100), [900], 50), 10)),
}


@pytest.fixture(params=sorted(BUILT))
def built(request):
    return BUILT[request.param]()


def test_jit_equals_eager(built):
    eager = values(built)
    np.testing.assert_allclose(np.asarray(jax.jit(built)(COUNTS)), eager, rtol=1e-6, atol=1e-7)


def test_vmap_equals_loop(built):
    counts = np.asarray([0, 1, 49, 50, 99, 100, 600, 601, 1209, 1210, 1500, INT32_MAX], np.int32)
    batched = np.asarray(jax.vmap(built)(jnp.asarray(counts)))
    scalar = jax.jit(built)  # compiled once for a scalar count, then called in a loop
    looped = np.asarray([scalar(jnp.int32(c)) for c in counts])
    np.testing.assert_allclose(batched, looped, rtol=1e-6, atol=1e-7)


def test_count_dtypes_and_shapes(built):
    counts = np.asarray([[0, 7, 100], [601, 1500, 10**6]])
    expected = np.asarray(built(counts.astype(np.int32)))
    assert expected.shape == (2, 3) and expected.dtype == np.float32
    for variant in (counts.astype(np.int64), counts.astype(np.float32), jnp.asarray(counts),
                    counts.astype(np.uint32)):
        np.testing.assert_array_equal(np.asarray(built(variant)), expected)
    flat = counts.reshape(-1).tolist()
    for c in (0, 100, 601):
        for scalar in (c, np.int64(c), float(c), jnp.int32(c)):
            out = built(scalar)
            assert jnp.shape(out) == () and out.dtype == jnp.float32
            # Scalar and vectorised transcendental functions may differ in the last bit.
            assert float(out) == pytest.approx(expected.reshape(-1)[flat.index(c)], rel=1e-6)


def test_finite_gradients(built):
    counts = jnp.asarray([0.0, 0.5, 49.0, 50.0, 100.0, 600.0, 1210.0, 1500.0, 1e6, 2.0**31])
    grads = np.asarray(jax.jit(jax.vmap(jax.grad(built)))(counts))
    assert np.all(np.isfinite(grads))


def test_past_the_horizon(built):
    out = values(built, FAR)
    assert np.all(np.isfinite(out))
    assert np.all(out == out[0])  # every configuration here has reached its terminal value


def test_docstring_examples():
    assert_examples_run(combinators)


# ------------------------------------------------------------------------------------------------
# Composition with optaxsched's schedules.
# ------------------------------------------------------------------------------------------------

def test_compose_with_optaxsched_schedules():
    wsd = oxs.wsd(1.0, total_steps=800, warmup_steps=50, end_value=0.1)
    wsd_np = lambda c: schedules_np.wsd(c, 1.0, 800, warmup_steps=50, end_value=0.1)  # noqa: E731
    out = values(oxs.rewarm(wsd, [1000, 1500], warmup_steps=50))
    close(out, ref.evaluate(ref.rewarm(wsd_np, [1000, 1500], 50), COUNTS))

    rex = oxs.rex(2.0, total_steps=1000, end_value=0.2)
    rex_np = lambda c: schedules_np.rex(c, 2.0, 1000, end_value=0.2)  # noqa: E731
    close(values(oxs.sample_every(rex, 25)), ref.evaluate(ref.sample_every(rex_np, 25), COUNTS),
          2.0)

    lin = oxs.linear_decay(1.0, total_steps=600)
    lin_np = lambda c: schedules_np.linear_decay(c, 1.0, 600)  # noqa: E731
    close(values(oxs.multiply(oxs.with_warmup(lin, 30, "cosine"), oxs.in_tokens(rex, 0.5))),
          ref.evaluate(ref.multiply(ref.with_warmup(lin_np, 30, "cosine"),
                                    ref.in_tokens(rex_np, 0.5)), COUNTS), 2.0)

    table = np.linspace(1.0, 0.0, 9)
    close(values(oxs.join([oxs.tabulated(table, 400), wsd], [400])),
          ref.evaluate(ref.join([ref.tabulated(table, 400), wsd_np], [400]), COUNTS))


# ------------------------------------------------------------------------------------------------
# Bad inputs: one per validated argument.
# ------------------------------------------------------------------------------------------------

BAD = [
    # with_warmup
    (lambda: oxs.with_warmup(3e-4, 10), "with_warmup: schedule must be a schedule"),
    (lambda: oxs.with_warmup(lambda: 1.0, 10), "with_warmup: schedule must be a schedule"),
    (lambda: oxs.with_warmup(lambda c: jnp.ones(3), 10), "with_warmup: schedule must be a sch"),
    (lambda: oxs.with_warmup(Stateful(), 10), "with_warmup: schedule must be a schedule"),
    (lambda: oxs.with_warmup(OK, -1), "with_warmup: warmup_steps must be a non-negative integ"),
    (lambda: oxs.with_warmup(OK, 2.5), "with_warmup: warmup_steps must be a non-negative integ"),
    (lambda: oxs.with_warmup(OK, 10, "exp"), "with_warmup: shape must be one of 'linear', 'cos"),
    (lambda: oxs.with_warmup(OK, 10, init_value=math.nan), "with_warmup: init_value must be a fi"),
    # join
    (lambda: oxs.join(OK, []), "join: schedules must be a non-empty sequence"),
    (lambda: oxs.join([], []), "join: schedules must be a non-empty sequence"),
    (lambda: oxs.join([OK, "x"], [3]), r"join: schedules\[1\] must be a schedule"),
    (lambda: oxs.join([OK, OK], []), "join: boundaries must be a sequence of len"),
    (lambda: oxs.join([OK, OK], 5), "join: boundaries must be a sequence of 1 strictly"),
    (lambda: oxs.join([OK, OK, OK], [5, 5]), "join: boundaries must be a strictly increasing"),
    (lambda: oxs.join([OK, OK], [-1]), "join: boundaries must be a strictly increasing"),
    (lambda: oxs.join([OK, OK], [2.5]), "join: boundaries must be a strictly increasing"),
    # multiply
    (lambda: oxs.multiply(), "multiply: factors must be at least one schedule or number"),
    (lambda: oxs.multiply(OK, "2"), r"multiply: factors\[1\] must be a finite number"),
    (lambda: oxs.multiply(math.inf, OK), r"multiply: factors\[0\] must be a finite number"),
    (lambda: oxs.multiply(OK, Stateful()), r"multiply: factors\[1\] must be a schedule"),
    (lambda: oxs.multiply(1e30, 1e30), "multiply: factors must be numbers whose product"),
    (lambda: oxs.multiply(1e-20, 1e-20), "multiply: factors must be numbers whose product"),
    (lambda: oxs.multiply(OK, 1e-50), r"multiply: factors\[1\] must be a finite number "
                                      "representable in float32: 0 or of magnitude at least"),
    (lambda: oxs.multiply(-1e-40, OK), r"multiply: factors\[0\] must be a finite number "
                                       "representable in float32: 0 or of magnitude at least"),
    # sample_every
    (lambda: oxs.sample_every(None, 5), "sample_every: schedule must be a schedule"),
    (lambda: oxs.sample_every(OK, 0), "sample_every: interval must be a positive integer"),
    (lambda: oxs.sample_every(OK, 1.5), "sample_every: interval must be a positive integer"),
    # rewarm
    (lambda: oxs.rewarm([OK], [10], 5), "rewarm: schedule must be a schedule"),
    (lambda: oxs.rewarm(OK, [], 5), "rewarm: restart_steps must be a strictly increasing"),
    (lambda: oxs.rewarm(OK, [0], 5), "rewarm: restart_steps must be a strictly increasing"),
    (lambda: oxs.rewarm(OK, [10, 10], 5), "rewarm: restart_steps must be a strictly increasing"),
    (lambda: oxs.rewarm(OK, [10.5], 5), "rewarm: restart_steps must be a strictly increasing"),
    (lambda: oxs.rewarm(OK, "10", 5), "rewarm: restart_steps must be a strictly increasing"),
    (lambda: oxs.rewarm(OK, [10], -5), "rewarm: warmup_steps must be a non-negative integer"),
    (lambda: oxs.rewarm(OK, [10], 5, init_value="0"), "rewarm: init_value must be a finite"),
    (lambda: oxs.rewarm(OK, [10], 5, shape="square"), "rewarm: shape must be one of"),
]


@pytest.mark.parametrize("build, message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_inputs(build, message):
    assert_named_error(build, message)


def test_public_api_is_exported():
    assert_exported(combinators)
