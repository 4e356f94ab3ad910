"""Tests for the token-unit schedules (in_tokens, token_schedule) against tests/reference."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import optaxsched as oxs
from optaxsched import _tokens
from tests._schedule_helpers import (
    COUNTS,
    INT32_MAX,
    OK,
    Stateful,
    assert_examples_run,
    assert_exported,
    assert_named_error,
    close,
    inner,
    nonincreasing,
    values,
)
from tests.reference import combinators_np as ref

# ------------------------------------------------------------------------------------------------
# in_tokens
# ------------------------------------------------------------------------------------------------

@given(tps=st.floats(1.0, 1e4), data=st.data())
def test_in_tokens_matches_reference(tps, data):
    jax_fn, np_fn, scale = data.draw(inner(time_scale=tps))
    close(values(oxs.in_tokens(jax_fn, tps)), ref.evaluate(ref.in_tokens(np_fn, tps), COUNTS),
          scale, rtol=1e-4)


def test_in_tokens_near_a_trillion_tokens():
    tps = 4 * 2**20  # 4M tokens per step.
    per_token = optax.linear_schedule(1.0, 0.1, transition_steps=2e12)  # floats: see docstring
    schedule = oxs.in_tokens(per_token, tps)
    counts = np.arange(238_000, 240_000, dtype=np.int32)  # about 1e12 tokens
    out = np.asarray(schedule(counts))
    expected = ref.evaluate(ref.in_tokens(ref.linear_schedule(1.0, 0.1, 2e12), tps), counts)
    close(out, expected, rtol=1e-6)
    assert nonincreasing(out, tol=0.0)
    assert np.all(np.isfinite(np.asarray(schedule(np.int32([INT32_MAX])))))  # 9e15 tokens


F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)
# float32(2**31 - 1) == 2**31: the largest tokens_per_step whose token count at the largest int32
# count is finite in float32, computed independently of the library's constant.
MAX_TPS = F32_MAX / 2**31
EDGE_COUNTS = np.array([0, 1, 7, 2**24, 10**9, INT32_MAX - 1, INT32_MAX], np.int32)


def _identity(count):
    """An inner schedule that returns the token count it is given (float32)."""
    return count


@given(tps=st.one_of(
    st.floats(F32_TINY, F32_MAX),
    st.floats(MAX_TPS * (1 - 1e-6), MAX_TPS * (1 + 1e-6)),
    st.sampled_from([F32_TINY, 1.0, 2.0**20, 1e29, MAX_TPS, np.nextafter(MAX_TPS, np.inf),
                     1.6e29, 1e30, 3.4e38])))
def test_in_tokens_token_count_is_finite_at_every_int32_count_or_refused(tps):
    if tps > MAX_TPS:
        assert_named_error(lambda: oxs.in_tokens(_identity, tps),
                           r"in_tokens: tokens_per_step must be a positive number at most "
                           r"1\.584563e\+29 \(float32's largest number / 2\*\*31")
        return
    out = np.asarray(oxs.in_tokens(_identity, tps)(EDGE_COUNTS))
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    # One float32 rounding of the exact product of the float32 count and tokens_per_step.
    exact = EDGE_COUNTS.astype(np.float32).astype(np.float64) * float(np.float32(tps))
    np.testing.assert_allclose(out.astype(np.float64), exact, rtol=2.0**-24, atol=0.0)


def test_in_tokens_at_the_largest_tokens_per_step():
    schedule = jax.jit(oxs.in_tokens(_identity, MAX_TPS))
    assert float(schedule(jnp.int32(INT32_MAX))) == F32_MAX  # exactly, not inf
    assert float(schedule(jnp.int32(1))) == MAX_TPS


def test_in_tokens_saturates_counts_beyond_int32():
    # Float (or int64) counts past 2**31 are no optax count, but they still give the inner
    # schedule a finite token count: +-float32's largest number, with a zero gradient there.
    counts = np.array([2.0**31, 1e10, 1e30, 3e38, -1e30], np.float32)
    out = np.asarray(oxs.in_tokens(_identity, MAX_TPS)(counts))
    assert out.tolist() == [F32_MAX, F32_MAX, F32_MAX, F32_MAX, -F32_MAX]
    small = np.asarray(oxs.in_tokens(_identity, 2.0)(counts))
    assert small.tolist() == [2.0**32, 2e10, float(np.float32(2e30)), F32_MAX, -float(
        np.float32(2e30))]
    # An inner schedule that would turn an inf token count into NaN (inf * 0) stays finite.
    assert np.asarray(oxs.in_tokens(lambda n: n * 0.0, 2.0)(counts)).tolist() == [0.0] * 5
    grad = jax.grad(oxs.in_tokens(_identity, 2.0))
    assert float(grad(jnp.float32(5.0))) == 2.0 and float(grad(jnp.float32(3e38))) == 0.0


# ------------------------------------------------------------------------------------------------
# token_schedule (stateful)
# ------------------------------------------------------------------------------------------------

PER_TOKEN = optax.linear_schedule(1.0, 0.0, transition_steps=1e6)
PER_TOKEN_NP = ref.linear_schedule(1.0, 0.0, 1e6)
TOKEN_SCHEDULE = oxs.token_schedule(PER_TOKEN)


@jax.jit
def _run_tokens(tokens):
    """Feeds a vector of per-update token counts through TOKEN_SCHEDULE in one scan."""
    def step(state, n):
        value = TOKEN_SCHEDULE(state)
        state = TOKEN_SCHEDULE.update(state, tokens=n)
        return state, (value, state.high, state.low)
    return jax.lax.scan(step, TOKEN_SCHEDULE.init(), tokens)[1]


token_counts = st.one_of(st.integers(-100, 100_000), st.sampled_from([0, 2**17, 65_536]))


@given(tokens=st.lists(token_counts, min_size=24, max_size=24),
       as_float=st.booleans(), bad=st.lists(st.sampled_from([math.nan, math.inf, -math.inf]),
                                            max_size=3))
def test_token_schedule_matches_reference(tokens, as_float, bad):
    tokens = [float(t) + 0.3 for t in tokens] if as_float else tokens
    if as_float:
        tokens[: len(bad)] = bad  # non-finite counts add nothing
    used, high, low = _run_tokens(jnp.asarray(tokens, jnp.float32 if as_float else jnp.int32))
    expected, after = ref.token_schedule_values(PER_TOKEN_NP, tokens)
    close(np.asarray(used), expected)
    exact = np.asarray(high, np.int64) * 2**30 + np.asarray(low, np.int64)
    assert exact.tolist() == after
    assert nonincreasing(used)


def test_token_schedule_counts_exactly_past_int32():
    schedule = oxs.token_schedule(PER_TOKEN, initial_tokens=10**12)
    run = jax.jit(lambda state, n: schedule.update(state, tokens=n))
    state = schedule.init()
    for n in (INT32_MAX, jnp.int32(INT32_MAX), 4 * 2**20, 1):
        state = run(state, n)
    state = schedule.update(state, tokens=2**31 + 7)  # a Python int beyond int32: clipped
    state = run(state, 1e10)  # a float beyond int32: clipped to the largest float32 below 2**31
    total = 10**12 + 2 * INT32_MAX + 4 * 2**20 + 1 + INT32_MAX + 2147483520
    assert int(state.high) * 2**30 + int(state.low) == total
    assert float(state.tokens) == float(np.float32(total))
    assert 0 <= int(state.low) < 2**30


TOKEN_LIMIT = 2**61 - 1  # (2**31 - 1) * 2**30 + (2**30 - 1): both int32 words full
_update_jit = jax.jit(lambda state, n: TOKEN_SCHEDULE.update(state, tokens=n))


@given(high=st.integers(INT32_MAX - 4, INT32_MAX), low=st.integers(0, 2**30 - 1),
       steps=st.lists(st.one_of(st.integers(0, INT32_MAX), st.sampled_from([INT32_MAX, 2**30])),
                      min_size=1, max_size=6))
def test_token_schedule_saturates_at_2_61_instead_of_wrapping(high, low, steps):
    state = _tokens._token_state(jnp.int32(high), jnp.int32(low))
    total = high * 2**30 + low
    for n in steps:
        state = _update_jit(state, np.int32(n))
        total = min(total + n, TOKEN_LIMIT)
        assert int(state.high) * 2**30 + int(state.low) == total
        assert 0 <= int(state.low) < 2**30 and int(state.high) >= 0
        assert float(state.tokens) == float(np.float32(total))
    assert np.isfinite(float(TOKEN_SCHEDULE(state)))


def test_token_schedule_stays_saturated():
    state = _tokens._token_state(jnp.int32(INT32_MAX), jnp.int32(2**30 - 3))
    for n in (2, 1, 0, INT32_MAX, 1e10):
        state = TOKEN_SCHEDULE.update(state, tokens=n)
    assert (int(state.high), int(state.low)) == (INT32_MAX, 2**30 - 1)
    assert float(state.tokens) == 2.0**61


def test_token_schedule_does_not_drift_in_float32():
    schedule = oxs.token_schedule(PER_TOKEN, initial_tokens=10**12)

    @jax.jit
    def run(state):
        return jax.lax.fori_loop(0, 1000, lambda i, s: schedule.update(s, tokens=4_000_000),
                                 state)
    state = run(schedule.init())
    total = 10**12 + 1000 * 4_000_000
    assert int(state.high) * 2**30 + int(state.low) == total
    assert float(state.tokens) == float(np.float32(total))


def test_token_schedule_inside_inject_hyperparams():
    schedule = oxs.token_schedule(PER_TOKEN)
    assert isinstance(schedule, optax.schedules.StatefulSchedule)
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
    params = jnp.zeros(3)
    state = tx.init(params)
    assert float(state.hyperparams["learning_rate"]) == 1.0
    update = jax.jit(tx.update)
    tokens = [1000, 250_000, 10, 0, 700_000, 123]
    expected, after = ref.token_schedule_values(PER_TOKEN_NP, tokens)
    for n, lr, seen in zip(tokens, expected, after, strict=True):
        grads = jnp.ones(3)
        updates, state = update(grads, state, params, tokens=n)
        assert float(state.hyperparams["learning_rate"]) == pytest.approx(lr, abs=1e-6)
        np.testing.assert_allclose(np.asarray(updates), -lr * np.ones(3), atol=1e-6)
        assert float(optax.tree.get(state, "tokens")) == seen


def test_token_schedule_equals_in_tokens_at_a_constant_batch():
    tps = 3000
    schedule = oxs.token_schedule(PER_TOKEN)
    used = _scan_constant(schedule, tps)
    stateless = oxs.in_tokens(PER_TOKEN, tps)(np.arange(50))
    np.testing.assert_allclose(np.asarray(used), np.asarray(stateless), rtol=1e-6, atol=1e-7)


def _scan_constant(schedule, tps):
    def step(state, _):
        return schedule.update(state, tokens=tps), schedule(state)
    return jax.lax.scan(step, schedule.init(), None, length=50)[1]


def test_token_schedule_custom_argument_and_initial_tokens():
    schedule = oxs.token_schedule(PER_TOKEN, extra_arg="examples", initial_tokens=500_000)
    state = schedule.init()
    assert float(schedule(state)) == pytest.approx(0.5)
    state = schedule.update(state, examples=250_000, tokens=10**9)  # other extras are ignored
    assert float(schedule(state, examples=1)) == pytest.approx(0.25)


def test_token_schedule_update_needs_tokens():
    schedule = oxs.token_schedule(PER_TOKEN)
    with pytest.raises(ValueError, match=r"^token_schedule: tokens must be passed to update\(\)"):
        schedule.update(schedule.init())
    with pytest.raises(ValueError, match=r"^token_schedule: tokens must be a scalar"):
        schedule.update(schedule.init(), tokens=jnp.ones(3))
    with pytest.raises(ValueError, match=r"^token_schedule: tokens must be a number"):
        schedule.update(schedule.init(), tokens=jnp.asarray(True))


BAD = [
    # in_tokens
    (lambda: oxs.in_tokens(1.0, 5), "in_tokens: schedule must be a schedule"),
    (lambda: oxs.in_tokens(OK, 0), "in_tokens: tokens_per_step must be a positive finite number"),
    (lambda: oxs.in_tokens(OK, math.nan), "in_tokens: tokens_per_step must be a positive finite"),
    (lambda: oxs.in_tokens(OK, 1e30), "in_tokens: tokens_per_step must be a positive number at "
                                      "most 1.584563e"),
    # token_schedule
    (lambda: oxs.token_schedule(Stateful()), "token_schedule: schedule must be a schedule"),
    (lambda: oxs.token_schedule(OK, extra_arg="two words"), "token_schedule: extra_arg must be"),
    (lambda: oxs.token_schedule(OK, extra_arg=3), "token_schedule: extra_arg must be a Python"),
    (lambda: oxs.token_schedule(OK, initial_tokens=-1), "token_schedule: initial_tokens must be"),
    (lambda: oxs.token_schedule(OK, initial_tokens=2**62),
     r"token_schedule: initial_tokens must be an integer in \[0, 9007199254740992\]"),
]


@pytest.mark.parametrize("build, message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_inputs(build, message):
    assert_named_error(build, message)


def test_docstring_examples():
    assert_examples_run(_tokens)


def test_public_api_is_exported():
    assert_exported(_tokens)
