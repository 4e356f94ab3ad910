"""Finite spikes never leave NaP, the norm recorder, averaging or hypergradient non-finite.

Each docstring promise of finiteness in nap.py, refinement.py (record_grad_norms),
averaging.py and hypergradient.py is checked here with the inputs that used to break it (a
finite update of 1e20 whose squared norm overflows float32, a gradient of norm 2e20, entries up
to 3e38) in float32, bfloat16 and float16, and against float64 NumPy where the exact value is
representable. The same transforms run in the registry-wide fuzz of tests/test_overflow_fuzz.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxsched as oxs

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]
F32_MAX = float(np.finfo(np.float32).max)


def _biggest(dtype) -> float:
    """A huge finite magnitude of ``dtype`` (3e38 for float32/bfloat16, 6e4 for float16)."""
    return 3e38 if dtype != jnp.float16 else 6e4


def _finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x, np.float64))))
               for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype,
                                                               jnp.floating))


def _norm64(x) -> float:
    return float(np.linalg.norm(np.asarray(x, np.float64)))


# ------------------------------------------------------------------------------------------------
# NaP.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("size", [1e20, "max"])
@pytest.mark.parametrize("spike", ["one", "all"])
def test_nap_projects_a_huge_finite_update_onto_the_sphere(dtype, size, spike):
    size = _biggest(dtype) if size == "max" else min(float(size), _biggest(dtype))
    params = {"w": jnp.linspace(-1.0, 1.0, 64, dtype=jnp.float32).reshape(8, 8).astype(dtype),
              "out": jnp.ones(3, dtype)}
    tx = oxs.nap(optax.sgd(1.0), {"w": True, "out": False})
    state = tx.init(params)
    g = jnp.zeros((8, 8), dtype).at[2, 3].set(-size) if spike == "one" else jnp.full(
        (8, 8), -size, dtype)
    step = jax.jit(tx.update)
    updates, state = step({"w": g, "out": jnp.zeros(3, dtype)}, state, params)
    new = optax.apply_updates(params, updates)
    assert _finite(updates) and _finite(new) and _finite(state)
    rtol = 1e-5 if dtype == jnp.float32 else 2e-2
    np.testing.assert_allclose(_norm64(new["w"]), _norm64(params["w"]), rtol=rtol)
    # Direction: the spike dominates, so the new weights point (almost) along it.
    direction = np.asarray(new["w"], np.float64) / _norm64(new["w"])
    want = -np.asarray(g, np.float64) / _norm64(g)
    assert float(np.sum(direction * want)) > 0.99
    # Ten ordinary steps later everything is still finite and on the sphere.
    for k in range(10):
        updates, state = step({"w": jnp.full((8, 8), 0.01 * (k + 1), dtype),
                               "out": jnp.zeros(3, dtype)}, state, new)
        new = optax.apply_updates(new, updates)
    assert _finite(new) and _finite(state)
    np.testing.assert_allclose(_norm64(new["w"]), _norm64(params["w"]), rtol=rtol)


def test_projection_survives_w_plus_u_overflowing_and_joint_and_per_unit_blocks():
    # w and u both near float32's maximum: w + u itself is inf in float32 (the initial norms,
    # 1e38·sqrt(6), are beyond the range of Σw²).
    params = {"k": jnp.full((2, 3), 1e38), "b": jnp.full((3,), 1.0)}
    updates = {"k": jnp.full((2, 3), 3e38), "b": jnp.full((3,), 3e38)}
    for mask, axis in (({"k": "g", "b": "g"}, None), ({"k": True, "b": False}, -1),
                       ({"k": True, "b": True}, None)):
        tx = oxs.project_to_init_norm(mask, axis=axis)
        state = tx.init(params)
        assert _finite(state)  # the initial norm (2e38·sqrt(6)) is beyond Σw²'s float32 range
        out, state = jax.jit(tx.update)(updates, state, params)
        new = optax.apply_updates(params, out)
        assert _finite(out) and _finite(new), (mask, axis)


def test_projection_rescaled_path_matches_numpy():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 6)).astype(np.float32)
    u = (rng.normal(size=(4, 6)) * 1e25).astype(np.float32)
    tx = oxs.project_to_init_norm(axis=0)
    state = tx.init(jnp.asarray(w))
    out, _ = jax.jit(tx.update)(jnp.asarray(u), state, jnp.asarray(w))
    v = w.astype(np.float64) + u.astype(np.float64)
    want = v * (np.linalg.norm(w.astype(np.float64), axis=1, keepdims=True)
                / np.linalg.norm(v, axis=1, keepdims=True))
    got = np.asarray(w, np.float64) + np.asarray(out, np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_non_finite_update_still_makes_only_its_block_nan():
    params = {"a": jnp.ones((2, 2)), "b": jnp.ones((2, 2))}
    tx = oxs.project_to_init_norm()
    out, state = tx.update({"a": jnp.array([[jnp.inf, 0.0], [0.0, 0.0]]), "b": jnp.ones((2, 2))},
                           tx.init(params), params)
    assert np.all(np.isnan(np.asarray(out["a"]))) and _finite(out["b"]) and _finite(state)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_effective_learning_rate_is_finite_for_huge_weights(kind):
    params = {"w": jnp.full((4, 4), 1e20), "v": jnp.full((4,), 3e38, jnp.bfloat16)}
    elr = oxs.effective_learning_rate(1e30, params, kind=kind)
    assert _finite(elr)
    norm_w = 4e20
    want = 1e30 / norm_w if kind == "adam" else 1e30 / norm_w / norm_w
    np.testing.assert_allclose(float(elr.per_leaf["w"]), np.float32(want), rtol=1e-5)
    # A zero learning rate is 0 even for a zero block (not 0/0).
    zero = oxs.effective_learning_rate(0.0, {"w": jnp.zeros(3)}, kind=kind)
    assert float(zero.max) == 0.0


@pytest.mark.parametrize("bad", [np.array(-1.0), np.array(np.inf), jnp.asarray(1 + 1j),
                                 np.array([0.1])])
def test_effective_learning_rate_refuses_bad_arrays(bad):
    with pytest.raises(ValueError, match="effective_learning_rate: learning_rate"):
        oxs.effective_learning_rate(bad, {"w": jnp.ones(3)})


# ------------------------------------------------------------------------------------------------
# The gradient-norm recorder.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norms", [("l2",), ("l1",), ("l2", "l1"), ("l2", "l1", "linf")])
def test_recorder_norm_of_2e20_is_exact(norms):
    tx = oxs.record_grad_norms(4, norms)
    g = {"a": jnp.array([2e20, 0.0]), "b": jnp.zeros((3, 3)).at[1, 1].set(-1e20)}
    _, state = jax.jit(tx.update)(g, tx.init(g))
    got = oxs.latest_grad_norms(state)
    want = {"l2": np.hypot(2e20, 1e20), "l1": 3e20, "linf": 2e20}
    for name in norms:
        np.testing.assert_allclose(float(got[name]), want[name], rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
def test_recorder_saturates_norms_beyond_float32_and_keeps_inf_for_inf(dtype):
    tx = oxs.record_grad_norms(4, ("l2", "l1", "linf"))
    big = jnp.full((64,), _biggest(dtype), dtype)
    state = tx.init(big)
    _, state = jax.jit(tx.update)(big, state)
    got = oxs.latest_grad_norms(state)
    assert _finite(got) and _finite(state)
    if dtype != jnp.float16:
        assert float(got["l2"]) == F32_MAX and float(got["l1"]) == F32_MAX
    else:  # 6e4·8 and 6e4·64 are representable: exact
        np.testing.assert_allclose(float(got["l2"]), 6e4 * 8, rtol=1e-3)
    _, state = jax.jit(tx.update)(big.at[0].set(jnp.inf), state)
    history = oxs.grad_norm_history(state)
    assert np.isinf(history["l2"][1]) and np.isinf(history["l1"][1])


# ------------------------------------------------------------------------------------------------
# Averaging.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("kind", ["ema", "tail"])
def test_average_of_huge_iterates_stays_finite(dtype, kind):
    top = _biggest(dtype)
    tx = oxs.average_params(kind, **({"decay": 0.5} if kind == "ema" else {}))
    params = jnp.full((4,), -top, dtype)
    state = tx.init(params)
    step = jax.jit(tx.update)
    # Iterates alternate between -top and +top: p + u - a would reach 3·top in the old form.
    for k in range(12):
        target = top if k % 2 == 0 else -top
        updates = (jnp.full((4,), target, jnp.float32) / 2 - params.astype(jnp.float32) / 2
                   ).astype(dtype)
        updates, state = step(updates, state, params)
        params = optax.apply_updates(params, updates)
        assert _finite(params) and _finite(state), k


@pytest.mark.parametrize("kind", ["ema", "tail"])
def test_first_averaged_iterate_is_exact(kind):
    # Weight 1 for the first iterate: the average is params + updates bit for bit.
    tx = oxs.average_params(kind, **({"decay": 0.9} if kind == "ema" else {}))
    params = jnp.array([1e8, 1.0, -3.0])
    state = tx.init(params)
    updates = jnp.array([-99999992.0, 0.1, 1e-7])
    _, state = tx.update(updates, state, params)
    np.testing.assert_array_equal(np.asarray(oxs.averaged_params(state)),
                                  np.asarray(params + updates))


# ------------------------------------------------------------------------------------------------
# Hypergradient.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["additive", "multiplicative"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
def test_hypergradient_state_stays_finite_after_huge_gradients(mode, dtype):
    top = _biggest(dtype)
    tx = oxs.hypergradient(0.01, 1e-3 if mode == "additive" else 0.5, mode=mode, max_lr=1.0)
    params = jnp.zeros((5,), dtype)
    state = tx.init(params)
    step = jax.jit(tx.update)
    spikes = [jnp.full((5,), top, dtype), jnp.full((5,), top, dtype),
              jnp.array([top, -top, top, -top, top], dtype), jnp.full((5,), min(1e20, top), dtype)]
    for g in spikes + [jnp.full((5,), 0.1, dtype)] * 10:
        updates, state = step(g, state, params)
        assert _finite(state) and _finite(updates)
    assert 0.0 <= float(state.learning_rate) <= 1.0


def test_hypergradient_rescaled_dot_product_is_exact():
    # g·u: the products overflow (inf - inf = nan in float32) but the true value is 0, then 1e30.
    tx = oxs.hypergradient(0.01, 0.0)
    params = jnp.zeros(2)
    state = tx.init(params)
    _, state = tx.update(jnp.array([1e20, 1e20]), state, params)
    _, state = tx.update(jnp.array([1e20, -1e20]), state, params)
    assert float(state.hypergradient) == 0.0
    _, state = tx.update(jnp.array([1e10, 0.0]), state, params)
    np.testing.assert_allclose(float(state.hypergradient), 1e30, rtol=1e-6)
    # True value beyond float32: saturated in the state, and the rate is left unchanged.
    tx = oxs.hypergradient(0.01, 1.0)
    state = tx.init(params)
    _, state = tx.update(jnp.array([1e20, 1e20]), state, params)
    _, state = tx.update(jnp.array([1e20, 1e20]), state, params)
    assert float(state.hypergradient) == F32_MAX
    assert float(state.learning_rate) == np.float32(0.01)


def test_multiplicative_cosine_is_exact_for_huge_gradients():
    tx = oxs.hypergradient(0.1, 0.5, mode="multiplicative")
    params = jnp.zeros(2)
    state = tx.init(params)
    _, state = tx.update(jnp.array([3e30, 0.0]), state, params)
    _, state = tx.update(jnp.array([3e30, 3e30]), state, params)  # cos = 1/sqrt(2)
    np.testing.assert_allclose(float(state.learning_rate), 0.1 * (1 + 0.5 / np.sqrt(2)),
                               rtol=1e-6)


@pytest.mark.parametrize("name, value", [("learning_rate", 1e39), ("hyper_lr", 1e39),
                                         ("max_lr", 1e39), ("min_lr", 1e39)])
def test_hypergradient_refuses_values_beyond_float32(name, value):
    kwargs = dict(learning_rate=1e-3, hyper_lr=1e-3)
    kwargs[name] = value
    with pytest.raises(ValueError, match=f"hypergradient: {name} must be"):
        oxs.hypergradient(**kwargs)
