"""Tests for optaxsched.hypergradient against the float64 NumPy loops in tests/reference."""

from __future__ import annotations

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
from tests.reference import hypergradient_np as ref

# A diagonal quadratic f(x) = ½ Σ a_i (x_i - c_i)², gradient a ⊙ (x - c).
A = np.array([0.5, 1.0, 2.0, 0.8, 1.5])
C = np.array([1.0, -2.0, 0.5, 3.0, -1.0])
X0 = np.zeros(5)
STEPS = 60


def _grad_np(x):
    return A * (x - C)


def _run(tx, steps=STEPS, a=A, c=C, x0=X0):
    """Runs ``tx`` on the quadratic with one jitted scan; returns params, lr and h per step."""
    a32, c32 = jnp.asarray(a, jnp.float32), jnp.asarray(c, jnp.float32)
    xs, lrs, hs = _scan(tx, steps)(jnp.asarray(x0, jnp.float32), a32, c32)
    return np.asarray(xs, np.float64), np.asarray(lrs, np.float64), np.asarray(hs, np.float64)


@functools.cache
def _scan(tx, steps):
    """The jitted scan of ``tx`` for ``steps`` steps, the quadratic's a and c its arguments: a
    transform run on several problems (the property test's examples) compiles once."""

    def body(carry, _, a32, c32):
        x, state = carry
        updates, state = tx.update(a32 * (x - c32), state, x)
        x = optax.apply_updates(x, updates)
        return (x, state), (x, state.learning_rate, state.hypergradient)

    @jax.jit
    def run(x, a32, c32):
        _, out = jax.lax.scan(functools.partial(body, a32=a32, c32=c32), (x, tx.init(x)), None,
                              length=steps)
        return out

    return run


def _assert_matches(tx, rtol=2e-4, atol=1e-5, **ref_kwargs):
    xs, lrs, hs = _run(tx)
    rxs, rlrs, rhs = ref.run(_grad_np, X0, STEPS, **ref_kwargs)
    np.testing.assert_allclose(lrs, rlrs, rtol=rtol, atol=atol * rlrs[0])
    np.testing.assert_allclose(xs, rxs, rtol=rtol, atol=atol)
    np.testing.assert_allclose(hs, rhs, rtol=rtol, atol=atol * np.abs(rhs).max())
    return rlrs


def test_sgd_hd_matches_numpy_loop():
    rlrs = _assert_matches(oxs.hypergradient(0.05, 1e-3), lr0=0.05, beta=1e-3)
    assert rlrs.max() > 1.2 * rlrs[0]  # the rate really moved


def test_sgd_momentum_hd_matches_numpy_loop():
    tx = oxs.hypergradient(0.01, 1e-4, base=optax.trace(decay=0.9))
    rlrs = _assert_matches(tx, lr0=0.01, beta=1e-4, base="momentum", momentum=0.9)
    assert not np.allclose(rlrs, rlrs[0], rtol=0.05)


def test_adam_hd_matches_numpy_loop():
    tx = oxs.hypergradient(0.05, 1e-3, base=optax.scale_by_adam())
    rlrs = _assert_matches(tx, lr0=0.05, beta=1e-3, base="adam")
    assert not np.allclose(rlrs, rlrs[0], rtol=0.05)


@pytest.mark.parametrize("base", ["sgd", "adam"])
def test_multiplicative_matches_numpy_loop(base):
    tx = oxs.hypergradient(0.05, 0.05, mode="multiplicative",
                           base=optax.scale_by_adam() if base == "adam" else None)
    rlrs = _assert_matches(tx, lr0=0.05, beta=0.05, base=base, mode="multiplicative")
    assert not np.allclose(rlrs, rlrs[0], rtol=0.05)


def test_clipping_to_bounds_matches_numpy_loop():
    # A large hypergradient rate drives the rate into both bounds.
    tx = oxs.hypergradient(0.1, 0.05, min_lr=0.02, max_lr=0.4)
    rlrs = _assert_matches(tx, lr0=0.1, beta=0.05, min_lr=0.02, max_lr=0.4)
    assert rlrs.max() == 0.4


def test_zero_hyper_lr_is_exactly_the_base_optimizer():
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
    grads = [jax.tree.map(lambda p, k=k: jnp.sin(p * (k + 1)) + 0.1 * k, params)
             for k in range(4)]
    for ours, theirs in [(oxs.hypergradient(1e-2, 0.0), optax.sgd(1e-2)),
                         (oxs.hypergradient(1e-2, 0.0, base=optax.scale_by_adam()),
                          optax.adam(1e-2))]:
        s1, s2 = ours.init(params), theirs.init(params)
        for g in grads:
            u1, s1 = ours.update(g, s1, params)
            u2, s2 = theirs.update(g, s2, params)
            jax.tree.map(np.testing.assert_array_equal, u1, u2)
        assert float(s1.learning_rate) == pytest.approx(1e-2, rel=1e-7)


def test_tiny_increments_accumulate_compensated_summation():
    # Constant gradient g: h = |g|² every step after the first, so the exact rate after n steps
    # is α0 + (n-1)·β|g|². Each increment (1e-12) is far below float32's spacing at 1e-3
    # (1.2e-10); naive float32 addition would leave the rate at exactly α0.
    alpha0, beta, n = 1e-3, 1e-12, 500
    tx = oxs.hypergradient(alpha0, beta)
    g = jnp.ones(4) * 0.5  # |g|² = 1

    @jax.jit
    def run(state):
        def body(state, _):
            _, state = tx.update(g, state)
            return state, None
        return jax.lax.scan(body, state, None, length=n)[0]

    state = run(tx.init(jnp.zeros(4)))
    # The learned offset (and its carried rounding error) holds every increment.
    offset = float(np.float64(state.adaptation) + np.float64(state.adaptation_compensation))
    assert offset == pytest.approx((n - 1) * beta, rel=0.01)
    assert float(state.learning_rate) != np.float32(alpha0)
    expected = float(np.float32(alpha0)) + (n - 1) * beta  # α0 is used in float32
    assert float(state.learning_rate) == pytest.approx(expected, rel=0, abs=6e-11)


def test_non_finite_gradient_leaves_the_rate_unchanged():
    tx = oxs.hypergradient(0.1, 1e-2)
    params = jnp.zeros(3)
    state = tx.init(params)
    _, state = tx.update(jnp.ones(3), state, params)
    _, state = tx.update(jnp.ones(3), state, params)
    lr_before = float(state.learning_rate)
    assert lr_before > 0.1
    updates, state = tx.update(jnp.array([1.0, jnp.nan, 1.0]), state, params)
    assert float(state.learning_rate) == lr_before
    assert math.isnan(float(state.hypergradient))
    assert math.isfinite(float(state.adaptation_compensation))
    assert np.isnan(np.asarray(updates)).any()  # updates are not sanitised (documented)


def test_an_empty_leaf_is_accepted_and_changes_nothing():
    """An empty leaf (shape (0,)) failed in the overflow branch's max over no entries (traced
    under lax.cond on every step); it contributes nothing to the hypergradient."""
    tx = oxs.hypergradient(0.1, 1e-2)
    params = {"w": jnp.zeros(3), "empty": jnp.zeros((0,))}
    reference = oxs.hypergradient(0.1, 1e-2)
    state, ref_state = tx.init(params), reference.init({"w": params["w"]})
    update, ref_update = jax.jit(tx.update), jax.jit(reference.update)
    for g in (jnp.ones(3), jnp.array([1.0, -2.0, 0.5])):
        updates, state = update({"w": g, "empty": jnp.zeros((0,))}, state, params)
        ref_updates, ref_state = ref_update({"w": g}, ref_state, {"w": params["w"]})
        assert updates["empty"].shape == (0,)
        np.testing.assert_allclose(np.asarray(updates["w"]), np.asarray(ref_updates["w"]))
    assert float(state.learning_rate) == pytest.approx(float(ref_state.learning_rate))


def test_state_is_a_plain_pytree_readable_with_tree_get():
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     oxs.hypergradient(3e-3, 1e-4, base=optax.scale_by_adam()))
    params = {"w": jnp.ones((2, 3), jnp.bfloat16), "b": jnp.zeros(3, jnp.float32)}
    state = tx.init(params)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p), donate_argnums=(1,))
    for k in range(3):
        grads = jax.tree.map(lambda p, k=k: jnp.full_like(p, 0.1 * (k + 1)), params)
        updates, state = step(grads, state, params)
    hd = state[1]
    assert isinstance(hd, oxs.HypergradientState)
    assert hd.count.dtype == jnp.int32 and int(hd.count) == 3
    assert hd.learning_rate.dtype == jnp.float32 and hd.learning_rate.shape == ()
    assert float(optax.tree.get(state, "learning_rate")) == float(hd.learning_rate)
    assert float(hd.learning_rate) > 3e-3  # aligned gradients raise the rate
    assert updates["w"].dtype == jnp.bfloat16 and hd.prev_direction["w"].dtype == jnp.bfloat16
    leaves, treedef = jax.tree.flatten(state)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    jax.tree.map(np.testing.assert_array_equal, jax.tree.unflatten(treedef, leaves), state)


def test_extra_args_reach_the_base_transform():
    def scale_by_value():
        def update(updates, state, params=None, *, value, **extra):
            del params, extra
            return jax.tree.map(lambda u: u * value, updates), state
        return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)

    tx = oxs.hypergradient(1.0, 0.0, base=scale_by_value())
    state = tx.init(jnp.zeros(2))
    updates, _ = tx.update(jnp.ones(2), state, value=3.0, unrelated="ignored")
    np.testing.assert_allclose(updates, [-3.0, -3.0])


_HD_PROPERTY_TX = {
    "additive": oxs.hypergradient(0.05, 5e-3, min_lr=0.01, max_lr=0.3),
    "multiplicative": oxs.hypergradient(0.05, 0.2, mode="multiplicative", min_lr=0.01,
                                        max_lr=0.3, base=optax.scale_by_adam()),
}


@settings(max_examples=20)
@given(mode=st.sampled_from(sorted(_HD_PROPERTY_TX)),
       a=st.lists(st.floats(0.1, 3.0), min_size=5, max_size=5),
       c=st.lists(st.floats(-5.0, 5.0), min_size=5, max_size=5))
def test_property_rate_stays_in_bounds_and_follows_sign_of_h(mode, a, c):
    _, lrs, hs = _run(_HD_PROPERTY_TX[mode], steps=30, a=np.array(a), c=np.array(c))
    assert np.all(np.isfinite(lrs))
    assert np.all(lrs >= np.float32(0.01)) and np.all(lrs <= np.float32(0.3))
    previous = np.concatenate([[0.05], lrs[:-1]])
    change = lrs - previous
    inside = (lrs > np.float32(0.01)) & (lrs < np.float32(0.3))
    # Where the rate was not clipped it moves in the direction of the hypergradient.
    moved = inside & (np.abs(change) > 1e-9)
    assert np.all(np.sign(change[moved]) == np.sign(hs[moved]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(learning_rate=-1e-3, hyper_lr=1e-3), "learning_rate must be"),
    (dict(learning_rate=float("nan"), hyper_lr=1e-3), "learning_rate must be"),
    (dict(learning_rate=1e-3, hyper_lr=-1.0), "hyper_lr must be"),
    (dict(learning_rate=1e-3, hyper_lr="big"), "hyper_lr must be"),
    (dict(learning_rate=1e-3, hyper_lr=1.0, mode="multiplicative"),
     r"hyper_lr must be in \[0, 1\)"),
    (dict(learning_rate=0.0, hyper_lr=0.1, mode="multiplicative"), "learning_rate must be"),
    (dict(learning_rate=1e-3, hyper_lr=1e-3, mode="additve"), "mode must be one of"),
    (dict(learning_rate=1e-3, hyper_lr=1e-3, min_lr=-1.0), "min_lr must be"),
    (dict(learning_rate=1e-3, hyper_lr=1e-3, max_lr=0.0), "max_lr must be"),
    (dict(learning_rate=1e-3, hyper_lr=1e-3, min_lr=0.5, max_lr=0.1), "min_lr must be <="),
    (dict(learning_rate=1.0, hyper_lr=1e-3, max_lr=0.1), "learning_rate must be <="),
    (dict(learning_rate=1e-4, hyper_lr=1e-3, min_lr=1e-3), "min_lr must be <="),
    (dict(learning_rate=1e-3, hyper_lr=1e-3, base="adam"), "base must be"),
])
def test_bad_arguments_raise_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        oxs.hypergradient(**kwargs)
    assert str(err.value).startswith("hypergradient: ")


# ------------------------------------------------------------------------------------------------
# Schedules and injected learning rates: the base rate s(t) the adaptation acts on.
# ------------------------------------------------------------------------------------------------


def _run_numpy_scheduled(schedule, beta, mode, steps, min_lr=0.0, max_lr=math.inf):
    """float64 loop of the documented rule: η_t = clip(s(t) + o_t) or clip(s(t)·c_t)."""
    x = np.asarray(X0, np.float64).copy()
    prev = np.zeros_like(x)
    learned = 0.0 if mode == "additive" else 1.0
    lrs = []
    for t in range(steps):
        g = _grad_np(x)
        h = float(g @ prev)
        s = float(schedule(t))
        if mode == "additive":
            learned += beta * h
            lr = min(max(s + learned, min_lr), max_lr)
            learned = lr - s
        else:
            denom = float(np.linalg.norm(g) * np.linalg.norm(prev))
            learned *= 1.0 + beta * (h / denom if denom > 0 else 0.0)
            lr = min(max(s * learned, min_lr), max_lr)
            learned = lr / s if s > 0 else learned
        x = x - lr * g
        prev = g
        lrs.append(lr)
    return np.array(lrs)


@pytest.mark.parametrize("mode, beta", [("additive", 1e-3), ("multiplicative", 0.3)])
def test_schedule_is_the_base_rate_the_adaptation_acts_on(mode, beta):
    schedule = optax.warmup_cosine_decay_schedule(0.0, 0.05, 10, STEPS, end_value=0.005)
    tx = oxs.hypergradient(schedule, beta, mode=mode, max_lr=0.2)
    _, lrs, _ = _run(tx)
    want = _run_numpy_scheduled(schedule, beta, mode, STEPS, max_lr=0.2)
    np.testing.assert_allclose(lrs, want, rtol=2e-4, atol=1e-7)
    # The adaptation really moved the rate off the schedule.
    sched = np.array([float(schedule(t)) for t in range(STEPS)])
    assert np.max(np.abs(lrs - sched)) > 1e-3


@pytest.mark.parametrize("mode", ["additive", "multiplicative"])
def test_constant_schedule_equals_the_number(mode):
    beta = 1e-3 if mode == "additive" else 0.3
    _, with_number, _ = _run(oxs.hypergradient(0.05, beta, mode=mode))
    _, with_schedule, _ = _run(oxs.hypergradient(optax.constant_schedule(0.05), beta,
                                                 mode=mode))
    np.testing.assert_array_equal(with_number, with_schedule)


def test_injected_learning_rate_takes_effect_at_once():
    tx = optax.inject_hyperparams(oxs.hypergradient, static_args=("mode", "base"))(
        learning_rate=0.05, hyper_lr=1e-3)
    plain = oxs.hypergradient(0.05, 1e-3)
    params = jnp.asarray(X0, jnp.float32)
    a32, c32 = jnp.asarray(A, jnp.float32), jnp.asarray(C, jnp.float32)
    state, plain_state = tx.init(params), plain.init(params)
    step = jax.jit(lambda s, x: tx.update(a32 * (x - c32), s, x))
    x = params
    for _ in range(5):
        u, state = step(state, x)
        pu, plain_state = plain.update(a32 * (x - c32), plain_state, x)
        np.testing.assert_allclose(np.asarray(u), np.asarray(pu), rtol=1e-6)
        x = optax.apply_updates(x, u)
    inner = state.inner_state
    learned = float(inner.adaptation)
    assert learned != 0.0
    # Double the injected base rate: the next rate is the new base plus what was learned.
    state.hyperparams["learning_rate"] = jnp.asarray(0.1)
    _, state = step(state, x)
    inner = state.inner_state
    np.testing.assert_allclose(float(inner.learning_rate), 0.1 + float(inner.adaptation),
                               rtol=1e-6)
    assert float(inner.learning_rate) > 0.09


def test_schedule_is_accepted_where_optax_accepts_scalar_or_schedule():
    import inspect

    annotation = inspect.signature(oxs.hypergradient, eval_str=True).parameters[
        "learning_rate"].annotation
    assert annotation is optax.ScalarOrSchedule
