"""Shared by the tests of the combinators, ``tabulated`` and the token-unit schedules.

Counts, tolerances and the hypothesis strategies for inner schedules (optax's own, with the NumPy
twins of ``tests/reference/combinators_np.py``), and the check that a bad argument is a named
error.
"""

from __future__ import annotations

import doctest
import re

import numpy as np
import optax
import pytest
from hypothesis import strategies as st

import optaxsched as oxs
from tests.reference import combinators_np as ref

INT32_MAX = 2**31 - 1
# One shape for every evaluation, so eager ops compile once: every count to 1,999, then a tail
# far past any horizon used here (up to the int32 maximum).
COUNTS = np.concatenate([
    np.arange(2000),
    np.array([2500, 3000, 5000, 10**4, 10**5, 10**6, 10**7, 2**24, 10**8, 10**9, INT32_MAX]),
]).astype(np.int32)
FAR = COUNTS[COUNTS >= 10**5]

small = st.floats(0.0, 2.0, allow_nan=False, width=32)
shapes = st.sampled_from(["linear", "cosine"])


def close(actual, expected, scale=1.0, rtol=2e-5):
    """float32 against a float64 reference: relative plus an absolute floor on the value scale."""
    actual = np.asarray(actual)
    assert actual.dtype == np.float32
    assert np.all(np.isfinite(actual))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=2e-6 * max(scale, 1e-3))


def values(schedule, counts=COUNTS):
    return np.asarray(schedule(counts))


# ------------------------------------------------------------------------------------------------
# Inner schedules: (optax schedule, reference, largest |value|).
# ------------------------------------------------------------------------------------------------

@st.composite
def inner(draw, kinds=("linear", "cosine", "constant"), time_scale=1.0):
    kind = draw(st.sampled_from(kinds))
    if kind == "linear":
        a, b = draw(small), draw(small)
        steps = draw(st.integers(1, 600)) * time_scale
        begin = draw(st.integers(0, 100)) * time_scale
        return (optax.linear_schedule(a, b, steps, begin),
                ref.linear_schedule(a, b, steps, begin), max(a, b))
    if kind == "cosine":
        a, alpha = draw(small), draw(st.floats(0.0, 1.0))
        steps = draw(st.integers(1, 600)) * time_scale
        return (optax.cosine_decay_schedule(a, steps, alpha),
                ref.cosine_decay_schedule(a, steps, alpha), a)
    v = draw(small)
    return optax.constant_schedule(v), ref.constant_schedule(v), v


@st.composite
def decreasing(draw):
    """A non-increasing, non-negative inner schedule."""
    a = draw(small)
    b = draw(st.floats(0.0, 1.0)) * a
    steps = draw(st.integers(1, 600))
    if draw(st.booleans()):
        return optax.linear_schedule(a, b, steps), ref.linear_schedule(a, b, steps), a
    alpha = b / a if a > 0 else 0.0
    return (optax.cosine_decay_schedule(a, steps, alpha),
            ref.cosine_decay_schedule(a, steps, alpha), a)


def nondecreasing(x, tol=1e-6):
    return bool(np.all(np.diff(np.asarray(x, np.float64)) >= -tol))


def nonincreasing(x, tol=1e-6):
    return bool(np.all(np.diff(np.asarray(x, np.float64)) <= tol))


class Stateful:
    def init(self):
        return 0

    def update(self, state, **extra):
        return state

    def __call__(self, state, **extra):
        return 1.0


OK = optax.constant_schedule(1.0)


def assert_named_error(build, message):
    """``build()`` raises a ValueError that starts with ``message`` and ends ", got <value>."."""
    with pytest.raises(ValueError, match="^" + message) as info:
        build()
    assert re.search(r", got .*\.$", str(info.value), re.S), str(info.value)


def assert_examples_run(module):
    """The module's docstring examples run (and there are some)."""
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def assert_exported(module):
    """Every name in the module's ``__all__`` is the same object at the top level."""
    for name in module.__all__:
        assert getattr(oxs, name) is getattr(module, name)
        assert name in oxs.__all__
