"""Tests for SPAM (optaxsched._spam: scale_by_spam, spam, clip_spikes, reset_every,
reset_warmup) against the float64 NumPy implementation in tests/reference/spam_np.py.

Fixtures and tolerances: tests/_spikes_common.py.
"""

from __future__ import annotations

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import optaxsched as oxs
from tests._spikes_common import (
    BAD,
    DTYPES,
    PYTREE_PARAMS,
    RTOL,
    SHAPES,
    SPIKES,
    STEPS,
    _all_finite,
    _assert_close,
    _huge,
    _lr_np,
    _problem,
    _run_jax,
    _run_ref,
    _run_steps,
    _scan_part,
    _schedule,
    check_bad_input_raises_value_error_naming_the_argument,
    check_clip_counters_are_opt_in,
    check_float16_second_moment_saturates_or_lives_in_float32,
    check_inject_hyperparams_schedule_and_all_arguments,
    check_mixed_shapes_and_dtypes,
    check_multisteps_equals_mean_gradient,
    check_non_finite_coordinate_is_dropped_as_a_spike,
    check_parts_drop_non_finite_coordinates,
    check_state_is_a_plain_pytree_of_arrays,
    check_whole_step_skip_is_one_wrapper_away,
    check_whole_tree_spike_keeps_everything_finite,
)
from tests.reference import spam_np as ref

SPAM_HP = dict(b1=0.9, b2=0.999, eps=1e-6, threshold=5000.0, reset_interval=200,
               warmup_steps=50, clip_delay=10)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_spam_matches_numpy_reference(weight_decay):
    problem = _problem(1, spikes=SPIKES, bad=BAD)
    schedule = _schedule()
    tx = oxs.spam(schedule, weight_decay=weight_decay, track_clips=True, **SPAM_HP)
    ps, out = _run_jax(tx, problem, ("mu", "nu", "clipped", "clipped_total"))
    r = _run_ref(ref.Spam(problem[2], weight_decay=weight_decay, **SPAM_HP), problem,
                 _lr_np(schedule), "total_step")
    _assert_close(ps, r["p"], "params")
    _assert_close(out["mu"], r["m"], "mu")
    _assert_close(out["nu"], r["v"], "nu")
    np.testing.assert_array_equal(out["clipped"], r["clipped"])
    np.testing.assert_array_equal(out["clipped_total"], r["clipped_total"])
    # The run exercises what it claims: spikes are clipped exactly outside the delay windows;
    # each NaN/Inf entry is dropped (and counted) on its own step, which is applied.
    total = np.concatenate([[0], r["clipped_total"]])
    bad_steps = [b[0] for b in BAD]
    for k, *_ in SPIKES:
        active = k >= 10 and k % 200 >= 10
        assert (total[k] - total[k - 1] - (k in bad_steps) > 0) == active, k
    for k in bad_steps:
        assert total[k] - total[k - 1] >= 1, k
    assert sum(k % 200 < 10 for k in (3, 203, 400, 401)) == 4  # windows covered
    # Moments were reset at step 200: nu is then (1 - b2) g² of that step only, about 0.5% of
    # its value before.
    assert r["v"]["w"][199].sum() < 0.05 * r["v"]["w"][198].sum()
    assert STEPS >= 600  # three resets


def test_spam_direction_matches_reference_without_decay_and_chain():
    """scale_by_spam + scale_by_learning_rate == spam(weight_decay=0), and both == reference."""
    problem = _problem(2, spikes=SPIKES)
    schedule = _schedule()
    chained = optax.chain(oxs.scale_by_spam(**SPAM_HP), optax.scale_by_learning_rate(schedule))
    ps, out = _run_jax(chained, problem, ("mu", "nu"))
    r = _run_ref(ref.Spam(problem[2], **SPAM_HP), problem, _lr_np(schedule), "total_step")
    _assert_close(ps, r["p"], "params")
    _assert_close(out["nu"], r["v"], "nu")


def test_spam_defaults_match_reference_over_a_reset():
    """Default hyperparameters (ΔT 500, N 150, delay 20) over 640 steps: one reset at k = 500."""
    spikes = ((10, "w", 0, 1000.0), (30, "w", 1, 1000.0), (505, "b", 0, 1000.0),
              (530, "b", 1, 1000.0))
    problem = _problem(3, spikes=spikes)
    tx = oxs.spam(1e-2, track_clips=True)
    ps, out = _run_jax(tx, problem, ("nu", "clipped_total"))
    r = _run_ref(ref.Spam(problem[2]), problem, lambda _: 1e-2, "total_step")
    _assert_close(ps, r["p"], "params")
    _assert_close(out["nu"], r["v"], "nu")
    np.testing.assert_array_equal(out["clipped_total"], r["clipped_total"])
    assert r["clipped_total"][28] == 0 and r["clipped_total"][29] >= 1  # k=10 no, k=30 yes
    assert r["clipped_total"][528] == r["clipped_total"][503]  # k=505 inside the delay
    assert r["clipped_total"][529] > r["clipped_total"][528]  # k=530 clipped


def _spam_from_parts(schedule, b1, b2, eps, threshold, reset_interval, warmup_steps,
                     clip_delay):
    # optax adds eps to the bias-corrected sqrt(v̂); SPAM to sqrt(v). eps / sqrt(1 - b2^k) in
    # optax's place is the same thing (k = count + 1 of the injected schedule, never reset).
    eps_schedule = lambda count: eps / jnp.sqrt(1.0 - b2 ** (count + 1.0))  # noqa: E731
    adam = optax.inject_hyperparams(optax.scale_by_adam)(b1=b1, b2=b2, eps=eps_schedule)
    return optax.chain(
        oxs.clip_spikes(threshold, b2, clip_delay, reset_interval=reset_interval,
                        track_clips=True),
        oxs.reset_every(adam, reset_interval),
        optax.scale_by_learning_rate(oxs.multiply(schedule,
                                                  oxs.reset_warmup(reset_interval,
                                                                   warmup_steps))))


def test_spam_parts_reproduce_fused():
    problem = _problem(5, spikes=SPIKES)
    schedule = _schedule()
    fused, _ = _run_jax(oxs.spam(schedule, **SPAM_HP), problem)
    parts, out = _run_jax(_spam_from_parts(schedule, **SPAM_HP), problem, ("clipped_total",))
    _assert_close(parts, fused, "params")
    r = _run_ref(ref.Spam(problem[2], **SPAM_HP), problem, _lr_np(schedule), "total_step")
    np.testing.assert_array_equal(out["clipped_total"], r["clipped_total"])


def test_spam_parts_with_plain_adam_are_close():
    """The simple recipe (plain optax.scale_by_adam) differs only by where eps sits."""
    problem = _problem(5, spikes=SPIKES)
    schedule = _schedule()
    fused, _ = _run_jax(oxs.spam(schedule, **SPAM_HP), problem)
    hp = SPAM_HP
    simple = optax.chain(
        oxs.clip_spikes(hp["threshold"], hp["b2"], hp["clip_delay"],
                        reset_interval=hp["reset_interval"]),
        oxs.reset_every(optax.scale_by_adam(hp["b1"], hp["b2"], hp["eps"]),
                        hp["reset_interval"]),
        optax.scale_by_learning_rate(oxs.multiply(
            schedule, oxs.reset_warmup(hp["reset_interval"], hp["warmup_steps"]))))
    parts, _ = _run_jax(simple, problem)
    for name in SHAPES:
        np.testing.assert_allclose(parts[name], fused[name], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("reset_interval", [0, 40])
def test_clip_spikes_matches_reference(reset_interval):
    rng = np.random.default_rng(7)
    grads = rng.normal(0, 1, (130, 6))
    grads[[5, 25, 41, 45, 60, 81, 100], [0, 1, 2, 3, 4, 5, 0]] *= 1000.0
    outs, states = _scan_part(oxs.clip_spikes(5000.0, 0.99, 8, reset_interval=reset_interval,
                                              track_clips=True), grads)
    want, want_v = ref.clip_spikes(grads, 5000.0, 0.99, 8, reset_interval)
    np.testing.assert_allclose(outs, want, rtol=RTOL)
    np.testing.assert_allclose(states.nu["x"], want_v, rtol=RTOL)
    changed = (np.abs(want - grads) > 0).sum(axis=1)
    np.testing.assert_array_equal(states.clipped, changed)
    assert changed.sum() >= 3  # spikes outside the delay windows were clipped
    assert changed[5] == 0  # k = 6 < clip_delay


@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=6, max_size=6),
       st.floats(0.01, 100.0))
def test_clip_spikes_never_grows_and_keeps_sign(values, scale):
    state, step = _CLIP_CACHE
    g = jnp.asarray(values, jnp.float32) * scale
    out, new_state = step(g, state)
    out, g = np.asarray(out), np.asarray(g)
    assert np.all(np.abs(out) <= np.abs(g) * (1 + 1e-6))
    assert np.all(np.sign(out) == np.sign(g))
    limit = np.sqrt(5000.0 * np.asarray(state.nu["x"], np.float64))
    assert np.all(np.abs(out) <= np.maximum(limit * (1 + 1e-5), np.abs(g) * (np.abs(g) <= limit)))
    assert int(new_state.clipped) == int(np.sum(np.abs(out) < np.abs(g) * (1 - 1e-6)))


def _warm_clip_state():
    tx = oxs.clip_spikes(5000.0, 0.999, 3, track_clips=True)
    rng = np.random.default_rng(0)
    state = tx.init({"x": jnp.zeros(6)})
    for _ in range(25):
        _, state = tx.update({"x": jnp.asarray(rng.normal(0, 1, 6), jnp.float32)}, state)
    step = jax.jit(lambda g, s: (lambda o: (o[0]["x"], o[1]))(tx.update({"x": g}, s)))
    return state, step


_CLIP_CACHE = _warm_clip_state()


@pytest.mark.parametrize("interval, warmup_steps", [(500, 150), (200, 50), (7, 7), (3, 0),
                                                    (1, 1), (2, 1)])
def test_reset_warmup_matches_reference_counter(interval, warmup_steps):
    counts = np.arange(0, 2100)
    got = np.asarray(oxs.reset_warmup(interval, warmup_steps)(counts))
    want = ref.post_reset_factor(counts, interval, warmup_steps)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert got.dtype == np.float32


@given(st.integers(1, 1000), st.data())
def test_reset_warmup_properties(interval, data):
    warmup_steps = data.draw(st.integers(0, interval))
    counts = np.arange(0, 3 * interval + 5)
    f = np.asarray(_reset_warmup_jit(np.arange(3005), interval, warmup_steps))[:len(counts)]
    assert np.all((f >= 0.01 - 1e-7) & (f <= 1.0))
    np.testing.assert_array_equal(f[: interval - 1], 1.0)  # before the first reset
    if warmup_steps > 0 and interval >= 2:
        assert abs(f[interval - 1] - 0.01) < 1e-6  # the reset step (k = interval)
    # Non-decreasing inside each window.
    for start in range(interval - 1, len(f) - interval, interval):
        assert np.all(np.diff(f[start:start + interval]) >= -1e-7)
    # Float counts are accepted.
    floats = np.arange(3005, dtype=np.float32)  # one shape for all examples
    np.testing.assert_allclose(
        np.asarray(oxs.reset_warmup(interval, warmup_steps)(floats))[:len(counts)], f,
        rtol=1e-5)


@jax.jit
def _reset_warmup_jit(counts, interval, warmup_steps):
    # Uses the private closed form with traced arguments: one compilation for all examples.
    from optaxsched._spam import _post_reset_factor
    return _post_reset_factor(counts + 1, interval, warmup_steps)


def test_reset_warmup_under_grad_is_finite():
    f = oxs.reset_warmup(10, 5)
    assert np.isfinite(jax.grad(lambda c: f(c))(jnp.float32(12.0)))


def test_reset_every_keeps_count_by_default_and_resets_all_with_empty_keep():
    g = {"w": jnp.array([1.0, -2.0])}
    for keep, count_after in ((("count",), 3), ((), 1)):
        tx = oxs.reset_every(optax.scale_by_adam(), 3, keep=keep)
        state = tx.init({"w": jnp.zeros(2)})
        for _ in range(3):  # k = 3 resets before its update
            out, state = tx.update(g, state)
        inner = state.inner_state
        assert int(inner.count) == count_after
        np.testing.assert_allclose(inner.mu["w"], 0.1 * np.array([1.0, -2.0]), rtol=1e-6)
        np.testing.assert_allclose(inner.nu["w"], 0.001 * np.array([1.0, 4.0]), rtol=1e-6)
        # With the count reset the first post-reset direction is ±1 (bias corrections at 1);
        # with the count kept it is (1 - b1)/(1 - b1³) · sqrt(1 - b2³)/sqrt(1 - b2) smaller.
        want = 1.0 if not keep else 0.1 / (1 - 0.9 ** 3) * math.sqrt((1 - 0.999 ** 3) / 0.001)
        np.testing.assert_allclose(np.abs(out["w"]), want, rtol=1e-4)
        assert int(state.count) == 3


def test_reset_every_names_a_kept_field_the_inner_state_lacks():
    """A misspelt field kept nothing, silently; the default ("count",) also serves inners
    without a count."""
    with pytest.raises(ValueError, match=r"reset_every: keep must be names of fields of the "
                                         r"inner state.*\['cout'\] match none"):
        oxs.reset_every(optax.scale_by_adam(), 3, keep=("cout", "mu")).init({"w": jnp.zeros(2)})
    oxs.reset_every(optax.sgd(0.1), 3).init({"w": jnp.zeros(2)})  # no count field: fine
    oxs.reset_every(optax.scale_by_adam(), 3, keep="nu").init({"w": jnp.zeros(2)})


def test_reset_every_ignores_param_names_and_works_without_params():
    tx = oxs.reset_every(optax.scale_by_adam(), 2)
    params = {"count": jnp.zeros(2), "b": jnp.zeros(())}
    state = tx.init(params)
    g = {"count": jnp.ones(2), "b": jnp.ones(())}
    for _ in range(2):
        _, state = tx.update(g, state)  # no params: updates stand in for them
    np.testing.assert_allclose(state.inner_state.mu["count"], 0.1, rtol=1e-6)  # reset at k = 2


def test_reset_every_keeps_injected_schedule_position():
    sched = lambda count: 0.1 * (count + 1.0)  # noqa: E731
    tx = oxs.reset_every(optax.inject_hyperparams(optax.sgd)(learning_rate=sched), 2)
    state = tx.init({"w": jnp.zeros(1)})
    outs = []
    for _ in range(4):
        out, state = tx.update({"w": jnp.ones(1)}, state)
        outs.append(float(out["w"][0]))
    np.testing.assert_allclose(outs, [-0.1, -0.2, -0.3, -0.4], rtol=1e-6)


def test_inject_hyperparams_learning_rate_and_threshold():
    problem = _problem(9, steps=60, spikes=((30, "w", 0, 1000.0),))
    base = oxs.spam(1e-2, reset_interval=40, warmup_steps=10, clip_delay=5)
    injected = optax.inject_hyperparams(oxs.spam)(
        learning_rate=1e-2, reset_interval=40, warmup_steps=10, clip_delay=5, track_clips=True)
    want, _ = _run_jax(base, problem)
    got, _ = _run_jax(injected, problem)
    _assert_close(got, want, "params")
    # The threshold is live: raising it in the state turns clipping off.
    state = injected.init(jax.tree.map(jnp.asarray, problem[2]))
    assert float(state.hyperparams["threshold"]) == 5000.0
    step = jax.jit(injected.update)
    g = {n: jnp.ones(s) for n, s in SHAPES.items()}
    params = g  # weight_decay is injected too, so update needs params
    for _ in range(10):
        _, state = step(g, state, params)
    spike = {"b": jnp.ones(5), "w": jnp.ones((3, 4)).at[0, 0].set(1e4)}
    _, clipped_state = step(spike, state, params)
    state.hyperparams["threshold"] = jnp.asarray(1e12, jnp.float32)
    _, unclipped_state = step(spike, state, params)
    assert int(optax.tree.get(clipped_state, "clipped")) == 1
    assert int(optax.tree.get(unclipped_state, "clipped")) == 0


def test_mu_dtype_and_float32_compute_for_bfloat16():
    params = {"w": jnp.ones((8,), jnp.bfloat16)}
    tx = oxs.spam(1e-2, mu_dtype=jnp.float32)
    state = tx.init(params)
    assert state.mu["w"].dtype == jnp.float32 and state.nu["w"].dtype == jnp.bfloat16
    with pytest.raises(ValueError, match=r"spam: mu_dtype must be None or a floating-point"):
        oxs.spam(1e-2, mu_dtype=jnp.int32)


def test_observability_in_a_chain():
    tx = optax.chain(optax.clip_by_global_norm(1e6), oxs.spam(1e-3, clip_delay=2,
                                                               track_clips=True))
    params = {"w": jnp.zeros(4)}
    state = tx.init(params)
    for _ in range(30):
        _, state = tx.update({"w": jnp.ones(4)}, state, params)
    _, state = tx.update({"w": jnp.array([1e4, 1.0, 1e4, 1.0])}, state, params)
    assert int(optax.tree.get(state, "clipped")) == 2
    assert int(optax.tree.get(state, "clipped_total")) == 2


def test_counters_saturate():
    tx = oxs.scale_by_spam(clip_delay=2, reset_interval=0, track_clips=True)
    state = tx.init({"w": jnp.zeros(4)})
    big = 2**31 - 3
    # A tiny v after many steps: the unit gradient is a spike on all four coordinates.
    state = state._replace(count=jnp.int32(2**31 - 1), clipped_total=jnp.int32(big),
                           nu={"w": jnp.full(4, 1e-12)})
    _, state = tx.update({"w": jnp.ones(4)}, state)
    assert int(state.clipped) == 4 and int(state.clipped_total) == 2**31 - 1
    assert int(state.count) == 2**31 - 1


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("spike_step", [1, 3])  # unclipped (k < clip_delay) and clipped
def test_spam_huge_finite_gradient_then_reset_stays_finite(dtype, spike_step):
    """Issue 12 rows 1-3: spam with a gradient of 1e20 (3e4 in float16), then a momentum reset:
    the reset multiplied the overflowed v by 0 (inf * 0 = NaN) and the params were NaN from
    then on. Now v saturates, the reset selects zero, and the coordinate recovers after it."""
    params = {"w": jnp.ones(4, dtype)}
    rng = np.random.default_rng(0)
    grads = []
    for k in range(1, 16):
        g = rng.normal(0, 1, 4)
        if k == spike_step:
            g[1] = _huge(dtype)
        grads.append({"w": jnp.asarray(g, dtype)})
    for tx in (oxs.spam(1e-3, reset_interval=5, warmup_steps=2, clip_delay=3),
               optax.chain(oxs.clip_spikes(reset_interval=5, clip_delay=3), optax.sgd(1e-3))):
        history = _run_steps(tx, params, grads)
        for k, (updates, state, p) in enumerate(history, start=1):
            assert _all_finite((updates, state, p)), (k, updates, state)
        # After the reset at k = 10 the spiked coordinate moves again like the others.
        last = np.abs(np.asarray(history[-1][0]["w"], np.float64))
        assert np.all(last > 0), last


def test_reset_warmup_accepts_any_int():
    factor = oxs.reset_warmup(500, 150)
    assert float(factor(2**31)) == float(factor(2**31 - 2))
    assert float(factor(-(2**40))) == 1.0


def test_error_message_wording():
    with pytest.raises(ValueError) as err:
        oxs.spam(1e-3, b1=1.0)
    assert str(err.value) == "spam: b1 must be in [0, 1), got 1.0."
    with pytest.raises(ValueError) as err:
        oxs.scale_by_spam(clip_delay=500)
    assert str(err.value) == "scale_by_spam: clip_delay must be < reset_interval (500), got 500."


# ------------------------------------------------------------------------------------------------
# Shared with Stable-SPAM (tests/_spikes_common.py).
# ------------------------------------------------------------------------------------------------


def test_inject_hyperparams_schedule_and_all_arguments():
    check_inject_hyperparams_schedule_and_all_arguments(oxs.spam)


def test_multisteps_equals_mean_gradient():
    check_multisteps_equals_mean_gradient(oxs.spam)


def test_mixed_shapes_and_dtypes():
    check_mixed_shapes_and_dtypes(oxs.spam)


def test_non_finite_coordinate_is_dropped_as_a_spike():
    check_non_finite_coordinate_is_dropped_as_a_spike(oxs.spam)


def test_whole_step_skip_is_one_wrapper_away():
    check_whole_step_skip_is_one_wrapper_away(oxs.spam)


def test_clip_spikes_drops_non_finite_coordinates():
    check_parts_drop_non_finite_coordinates(oxs.clip_spikes)


@pytest.mark.parametrize("factory", [oxs.spam, oxs.clip_spikes])
def test_clip_counters_are_opt_in(factory):
    check_clip_counters_are_opt_in(factory)


def test_float16_second_moment_saturates_or_lives_in_float32():
    check_float16_second_moment_saturates_or_lives_in_float32(oxs.spam)


@pytest.mark.parametrize("spike", [1e20, 3.4e38])
def test_whole_tree_spike_before_and_after_resets_keeps_everything_finite(spike):
    check_whole_tree_spike_keeps_everything_finite(
        [oxs.spam(1e-3, reset_interval=4, warmup_steps=2, clip_delay=2, track_clips=True)], spike)


def test_state_is_a_plain_pytree_of_arrays_like_the_params():
    for tx in (oxs.spam(1e-3), oxs.clip_spikes(), oxs.reset_every(optax.adam(1e-3), 10)):
        check_state_is_a_plain_pytree_of_arrays(tx)
    counts = [x for x in jax.tree.leaves(oxs.spam(1e-3).init(PYTREE_PARAMS))
              if x.dtype == jnp.int32]
    assert len(counts) == 3 and all(x.shape == () for x in counts)  # count, clipped, total


# ------------------------------------------------------------------------------------------------
# Bad inputs: one per validated argument.
# ------------------------------------------------------------------------------------------------

_ADAM = optax.scale_by_adam()
BAD_INPUTS = [
    (oxs.scale_by_spam, {"b1": 1.0}, "b1"),
    (oxs.scale_by_spam, {"b2": -0.1}, "b2"),
    (oxs.scale_by_spam, {"eps": 0.0}, "eps"),
    (oxs.scale_by_spam, {"threshold": -1.0}, "threshold"),
    (oxs.scale_by_spam, {"reset_interval": -1}, "reset_interval"),
    (oxs.scale_by_spam, {"reset_interval": 2.5}, "reset_interval"),
    (oxs.scale_by_spam, {"warmup_steps": -1}, "warmup_steps"),
    (oxs.scale_by_spam, {"warmup_steps": 600}, "warmup_steps"),
    (oxs.scale_by_spam, {"clip_delay": -2}, "clip_delay"),
    (oxs.scale_by_spam, {"clip_delay": 500}, "clip_delay"),
    (oxs.scale_by_spam, {"mu_dtype": "int8"}, "mu_dtype"),
    (oxs.spam, {"learning_rate": -1e-3}, "learning_rate"),
    (oxs.spam, {"learning_rate": 1e-3, "weight_decay": -0.1}, "weight_decay"),
    (oxs.spam, {"learning_rate": 1e-3, "mask": "yes"}, "mask"),
    (oxs.spam, {"learning_rate": 1e-3, "threshold": float("nan")}, "threshold"),
    (oxs.clip_spikes, {"threshold": -1.0}, "threshold"),
    (oxs.clip_spikes, {"b2": 1.0}, "b2"),
    (oxs.clip_spikes, {"clip_delay": -1}, "clip_delay"),
    (oxs.clip_spikes, {"reset_interval": -1}, "reset_interval"),
    (oxs.clip_spikes, {"reset_interval": 10, "clip_delay": 10}, "clip_delay"),
    (oxs.reset_every, {"inner": "adam", "interval": 10}, "inner"),
    (oxs.reset_every, {"inner": _ADAM, "interval": 0}, "interval"),
    (oxs.reset_every, {"inner": _ADAM, "interval": 10, "keep": 3}, "keep"),
    (oxs.reset_every, {"inner": _ADAM, "interval": 10, "keep": ["count", 1]}, "keep"),
    (oxs.reset_warmup, {"interval": 0, "warmup_steps": 0}, "interval"),
    (oxs.reset_warmup, {"interval": 10, "warmup_steps": -1}, "warmup_steps"),
    (oxs.reset_warmup, {"interval": 10, "warmup_steps": 11}, "warmup_steps"),
]


@pytest.mark.parametrize("factory, kwargs, name", BAD_INPUTS,
                         ids=[f"{f.__name__}-{n}-{i}" for i, (f, _, n) in enumerate(BAD_INPUTS)])
def test_bad_inputs_raise_value_error_naming_the_argument(factory, kwargs, name):
    check_bad_input_raises_value_error_naming_the_argument(factory, kwargs, name)


def test_docstring_examples_run():
    from optaxsched import _spam

    result = doctest.testmod(_spam, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0
