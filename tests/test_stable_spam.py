"""Tests for Stable-SPAM (optaxsched._stable_spam: scale_by_stable_spam, stable_spam,
adaptive_spike_clip, adaptive_grad_norm) against the float64 NumPy implementation in
tests/reference/spam_np.py.

Fixtures and tolerances: tests/_spikes_common.py.
"""

from __future__ import annotations

import doctest
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxsched as oxs
from tests._spikes_common import (
    BAD,
    DTYPES,
    RTOL,
    SPIKES,
    _all_finite,
    _assert_close,
    _finite_tree,
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

STABLE_HP = dict(b1=0.9, b2=0.999, eps=1e-8, gamma1=0.7, gamma2=0.9, theta=0.999,
                 reset_interval=200)


@pytest.mark.parametrize("t_max, weight_decay", [(None, 0.0), (300, 0.05)])
def test_stable_spam_matches_numpy_reference(t_max, weight_decay):
    problem = _problem(4, spikes=SPIKES, bad=BAD)
    schedule = _schedule()
    tx = oxs.stable_spam(schedule, t_max=t_max, weight_decay=weight_decay, track_clips=True,
                         **STABLE_HP)
    ps, out = _run_jax(tx, problem, ("mu", "nu", "clipped", "clipped_total"))
    r = _run_ref(ref.StableSpam(problem[2], t_max=t_max, weight_decay=weight_decay,
                                **STABLE_HP), problem, _lr_np(schedule), "total_steps")
    _assert_close(ps, r["p"], "params")
    _assert_close(out["mu"], r["m"], "mu")
    _assert_close(out["nu"], r["v"], "nu")
    np.testing.assert_array_equal(out["clipped_total"], r["clipped_total"])
    assert r["clipped_total"][-1] >= len(SPIKES) - 1 + len(BAD)  # AdaClip caught the spikes


def test_stable_spam_bias_corrections_use_the_global_step():
    """§13: after a reset AdaClip's threshold is M / (1 - θ^k) with the global k, not 1/(1-θ^n)."""
    tx = oxs.scale_by_stable_spam(theta=0.999, reset_interval=3, track_clips=True)
    params = {"w": jnp.zeros(4)}
    state = tx.init(params)
    g = {"w": jnp.array([1.0, 0.5, -0.25, 0.1])}
    for _ in range(3):  # k = 1, 2, 3 (reset at 3)
        _, state = tx.update(g, state)
    # k = 4: max |g| = 1.3 against M̂ = (0.999^3·0 + ... ) computed with k = 4.
    m = 0.0
    for x in (1.0, 1.0, 1.0, 1.3):
        m = 0.999 * m + 0.001 * x
    limit_global = m / (1 - 0.999 ** 4)  # ≈ 1.075: clips the 1.3 entry
    limit_reset = m / (1 - 0.999 ** 2)  # what the reset counter would give: ≈ 2.15, no clip
    assert limit_global < 1.3 < limit_reset
    _, state = tx.update({"w": jnp.array([1.3, 0.5, -0.25, 0.1])}, state)
    assert int(state.clipped) == 1


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_stable_spam_parts_reproduce_fused(weight_decay):
    problem = _problem(6, spikes=SPIKES)
    schedule = _schedule()
    hp = STABLE_HP
    fused, _ = _run_jax(oxs.stable_spam(schedule, weight_decay=weight_decay, **hp), problem)
    chain = optax.chain(
        oxs.adaptive_spike_clip(hp["theta"]),
        oxs.adaptive_grad_norm(hp["gamma1"], hp["gamma2"], hp["eps"]),
        oxs.reset_every(optax.scale_by_adam(hp["b1"], hp["b2"], hp["eps"]),
                        hp["reset_interval"], keep=()),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(schedule))
    parts, _ = _run_jax(chain, problem)
    _assert_close(parts, fused, "params")


def test_adaptive_parts_match_stable_spam_reference_statistics():
    """adaptive_spike_clip then adaptive_grad_norm == the reference's AdaClip + AdaGN."""
    rng = np.random.default_rng(8)
    grads = rng.normal(0, 1, (80, 7))
    grads[[10, 30, 31, 70], [1, 2, 3, 6]] *= 300.0
    tx = optax.chain(oxs.adaptive_spike_clip(0.99, track_clips=True),
                     oxs.adaptive_grad_norm(0.7, 0.9, 1e-8))
    outs, states = _scan_part(tx, grads)
    m = mean = sq = 0.0
    want, clipped = [], []
    for t, g in enumerate(grads):
        k = t + 1
        g = g.copy()
        g_max = np.abs(g).max()
        m = 0.99 * m + 0.01 * g_max
        limit = m / (1 - 0.99 ** k)
        mask = (np.abs(g) > limit) & (k > 1)  # k = 1: M̂ = max|g| exactly
        g[mask] = g[mask] / g_max * limit
        clipped.append(mask.sum())
        norm = np.linalg.norm(g)
        mean = 0.7 * mean + 0.3 * norm
        sq = 0.9 * sq + 0.1 * norm ** 2
        want.append(g / norm * (mean / (1 - 0.7 ** k)) / (math.sqrt(sq / (1 - 0.9 ** k)) + 1e-8))
    np.testing.assert_allclose(outs, np.array(want), rtol=RTOL, atol=1e-7)
    np.testing.assert_array_equal(states[0].clipped, clipped)
    assert sum(clipped) >= 4


@pytest.mark.parametrize("theta", [0.3, 0.9, 0.99, 0.999, 0.9999])
def test_adaptive_spike_clip_clips_nothing_at_the_first_step(theta):
    """M̂ = max|g| exactly at k = 1; rounding must not turn the largest entry into a spike."""
    tx = oxs.adaptive_spike_clip(theta, track_clips=True)
    grads = np.random.default_rng(13).lognormal(0.0, 3.0, (2000, 7)).astype(np.float32)
    # Eager (op-by-op) vmap: no XLA fusion, which happens to round the tie favourably.
    first = jax.vmap(lambda g: tx.update({"x": g}, tx.init({"x": g})))
    out, state = first(jnp.asarray(grads))
    np.testing.assert_array_equal(state.clipped, 0)
    np.testing.assert_array_equal(out["x"], grads)


@given(st.lists(st.floats(-100, 100, allow_nan=False, width=32), min_size=5, max_size=5))
def test_adaptive_spike_clip_bounds_by_the_threshold(values):
    state, step = _ADACLIP_CACHE
    g = np.asarray(values, np.float32)
    out, new_state = step(jnp.asarray(g), state)
    out = np.asarray(out)
    k = int(state.count) + 1
    m = 0.9 * float(state.max_ema[0]) + 0.1 * float(np.abs(g).max())
    limit = m / (1 - 0.9 ** k)
    assert np.abs(out).max() <= max(limit, 0.0) * (1 + 1e-5) + 1e-30 or np.abs(g).max() <= limit
    assert np.all(np.abs(out) <= np.abs(g) * (1 + 1e-6))
    assert np.all(np.sign(out) == np.sign(g))


def _warm_adaclip_state():
    tx = oxs.adaptive_spike_clip(0.9)
    state = tx.init({"x": jnp.zeros(5)})
    for _ in range(5):
        _, state = tx.update({"x": jnp.ones(5)}, state)
    step = jax.jit(lambda g, s: (lambda o: (o[0]["x"], o[1]))(tx.update({"x": g}, s)))
    return state, step


_ADACLIP_CACHE = _warm_adaclip_state()


@given(st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=4, max_size=4)
       .filter(lambda v: np.linalg.norm(v) > 1e-3))
def test_adaptive_grad_norm_keeps_the_direction(values):
    step = _GN_STEP
    state = _GN_STATE
    g = np.asarray(values, np.float32)
    out, _ = step(jnp.asarray(g), state)
    out = np.asarray(out, np.float64)
    cos = out @ g / (np.linalg.norm(out) * np.linalg.norm(g))
    assert cos > 1 - 1e-5


_GN_TX = oxs.adaptive_grad_norm()


_GN_STATE = _GN_TX.init({"x": jnp.zeros(4)})


_GN_STEP = jax.jit(lambda g, s: (lambda o: (o[0]["x"], o[1]))(_GN_TX.update({"x": g}, s)))


def test_large_leaves_use_accurate_reductions_and_drop_nan():
    """Leaves above 2**16 entries are reduced by rows (long vectors are cut into rows); a NaN
    anywhere in them is dropped, not propagated."""
    rng = np.random.default_rng(14)
    g = {"big": rng.normal(0, 1, (2048, 2048)).astype(np.float32),
         "long": rng.lognormal(0, 2, 70001).astype(np.float32)}
    tx = oxs.adaptive_grad_norm()
    out, _ = jax.jit(tx.update)(jax.tree.map(jnp.asarray, g), tx.init(g))
    for name, x in g.items():  # first step: g / ‖g‖ · ‖g‖ / (‖g‖ + eps)
        x64 = x.astype(np.float64)
        np.testing.assert_allclose(out[name], x64 / np.linalg.norm(x64), rtol=2e-6, atol=1e-12)
    fused = oxs.stable_spam(1e-3, track_clips=True)
    params = jax.tree.map(jnp.zeros_like, g)
    state = fused.init(params)
    update = jax.jit(fused.update)
    _, state = update(jax.tree.map(jnp.asarray, g), state, params)
    for name in g:
        bad = jax.tree.map(jnp.asarray, g)
        bad[name] = bad[name].reshape(-1).at[12345].set(np.nan).reshape(g[name].shape)
        updates, new_state = update(bad, state, params)
        assert int(new_state.count) == 2 and int(new_state.clipped) >= 1, name
        assert _finite_tree((updates, new_state)), name


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
def test_stable_spam_huge_gradient_at_the_first_step(dtype):
    """Issue 12 row 4a: stable_spam with 1e20 at step 1 (AdaGN's sum of squares overflowed)."""
    params = {"w": jnp.ones(4, dtype), "b": jnp.ones(3, dtype)}
    rng = np.random.default_rng(1)
    grads = [{"w": jnp.asarray([_huge(dtype), 1.0, -1.0, 0.5], dtype),
              "b": jnp.asarray([0.1, 0.2, 0.3], dtype)}]
    grads += [{n: jnp.asarray(rng.normal(0, 1, p.shape), dtype) for n, p in params.items()}
              for _ in range(12)]
    for tx in (oxs.stable_spam(1e-3, reset_interval=5),
               oxs.stable_spam(1e-3, reset_interval=5, reset_order="authors")):
        for k, (updates, state, p) in enumerate(_run_steps(tx, params, grads), start=1):
            assert _all_finite((updates, state, p)), (k, state)
        # The first step's norm is exact (not inf): AdaGN keeps the direction, and Adam's
        # first step moves the spiked coordinate by a full -lr · sign(g).
        first = _run_steps(tx, params, grads[:1])[0][0]
        np.testing.assert_allclose(float(first["w"][0]), -1e-3, rtol=2e-2)


def test_stable_spam_spike_in_a_large_leaf_after_warm_up():
    """Issue 12 row 4b: a 1e19 spike in a 4096-entry leaf after 20 warm-up steps."""
    params = {"w": jnp.zeros((64, 64))}
    rng = np.random.default_rng(2)
    grads = [{"w": jnp.asarray(rng.normal(0, 1, (64, 64)), jnp.float32)} for _ in range(30)]
    grads[20] = {"w": grads[20]["w"].at[3, 5].set(1e19)}
    grads[21] = {"w": grads[21]["w"] * 1e19}  # a whole-leaf spike: norm 6.4e20, finite
    for k, (updates, state, p) in enumerate(
            _run_steps(oxs.stable_spam(1e-3, track_clips=True), params, grads), start=1):
        assert _all_finite((updates, state, p)), (k, state)
        if k == 21:
            assert int(state.clipped) >= 1


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
def test_adaptive_grad_norm_of_a_huge_but_representable_norm(dtype):
    """Issue 12 row 5: adaptive_grad_norm with 1e20 gave NaN; the norm (1.5e20, representable
    in float32) is now exact, so the output keeps g's direction (its size is set by the
    saturated ν: ‖g‖² overflows float32)."""
    big = float(jnp.finfo(dtype).max) / 4 if dtype != jnp.float32 else 1e20
    g = np.array([big, -big, 0.0, big / 2], np.float64)
    tx = oxs.adaptive_grad_norm()
    out, state = jax.jit(tx.update)({"w": jnp.asarray(g, dtype)}, tx.init({"w": jnp.zeros(4)}))
    want = np.asarray(jnp.asarray(g, dtype), np.float64)
    got = np.asarray(out["w"], np.float64)
    np.testing.assert_allclose(got / np.linalg.norm(got), want / np.linalg.norm(want),
                               rtol=1e-2 if dtype != jnp.float32 else 1e-6)
    assert _all_finite((out, state))
    # A norm beyond float32 (4096 entries of 1e38): finite output and statistics.
    wide = {"w": jnp.full((64, 64), 1e38, jnp.float32)}
    out, state = jax.jit(tx.update)(wide, tx.init(wide))
    assert _all_finite((out, state))


def test_adaptive_spike_clip_of_the_largest_float():
    g = {"w": jnp.asarray([3.4e38, -3.4e38, 1.0], jnp.float32)}
    tx = oxs.adaptive_spike_clip(track_clips=True)
    state = tx.init(g)
    for _ in range(3):
        out, state = tx.update(g, state)
        assert _all_finite((out, state))


def test_stable_spam_authors_reset_order_matches_reference():
    problem = _problem(4, spikes=SPIKES)
    schedule = _schedule()
    tx = oxs.stable_spam(schedule, reset_order="authors", **STABLE_HP)
    ps, out = _run_jax(tx, problem, ("mu", "nu"))
    r = _run_ref(ref.StableSpam(problem[2], reset_order="authors", **STABLE_HP), problem,
                 _lr_np(schedule), "total_steps")
    _assert_close(ps, r["p"], "params")
    _assert_close(out["mu"], r["m"], "mu")
    _assert_close(out["nu"], r["v"], "nu")
    # At a reset step (k = 200, 400, 600) the authors' moments are zero after the step.
    assert np.all(r["m"]["w"][199] == 0) and np.all(out["mu"]["w"][199] == 0)


def _reset_step_ratio(seed: int) -> tuple[float, float]:
    """RMS of the reset step's update, authors' order / zero-first, and of the step after."""
    rng = np.random.default_rng(seed)
    params = {"w": jnp.zeros(256)}
    mean = rng.normal(0, 1, 256)
    grads = [{"w": jnp.asarray(mean + rng.normal(0, 1, 256), jnp.float32)} for _ in range(501)]
    runs = {order: _run_steps(oxs.scale_by_stable_spam(reset_interval=500, reset_order=order),
                              params, grads, with_params=False)
            for order in ("zero_first", "authors")}
    rms = {order: [float(np.sqrt(np.mean(np.square(np.asarray(h[0]["w"])))))
                   for h in hist] for order, hist in runs.items()}
    # Steps 1-499 agree exactly; k = 500 is the reset step.
    np.testing.assert_array_equal(rms["authors"][:499], rms["zero_first"][:499])
    return (rms["authors"][499] / rms["zero_first"][499],
            rms["authors"][499] / rms["authors"][498],
            rms["zero_first"][499] / rms["zero_first"][498])


def test_stable_spam_reset_step_magnitude_authors_vs_zero_first():
    """The documented difference, on a noisy steady gradient stream (signal = noise): the
    authors' reset step is 0.29-0.32x the zero-first one and about 0.5x the step before it
    (old moments over the bias corrections of step 1); the zero-first reset step is a full
    sign(g) step, 1.6-1.7x the step before it."""
    for seed in range(3):
        versus_zero_first, authors_vs_before, zero_first_vs_before = _reset_step_ratio(seed)
        assert 0.25 < versus_zero_first < 0.40, versus_zero_first
        assert 0.40 < authors_vs_before < 0.60, authors_vs_before
        assert 1.30 < zero_first_vs_before < 2.00, zero_first_vs_before
    with pytest.raises(ValueError, match="reset_order"):
        oxs.stable_spam(1e-3, reset_order="late")


# ------------------------------------------------------------------------------------------------
# Shared with SPAM (tests/_spikes_common.py).
# ------------------------------------------------------------------------------------------------


def test_inject_hyperparams_schedule_and_all_arguments():
    check_inject_hyperparams_schedule_and_all_arguments(oxs.stable_spam)


def test_multisteps_equals_mean_gradient():
    check_multisteps_equals_mean_gradient(oxs.stable_spam)


def test_mixed_shapes_and_dtypes():
    check_mixed_shapes_and_dtypes(oxs.stable_spam)


def test_non_finite_coordinate_is_dropped_as_a_spike():
    check_non_finite_coordinate_is_dropped_as_a_spike(oxs.stable_spam)


def test_whole_step_skip_is_one_wrapper_away():
    check_whole_step_skip_is_one_wrapper_away(oxs.stable_spam)


@pytest.mark.parametrize("part", [oxs.adaptive_spike_clip, oxs.adaptive_grad_norm])
def test_parts_drop_non_finite_coordinates(part):
    check_parts_drop_non_finite_coordinates(part)


@pytest.mark.parametrize("factory", [oxs.stable_spam, oxs.adaptive_spike_clip])
def test_clip_counters_are_opt_in(factory):
    check_clip_counters_are_opt_in(factory)


def test_float16_second_moment_saturates_or_lives_in_float32():
    check_float16_second_moment_saturates_or_lives_in_float32(oxs.stable_spam)


@pytest.mark.parametrize("spike", [1e20, 3.4e38])
def test_whole_tree_spike_before_and_after_resets_keeps_everything_finite(spike):
    check_whole_tree_spike_keeps_everything_finite(
        [oxs.stable_spam(1e-3, reset_interval=4, track_clips=True),
         optax.chain(oxs.adaptive_spike_clip(), oxs.adaptive_grad_norm(), optax.adam(1e-3))],
        spike)


_BELOW_ONE = float(np.nextafter(np.float32(1), np.float32(0)))
_TINY = float(np.finfo(np.float32).tiny)
_EDGE_PARAMS = {"w": jnp.ones((3, 2)), "h": jnp.ones((4,), jnp.float16)}


@functools.cache
def _edge_step():
    """jit(first update)(b1, b2, eps, grads) with the rates and eps injected: one compilation."""
    factory = optax.inject_hyperparams(oxs.stable_spam)

    @jax.jit
    def step(b1, b2, eps, grads):
        tx = factory(learning_rate=1e-3, b1=b1, b2=b2, eps=eps)
        return tx.update(grads, tx.init(_EDGE_PARAMS), _EDGE_PARAMS)

    return step


@settings(max_examples=10, deadline=None)
@given(b1=st.floats(0.5, _BELOW_ONE, width=32), b2=st.sampled_from([0.0, 0.999, _BELOW_ONE]),
       eps=st.floats(_TINY, 1e-20), scale=st.sampled_from([0.0, 1e-30, 1.0]))
def test_tiny_eps_and_zero_gradients_leave_the_update_finite(b1, b2, eps, scale):
    """With eps near float32's smallest normal, XLA's rewrite of (m / (1 - b1^n)) / (sqrt(v) + eps)
    as m / ((1 - b1^n) (sqrt(v) + eps)) made the divisor subnormal, flushed to 0 under jit: a zero
    gradient gave 0 / 0 = NaN in every update."""
    grads = jax.tree.map(lambda p: jnp.full(p.shape, scale, p.dtype), _EDGE_PARAMS)
    updates, state = _edge_step()(jnp.float32(b1), jnp.float32(b2), jnp.float32(eps), grads)
    assert _all_finite((updates, state.inner_state)), (b1, b2, eps, scale)
    if scale == 0.0:
        assert all(not np.asarray(u).any() for u in jax.tree.leaves(updates))


def test_state_is_a_plain_pytree_of_arrays_like_the_params():
    # The per-leaf statistics are vectors with one entry per leaf: max_ema, norm_mean, norm_sq_mean.
    check_state_is_a_plain_pytree_of_arrays(oxs.stable_spam(1e-3), per_leaf_statistics=3)
    check_state_is_a_plain_pytree_of_arrays(oxs.adaptive_spike_clip(), per_leaf_statistics=1)
    check_state_is_a_plain_pytree_of_arrays(oxs.adaptive_grad_norm(), per_leaf_statistics=2)


# ------------------------------------------------------------------------------------------------
# Bad inputs: one per validated argument.
# ------------------------------------------------------------------------------------------------

BAD_INPUTS = [
    (oxs.scale_by_stable_spam, {"b1": 1.5}, "b1"),
    (oxs.scale_by_stable_spam, {"b2": 1.0}, "b2"),
    (oxs.scale_by_stable_spam, {"eps": -1e-8}, "eps"),
    (oxs.scale_by_stable_spam, {"gamma1": 1.0}, "gamma1"),
    (oxs.scale_by_stable_spam, {"gamma2": -0.5}, "gamma2"),
    (oxs.scale_by_stable_spam, {"theta": 2.0}, "theta"),
    (oxs.scale_by_stable_spam, {"reset_interval": -5}, "reset_interval"),
    (oxs.scale_by_stable_spam, {"t_max": 0}, "t_max"),
    (oxs.scale_by_stable_spam, {"eta_min": 1.5}, "eta_min"),
    (oxs.scale_by_stable_spam, {"mu_dtype": "int32"}, "mu_dtype"),
    (oxs.stable_spam, {"learning_rate": "0.1"}, "learning_rate"),
    (oxs.stable_spam, {"learning_rate": 0.1, "weight_decay": float("inf")}, "weight_decay"),
    (oxs.stable_spam, {"learning_rate": 0.1, "mask": [1, 2]}, "mask"),
    (oxs.adaptive_spike_clip, {"theta": 1.0}, "theta"),
    (oxs.adaptive_grad_norm, {"gamma1": 1.0}, "gamma1"),
    (oxs.adaptive_grad_norm, {"gamma2": -0.1}, "gamma2"),
    (oxs.adaptive_grad_norm, {"eps": 0.0}, "eps"),
]


@pytest.mark.parametrize("factory, kwargs, name", BAD_INPUTS,
                         ids=[f"{f.__name__}-{n}-{i}" for i, (f, _, n) in enumerate(BAD_INPUTS)])
def test_bad_inputs_raise_value_error_naming_the_argument(factory, kwargs, name):
    check_bad_input_raises_value_error_naming_the_argument(factory, kwargs, name)


def test_docstring_examples_run():
    from optaxsched import _stable_spam

    result = doctest.testmod(_stable_spam, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0
