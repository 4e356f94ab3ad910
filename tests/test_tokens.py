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


_ADD_TOKENS = jax.jit(lambda state, n: oxs.token_schedule(PER_TOKEN).update(state, tokens=n))
_LARGEST_COUNT = _tokens._MAX_TOKENS + 2**30 - 1  # high = 2**31 - 1, low = 2**30 - 1


@given(steps=st.lists(st.integers(0, INT32_MAX), min_size=1, max_size=4),
       below=st.integers(0, 3 * 2**30))
def test_token_schedule_saturates_at_its_largest_count(steps, below):
    """Near 2.3e18 tokens the count saturates; it used to wrap to a negative count (and the
    schedule back to its start value) once ``high`` passed the int32 maximum."""
    high, low = divmod(_tokens._MAX_TOKENS - below, 2**30)
    state = _tokens._token_state(jnp.int32(high), jnp.int32(low))
    for n in steps:
        state = _ADD_TOKENS(state, jnp.int32(n))  # one compilation for every example
        assert 0 <= int(state.high) and 0 <= int(state.low) < 2**30
        assert float(state.tokens) > 2e18
    expected = min(_tokens._MAX_TOKENS - below + sum(steps), _LARGEST_COUNT)
    assert int(state.high) * 2**30 + int(state.low) == expected


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
    # token_schedule
    (lambda: oxs.token_schedule(Stateful()), "token_schedule: schedule must be a schedule"),
    (lambda: oxs.token_schedule(OK, extra_arg="two words"), "token_schedule: extra_arg must be"),
    (lambda: oxs.token_schedule(OK, extra_arg=3), "token_schedule: extra_arg must be a Python"),
    (lambda: oxs.token_schedule(OK, initial_tokens=-1), "token_schedule: initial_tokens must be"),
    (lambda: oxs.token_schedule(OK, initial_tokens=2**62), "token_schedule: initial_tokens must"),
]


@pytest.mark.parametrize("build, message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_inputs(build, message):
    assert_named_error(build, message)


def test_docstring_examples():
    assert_examples_run(_tokens)


def test_public_api_is_exported():
    assert_exported(_tokens)
