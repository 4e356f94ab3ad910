"""Tests for optaxsched.tabulated against the float64 reference in tests/reference."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import optaxsched as oxs
from optaxsched._schedules import tabulated as tabulated_module
from tests._schedule_helpers import (
    COUNTS,
    assert_examples_run,
    assert_exported,
    assert_named_error,
    close,
    nonincreasing,
    values,
)
from tests.reference import combinators_np as ref

# ------------------------------------------------------------------------------------------------
# tabulated
# ------------------------------------------------------------------------------------------------

tables = st.lists(st.floats(-10.0, 10.0, allow_nan=False, width=32), min_size=1, max_size=60)


@given(table=tables, data=st.data())
def test_tabulated_matches_reference(table, data):
    total = data.draw(st.one_of(st.none(), st.integers(2 if len(table) > 1 else 1, 1800)))
    close(values(oxs.tabulated(table, total)), ref.evaluate(ref.tabulated(table, total), COUNTS),
          scale=max(map(abs, table), default=1.0), rtol=1e-5)


# Exact equality needs normal float32 entries: XLA on CPU and GPU flushes subnormals to zero in
# arithmetic, so an entry of 1e-45 reads back as 0 (within any tolerance, not bit for bit).
@given(table=st.lists(st.floats(-10, 10, width=32, allow_subnormal=False), min_size=2,
                      max_size=300),
       total=st.integers(2, 1999))
def test_tabulated_keeps_entries_and_ends(table, total):
    n = len(table)
    table32 = np.asarray(table, np.float32)
    # Without resampling, integer counts read the table exactly.
    np.testing.assert_array_equal(values(oxs.tabulated(table))[:n], table32)
    # Resampled: first value at count 0, last from count total - 1 on (exactly), entry i at
    # count i (T - 1) / (n - 1) whenever that is a whole number.
    out = values(oxs.tabulated(table, total))
    assert out[0] == table32[0]
    assert np.all(out[total - 1:] == table32[-1])
    for i in range(n):
        c = i * (total - 1) / (n - 1)
        if c == int(c):
            assert out[int(c)] == table32[i]


@given(table=st.lists(st.floats(0, 10, width=32), min_size=2, max_size=60),
       total=st.integers(2, 1999))
def test_tabulated_monotone_and_bounded(table, total):
    table = sorted(table, reverse=True)
    out = values(oxs.tabulated(table, total))
    assert nonincreasing(out)
    assert out.min() >= min(table) - 1e-6 and out.max() <= max(table) + 1e-6
    # Continuous: between neighbouring counts it moves by at most one table step's slope.
    jumps = np.abs(np.diff(np.asarray(table, np.float64)))
    steepest = jumps.max() * (len(table) - 1) / (total - 1)
    assert np.max(np.abs(np.diff(out[:total]))) <= steepest * (1 + 1e-5) + 1e-5


def test_tabulated_large_table_hits_every_segment():
    # count * (n - 1) reaches 1.5e7 (just below 2**24): the index guess from XLA's reciprocal
    # multiplication is off by one for some counts and must be corrected.
    n, total = 2501, 6001
    table = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) * np.linspace(1.0, 2.0, n)
    counts = np.arange(total + 10)
    out = np.asarray(oxs.tabulated(table, total)(counts))
    close(out, ref.tabulated_array(table, total, counts), scale=2.0, rtol=1e-6)
    entries = np.arange(n) * (total - 1) // (n - 1)
    whole = np.arange(n) * (total - 1) % (n - 1) == 0
    np.testing.assert_array_equal(out[entries[whole]], table.astype(np.float32)[whole])


def test_tabulated_single_entry_is_constant():
    out = values(oxs.tabulated([0.25], total_steps=7))
    assert out.shape == COUNTS.shape and np.all(out == np.float32(0.25))
    np.testing.assert_array_equal(values(oxs.tabulated(np.array([3.0]))), 3.0)


def test_tabulated_accepts_arrays_and_negative_values():
    table = jnp.linspace(-1.0, 1.0, 11)
    close(values(oxs.tabulated(table, 21)),
          ref.evaluate(ref.tabulated(np.linspace(-1, 1, 11), 21), COUNTS))


@given(table=st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False,
                                allow_subnormal=False), min_size=2, max_size=6),
       total=st.integers(2, 40))
def test_tabulated_between_entries_of_any_size_is_finite(table, total):
    """Neighbours of opposite signs further apart than float32's range (-3e38, 3e38): their
    slope overflows, the interpolation does not."""
    schedule = oxs.tabulated(table, total)
    # One length for every example (past the largest total), so that eager JAX reuses its
    # compiled operations instead of compiling them again for each new shape.
    counts = np.arange(44, dtype=np.int32)
    eager = np.asarray(schedule(counts))
    assert np.all(np.isfinite(eager)), (table, eager)
    expected = ref.evaluate(ref.tabulated(np.asarray(table, np.float64), total), counts)
    np.testing.assert_allclose(eager, expected, rtol=0, atol=1e-6 * max(map(abs, table)))


def test_tabulated_of_a_table_wider_than_float32_keeps_its_entries():
    big = float(np.finfo(np.float32).max)
    schedule = oxs.tabulated([-big, big, -big], total_steps=5)
    out = values(schedule)
    np.testing.assert_array_equal(out[:5], np.float32([-big, 0.0, big, 0.0, -big]))
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(np.asarray(jax.jit(schedule)(COUNTS)), out)


BAD = [
    (lambda: oxs.tabulated([[1.0, 2.0]]), "tabulated: values must be a 1-D sequence"),
    (lambda: oxs.tabulated([]), "tabulated: values must be a 1-D sequence"),
    (lambda: oxs.tabulated([1.0, math.nan]), "tabulated: values must be a 1-D sequence"),
    (lambda: oxs.tabulated([1.0, math.inf]), "tabulated: values must be a 1-D sequence"),
    (lambda: oxs.tabulated([1e39]), "tabulated: values must be a 1-D sequence"),
    (lambda: oxs.tabulated("abc"), "tabulated: values must be a 1-D sequence"),
    (lambda: oxs.tabulated(["a", "b"]), "tabulated: values must be a 1-D sequence"),
    (lambda: oxs.tabulated([1.0, 0.0], 1), "tabulated: total_steps must be an integer >= 2"),
    (lambda: oxs.tabulated([1.0], 0), "tabulated: total_steps must be a positive integer"),
    (lambda: oxs.tabulated([1.0, 0.0], 10.5), "tabulated: total_steps must be an integer >= 2"),
]


@pytest.mark.parametrize("build, message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_inputs(build, message):
    assert_named_error(build, message)


def test_docstring_examples():
    assert_examples_run(tabulated_module)


def test_public_api_is_exported():
    assert_exported(tabulated_module)
