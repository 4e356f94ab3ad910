"""Tests for optaxsched.refinement (recording, smoothing, refinement, loading, CLI, plot).

Numerics are compared with the float64 loops in tests/reference/refinement_np.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxsched as oxs
from optaxsched import _checks, cli
from tests.reference import refinement_np as ref

RNG = np.random.default_rng(20231011)


@pytest.fixture(autouse=True)
def _reseed_rng():
    """Every test draws the same data whatever ran before it (xdist reorders tests)."""
    global RNG
    RNG = np.random.default_rng(20231011)


def _hand_made(n: int) -> dict[str, np.ndarray]:
    """Norm logs with the shapes that matter: warmup-like decay, late growth, spikes, steps."""
    t = np.arange(n) / max(n - 1, 1)
    noise = RNG.lognormal(0.0, 0.25, n)
    spikes = np.ones(n)
    spikes[RNG.choice(n, size=max(1, n // 20), replace=False)] = 30.0
    return {
        "early_large": (1.0 + 8.0 * np.exp(-t / 0.08)) * noise,
        "late_growth": (1.0 + 3.0 * t ** 4) * noise,
        "spiky": 2.0 * spikes * noise,
        "two_levels": np.where(t < 0.5, 4.0, 1.0) * noise,
    }


# ------------------------------------------------------------------------------------------
# refine: closed form against the reference
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("n, smoothing", [(2, 0.0), (3, 0.0), (17, 0.0), (50, 0.1), (1000, 0.1),
                                          (1001, 0.37), (25_000, 0.1), (40_000, 0.0)])
def test_constant_norms_give_exactly_linear_decay(kind, n, smoothing):
    out = oxs.refine(np.full(n, 2.75), kind=kind, smoothing=smoothing)
    t = np.arange(n, dtype=np.float64)
    np.testing.assert_array_equal(out, (n - 1 - t) / (n - 1))
    np.testing.assert_allclose(out, ref.linear_decay(n), rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("smoothing", [0.0, 0.05, 0.1, 0.3])
@pytest.mark.parametrize("shape", ["early_large", "late_growth", "spiky", "two_levels"])
def test_refine_matches_reference_on_hand_made_logs(kind, smoothing, shape):
    norms = _hand_made(400)[shape]
    np.testing.assert_allclose(oxs.refine(norms, kind=kind, smoothing=smoothing),
                               ref.refine(norms, kind, smoothing), rtol=1e-12, atol=1e-15)


def test_refinement_shapes_match_the_paper_qualitatively():
    logs = _hand_made(2000)
    early = oxs.refine(logs["early_large"], kind="sgd")
    assert 50 < np.argmax(early) < 1000 and early[0] < 0.2  # large early norms: warmup
    late = oxs.refine(logs["late_growth"], kind="sgd")
    linear = ref.linear_decay(2000)
    assert np.all(late[1700:-1] < linear[1700:-1])  # growing late norms: faster final decay
    # the Adam variant (w = G^-1) reacts less strongly than SGD (w = G^-2)
    adam = oxs.refine(logs["early_large"], kind="adam")
    assert adam[0] > early[0]


@settings(max_examples=40)
@given(data=st.data(), kind=st.sampled_from(["sgd", "adam"]))
def test_property_refine_peaks_at_one_ends_at_zero(data, kind):
    n = data.draw(st.integers(2, 150), label="n")
    norms = np.array(data.draw(st.lists(st.floats(1e-3, 1e3), min_size=n, max_size=n),
                               label="norms"))
    smoothing = data.draw(st.sampled_from([0.0, 1.0]) | st.floats(min(1.0, 2.001 / n), 1.0),
                          label="smoothing")
    out = oxs.refine(norms, kind=kind, smoothing=smoothing)
    assert out.shape == (n,) and out.dtype == np.float64
    assert np.all(np.isfinite(out)) and np.all(out >= 0.0) and np.all(out <= 1.0)
    assert out.max() == 1.0 and out[-1] == 0.0
    np.testing.assert_allclose(out, ref.refine(norms, kind, smoothing), rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------------------------------
# smoothing
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, smoothing", [
    (n, s) for n in (2, 3, 5, 20, 101, 999, 2048) for s in (0.1, 0.25, 0.5, 1.0) if s * n >= 2])
def test_median_filter_equals_direct_filter(n, smoothing):
    x = RNG.lognormal(0.0, 1.0, n)
    np.testing.assert_array_equal(oxs.smooth_norms(x, smoothing),
                                  ref.median_filter(x, ref.window(n, smoothing)))


def test_median_filter_edges_reflect():
    # Reflection about the ends: at index 0 with width 5 the window is x2 x1 x0 x1 x2, at the
    # last index x7 x8 x9 x8 x7 (repeating the end value instead would give 10 and 100).
    x = np.array([10.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 100.0])
    out = oxs.smooth_norms(x, smoothing=0.5)  # width 5
    assert out[0] == 2.0 and out[1] == 2.0 and out[-1] == 8.0


def test_long_log_block_smoothing_approximates_the_direct_filter():
    n, smoothing = 30_000, 0.1
    t = np.arange(n) / n
    x = (1.0 + 4.0 * np.exp(-t / 0.1) + t ** 2) * RNG.lognormal(0.0, 0.3, n)
    fast = oxs.smooth_norms(x, smoothing)
    direct = ref.median_filter(x, ref.window(n, smoothing))
    assert np.max(np.abs(fast / direct - 1.0)) < 0.03
    w = direct ** -2.0
    tail = np.concatenate([np.cumsum(w[::-1])[::-1][1:], [0.0]])
    refined_direct = w * tail / np.max(w * tail)
    assert np.max(np.abs(oxs.refine(x, kind="sgd", smoothing=smoothing) - refined_direct)) < 0.03


def test_refine_on_a_million_steps_is_fast():
    import time

    x = (1.0 + 5.0 * np.exp(-np.arange(1_000_000) / 5e4)) * RNG.lognormal(0.0, 0.3, 1_000_000)
    oxs.refine(x[:30_000], kind="adam")  # warm up NumPy paths
    start = time.perf_counter()
    out = oxs.refine(x, kind="adam")
    elapsed = time.perf_counter() - start
    assert out[-1] == 0.0 and out.max() == 1.0
    assert elapsed < 2.0  # goal < 1 s; slack for a loaded 2-core CI machine


# ------------------------------------------------------------------------------------------
# refine: edge cases and bad inputs
# ------------------------------------------------------------------------------------------


def test_non_finite_entries_are_interpolated_with_a_warning():
    x = _hand_made(300)["early_large"]
    bad = x.copy()
    bad[[0, 57, 58, 200, 299]] = [np.nan, np.inf, -np.inf, np.nan, np.inf]
    with pytest.warns(RuntimeWarning, match="dropped 5 non-finite entries"):
        out = oxs.refine(bad, kind="sgd")
    np.testing.assert_allclose(out, ref.refine(ref.fill_non_finite(bad), "sgd", 0.1),
                               rtol=1e-12, atol=1e-15)
    filled = ref.fill_non_finite(bad)
    assert filled[0] == x[1] and filled[299] == x[298]


def test_collapsing_norms_are_floored_with_a_warning():
    x = np.concatenate([np.ones(50), np.zeros(50)])
    with pytest.warns(RuntimeWarning, match="raised to that floor"):
        out = oxs.refine(x, kind="sgd", smoothing=0.1)
    assert np.all(np.isfinite(out)) and out.max() == 1.0 and out[-1] == 0.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(grad_norms=np.ones(10)), "too short to smooth with smoothing=0.1.*at least 20 entries"),
    (dict(grad_norms=np.ones(19)), "at least 20 entries, got 19"),
    (dict(grad_norms=np.zeros(100)), "not all zero"),
    (dict(grad_norms=np.r_[np.ones(50), -1.0, np.ones(49)]), r"non-negative.*-1.0 at index 50"),
    (dict(grad_norms=[3.0]), "at least 2 finite entries"),
    (dict(grad_norms=[]), "at least 2 finite entries"),
    (dict(grad_norms=[np.nan] * 30 + [1.0]), "at least 2 finite entries"),
    (dict(grad_norms=np.ones((10, 10))), "1-D sequence"),
    (dict(grad_norms=["a", "b", "c"]), "1-D sequence"),
    (dict(grad_norms=None), "1-D sequence"),
    (dict(grad_norms=np.ones(100), kind="rmsprop"), "kind must be one of 'sgd', 'adam'"),
    (dict(grad_norms=np.ones(100), smoothing=-0.1), r"smoothing must be in \[0, 1\]"),
    (dict(grad_norms=np.ones(100), smoothing=1.5), r"smoothing must be in \[0, 1\]"),
    (dict(grad_norms=np.ones(100), smoothing=float("nan")), "smoothing must be"),
    (dict(grad_norms=np.ones(100), smoothing="wide"), "smoothing must be"),
])
def test_refine_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        oxs.refine(**{"kind": "sgd", **kwargs})
    assert str(err.value).startswith("refine: ")


# ------------------------------------------------------------------------------------------
# refine: the kind follows from the norms, or must be given
# ------------------------------------------------------------------------------------------


def _recorded(norms) -> dict[str, np.ndarray]:
    """grad_norm_history of a run of 60 steps that recorded ``norms``."""
    tx = oxs.record_grad_norms(60, norms=norms)
    state = tx.init(jnp.zeros(3))
    update = jax.jit(tx.update)
    for k in range(60):
        _, state = update(jnp.array([1.0 + 5.0 * np.exp(-k / 10.0), -2.0, 0.5]), state)
    return oxs.grad_norm_history(state)


@pytest.mark.parametrize("norms, kind", [("l1", "adam"), ("l2", "sgd"), (("l2", "linf"), "sgd"),
                                         (("l1", "linf"), "adam")])
def test_kind_is_inferred_from_norms_of_one_kind(norms, kind):
    history = _recorded(norms)
    used = history["l2" if kind == "sgd" else "l1"]
    np.testing.assert_array_equal(oxs.refine(history), oxs.refine(used, kind=kind))
    counts = np.arange(100)
    np.testing.assert_array_equal(oxs.refined_schedule(history, 0.1, 100)(counts),
                                  oxs.refined_schedule(used, 0.1, 100, kind=kind)(counts))
    np.testing.assert_array_equal(oxs.refine(history, kind=kind), oxs.refine(used, kind=kind))


def test_norms_of_both_kinds_need_kind():
    history = _recorded(("l2", "l1"))  # what record_grad_norms records by default
    for call in (lambda: oxs.refine(history),
                 lambda: oxs.refined_schedule(history, 3e-4)):
        with pytest.raises(ValueError, match="holds both ℓ2 and ℓ1 norms") as err:
            call()
        message = str(err.value)
        assert "kind='sgd'" in message and "ℓ2 norms (SGD-like" in message
        assert "kind='adam'" in message and "ℓ1 norms (Adam-family" in message
        assert "kind='adam')" in message  # how to pass it


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_an_explicit_kind_chooses_among_norms_of_both_kinds(kind):
    history = _recorded(("l2", "l1"))
    used = history["l2" if kind == "sgd" else "l1"]
    np.testing.assert_array_equal(oxs.refine(history, kind=kind), oxs.refine(used, kind=kind))
    assert not np.allclose(oxs.refine(history, kind="sgd"), oxs.refine(history, kind="adam"))


@pytest.mark.parametrize("grad_norms, kind, match", [
    ({"l2": np.ones(50)}, "adam", r"kind='adam' refines by the ℓ1 norms, which grad_norms does "
                                  r"not hold \(its norms: \['l2'\]\).*or pass kind='sgd'"),
    ({"l1": np.ones(50)}, "sgd", r"kind='sgd' refines by the ℓ2 norms.*norms='l2'"),
    ({"linf": np.ones(50)}, "sgd", r"its norms: \['linf'\]\); record them"),
    ({"linf": np.ones(50)}, None, r"grad_norms must be a mapping holding 'l2' or 'l1' norms"),
    ({"grad_norm_l1": np.ones(50)}, None, r"grad_norms must be a 1-D sequence of norms or a "
                                          r"mapping from norm names"),
    ({}, None, "mapping from norm names"),
    (np.ones(50), None, r"kind is required when grad_norms is an array.*kind='sgd'.*kind='adam'"),
    ({"l1": np.ones(50)}, "lion", "kind must be one of 'sgd', 'adam'"),
])
def test_kind_and_norms_that_do_not_match_are_named_errors(grad_norms, kind, match):
    for where, call in (("refine", lambda: oxs.refine(grad_norms, kind=kind)),
                        ("refined_schedule",
                         lambda: oxs.refined_schedule(grad_norms, 1e-3, kind=kind))):
        with pytest.raises(ValueError, match=match) as err:
            call()
        assert str(err.value).startswith(f"{where}: ")


def test_smooth_norms_and_zero_smoothing():
    x = _hand_made(100)["spiky"]
    np.testing.assert_array_equal(oxs.smooth_norms(x, 0.0), x)
    with pytest.raises(ValueError, match="smooth_norms: smoothing must be"):
        oxs.smooth_norms(x, 2.0)


# ------------------------------------------------------------------------------------------
# refined_schedule
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("total_steps", [None, 400, 1201, 57])
def test_refined_schedule_resamples_in_relative_time(kind, total_steps):
    norms = _hand_made(400)["early_large"]
    peak = 3e-4
    schedule = oxs.refined_schedule(norms, peak, total_steps=total_steps, kind=kind)
    multipliers = ref.refine(norms, kind, 0.1)
    steps = total_steps or 400
    counts = np.arange(steps + 5)
    # Reference: entry i of the recorded run sits at count i (T - 1) / (n - 1).
    position = np.clip(counts * (400 - 1) / (steps - 1), 0, 399)
    expected = peak * np.interp(position, np.arange(400), multipliers)
    values = np.asarray(jax.jit(schedule)(counts))
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, expected, rtol=2e-6, atol=1e-6 * peak)
    assert values[steps - 1] == 0.0 and np.all(values[steps:] == 0.0)
    # The peak of the recorded run is reached exactly when the counts hit its position; a
    # compressed run (57 steps for 400) can step over it, as the resampled reference does.
    assert values.max() <= np.float32(peak)
    np.testing.assert_allclose(values.max(), expected.max(), rtol=2e-6)
    if steps >= 400:
        assert values.max() >= 0.98 * peak


def test_refined_schedule_of_constant_norms_is_linear_decay():
    schedule = oxs.refined_schedule(np.full(200, 0.7), 0.1, total_steps=1000, kind="sgd")
    counts = np.arange(1000)
    np.testing.assert_allclose(schedule(counts), 0.1 * (1.0 - counts / 999.0), rtol=1e-5,
                               atol=1e-8)
    np.testing.assert_allclose(schedule(counts), oxs.linear_decay(0.1, 999)(counts), rtol=1e-5,
                               atol=1e-8)


def test_refined_schedule_in_an_optimizer():
    schedule = oxs.refined_schedule(np.ones(50), 0.5, total_steps=10, kind="sgd")
    tx = optax.sgd(schedule)
    params = jnp.zeros(2)
    state = tx.init(params)
    lrs = []
    for _ in range(10):
        updates, state = tx.update(jnp.ones(2), state, params)
        lrs.append(-float(updates[0]))
    np.testing.assert_allclose(lrs, 0.5 * (1.0 - np.arange(10) / 9.0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kwargs, match", [
    (dict(peak_value=0.0), "peak_value must be a positive finite number"),
    (dict(peak_value=-1e-3), "peak_value must be"),
    (dict(peak_value=float("inf")), "peak_value must be"),
    (dict(peak_value=1e-3, total_steps=1), r"total_steps must be an integer >= 2"),
    (dict(peak_value=1e-3, total_steps=10.5), "total_steps must be"),
    (dict(peak_value=1e-3, kind="lion"), "kind must be one of"),
    (dict(peak_value=1e-3, smoothing=2.0), "smoothing must be"),
    (dict(peak_value=1e-3, grad_norms=np.ones(5)), "too short to smooth"),
])
def test_refined_schedule_bad_inputs(kwargs, match):
    kwargs = {"grad_norms": np.ones(100), "kind": "sgd", **kwargs}
    with pytest.raises(ValueError, match=match) as err:
        oxs.refined_schedule(**kwargs)
    assert str(err.value).startswith("refined_schedule: ")


# ------------------------------------------------------------------------------------------
# record_grad_norms
# ------------------------------------------------------------------------------------------


def _grads(k: int):
    return {"dense": {"w": jnp.asarray(RNG.standard_normal((4, 3)), jnp.float32) * (k + 1),
                      "b": jnp.asarray(RNG.standard_normal(3), jnp.float32)},
            "emb": jnp.asarray(RNG.standard_normal((5, 2)), jnp.bfloat16),
            "scalar": jnp.asarray(-0.5 * k, jnp.float32)}


def test_records_global_norms_of_each_step():
    params = jax.tree.map(jnp.zeros_like, _grads(0))
    tx = oxs.record_grad_norms(10, norms=("l2", "l1", "linf"))
    state = tx.init(params)
    update = jax.jit(tx.update)
    expected = []
    for k in range(4):
        grads = _grads(k)
        updates, state = update(grads, state, params)
        jax.tree.map(np.testing.assert_array_equal, updates, grads)  # passed through unchanged
        expected.append(ref.global_norms([np.asarray(x, np.float64)
                                          for x in jax.tree.leaves(grads)]))
    assert state.count.dtype == jnp.int32 and int(state.count) == 4
    history = oxs.grad_norm_history(state)
    assert set(history) == {"l2", "l1", "linf"}
    for name in history:
        assert history[name].dtype == np.float32 and history[name].shape == (4,)
        np.testing.assert_allclose(history[name], [e[name] for e in expected], rtol=1e-6)
    assert np.all(np.asarray(state.grad_norm_l2)[4:] == 0.0)


def test_requested_norms_only():
    tx = oxs.record_grad_norms(5, norms="linf")
    state = tx.init(jnp.zeros(3))
    assert state.grad_norm_l2 is None and state.grad_norm_l1 is None
    _, state = tx.update(jnp.array([1.0, -7.0, 2.0]), state)
    assert optax.tree.get(state, "grad_norm_linf")[0] == 7.0
    assert list(oxs.grad_norm_history(state)) == ["linf"]
    with pytest.raises(ValueError, match="grad_norm_history: norm must be one of 'linf'"):
        oxs.grad_norm_history(state, norm="l2")


def test_after_num_steps_writing_stops_and_count_keeps_going():
    tx = oxs.record_grad_norms(3, norms=("l2",))
    state = tx.init(jnp.zeros(1))
    step = jax.jit(tx.update, donate_argnums=(1,))
    latest = jax.jit(oxs.latest_grad_norms)
    assert list(latest(state)) == ["l2"] and np.isnan(float(latest(state)["l2"]))
    seen = []
    for k in range(5):
        _, state = step(jnp.array([k + 1.0]), state)
        seen.append(float(latest(state)["l2"]))
    np.testing.assert_array_equal(seen, [1.0, 2.0, 3.0, np.nan, np.nan])
    assert int(state.count) == 5
    np.testing.assert_array_equal(np.asarray(state.grad_norm_l2), [1.0, 2.0, 3.0])
    with pytest.warns(RuntimeWarning, match="the last 2 steps were not recorded"):
        history = oxs.grad_norm_history(state, norm="l2")
    np.testing.assert_array_equal(history, [1.0, 2.0, 3.0])


def test_count_saturates_at_int32_max():
    tx = oxs.record_grad_norms(2, norms="l2")
    state = tx.init(jnp.zeros(1))._replace(count=jnp.asarray(2**31 - 1, jnp.int32))
    _, state = tx.update(jnp.ones(1), state)
    assert int(state.count) == 2**31 - 1
    np.testing.assert_array_equal(np.asarray(state.grad_norm_l2), [0.0, 0.0])


def test_non_finite_updates_are_recorded_as_is():
    tx = oxs.record_grad_norms(4)
    state = tx.init(jnp.zeros(2))
    updates, state = tx.update(jnp.array([np.nan, 1.0]), state)
    _, state = tx.update(jnp.array([np.inf, 1.0]), state)
    assert np.isnan(np.asarray(updates)[0])
    h = oxs.grad_norm_history(state)
    assert np.isnan(h["l2"][0]) and np.isinf(h["l2"][1]) and np.isinf(h["l1"][1])


def test_multisteps_records_the_accumulated_gradient_once_per_real_step():
    k = 3
    tx = optax.MultiSteps(optax.chain(oxs.record_grad_norms(8), optax.sgd(0.1)),
                          every_k_schedule=k)
    params = jnp.zeros(4)
    state = tx.init(params)
    update = jax.jit(tx.update)
    micro = [jnp.asarray(RNG.standard_normal(4), jnp.float32) for _ in range(2 * k)]
    for g in micro:
        _, state = update(g, state, params)
    history = oxs.grad_norm_history(state)
    means = [np.mean(np.asarray(micro[i * k:(i + 1) * k], np.float64), axis=0) for i in range(2)]
    np.testing.assert_allclose(history["l2"], [np.linalg.norm(m) for m in means], rtol=1e-6)
    np.testing.assert_allclose(history["l1"], [np.abs(m).sum() for m in means], rtol=1e-6)


def test_history_is_found_anywhere_and_several_recorders_need_which():
    tx = optax.chain(oxs.record_grad_norms(6), optax.scale_by_adam(),
                     oxs.record_grad_norms(6, norms="l2"), optax.scale(-1e-3))
    params = {"a": jnp.ones(3)}
    state = tx.init(params)
    for k in range(2):
        _, state = tx.update({"a": jnp.array([1.0, -2.0, 2.0]) * (k + 1)}, state, params)
    with pytest.raises(ValueError, match=r"contains 2 RecordGradNormsState \(0: \[0\], 1: \[2\]\)"):
        oxs.grad_norm_history(state)
    np.testing.assert_allclose(oxs.grad_norm_history(state, which=0)["l2"], [3.0, 6.0])
    directions = oxs.grad_norm_history(state, which=1, norm="l2")
    assert directions.shape == (2,) and np.all(directions < 3.0)  # Adam directions are ~unit
    with pytest.raises(ValueError, match=r"which must be an integer in \[0, 1\]"):
        oxs.grad_norm_history(state, which=2)
    with pytest.raises(ValueError, match="must contain a RecordGradNormsState"):
        oxs.grad_norm_history(optax.adam(1e-3).init(params))
    # Inside inject_hyperparams and a Flax-style container.
    injected = optax.inject_hyperparams(
        lambda learning_rate: optax.chain(oxs.record_grad_norms(4), optax.sgd(learning_rate)))(
        learning_rate=0.1)
    inner = injected.init(params)
    _, inner = injected.update({"a": jnp.array([0.0, 3.0, 4.0])}, inner, params)
    np.testing.assert_allclose(oxs.grad_norm_history({"opt_state": inner}, norm="l2"), [5.0])


def test_history_of_a_vmapped_state_keeps_the_batch_axis():
    tx = oxs.record_grad_norms(5, norms="l2")
    seeds = jnp.arange(3.0)
    states = jax.vmap(tx.init)(jnp.zeros((3, 2)))

    @jax.jit
    @jax.vmap
    def step(state, seed):
        return tx.update(jnp.array([seed, 1.0]), state)[1]

    states = step(step(states, seeds), seeds)
    history = oxs.grad_norm_history(states, norm="l2")
    assert history.shape == (3, 2)
    np.testing.assert_allclose(history[:, 0], np.sqrt(np.asarray(seeds) ** 2 + 1), rtol=1e-6)
    with pytest.raises(ValueError, match="counts are all equal"):
        oxs.grad_norm_history(states._replace(count=jnp.array([2, 2, 1], jnp.int32)))


def test_state_checkpoints_with_orbax(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    tx = optax.chain(oxs.record_grad_norms(4, norms=("l2", "l1")), optax.adam(1e-3))
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    _, state = tx.update({"w": jnp.array([1.0, 2.0, 2.0])}, state, params)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "state", state)
        ckpt.wait_until_finished()
        restored = ckpt.restore(tmp_path / "state", state)
    jax.tree.map(np.testing.assert_array_equal, restored, state)
    np.testing.assert_array_equal(oxs.grad_norm_history(restored)["l2"], [3.0])


_SHARDED_SCRIPT = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import optaxsched as oxs
    mesh = Mesh(np.array(jax.devices()), ("d",))
    grads = {"w": jnp.arange(32.0).reshape(8, 4) - 10.0, "b": jnp.linspace(-1.0, 1.0, 8)}
    sharded = {"w": jax.device_put(grads["w"], NamedSharding(mesh, P("d", None))),
               "b": jax.device_put(grads["b"], NamedSharding(mesh, P("d")))}
    tx = oxs.record_grad_norms(6, norms=("l2", "l1", "linf"))
    state = tx.init(sharded)
    update = jax.jit(tx.update, donate_argnums=(1,))
    for _ in range(2):
        _, state = update(sharded, state)
    flat = np.concatenate([np.asarray(g, np.float64).ravel() for g in grads.values()])
    h = oxs.grad_norm_history(state)
    np.testing.assert_allclose(h["l2"], [np.linalg.norm(flat)] * 2, rtol=1e-6)
    np.testing.assert_allclose(h["l1"], [np.abs(flat).sum()] * 2, rtol=1e-6)
    np.testing.assert_allclose(h["linf"], [np.abs(flat).max()] * 2, rtol=1e-6)
    assert len(sharded["w"].sharding.device_set) == 4
    assert state.grad_norm_l2.sharding.is_fully_replicated, state.grad_norm_l2.sharding
    print("ok")
""")


def test_sharded_params_give_global_norms_and_replicated_buffers():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT], capture_output=True,
                            text=True, env=env, cwd=root, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_steps=0), r"num_steps must be an integer in \[1, 2147483647\], got 0"),
    (dict(num_steps=-5), "num_steps must be"),
    (dict(num_steps=10.5), "num_steps must be"),
    (dict(num_steps="100"), "num_steps must be"),
    (dict(num_steps=2**31), "num_steps must be an integer in"),
    (dict(num_steps=10, norms=()), "norms must be a sequence with at least 1"),
    (dict(num_steps=10, norms=("l3",)), "norms must be one of 'l2', 'l1', 'linf'"),
    (dict(num_steps=10, norms=("l2", "l2")), "norms must be a sequence of distinct"),
    (dict(num_steps=10, norms=5), "norms must be a sequence"),
])
def test_record_grad_norms_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        oxs.record_grad_norms(**kwargs)
    assert str(err.value).startswith("record_grad_norms: ")


# ------------------------------------------------------------------------------------------
# load_grad_norms
# ------------------------------------------------------------------------------------------


def _write(path, text):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_load_npy_csv_and_txt(tmp_path):
    x = RNG.lognormal(size=30)
    np.save(tmp_path / "n.npy", x)
    np.testing.assert_array_equal(oxs.load_grad_norms(tmp_path / "n.npy"), x)
    np.save(tmp_path / "col.npy", x[:, None].astype(np.float32))
    np.testing.assert_allclose(oxs.load_grad_norms(str(tmp_path / "col.npy")), x, rtol=1e-7)
    np.savetxt(tmp_path / "n.txt", x)
    np.testing.assert_allclose(oxs.load_grad_norms(tmp_path / "n.txt"), x, rtol=1e-15)
    _write(tmp_path / "h.csv", """
        step,loss,grad_norm_l2,grad_norm_l1
        0,2.0,3.0,30.0
        1,1.9,,29.0
        2,1.8,2.0,20.0
        """)
    l2 = oxs.load_grad_norms(tmp_path / "h.csv")
    assert l2[0] == 3.0 and np.isnan(l2[1]) and l2[2] == 2.0
    np.testing.assert_array_equal(oxs.load_grad_norms(tmp_path / "h.csv", key="grad_norm_l1"),
                                  [30.0, 29.0, 20.0])
    _write(tmp_path / "one.csv", "gnorm\n1.5\n2.5\n")
    np.testing.assert_array_equal(oxs.load_grad_norms(tmp_path / "one.csv"), [1.5, 2.5])


def test_load_metrics_jsonl_places_values_by_step(tmp_path):
    records = [{"step": 0, "loss": 3.0, "grad_norm_l2": 4.0, "grad_norm_l1": 40.0},
               {"step": 1, "grad_norm_l2": 3.0, "grad_norm_l1": 30.0},
               {"eval_loss": 2.5, "step": 1},
               {"step": 2, "grad_norm_l2": 1.0, "grad_norm_l1": None},  # resumed run: overwritten
               {"step": 2, "grad_norm_l2": 2.0, "grad_norm_l1": 20.0},
               {"step": 5, "grad_norm_l2": 5.0, "grad_norm_l1": 50.0}]  # steps 3, 4 not logged
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    np.testing.assert_allclose(oxs.load_grad_norms(path), [4.0, 3.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(oxs.load_grad_norms(path, key="grad_norm_l1"),
                               [40.0, 30.0, 20.0, 30.0, 40.0, 50.0])
    # Without steps: file order; NaN/null kept for refine to report.
    path.write_text('{"grad_norm_l2": 1.0}\n{"grad_norm_l2": NaN}\n{"grad_norm_l2": null}\n')
    out = oxs.load_grad_norms(path)
    assert out[0] == 1.0 and np.isnan(out[1:]).all()


@pytest.mark.parametrize("name, content, match", [
    ("missing.npy", None, "no such file"),
    ("norms.parquet", "x", "path must be a file ending in .npy, .csv, .txt, .jsonl"),
    ("bad.npy", "not numpy", "not a readable .npy array"),
    ("empty.csv", "", "is empty"),
    ("two.csv", "1,2\n3,4\n", "2 columns and no header"),
    ("nokey.csv", "a,b\n1,2\n", r"no column 'grad_norm_l2'; its columns are \['a', 'b'\]"),
    ("text.csv", "grad_norm_l2\n1.0\nabc\n", "line 3: 'grad_norm_l2' must be a number, got 'abc'"),
    ("header.csv", "grad_norm_l2\n", "has a header but no rows"),
    ("bad.jsonl", '{"grad_norm_l2": 1.0}\n{oops\n', "line 2: not valid JSON"),
    ("list.jsonl", "[1, 2]\n", "expected a JSON object"),
    ("nokey.jsonl", '{"loss": 1.0}\n', r"no records with the key 'grad_norm_l2'; keys seen"),
    ("str.jsonl", '{"grad_norm_l2": "big"}\n',
     "'grad_norm_l2' must be a number, got 'big'"),
    ("blank.jsonl", "\n\n", "has no JSON records"),
    ("frac.jsonl", '{"step": 0.5, "grad_norm_l2": 1.0}\n', "every 'step' must be an integer"),
])
def test_load_bad_files(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=match) as err:
        oxs.load_grad_norms(path)
    assert str(err.value).startswith("load_grad_norms: ")


def test_load_bad_arguments(tmp_path):
    np.save(tmp_path / "n.npy", np.ones(3))
    with pytest.raises(ValueError, match="load_grad_norms: path must be a file path, got 3"):
        oxs.load_grad_norms(3)
    for key in ("", 5, None):
        with pytest.raises(ValueError, match="load_grad_norms: key must be a non-empty string"):
            oxs.load_grad_norms(tmp_path / "n.npy", key=key)


def test_latest_grad_norms_bad_which():
    tx = optax.chain(oxs.record_grad_norms(3), oxs.record_grad_norms(3))
    state = tx.init(jnp.zeros(2))
    with pytest.raises(ValueError, match="latest_grad_norms: opt_state contains 2"):
        oxs.latest_grad_norms(state)
    with pytest.raises(ValueError, match=r"^latest_grad_norms: which must be an integer in \["):
        oxs.latest_grad_norms(state, which=-1)
    assert set(oxs.latest_grad_norms(state, which=1)) == {"l2", "l1"}


# ------------------------------------------------------------------------------------------
# CLI and plot
# ------------------------------------------------------------------------------------------


def test_cli_refine_jsonl_to_npy_with_plot(tmp_path, capsys):
    norms = _hand_made(300)
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": i, "grad_norm_l2": float(a),
                                        "grad_norm_l1": float(b)}) + "\n"
                            for i, (a, b) in enumerate(zip(norms["early_large"],
                                                           norms["late_growth"], strict=True))))
    out, png = tmp_path / "refined.npy", tmp_path / "refined.png"
    code = cli.main(["refine", str(path), "--kind", "adam", "--peak-value", "3e-4",
                     "-o", str(out), "--plot", str(png)])
    assert code == 0
    values = np.load(out)
    np.testing.assert_allclose(values, 3e-4 * ref.refine(norms["late_growth"], "adam", 0.1),
                               rtol=1e-12)
    assert png.stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "read 300 norms (grad_norm_l1)" in printed and "wrote" in printed


def test_cli_refine_csv_output_and_warning(tmp_path, capsys):
    x = np.full(100, 2.0)
    x[10] = np.nan
    np.save(tmp_path / "n.npy", x)
    out = tmp_path / "lr.csv"
    assert cli.main(["refine", str(tmp_path / "n.npy"), "--kind", "sgd", "-o", str(out)]) == 0
    np.testing.assert_allclose(np.loadtxt(out), ref.linear_decay(100), rtol=1e-8)
    assert "warning: refine: dropped 1 non-finite" in capsys.readouterr().err


def test_cli_refine_csv_column_and_resampling(tmp_path):
    norms = _hand_made(120)["two_levels"]
    path = tmp_path / "log.csv"
    path.write_text("step,gnorm,loss\n"
                    + "".join(f"{i},{float(v)!r},1.0\n" for i, v in enumerate(norms)))
    out = tmp_path / "lr.npy"
    assert cli.main(["refine", str(path), "--key", "gnorm", "--kind", "sgd", "--smoothing", "0.2",
                     "--peak-value", "0.5", "--total-steps", "600", "-o", str(out)]) == 0
    values = np.load(out)
    position = np.arange(600) * 119 / 599
    expected = 0.5 * np.interp(position, np.arange(120), ref.refine(norms, "sgd", 0.2))
    assert values.shape == (600,) and values[-1] == 0.0
    np.testing.assert_allclose(values, expected, rtol=2e-6, atol=1e-7)


def _two_norm_log(tmp_path, columns=("grad_norm_l2", "grad_norm_l1")):
    norms = _hand_made(200)
    values = {"grad_norm_l2": norms["early_large"], "grad_norm_l1": norms["late_growth"]}
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": i, **{c: float(values[c][i]) for c in columns}})
                            + "\n" for i in range(200)))
    return path, values


@pytest.mark.parametrize("column, kind", [("grad_norm_l1", "adam"), ("grad_norm_l2", "sgd")])
def test_cli_refine_infers_the_kind_from_a_log_of_one_norm(tmp_path, capsys, column, kind):
    path, values = _two_norm_log(tmp_path, columns=(column,))
    out = tmp_path / "s.npy"
    assert cli.main(["refine", str(path), "-o", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), ref.refine(values[column], kind, 0.1), rtol=1e-12)
    printed = capsys.readouterr().out
    assert f"({column})" in printed and f"refined schedule ({kind}," in printed


def test_cli_refine_a_log_of_both_norms_needs_kind(tmp_path, capsys):
    path, values = _two_norm_log(tmp_path)
    out = tmp_path / "s.npy"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["refine", str(path), "-o", str(out)])
    assert exit_info.value.code == 2 and not out.exists()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("optaxsched refine: error: ")
    assert "holds both grad_norm_l2 and grad_norm_l1, so --kind must be given" in lines[0]
    assert "--kind sgd refines by the l2 norms (SGD-like" in lines[0]
    assert "--kind adam by the l1 norms (Adam-family" in lines[0]
    # With --kind (or a --key that names one of them), the log of both norms is refined.
    for extra, kind, column in ((["--kind", "adam"], "adam", "grad_norm_l1"),
                                (["--kind", "sgd"], "sgd", "grad_norm_l2"),
                                (["--key", "grad_norm_l1"], "adam", "grad_norm_l1")):
        assert cli.main(["refine", str(path), *extra, "-o", str(out)]) == 0
        np.testing.assert_allclose(np.load(out), ref.refine(values[column], kind, 0.1),
                                   rtol=1e-12)


@pytest.mark.parametrize("log, argv, match", [
    # A CSV of one named column was read whatever its name: --kind sgd refined the l1 norms.
    ("grad_norm_l1\n", ["--kind", "sgd"],
     r"--kind sgd refines by the l2 norms \(grad_norm_l2\), but .*norms.csv holds only "
     r"grad_norm_l1; pass --kind adam"),
    ("step,grad_norm_l2\n", ["--kind", "adam"], r"holds only grad_norm_l2; pass --kind sgd"),
    ("step,grad_norm_l2,grad_norm_l1\n", ["--key", "grad_norm_l1", "--kind", "sgd"],
     r"--kind sgd refines by the l2 norms, but --key grad_norm_l1 holds the l1 norms"),
    ("step,gnorm\n", ["--key", "gnorm"], r"--kind is required: the column 'gnorm' \(--key\)"),
    ("gnorm\n", [], r"--kind is required: .*norms.csv does not say which norm it holds"),
])
def test_cli_refine_kind_errors_are_one_line(tmp_path, capsys, log, argv, match):
    path = tmp_path / "norms.csv"
    width = log.count(",") + 1
    path.write_text(log + "".join(",".join([str(i)] + ["1.5"] * (width - 1)) + "\n"
                                  if width > 1 else "1.5\n" for i in range(50)))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["refine", str(path), *argv, "-o", str(tmp_path / "s.npy")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert __import__("re").search(match, lines[0]), lines[0]


@pytest.mark.parametrize("argv_tail, match", [
    (["missing.jsonl", "-o", "x.npy"], "no such file"),
    (["bad.jsonl", "-o", "x.npy"], "not valid JSON"),
    (["short.npy", "--kind", "sgd", "-o", "x.npy"], "too short to smooth"),
    (["short.npy", "-o", "x.png"], "output must be a file ending in .npy, .csv or .txt"),
    (["short.npy", "-o", "x.npy", "--peak-value", "-1"], "--peak-value must be"),
    (["short.npy", "--kind", "sgd", "-o", "x.npy", "--smoothing", "3"], "smoothing must be"),
    (["short.npy", "-o", "x.npy"], "--kind is required: short.npy does not say which norm"),
])
def test_cli_bad_input_exits_with_code_2(tmp_path, monkeypatch, capsys, argv_tail, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.jsonl").write_text("{nope\n")
    np.save(tmp_path / "short.npy", np.ones(5))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["refine", *argv_tail])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "optaxsched refine: error:" in err and "Traceback" not in err
    assert __import__("re").search(match, err), err
    assert not (tmp_path / "x.npy").exists()


def test_plot_refinement_draws_three_curves(tmp_path):
    from optaxsched import plot

    x = _hand_made(500)["early_large"]
    fig = plot.refinement(x, kind="sgd", peak_value=0.1, path=tmp_path / "r.png")
    top, bottom = fig.axes
    assert len(top.lines) == 2 and len(bottom.lines) == 2
    np.testing.assert_allclose(bottom.lines[1].get_ydata(), 0.1 * oxs.refine(x, kind="sgd"))
    np.testing.assert_allclose(top.lines[1].get_ydata(), oxs.smooth_norms(x))
    assert (tmp_path / "r.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="plot.refinement: peak_value must be"):
        plot.refinement(x, kind="sgd", peak_value=0.0)
    with pytest.raises(ValueError, match="plot.refinement: grad_norms holds both"):
        plot.refinement({"l2": x, "l1": x})
    fig = plot.refinement({"l1": x})  # the kind follows from the norms
    assert fig.axes[0].get_ylabel() == "ℓ1 norm"
    np.testing.assert_allclose(fig.axes[1].lines[1].get_ydata(), oxs.refine(x, kind="adam"))


def test_no_warnings_on_clean_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        oxs.refine(_hand_made(200)["spiky"], kind="adam")


def test_recorder_accepts_empty_leaves_and_an_empty_tree():
    """An empty leaf (shape (0,)) or an empty tree failed in the recorder's overflow branch
    (a max over no entries, traced under lax.cond on every step); they count as zeros."""
    tx = oxs.record_grad_norms(3, norms=("l2", "l1", "linf"))
    grads = {"empty": jnp.zeros((0,)), "w": jnp.array([3.0, -4.0]),
             "h": jnp.zeros((0, 2), jnp.float16)}
    state = tx.init(grads)
    updates, state = jax.jit(tx.update)(grads, state)
    assert jax.tree.map(jnp.shape, updates) == jax.tree.map(jnp.shape, grads)
    assert [float(oxs.latest_grad_norms(state)[n]) for n in ("l2", "l1", "linf")] == [5, 7, 4]
    state = tx.init({})
    _, state = jax.jit(tx.update)({}, state)
    assert [float(oxs.latest_grad_norms(state)[n]) for n in ("l2", "l1", "linf")] == [0, 0, 0]


def test_recorder_saturates_finite_float64_norms_beyond_float32():
    """Under x64 a finite float64 entry beyond float32's range (1e39, 1e300) was cast to inf
    before the reduction, so a finite gradient's norm was recorded as inf, the mark of a
    non-finite gradient. It saturates at float32's maximum now; inf still records inf."""
    with jax.enable_x64(True):
        tx = oxs.record_grad_norms(3, norms=("l2", "l1", "linf"))
        grads = {"w": jnp.array([1e39, -1e300, 1.0]), "i": jnp.arange(3)}
        update = jax.jit(tx.update)
        _, state = update(grads, tx.init(grads))
        _, state = update({"w": jnp.array([jnp.inf, 1.0, 1.0]), "i": jnp.arange(3)}, state)
        history = oxs.grad_norm_history(state)
    top = float(np.finfo(np.float32).max)
    for name in ("l2", "l1", "linf"):
        assert history[name][0] == top and np.isinf(history[name][1]), (name, history[name])


@pytest.mark.parametrize("norms", [np.linspace(3.0, 1.0, 40) + 0j, jnp.ones(40, jnp.complex64),
                                   [1.0, 2.0j, 3.0], np.ones(40, bool), [True, False] * 20])
def test_complex_or_boolean_norms_are_refused(norms):
    """Complex norms lost their imaginary part (a NumPy warning at most) and booleans became 0
    and 1; both are type errors naming the argument now, in every function that reads a log."""
    for call in (lambda: oxs.refine(norms, kind="sgd"), lambda: oxs.smooth_norms(norms),
                 lambda: oxs.refined_schedule(norms, 1e-3, kind="sgd")):
        with pytest.raises(TypeError, match=r"grad_norms must be .* \(not complex or boolean\), "
                                            r"got an array of dtype (complex|bool)"):
            call()


def test_recorder_refuses_complex_leaves_and_accepts_integer_ones():
    """A complex leaf was cast to float32, so the recorded norm was that of its real part
    (|3+4j| recorded as 3). Refused at init, naming the leaf; and in update, for updates
    that became complex after init. Integer leaves have a well-defined norm and still pass."""
    tx = oxs.record_grad_norms(3)
    bad = {"w": jnp.ones(2), "z": jnp.array([3 + 4j, 0j], jnp.complex64)}
    with pytest.raises(_checks.ArgumentTypeError,
                       match=r"^record_grad_norms: params must hold real arrays \(floating-point "
                             r"or integer\), got dtype complex64 at \['z'\]; leave complex"):
        tx.init(bad)
    state = tx.init({"w": jnp.ones(2), "z": jnp.ones(2)})
    with pytest.raises(_checks.ArgumentTypeError,
                       match=r"^record_grad_norms: updates must hold real arrays .* at \['z'\]"):
        tx.update(bad, state)
    ints = {"w": jnp.array([3.0, 0.0]), "i": jnp.array([0, 4], jnp.int32)}
    _, state = tx.update(ints, tx.init(ints))
    assert float(oxs.latest_grad_norms(state)["l2"]) == 5.0
