"""Tests for optaxsched.spikes against the float64 NumPy implementations in tests/reference.

The long runs use one jitted ``lax.scan`` each. Tolerance on parameters and moments: rtol 1e-5,
where an entry's scale is the larger of itself and the largest entry of the same array at the
same step (an absolute floor of 1e-5 × that maximum). Reason for the floor: entries passing
through zero (first moments, parameters) have no meaningful relative error; their float32
error is set by the size of the terms that produced them (the gradients, about as large as the
largest entries), and the float32 parameters, which differ from the float64 ones by a few 1e-7,
feed back into the next gradients. Without the floor a first moment of 1e-3 would have to be
exact to 1e-8.
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
from tests.reference import spam_np as ref

SHAPES = {"b": (5,), "w": (3, 4)}  # dict keys in sorted order (jax flattening order)
STEPS = 640
RTOL = 1e-5
FLOOR = 1e-5


def _problem(seed: int = 0, steps: int = STEPS, spikes=(), bad=()):
    """A noisy diagonal quadratic with spikes: g_t = (a ⊙ (p - c) + noise_t) ⊙ factor_t + bad_t.

    Args:
      spikes: (k, leaf, flat index, factor) with k the 1-based step.
      bad: (k, leaf, flat index, value) adding NaN/Inf to one entry at step k.
    """
    rng = np.random.default_rng(seed)
    a = {n: rng.uniform(0.5, 2.0, s) for n, s in SHAPES.items()}
    c = {n: rng.normal(0.0, 1.0, s) for n, s in SHAPES.items()}
    p0 = {n: rng.normal(0.0, 1.0, s) for n, s in SHAPES.items()}
    noise = {n: rng.normal(0.0, 0.5, (steps,) + s) for n, s in SHAPES.items()}
    factor = {n: np.ones((steps,) + s) for n, s in SHAPES.items()}
    extra = {n: np.zeros((steps,) + s) for n, s in SHAPES.items()}
    for k, leaf, idx, f in spikes:
        factor[leaf].reshape(steps, -1)[k - 1, idx] = f
    for k, leaf, idx, value in bad:
        extra[leaf].reshape(steps, -1)[k - 1, idx] = value
    return a, c, p0, noise, factor, extra


def _grad_np(a, c, p, noise, factor, extra, t):
    return {n: (a[n] * (p[n] - c[n]) + noise[n][t]) * factor[n][t] + extra[n][t] for n in a}


def _run_jax(tx, problem, fields=()):
    """Runs tx for all steps in one jitted scan; returns params and state fields per step."""
    a, c, p0, noise, factor, extra = (jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), t)
                                      for t in problem)

    def body(carry, xs):
        p, state = carry
        nz, f, e = xs
        g = jax.tree.map(lambda a_, c_, p_, n_, f_, e_: (a_ * (p_ - c_) + n_) * f_ + e_,
                         a, c, p, nz, f, e)
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
        return (p, state), (p, {name: optax.tree.get(state, name) for name in fields})

    @jax.jit
    def run(p):
        _, out = jax.lax.scan(body, (p, tx.init(p)), (noise, factor, extra))
        return out

    ps, out = run(p0)
    return jax.tree.map(lambda x: np.asarray(x, np.float64), (ps, out))


def _run_ref(opt, problem, lr_fn, count_attr, steps=STEPS):
    """Runs a reference optimizer; returns per-step copies of params, m, v and the counters."""
    a, c, _, noise, factor, extra = problem
    hist = {"p": [], "m": [], "v": [], "clipped": [], "clipped_total": []}
    for t in range(steps):
        g = _grad_np(a, c, opt.params, noise, factor, extra, t)
        opt.step(g, lr_fn(getattr(opt, count_attr)))
        hist["p"].append({n: x.copy() for n, x in opt.params.items()})
        hist["m"].append({n: x.copy() for n, x in opt.m.items()})
        hist["v"].append({n: x.copy() for n, x in opt.v.items()})
        for key in ("clipped", "clipped_total"):
            hist[key].append(getattr(opt, key))
    stack = lambda rows: {n: np.stack([r[n] for r in rows]) for n in SHAPES}  # noqa: E731
    return {k: (stack(v) if k in "pmv" else np.array(v)) for k, v in hist.items()}


def _assert_close(actual, expected, what):
    """rtol 1e-5 with an absolute floor of 1e-5 × (largest entry of that array at that step)."""
    for name in SHAPES:
        x, y = np.asarray(actual[name]), np.asarray(expected[name])
        assert x.shape == y.shape, (what, name)
        scale = np.abs(y).reshape(len(y), -1).max(axis=1)
        scale = scale.reshape((-1,) + (1,) * (y.ndim - 1))
        bad = np.abs(x - y) > RTOL * np.abs(y) + FLOOR * scale
        if bad.any():
            step = int(np.argwhere(bad)[0][0])
            raise AssertionError(
                f"{what}[{name}] differs first at step k={step + 1}: {x[step].ravel()} vs "
                f"{y[step].ravel()}")


def _schedule():
    return optax.cosine_decay_schedule(0.02, 800, alpha=0.1)


def _lr_np(schedule):
    return lambda count: float(np.asarray(schedule(count), np.float64))


# Spikes (k, leaf, index, factor): before the first clip window (k < clip_delay), inside the
# delay after a reset (k mod 200 < 10), on a reset step, and in the active windows.
SPIKES = ((3, "w", 1, 1000.0), (50, "w", 5, -1000.0), (51, "b", 2, 1000.0), (203, "w", 7, 1000.0),
          (215, "b", 0, -500.0), (400, "w", 0, 1000.0), (401, "w", 11, 1000.0),
          (470, "b", 4, 1000.0), (605, "w", 3, 300.0), (630, "w", 2, 1000.0))
BAD = ((120, "w", 4, np.nan), (399, "b", 1, np.inf), (405, "w", 0, -np.inf))
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


# ------------------------------------------------------------------------------------------------
# The parts reproduce the fused optimizers.
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Parts on their own.
# ------------------------------------------------------------------------------------------------


def _scan_part(tx, grads):
    """Applies tx to a sequence of 1-D gradients (no params); returns outputs and states."""

    @jax.jit
    def run(gs):
        def body(state, g):
            out, state = tx.update({"x": g}, state)
            return state, (out["x"], state)
        return jax.lax.scan(body, tx.init({"x": gs[0]}), gs)[1]

    return run(jnp.asarray(grads, jnp.float32))


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
    m = 0.9 * float(state.max_ema["x"]) + 0.1 * float(np.abs(g).max())
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
    from optaxsched.spikes import _post_reset_factor
    return _post_reset_factor(counts + 1, interval, warmup_steps)


def test_reset_warmup_under_grad_is_finite():
    f = oxs.reset_warmup(10, 5)
    assert np.isfinite(jax.grad(lambda c: f(c))(jnp.float32(12.0)))


# ------------------------------------------------------------------------------------------------
# reset_every.
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Compatibility: chain, inject_hyperparams, MultiSteps, dtypes, observability.
# ------------------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("factory", [oxs.stable_spam, oxs.spam])
def test_inject_hyperparams_schedule_and_all_arguments(factory):
    tx = optax.inject_hyperparams(factory)(learning_rate=optax.linear_schedule(0.1, 0.0, 10))
    params = {n: jnp.ones(s) for n, s in SHAPES.items()}
    state = tx.init(params)
    step = jax.jit(tx.update)
    for _ in range(3):
        updates, state = step(jax.tree.map(lambda p: 0.3 * p, params), state, params)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(updates))
    np.testing.assert_allclose(float(state.hyperparams["learning_rate"]), 0.08, rtol=1e-6)


@pytest.mark.parametrize("factory", [oxs.spam, oxs.stable_spam])
def test_multisteps_equals_mean_gradient(factory):
    k = 3
    rng = np.random.default_rng(10)
    micro = [{n: jnp.asarray(rng.normal(0, 1, s), jnp.float32) for n, s in SHAPES.items()}
             for _ in range(k * 8)]
    micro[7]["w"] = micro[7]["w"].at[0, 0].set(5000.0)
    params = {n: jnp.zeros(s) for n, s in SHAPES.items()}
    kwargs = dict(reset_interval=4) if factory is oxs.stable_spam else dict(
        reset_interval=4, clip_delay=2, warmup_steps=2)
    ms = optax.MultiSteps(factory(1e-2, **kwargs), every_k_schedule=k)
    plain = factory(1e-2, **kwargs)
    s_ms, s_plain = ms.init(params), plain.init(params)
    p_ms = p_plain = params
    ms_update, plain_update = jax.jit(ms.update), jax.jit(plain.update)
    for i, g in enumerate(micro):
        u, s_ms = ms_update(g, s_ms, p_ms)
        p_ms = optax.apply_updates(p_ms, u)
        if i % k == k - 1:
            mean = jax.tree.map(lambda *x: sum(x) / k, *micro[i - k + 1:i + 1])
            u, s_plain = plain_update(mean, s_plain, p_plain)
            p_plain = optax.apply_updates(p_plain, u)
    for n in SHAPES:
        np.testing.assert_allclose(p_ms[n], p_plain[n], rtol=1e-5, atol=1e-7)
    assert int(optax.tree.get(s_ms.inner_opt_state, "count")) == 8


@pytest.mark.parametrize("factory", [oxs.spam, oxs.stable_spam])
def test_mixed_shapes_and_dtypes(factory):
    params = {"emb": jnp.ones((4, 3), jnp.bfloat16), "bias": jnp.zeros((3,), jnp.float32),
              "scalar": jnp.ones((), jnp.float32), "empty": jnp.zeros((0,), jnp.float32),
              "nested": [jnp.ones((2, 2, 2), jnp.bfloat16)]}
    tx = factory(1e-2, weight_decay=0.01)
    state = tx.init(params)
    for field in ("mu", "nu"):
        got = optax.tree.get(state, field)
        assert jax.tree.map(lambda x: (x.shape, x.dtype), got) == jax.tree.map(
            lambda x: (x.shape, x.dtype), params)
    step = jax.jit(tx.update, donate_argnums=(1,))
    rng = np.random.default_rng(11)
    for _ in range(30):
        g = jax.tree.map(lambda p: jnp.asarray(rng.normal(0, 1, p.shape), p.dtype), params)
        updates, new_state = step(g, state, params)
        assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype,
                                                                          tx.init(params))
        state = new_state
        params = optax.apply_updates(params, updates)
    assert jax.tree.map(lambda x: x.dtype, updates) == jax.tree.map(lambda x: x.dtype, params)
    assert all(np.isfinite(np.asarray(x, np.float32)).all() for x in jax.tree.leaves(params))


def test_mu_dtype_and_float32_compute_for_bfloat16():
    params = {"w": jnp.ones((8,), jnp.bfloat16)}
    tx = oxs.spam(1e-2, mu_dtype=jnp.float32)
    state = tx.init(params)
    assert state.mu["w"].dtype == jnp.float32 and state.nu["w"].dtype == jnp.bfloat16
    with pytest.raises(ValueError, match=r"spam: mu_dtype must be None or a floating-point"):
        oxs.spam(1e-2, mu_dtype=jnp.int32)


@pytest.mark.parametrize("factory", [oxs.spam, oxs.stable_spam])
def test_non_finite_coordinate_is_dropped_as_a_spike(factory):
    """Policy change (issue 13): no whole-step skip; a NaN/Inf coordinate is a spike dropped to
    zero, the step is applied, nothing non-finite reaches the state, the other coordinates
    are updated exactly as with a 0 in that place."""
    params = {"w": jnp.ones(3)}
    tx = factory(1e-2, track_clips=True)
    state = tx.init(params)
    update = jax.jit(tx.update)
    for _ in range(5):
        _, state = update({"w": jnp.array([0.1, -0.2, 0.3])}, state, params)
    for bad in (np.nan, np.inf, -np.inf):
        updates, new_state = update({"w": jnp.array([0.1, bad, 0.3])}, state, params)
        want_u, want_s = update({"w": jnp.array([0.1, 0.0, 0.3])}, state, params)
        assert _finite_tree((updates, new_state))
        # Close, not bit-equal: a non-finite leaf takes the rescaled-norm route (Stable-SPAM).
        np.testing.assert_allclose(updates["w"], want_u["w"], rtol=1e-6)
        for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(want_s), strict=True):
            if a.dtype != jnp.int32:
                np.testing.assert_allclose(a, b, rtol=1e-6)
        assert int(new_state.count) == int(state.count) + 1
        assert int(new_state.clipped) == int(want_s.clipped) + 1  # counted as a spike
        state = new_state


def test_whole_step_skip_is_one_wrapper_away():
    """optax.apply_if_finite around the fused optimizer: the exact whole-step skip."""
    params = {"w": jnp.ones(3)}
    for factory in (oxs.spam, oxs.stable_spam):
        tx = optax.apply_if_finite(factory(1e-2), max_consecutive_errors=5)
        state = tx.init(params)
        update = jax.jit(tx.update)
        for _ in range(3):
            _, state = update({"w": jnp.array([0.1, -0.2, 0.3])}, state, params)
        updates, new_state = update({"w": jnp.array([0.1, np.nan, 0.3])}, state, params)
        np.testing.assert_array_equal(updates["w"], 0.0)
        assert all(np.array_equal(a, b) for a, b in zip(
            jax.tree.leaves(new_state.inner_state), jax.tree.leaves(state.inner_state),
            strict=True))
        assert int(new_state.notfinite_count) == 1 and int(new_state.inner_state.count) == 3


def _finite_tree(tree) -> bool:
    return all(np.all(np.isfinite(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree)
               if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating))


@pytest.mark.parametrize("part", [oxs.clip_spikes, oxs.adaptive_spike_clip,
                                  oxs.adaptive_grad_norm])
def test_parts_drop_non_finite_coordinates(part):
    """Policy change (issue 13): the parts drop a NaN/Inf coordinate to zero, like the fused
    optimizers, and their state advances as for a 0 there."""
    tx = part()
    state = tx.init({"w": jnp.ones(3)})
    for _ in range(3):
        _, state = tx.update({"w": jnp.array([0.1, -0.2, 0.3])}, state)
    out, new_state = tx.update({"w": jnp.array([0.1, np.nan, 0.3])}, state)
    want, want_state = tx.update({"w": jnp.array([0.1, 0.0, 0.3])}, state)
    np.testing.assert_array_equal(out["w"], want["w"])
    assert _finite_tree((out, new_state))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(new_state),
                                                    jax.tree.leaves(want_state), strict=True))
    # optax.apply_if_finite around a chain skips the step.
    chain = optax.apply_if_finite(optax.chain(part(), optax.scale_by_adam()), 5)
    s = chain.init({"w": jnp.ones(3)})
    out, s = chain.update({"w": jnp.array([0.1, np.nan, 0.3])}, s)
    np.testing.assert_array_equal(out["w"], 0.0)


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


@pytest.mark.parametrize("factory", [oxs.spam, oxs.stable_spam, oxs.clip_spikes,
                                     oxs.adaptive_spike_clip])
def test_clip_counters_are_opt_in(factory):
    args = (1e-2,) if factory in (oxs.spam, oxs.stable_spam) else ()
    params = {"w": jnp.zeros(4)}
    off, on = factory(*args), factory(*args, track_clips=True)
    s_off, s_on = off.init(params), on.init(params)
    assert int(s_off.clipped) == -1 and int(s_off.clipped_total) == -1  # "not tracked"
    assert int(s_on.clipped) == 0
    for g in [jnp.ones(4)] * 25 + [jnp.array([1e6, 1.0, np.nan, 1.0])]:
        u_off, s_off = off.update({"w": g}, s_off, params)
        u_on, s_on = on.update({"w": g}, s_on, params)
        np.testing.assert_array_equal(u_off["w"], u_on["w"])
    assert int(s_off.clipped) == -1 and int(s_off.clipped_total) == -1
    assert int(s_on.clipped) >= 1
    with pytest.raises(ValueError, match="track_clips"):
        factory(*args, track_clips=1)


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


def test_state_is_a_plain_pytree_of_arrays_like_the_params():
    params = {"a": jnp.ones((3, 2)), "b": [jnp.ones(4)]}
    for tx in (oxs.spam(1e-3), oxs.stable_spam(1e-3), oxs.clip_spikes(),
               oxs.adaptive_spike_clip(), oxs.adaptive_grad_norm(),
               oxs.reset_every(optax.adam(1e-3), 10)):
        state = tx.init(params)
        leaves, treedef = jax.tree.flatten(state)
        assert all(isinstance(x, jax.Array) for x in leaves)
        full = [x for x in leaves if x.ndim > 0]
        assert sum(x.size for x in full) <= 2 * 10  # at most Adam's two moments (10 params)
        restored = jax.tree.unflatten(treedef, [np.asarray(x) for x in leaves])
        tx.update(jax.tree.map(jnp.ones_like, params), restored, params)  # a host round trip
    counts = [x for x in jax.tree.leaves(oxs.spam(1e-3).init(params)) if x.dtype == jnp.int32]
    assert len(counts) == 3 and all(x.shape == () for x in counts)  # count, clipped, total


# ------------------------------------------------------------------------------------------------
# Bad inputs: one per validated argument.
# ------------------------------------------------------------------------------------------------

_ADAM = optax.scale_by_adam()
BAD_INPUTS = [
    (oxs.scale_by_spam, {"b1": 1.0}, "b1"), (oxs.scale_by_spam, {"b2": -0.1}, "b2"),
    (oxs.scale_by_spam, {"eps": 0.0}, "eps"), (oxs.scale_by_spam, {"threshold": -1.0}, "threshold"),
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
    (oxs.scale_by_stable_spam, {"b1": 1.5}, "b1"), (oxs.scale_by_stable_spam, {"b2": 1.0}, "b2"),
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
    (oxs.clip_spikes, {"threshold": -1.0}, "threshold"), (oxs.clip_spikes, {"b2": 1.0}, "b2"),
    (oxs.clip_spikes, {"clip_delay": -1}, "clip_delay"),
    (oxs.clip_spikes, {"reset_interval": -1}, "reset_interval"),
    (oxs.clip_spikes, {"reset_interval": 10, "clip_delay": 10}, "clip_delay"),
    (oxs.adaptive_spike_clip, {"theta": 1.0}, "theta"),
    (oxs.adaptive_grad_norm, {"gamma1": 1.0}, "gamma1"),
    (oxs.adaptive_grad_norm, {"gamma2": -0.1}, "gamma2"),
    (oxs.adaptive_grad_norm, {"eps": 0.0}, "eps"),
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
    with pytest.raises(ValueError, match=rf"^{factory.__name__}: {name} must be "):
        factory(**kwargs)


def test_error_message_wording():
    with pytest.raises(ValueError) as err:
        oxs.spam(1e-3, b1=1.0)
    assert str(err.value) == "spam: b1 must be in [0, 1), got 1.0."
    with pytest.raises(ValueError) as err:
        oxs.scale_by_spam(clip_delay=500)
    assert str(err.value) == "scale_by_spam: clip_delay must be < reset_interval (500), got 500."


def test_docstring_examples_run():
    from optaxsched import spikes

    result = doctest.testmod(spikes, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


# ------------------------------------------------------------------------------------------------
# Issue 12: no finite input leaves a state or an update non-finite (float32, bfloat16, float16).
# ------------------------------------------------------------------------------------------------

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]


def _huge(dtype) -> float:
    """A finite gradient entry whose square (and (1 - b2) times it) overflows ``dtype``."""
    return {jnp.float32: 1e20, jnp.bfloat16: 1e20, jnp.float16: 3e4}[dtype]


def _run_steps(tx, params, grads, with_params=True):
    step = jax.jit(lambda g, s, p: tx.update(g, s, p if with_params else None))
    state = tx.init(params)
    history = []
    for g in grads:
        updates, state = step(g, state, params)
        params = optax.apply_updates(params, updates)
        history.append((updates, state, params))
    return history


def _all_finite(tree) -> bool:
    return all(np.all(np.isfinite(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree)
               if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating))


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


@pytest.mark.parametrize("factory", [oxs.spam, oxs.stable_spam])
def test_float16_second_moment_saturates_or_lives_in_float32(factory):
    """16-bit second moments: stored in the params' dtype they saturate at its largest finite
    value (finite, an underestimate); ``nu_dtype=jnp.float32`` keeps them exact."""
    params = {"w": jnp.ones(3, jnp.float16)}
    grads = [{"w": jnp.asarray([3e4, 1.0, -2.0], jnp.float16)}] * 3
    kwargs = dict(reset_interval=0) if factory is oxs.spam else {}
    saturated = _run_steps(factory(1e-3, **kwargs), params, grads)
    exact = _run_steps(factory(1e-3, nu_dtype=jnp.float32, **kwargs), params, grads)
    for updates, state, p in saturated + exact:
        assert _all_finite((updates, state, p))
    assert saturated[-1][1].nu["w"].dtype == jnp.float16
    assert exact[-1][1].nu["w"].dtype == jnp.float32
    if factory is oxs.spam:  # v = (1 - 0.999^3) · 9e8 ≈ 2.7e6: beyond float16
        assert float(saturated[-1][1].nu["w"][0]) == float(jnp.finfo(jnp.float16).max)
        np.testing.assert_allclose(float(exact[-1][1].nu["w"][0]),
                                   (1 - 0.999**3) * 3e4**2, rtol=1e-3)
    with pytest.raises(ValueError, match="nu_dtype"):
        factory(1e-3, nu_dtype="int8")


@pytest.mark.parametrize("spike", [1e20, 3.4e38])
def test_whole_tree_spike_before_and_after_resets_keeps_everything_finite(spike):
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(5)}
    rng = np.random.default_rng(3)
    grads = [{n: jnp.asarray(rng.normal(0, 1, p.shape), jnp.float32) for n, p in params.items()}
             for _ in range(14)]
    for k in (2, 4, 8):  # before, at and after a reset (interval 4)
        grads[k - 1] = jax.tree.map(lambda x: jnp.full_like(x, spike), grads[k - 1])
    for tx in (oxs.spam(1e-3, reset_interval=4, warmup_steps=2, clip_delay=2,
                        track_clips=True),
               oxs.stable_spam(1e-3, reset_interval=4, track_clips=True),
               optax.chain(oxs.adaptive_spike_clip(), oxs.adaptive_grad_norm(),
                           optax.adam(1e-3))):
        for k, (updates, state, p) in enumerate(_run_steps(tx, params, grads), start=1):
            assert _all_finite((updates, state, p)), (k, state)


def test_reset_warmup_accepts_any_int():
    factor = oxs.reset_warmup(500, 150)
    assert float(factor(2**31)) == float(factor(2**31 - 2))
    assert float(factor(-(2**40))) == 1.0


# ------------------------------------------------------------------------------------------------
# Issue 14 item 4: Stable-SPAM's reset step, the default and the authors' order.
# ------------------------------------------------------------------------------------------------


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
