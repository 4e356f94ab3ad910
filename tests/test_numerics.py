"""Numerical policies of every transform (driven by tests/_registry.py) and schedule.

* **dtypes.** With bfloat16 and float32 parameters the updates take the parameters' dtype; every
  parameter-shaped state buffer takes the parameters' dtype unless the docstring says otherwise
  (a ``mu_dtype``/``dtype`` argument, or a field documented as float32); scalar statistics are
  float32 and counters int32; nothing changes type across steps; and the bfloat16 step agrees
  with the float32 step to bfloat16 precision.
* **Counts near the int32 maximum.** Every counter of a state set to 2**31 - 2 and two steps
  taken: counters saturate at 2**31 - 1 (never wrap negative), updates stay finite, and schedules
  are defined there.
* **NaN and Inf gradients.** Each transform's documented policy holds (drop per entry,
  record, keep the learning rate, NaN only in the affected block, or propagate into that leaf
  only), a non-finite entry in one leaf never poisons the state of another leaf, and
  ``optax.apply_if_finite`` around the chain makes a bad step a bit-exact no-op.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxsched as oxs
from tests import _registry as reg

CASES = list(reg.TRANSFORMS.values())
IDS = [c.id for c in CASES]
INT32_MAX = 2**31 - 1


@pytest.fixture(autouse=True)
def _fast_compilation():
    with reg.fast_compilation():
        yield


def leaves_with_paths(tree):
    return [(jax.tree_util.keystr(p), reg.field_name(p), x)
            for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]]


def own_state(case, chain_state):
    """The case's own state inside ``case.chained()``'s state."""
    return chain_state[0] if case.role in ("first", "direction") else chain_state[1]


# ------------------------------------------------------------------------------------------------
# dtypes: bfloat16 and float32 parameters.
# ------------------------------------------------------------------------------------------------

PARAM_SHAPE_SET = set(reg.PARAM_SHAPES.values())


def expected_dtype(case, name, leaf, param_dtype):
    shape = tuple(jnp.shape(leaf))
    if jnp.issubdtype(leaf.dtype, jnp.integer):
        return jnp.int32
    if shape in PARAM_SHAPE_SET:
        if name in case.float32_fields:
            return jnp.float32
        return param_dtype
    return jnp.float32  # scalar statistics, norm buffers, learning rates


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_and_update_dtypes(case, dtype):
    dtype = jnp.dtype(dtype)
    tx = reg.chained_tx(case.id)
    step = reg.chained_step(case.id)
    # Inputs representable in bfloat16, so that both runs start from identical values.
    params = jax.tree.map(lambda x: x.astype(jnp.bfloat16).astype(dtype), reg.make_params())
    state0 = tx.init(params)
    state, p, runs = state0, params, []
    for i in range(2):
        grads = jax.tree.map(lambda x: x.astype(jnp.bfloat16).astype(dtype), reg.make_grads(i))
        p, state, updates = step(p, state, grads)
        runs.append(updates)
        assert jax.tree.map(lambda u: u.dtype, updates) == jax.tree.map(lambda x: x.dtype, params)
        assert jax.tree.map(lambda x: x.dtype, p) == jax.tree.map(lambda x: x.dtype, params)
    assert jax.tree.structure(state) == jax.tree.structure(state0)
    for (path, name, before), (_, _, after) in zip(leaves_with_paths(state0),
                                                   leaves_with_paths(state), strict=True):
        want = expected_dtype(case, name, before, dtype)
        assert before.dtype == want, f"{case.id}: init {path} is {before.dtype}, expected {want}"
        assert jax.typeof(after) == jax.typeof(before), f"{case.id}: {path} changed type"
        assert np.all(np.isfinite(np.asarray(after, np.float64))), f"{case.id}: {path}"
    if dtype == jnp.bfloat16:
        # The same steps in float32 from the same values: the first update agrees to bfloat16
        # precision, and so do the parameters after two steps (comparing the second update would
        # measure bfloat16's rounding of the parameters, which a projection amplifies).
        p32 = jax.tree.map(lambda x: x.astype(jnp.float32), params)
        state32 = tx.init(p32)
        for i in range(2):
            grads = jax.tree.map(lambda x: x.astype(jnp.bfloat16).astype(jnp.float32),
                                 reg.make_grads(i))
            p32, state32, u32 = step(p32, state32, grads)
            if i == 0:
                for name in u32:
                    want = np.asarray(u32[name], np.float64)
                    scale = np.max(np.abs(want)) + 1e-12
                    np.testing.assert_allclose(np.asarray(runs[0][name], np.float64), want,
                                               rtol=3e-2, atol=3e-2 * scale,
                                               err_msg=f"{case.id}: {name}, first update")
        for name in p32:
            want = np.asarray(p32[name], np.float64)
            np.testing.assert_allclose(np.asarray(p[name], np.float64), want, rtol=0,
                                       atol=1e-2 * np.max(np.abs(want)),
                                       err_msg=f"{case.id}: {name}, params after two steps")


DTYPE_ARG_CASES = [c for c in CASES if c.state_dtype_arg]


@pytest.mark.parametrize("case", DTYPE_ARG_CASES, ids=[c.id for c in DTYPE_ARG_CASES])
def test_state_dtype_argument_sets_its_field(case):
    # bfloat16 parameters with the dtype argument set to float32: that field is float32 after
    # init and after update (checked with eval_shape, nothing compiled); every other
    # parameter-shaped buffer keeps bfloat16, and the updates too.
    arg, field = case.state_dtype_arg
    tx = case.build(**{arg: jnp.float32})
    params = reg.make_params(jnp.bfloat16)
    grads = reg.make_grads(0, jnp.bfloat16)
    state = tx.init(params)
    updates, new_state = jax.eval_shape(
        lambda g, s, p: tx.update(g, s, p, **reg.extra_args(case)), grads, state, params)
    assert jax.tree.map(lambda u: u.dtype, updates) == jax.tree.map(lambda p: p.dtype, params)
    for tree in (state, new_state):
        seen = False
        for path, name, leaf in leaves_with_paths(tree):
            if tuple(leaf.shape) not in PARAM_SHAPE_SET:
                continue
            want = jnp.float32 if name == field else jnp.bfloat16
            seen |= name == field
            assert leaf.dtype == want, f"{case.id}: {path} is {leaf.dtype}, expected {want}"
        assert seen, f"{case.id}: no parameter-shaped field {field!r} in the state"


# ------------------------------------------------------------------------------------------------
# Counts near the int32 maximum.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_counters_saturate_near_int32_max(case):
    tx = reg.chained_tx(case.id)
    step = reg.chained_step(case.id)  # the float32 executable the other tests compiled
    # A run that has reached the int32 range: a few ordinary steps (the moments are populated),
    # then every counter moved to 2**31 - 2, then two more steps.
    params = reg.make_params()
    state = tx.init(params)
    for i in range(3):
        params, state, _ = step(params, state, reg.make_grads(i))
    state = reg.set_counters(state, INT32_MAX - 2, case.counter_fields)
    before = reg.counters(state, case.counter_fields)
    assert before and all(v == INT32_MAX - 2 for v in before.values())
    for i in range(2):
        params, state, updates = step(params, state, reg.make_grads(3 + i))
        for leaf in jax.tree.leaves((params, updates, state)):
            assert np.all(np.isfinite(np.asarray(leaf, np.float64))), f"{case.id}: step {i}"
        assert any(np.any(np.asarray(u)) for u in jax.tree.leaves(updates))
    after = reg.counters(state, case.counter_fields)
    assert all(0 <= v <= INT32_MAX for v in after.values()), f"{case.id}: wrapped: {after}"
    own = reg.counters(own_state(case, state))
    first = next(iter(own))  # the transform's own count: it advanced twice, saturating
    assert own[first] == INT32_MAX, f"{case.id}: {own}"


SCHEDULE_CASES = list(reg.SCHEDULES.values())


def test_schedules_are_defined_at_int32_max():
    schedules = {c.id: c.build() for c in SCHEDULE_CASES if not c.stateful}
    counts = np.array([0, 1, 10, 100, 10**6, INT32_MAX - 1, INT32_MAX], np.int32)

    @jax.jit
    def values(counts):
        return {k: jnp.broadcast_to(s(counts), counts.shape) for k, s in schedules.items()}

    for name, v in values(jnp.asarray(counts)).items():
        v = np.asarray(v, np.float64)
        assert np.all(np.isfinite(v)), f"{name}: {v}"
        assert np.all(v >= 0), f"{name}: {v}"
        assert np.all(v[-2:] <= v[:4].max() * (1 + 1e-6)), f"{name}: {v}"
        if name not in ("inverse_sqrt", "reset_warmup"):  # every other one has a horizon
            np.testing.assert_allclose(v[-2:], v[-3], rtol=1e-6, atol=1e-12,
                                       err_msg=f"{name}: not its terminal value")


def test_token_schedule_counts_past_int32_tokens():
    # The stateful token schedule counts exactly beyond 2**31 tokens (two int32 words).
    schedule = reg.SCHEDULES["token_schedule"].build()
    state = schedule.init()
    update = jax.jit(lambda s, n: schedule.update(s, tokens=n))
    for _ in range(3):
        state = update(state, jnp.int32(INT32_MAX))
    assert float(state.tokens) == pytest.approx(3.0 * INT32_MAX, rel=1e-7)
    assert np.isfinite(float(schedule(state)))


def test_inject_hyperparams_schedule_near_int32_max():
    schedule = oxs.wsd(1e-2, total_steps=100, warmup_steps=10, end_value=1e-4)
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=schedule)
    params = reg.make_params()
    state = reg.set_counters(tx.init(params), INT32_MAX - 2)
    step = reg.make_step(tx, {})
    for i in range(2):
        params, state, updates = step(params, state, reg.make_grads(i))
        assert np.isfinite(float(state.hyperparams["learning_rate"]))
        np.testing.assert_allclose(float(state.hyperparams["learning_rate"]), 1e-4, rtol=1e-6)
    assert set(reg.counters(state).values()) == {INT32_MAX}


# ------------------------------------------------------------------------------------------------
# NaN and Inf gradients.
# ------------------------------------------------------------------------------------------------


def _bad(grads, value, index):
    w = np.array(grads["w"])
    w[index] = value
    return {**grads, "w": jnp.asarray(w)}


def _equal(a, b):
    """Bit-for-bit equality of two pytrees (NaN equals NaN)."""
    return (jax.tree.structure(a) == jax.tree.structure(b)
            and all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
                    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)))


def _finite(tree):
    return all(np.all(np.isfinite(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_non_finite_gradient_policy(case):
    tx = case.build()
    guarded = optax.apply_if_finite(reg.chained_tx(case.id), max_consecutive_errors=10)
    extra = reg.extra_args(case)

    # The transform alone: a finite step, two bad ones, a finite one (from finite params: the
    # trainer did not apply the bad updates). One jitted update, called four times.
    step = jax.jit(lambda p, s, g: tx.update(g, s, p, **extra))
    guarded_step = reg.make_step(guarded, extra)
    params = reg.make_params()
    g0, g3 = reg.make_grads(0), reg.make_grads(3)
    bad_a = _bad(reg.make_grads(1), np.nan, (0, 0, 0))
    bad_b = _bad(reg.make_grads(2), np.inf, (1, 2, 3))
    u0, s1 = step(params, tx.init(params), g0)
    p1 = optax.apply_updates(params, u0)
    ua, sa = step(p1, s1, bad_a)
    ub, sb = step(p1, sa, bad_b)
    u3, s3 = step(p1, sb, g3)
    # The chain inside optax.apply_if_finite: the bad steps are no-ops.
    _, gs1, _ = guarded_step(params, guarded.init(params), g0)
    _, gsa, _ = guarded_step(p1, gs1, bad_a)
    _, gsb, _ = guarded_step(p1, gsa, bad_b)
    _, gs3, gu3 = guarded_step(p1, gsb, g3)
    _, ref_s3, ref_u3 = guarded_step(p1, gs1, g3)
    guard = (gs1, gsb, gu3, gs3, ref_u3, ref_s3)

    # Universal: a non-finite entry in leaf "w" never poisons the state of leaf "b" (the leaves
    # shaped like "b"), and apply_if_finite makes the bad steps exact no-ops.
    b_shape = reg.PARAM_SHAPES["b"]
    for path, _, leaf in leaves_with_paths((sa, sb, s3)):
        if tuple(leaf.shape) == b_shape:
            assert _finite(leaf), f"{case.id}: {path} was poisoned by a NaN in another leaf"
    gs1, gsb, gu3, gs3, ref_u3, ref_s3 = guard
    assert _equal(gsb.inner_state, gs1.inner_state), f"{case.id}: apply_if_finite leaked"
    assert int(gsb.notfinite_count) == 2 and int(gsb.total_notfinite) == 2
    assert _equal(gu3, ref_u3) and _equal(gs3.inner_state, ref_s3.inner_state)
    assert _finite(gu3) and _finite(gs3)

    policy = case.nan_policy
    if policy == "drop":
        # A NaN/Inf entry is a spike dropped to zero: the step is the one with a 0 there (the
        # clip counters, when tracked, also count the dropped entry); everything stays finite
        # and the count advances.
        def int_free(tree):
            return [x for x in jax.tree.leaves(tree) if not jnp.issubdtype(x.dtype, jnp.integer)]

        za = jax.tree.map(lambda x: jnp.where(jnp.isfinite(x), x, 0.0), bad_a)
        zb = jax.tree.map(lambda x: jnp.where(jnp.isfinite(x), x, 0.0), bad_b)
        uza, sza = step(p1, s1, za)
        uzb, szb = step(p1, sza, zb)
        # (Close, not bit-equal: a non-finite leaf takes the rescaled-norm route, whose sum is
        # ordered differently; so an entry far below its leaf's largest can differ by a few
        # float32 ulps of that largest entry.)
        for got, want in ((ua, uza), (ub, uzb), (int_free(sa), int_free(sza)),
                          (int_free(sb), int_free(szb))):
            for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
                y = np.asarray(y, np.float64)
                scale = float(np.max(np.abs(y), initial=0.0))
                np.testing.assert_allclose(np.asarray(x, np.float64), y, rtol=1e-5,
                                           atol=max(1e-6 * scale, 1e-30), err_msg=case.id)
        assert _finite((ua, ub, sa, sb, u3, s3)), f"{case.id}: a non-finite value got through"
        assert int(s3.count) == int(s1.count) + 3
    elif policy == "record":
        # Updates untouched; the norms of the bad steps are recorded as non-finite, the next
        # finite step as finite.
        assert _equal(ua, bad_a) and _equal(ub, bad_b) and _equal(u3, g3)
        assert int(s3.count) == 4
        for name in oxs.NORM_NAMES:
            buffer = np.asarray(getattr(s3, f"grad_norm_{name}"))
            assert np.isfinite(buffer[0]) and np.isfinite(buffer[3]), (name, buffer)
            assert np.isnan(buffer[1]) and not np.isfinite(buffer[2]), (name, buffer)
    elif policy == "keep_lr":
        # The adapted learning rate is left unchanged by a non-finite hypergradient.
        assert float(sa.learning_rate) == float(s1.learning_rate)
        assert float(sb.learning_rate) == float(s1.learning_rate)
        assert np.isfinite(float(s3.learning_rate))
        assert not np.isfinite(float(sa.hypergradient)) or not _finite(ua)
    elif policy == "block_nan":
        # A non-finite block's output is NaN on projecting steps, the others are unaffected; the
        # recorded initial norms never change.
        # With a per-unit axis the block is the unit (here the last axis) holding the bad entry.
        every, per_unit = case.kwargs.get("every", 1), case.kwargs.get("axis") is not None
        for count, (u, bad, index) in enumerate(((ua, bad_a, (0, 0, 0)), (ub, bad_b, (1, 2, 3))),
                                                start=1):
            projecting = (count % every) == every - 1
            w = np.asarray(u["w"], np.float64)
            if projecting and per_unit:
                unit = index[-1]
                assert not np.any(np.isfinite(w[..., unit])), f"{case.id}: step {count}"
                assert np.all(np.isfinite(np.delete(w, unit, axis=-1))), f"{case.id}: {count}"
            elif projecting:
                assert not np.any(np.isfinite(w)), f"{case.id}: step {count}"
            elif case.factory == "project_to_init_norm":  # passes through (bit for bit: below)
                np.testing.assert_allclose(w, np.asarray(bad["w"]), rtol=1e-6, atol=1e-6)
            assert _finite(u["b"])
        init_norms = [s.init_norm if hasattr(s, "init_norm") else s[1].init_norm
                      for s in (s1, sa, sb, s3)]
        assert all(_equal(n, init_norms[0]) for n in init_norms) and _finite(init_norms[0])
    elif policy == "propagate":
        # Documented: the non-finite values enter the state of the affected leaf only.
        poisoned = [path for path, _, leaf in leaves_with_paths(sb) if not _finite(leaf)]
        assert poisoned and all("'w'" in path for path in poisoned), (case.id, poisoned)
    else:  # pragma: no cover - the registry checks the policy names
        raise AssertionError(policy)


# ------------------------------------------------------------------------------------------------
# Degenerate but documented-valid configurations.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factory, kwargs", [
    ("clip_spikes", dict(clip_delay=0)),
    ("clip_spikes", dict(clip_delay=1)),
    ("scale_by_spam", dict(clip_delay=0)),
    ("scale_by_spam", dict(clip_delay=1, reset_interval=0)),
], ids=["clip_spikes-delay0", "clip_spikes-delay1", "spam-delay0", "spam-delay1-noreset"])
def test_clip_delay_below_two_is_refused(factory, kwargs):
    # Clipping against the second moment v while v is still exactly zero clips every coordinate
    # to 0, and v never grows: no update, ever. So clip_delay must be at least 2.
    with pytest.raises(ValueError, match=r"clip_delay must be an integer .*2"):
        getattr(oxs, factory)(**kwargs)


@pytest.mark.parametrize("factory, kwargs", [
    ("clip_spikes", dict(clip_delay=2)),
    ("scale_by_spam", dict(clip_delay=2, reset_interval=0)),
], ids=["clip_spikes-delay2", "spam-delay2-noreset"])
def test_spike_clipping_with_the_shortest_clip_delay_still_updates(factory, kwargs):
    tx = getattr(oxs, factory)(**kwargs)
    params = {"w": jnp.zeros(3)}
    step = jax.jit(tx.update)
    state = tx.init(params)
    largest = 0.0
    for i in range(5):
        updates, state = step({"w": jnp.array([1.0, -2.0, 0.5]) * (1 + i)}, state, params)
        largest = max(largest, float(jnp.max(jnp.abs(updates["w"]))))
    assert largest > 0, f"{factory}({kwargs}) never produced a non-zero update"


@pytest.mark.parametrize("kwargs", [dict(every=2), dict(every=3, axis=-1)],
                         ids=["every2", "every3-axis"])
def test_projection_passes_updates_through_bit_for_bit_between_projections(kwargs):
    # Documented (project_to_init_norm): "Leaves the mask does not select pass through unchanged,
    # and so do the selected ones on steps that do not project (u is returned bit for bit)", and
    # a block whose initial norm is zero "is never projected: its updates pass through
    # unchanged".
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(100.0 * rng.normal(size=(3, 4)), jnp.float32),
              "z": jnp.zeros((2, 4), jnp.float32)}
    grads = {k: jnp.asarray(1e-3 * rng.normal(size=v.shape), jnp.float32)
             for k, v in params.items()}
    tx = oxs.project_to_init_norm(**kwargs)
    step = jax.jit(tx.update)
    state = tx.init(params)
    every = kwargs["every"]
    for count in range(every):
        updates, state = step(grads, state, params)
        assert np.array_equal(updates["z"], grads["z"]), f"zero-norm block changed at {count}"
        if count % every != every - 1:
            assert np.array_equal(updates["w"], grads["w"]), (
                f"count {count} does not project, yet the update changed by up to "
                f"{float(jnp.max(jnp.abs(updates['w'] - grads['w']))):.3g}")
