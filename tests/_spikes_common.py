"""Fixtures shared by tests/test_spam.py and tests/test_stable_spam.py (SPAM and Stable-SPAM).

The long runs use one jitted ``lax.scan`` each. Tolerance on parameters and moments: rtol 1e-5,
where an entry's scale is the larger of itself and the largest entry of the same array at the
same step (an absolute floor of 1e-5 × that maximum). Reason for the floor: entries passing
through zero (first moments, parameters) have no meaningful relative error; their float32
error is set by the size of the terms that produced them (the gradients, about as large as the
largest entries), and the float32 parameters, which differ from the float64 ones by a few 1e-7,
feed back into the next gradients. Without the floor a first moment of 1e-3 would have to be
exact to 1e-8.

The ``check_*`` functions are tests run by both modules, each with its own optimizers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxsched as oxs

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

SPIKES = ((3, "w", 1, 1000.0), (50, "w", 5, -1000.0), (51, "b", 2, 1000.0), (203, "w", 7, 1000.0),
          (215, "b", 0, -500.0), (400, "w", 0, 1000.0), (401, "w", 11, 1000.0),
          (470, "b", 4, 1000.0), (605, "w", 3, 300.0), (630, "w", 2, 1000.0))

BAD = ((120, "w", 4, np.nan), (399, "b", 1, np.inf), (405, "w", 0, -np.inf))

def _scan_part(tx, grads):
    """Applies tx to a sequence of 1-D gradients (no params); returns outputs and states."""

    @jax.jit
    def run(gs):
        def body(state, g):
            out, state = tx.update({"x": g}, state)
            return state, (out["x"], state)
        return jax.lax.scan(body, tx.init({"x": gs[0]}), gs)[1]

    return run(jnp.asarray(grads, jnp.float32))

def _finite_tree(tree) -> bool:
    return all(np.all(np.isfinite(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree)
               if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating))

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

def check_inject_hyperparams_schedule_and_all_arguments(factory):
    tx = optax.inject_hyperparams(factory)(learning_rate=optax.linear_schedule(0.1, 0.0, 10))
    params = {n: jnp.ones(s) for n, s in SHAPES.items()}
    state = tx.init(params)
    step = jax.jit(tx.update)
    for _ in range(3):
        updates, state = step(jax.tree.map(lambda p: 0.3 * p, params), state, params)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(updates))
    np.testing.assert_allclose(float(state.hyperparams["learning_rate"]), 0.08, rtol=1e-6)

def check_multisteps_equals_mean_gradient(factory):
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

def check_mixed_shapes_and_dtypes(factory):
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

def check_non_finite_coordinate_is_dropped_as_a_spike(factory):
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

def check_parts_drop_non_finite_coordinates(part):
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

def check_clip_counters_are_opt_in(factory):
    args = (1e-2,) if factory in (oxs.spam, oxs.stable_spam) else ()
    params = {"w": jnp.zeros(4)}
    off, on = factory(*args), factory(*args, track_clips=True)
    s_off, s_on = off.init(params), on.init(params)
    assert int(s_off.clipped) == -1 and int(s_off.clipped_total) == -1  # "not tracked"
    assert int(s_on.clipped) == 0
    # Each update compiled once for the 26 steps (eagerly, every step compiled the transforms'
    # lax.cond branches afresh: most of the suite's time for this check).
    update_off, update_on = jax.jit(off.update), jax.jit(on.update)
    for g in [jnp.ones(4)] * 25 + [jnp.array([1e6, 1.0, np.nan, 1.0])]:
        u_off, s_off = update_off({"w": g}, s_off, params)
        u_on, s_on = update_on({"w": g}, s_on, params)
        np.testing.assert_array_equal(u_off["w"], u_on["w"])
    assert int(s_off.clipped) == -1 and int(s_off.clipped_total) == -1
    assert int(s_on.clipped) >= 1
    with pytest.raises(ValueError, match="track_clips"):
        factory(*args, track_clips=1)

def check_float16_second_moment_saturates_or_lives_in_float32(factory):
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

def check_whole_step_skip_is_one_wrapper_away(factory):
    """optax.apply_if_finite around the fused optimizer: the exact whole-step skip."""
    params = {"w": jnp.ones(3)}
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


PYTREE_PARAMS = {"a": jnp.ones((3, 2)), "b": [jnp.ones(4)]}


def check_state_is_a_plain_pytree_of_arrays(tx, per_leaf_statistics: int = 0):
    """The state is arrays only, survives a host round trip, and holds at most Adam's two moments
    (10 params) plus ``per_leaf_statistics`` vectors with one entry per leaf (2 leaves)."""
    params = PYTREE_PARAMS
    state = tx.init(params)
    leaves, treedef = jax.tree.flatten(state)
    assert all(isinstance(x, jax.Array) for x in leaves)
    full = [x for x in leaves if x.ndim > 0]
    assert sum(x.size for x in full) <= 2 * 10 + per_leaf_statistics * 2
    restored = jax.tree.unflatten(treedef, [np.asarray(x) for x in leaves])
    tx.update(jax.tree.map(jnp.ones_like, params), restored, params)  # a host round trip


def check_whole_tree_spike_keeps_everything_finite(txs, spike):
    """A whole-tree spike before, at and after a reset (interval 4) leaves everything finite."""
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(5)}
    rng = np.random.default_rng(3)
    grads = [{n: jnp.asarray(rng.normal(0, 1, p.shape), jnp.float32) for n, p in params.items()}
             for _ in range(14)]
    for k in (2, 4, 8):  # before, at and after a reset (interval 4)
        grads[k - 1] = jax.tree.map(lambda x: jnp.full_like(x, spike), grads[k - 1])
    for tx in txs:
        for k, (updates, state, p) in enumerate(_run_steps(tx, params, grads), start=1):
            assert _all_finite((updates, state, p)), (k, state)


def check_bad_input_raises_value_error_naming_the_argument(factory, kwargs, name):
    with pytest.raises(ValueError, match=rf"^{factory.__name__}: {name} must be "):
        factory(**kwargs)
