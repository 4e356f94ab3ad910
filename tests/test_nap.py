"""Tests for optaxsched.nap: projection, nap, effective learning rates, Flax masks.

Numerics are compared with the float64 loops in tests/reference/nap_np.py.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxsched as oxs
from tests.reference import nap_np as ref

# A parameter tree with every kind of selection: a block of its own, a joint (kernel, bias)
# block, a 3-D leaf, and leaves that are never touched.
SHAPES = {"a": (3, 4), "b_kernel": (4, 5), "b_bias": (5,), "c": (2, 3, 5), "out": (5, 2),
          "out_bias": (2,)}
LABELS = {"a": True, "b_kernel": "b", "b_bias": "b", "c": True, "out": False, "out_bias": False}


def _params(seed: int, scale: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    return {n: (scale * rng.normal(size=s)).astype(np.float32) for n, s in SHAPES.items()}


def _grads(seed: int, steps: int, scale: float = 1.0) -> list[dict]:
    rng = np.random.default_rng(seed + 1000)
    return [{n: (scale * rng.normal(size=s)).astype(np.float32) for n, s in SHAPES.items()}
            for _ in range(steps)]


def _optimizer(name: str, lr: float) -> optax.GradientTransformation:
    if name == "sgd":
        return optax.sgd(lr)
    if name == "adam":
        return optax.adam(lr)
    if name == "spam":
        return oxs.spam(lr)
    raise AssertionError(name)


OPTIMIZERS = ["sgd", "adam"] + (["spam"] if hasattr(oxs, "spam") else [])


@functools.cache
def _runner(opt_name: str, lr: float, every: int, axis, project: bool):
    """A jitted scan over a stack of gradients (compiled once per configuration and length).

    Returns the final parameters and state, and the parameters after every step (stacked).
    """
    tx = _optimizer(opt_name, lr)
    if project:
        tx = oxs.nap(tx, dict(LABELS), every=every, axis=axis)

    @jax.jit
    def run(params, grads_stack):
        def body(carry, grads):
            p, s = carry
            u, s = tx.update(grads, s, p)
            p = optax.apply_updates(p, u)
            return (p, s), p

        (p, s), history = jax.lax.scan(body, (params, tx.init(params)), grads_stack)
        return p, s, history

    return tx, run


def _stack(grads_seq):
    return {n: jnp.stack([g[n] for g in grads_seq]) for n in SHAPES}


def _norm(x):
    return float(np.linalg.norm(np.asarray(x, np.float64)))


# ------------------------------------------------------------------------------------------
# Projection against the float64 reference
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("every, axis", [(1, None), (3, None), (1, -1), (2, -1)])
def test_matches_numpy_reference(opt_name, every, axis):
    lr = 0.05 if opt_name == "sgd" else 0.02
    params, grads_seq = _params(0), _grads(0, 7)
    labels = dict(LABELS)
    _, run = _runner(opt_name, lr, every, axis, True)
    got, _, _ = run(params, _stack(grads_seq))
    want = ref.nap_run(params, grads_seq, labels, opt_name, lr, every=every, axis=axis)[-1]
    for n in SHAPES:
        np.testing.assert_allclose(np.asarray(got[n]), want[n], rtol=2e-5, atol=2e-6,
                                   err_msg=n)


def test_state_layout_and_init_norms():
    # One target norm per block, blocks in the order of their first leaf (a, b, c): a flat
    # vector, so that optax.tree.map_params does not take it for parameters.
    params = _params(1)
    tx = oxs.project_to_init_norm(dict(LABELS))
    state = tx.init(params)
    assert isinstance(state, oxs.ProjectToInitNormState)
    assert state.count.dtype == jnp.int32 and state.count.shape == ()
    norms = optax.tree.get(state, "init_norm")
    each = ref.init_norms(params, LABELS)
    want = [each["a"], np.hypot(each["b_bias"], each["b_kernel"]), each["c"]]
    assert norms.dtype == jnp.float32 and norms.shape == (3,)
    np.testing.assert_allclose(np.asarray(norms), want, rtol=1e-6)
    per_unit = oxs.project_to_init_norm(dict(LABELS), axis=-1).init(params).init_norm
    each = ref.init_norms(params, LABELS, -1)
    assert per_unit.shape == (4 + 5 + 5,)
    np.testing.assert_allclose(np.asarray(per_unit[:4]), each["a"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(per_unit[4:9]), np.hypot(each["b_bias"],
                                                                   each["b_kernel"]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(per_unit[9:]), each["c"], rtol=1e-6)


def test_joint_block_uses_the_joint_norm():
    # Only the joint norm of (kernel, bias) is restored; each part alone is not.
    params = {"k": jnp.array([[3.0, 0.0]]), "b": jnp.array([0.0, 4.0])}
    tx = oxs.project_to_init_norm({"k": "g", "b": "g"})
    state = tx.init(params)
    updates = {"k": jnp.array([[3.0, 0.0]]), "b": jnp.array([0.0, 0.0])}
    out, _ = tx.update(updates, state, params)
    new = optax.apply_updates(params, out)
    joint = np.sqrt(_norm(new["k"]) ** 2 + _norm(new["b"]) ** 2)
    np.testing.assert_allclose(joint, 5.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(new["k"]), [[6.0 * 5 / np.sqrt(52), 0.0]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(new["b"]), [0.0, 4.0 * 5 / np.sqrt(52)], rtol=1e-6)


# ------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------


STEPS = 10


@settings(max_examples=12)
@given(opt_name=st.sampled_from(OPTIMIZERS), seed=st.integers(0, 2**16),
       scale=st.sampled_from([0.01, 1.0, 30.0]), grad_scale=st.sampled_from([1e-3, 3.0, 1e3]))
def test_selected_norms_stay_at_init_others_untouched(opt_name, seed, scale, grad_scale):
    # After every step t (1..STEPS) of the optimizer, projected blocks are back at their initial
    # norm and unselected leaves are bit for bit what the optimizer alone produces. (every > 1 is
    # covered by test_steps_between_projections_pass_updates_through.)
    params, grads = _params(seed, scale), _stack(_grads(seed, STEPS, scale=grad_scale))
    _, run = _runner(opt_name, 0.1, 1, None, True)
    _, run_plain = _runner(opt_name, 0.1, 1, None, False)
    _, state, history = run(params, grads)
    _, _, plain = run_plain(params, grads)
    assert int(state[1].count) == STEPS
    for t in range(1, STEPS + 1):
        for block in ref.blocks(LABELS):
            now = np.sqrt(sum(_norm(history[n][t - 1]) ** 2 for n in block))
            init = np.sqrt(sum(_norm(params[n]) ** 2 for n in block))
            np.testing.assert_allclose(now, init, rtol=1e-5, err_msg=f"{block} t={t}")
        for n in SHAPES:
            if LABELS[n] is False:
                np.testing.assert_array_equal(np.asarray(history[n][t - 1]),
                                              np.asarray(plain[n][t - 1]))


_EVERY = 3
_PROJECT_EVERY = oxs.project_to_init_norm(dict(LABELS), every=_EVERY)
# Compiled once for every example (a jit made inside the test compiled again for each one).
_PROJECT_EVERY_INIT = jax.jit(_PROJECT_EVERY.init)
_PROJECT_EVERY_UPDATE = jax.jit(_PROJECT_EVERY.update)


@settings(max_examples=8)
@given(seed=st.integers(0, 2**16), steps=st.integers(1, 7))
def test_steps_between_projections_pass_updates_through(seed, steps):
    params, grads_seq = _params(seed), _grads(seed, steps)
    every = _EVERY
    update = _PROJECT_EVERY_UPDATE
    state = _PROJECT_EVERY_INIT(params)
    p = params
    for c, grads in enumerate(grads_seq):
        u = jax.tree.map(lambda g: -0.1 * g, grads)
        out, state = update(u, state, p)
        if c % every != every - 1:
            for n in SHAPES:  # (w + u) - w: u up to rounding, and the same new parameters
                np.testing.assert_allclose(np.asarray(out[n]), np.asarray(u[n]), rtol=0,
                                           atol=1e-6 * float(np.abs(p[n]).max()))
                np.testing.assert_array_equal(np.asarray(optax.apply_updates(p, out)[n]),
                                              np.asarray(p[n] + u[n]))
        else:
            new = optax.apply_updates(p, out)
            np.testing.assert_allclose(_norm(new["a"]), _norm(params["a"]), rtol=1e-5)
        p = optax.apply_updates(p, out)


@functools.partial(jax.jit, static_argnames="kind")
def _elr_mean_max(params, kind):
    """``effective_learning_rate(0.3, params, LABELS, kind)``'s mean and max, compiled once per
    kind and shared by every example: called eagerly, each call compiled the norms' ``lax.cond``
    afresh (its branches are new closures each time), about 1.5 s an example."""
    elr = oxs.effective_learning_rate(0.3, params, dict(LABELS), kind)
    return elr.mean, elr.max


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), c=st.floats(0.05, 20.0), kind=st.sampled_from(["sgd", "adam"]))
def test_effective_lr_scales_with_the_norm(seed, c, kind):
    params = _params(seed)
    scaled = jax.tree.map(lambda x: c * x, params)
    base_mean, base_max = _elr_mean_max(params, kind)
    other_mean, other_max = _elr_mean_max(scaled, kind)
    power = 2 if kind == "sgd" else 1
    np.testing.assert_allclose(float(other_mean), float(base_mean) / c ** power, rtol=1e-5)
    np.testing.assert_allclose(float(other_max), float(base_max) / c ** power, rtol=1e-5)


# ------------------------------------------------------------------------------------------
# jit, compatibility, dtypes, policies
# ------------------------------------------------------------------------------------------


def test_jit_equals_eager():
    params, grads_seq = _params(3), _grads(3, 4)
    tx = oxs.nap(optax.adam(0.05), dict(LABELS), every=2)
    step = lambda p, s, g: tx.update(g, s, p)
    jstep = jax.jit(step)
    s_e = s_j = tx.init(params)
    p_e = p_j = params
    for grads in grads_seq:
        u_e, s_e = step(p_e, s_e, grads)
        u_j, s_j = jstep(p_j, s_j, grads)
        p_e, p_j = optax.apply_updates(p_e, u_e), optax.apply_updates(p_j, u_j)
    for n in SHAPES:
        np.testing.assert_allclose(np.asarray(p_j[n]), np.asarray(p_e[n]), rtol=1e-6, atol=1e-7)


def test_composes_with_inject_hyperparams_multisteps_and_extra_args():
    params, grads_seq = _params(4), _grads(4, 4)
    inner = oxs.nap(optax.inject_hyperparams(optax.adam)(learning_rate=0.05), dict(LABELS))
    tx = optax.MultiSteps(inner, every_k_schedule=2)
    state = tx.init(params)
    update = jax.jit(tx.update)
    p = params
    for grads in grads_seq:
        u, state = update(grads, state, p, value=jnp.float32(1.0))  # extra args are ignored
        p = optax.apply_updates(p, u)
    np.testing.assert_allclose(_norm(p["a"]), _norm(params["a"]), rtol=1e-5)
    assert not np.array_equal(np.asarray(p["a"]), params["a"])


def test_bfloat16_params_keep_their_dtype():
    params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), _params(5))
    tx = oxs.nap(optax.sgd(0.1), dict(LABELS))
    state = tx.init(params)
    assert state[1].init_norm.dtype == jnp.float32
    u, _ = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u))
    new = optax.apply_updates(params, u)
    np.testing.assert_allclose(_norm(new["a"].astype(jnp.float32)),
                               _norm(params["a"].astype(jnp.float32)), rtol=1e-2)


def test_zero_norm_blocks_are_left_alone():
    params = {"zero": jnp.zeros((2, 2)), "w": jnp.ones((2, 2))}
    tx = oxs.project_to_init_norm()
    state = tx.init(params)
    u = {"zero": jnp.full((2, 2), 0.5), "w": -jnp.ones((2, 2))}  # w + u is exactly zero
    out, _ = tx.update(u, state, params)
    np.testing.assert_array_equal(np.asarray(out["zero"]), np.asarray(u["zero"]))
    np.testing.assert_array_equal(np.asarray(out["w"]), np.asarray(u["w"]))
    # Per unit: only the unit with a zero initial norm passes through.
    params = {"k": jnp.array([[1.0, 0.0], [1.0, 0.0]])}
    tx = oxs.project_to_init_norm(axis=-1)
    out, _ = tx.update({"k": jnp.ones((2, 2))}, tx.init(params), params)
    new = np.asarray(optax.apply_updates(params, out)["k"])
    np.testing.assert_allclose(np.linalg.norm(new[:, 0]), np.sqrt(2), rtol=1e-6)
    np.testing.assert_array_equal(new[:, 1], [1.0, 1.0])


def test_empty_leaves_are_projected_like_zero_norm_blocks():
    """A selected empty leaf (shape (0,), or (0, 3) per unit) failed in the overflow branch's
    max over no entries, traced under lax.cond on every step; it is an empty block now."""
    for axis in (None, -1):
        params = {"empty": jnp.zeros((0, 3)), "w": jnp.ones((2, 3))}
        tx = oxs.project_to_init_norm(axis=axis)
        state = tx.init(params)
        out, _ = jax.jit(tx.update)({"empty": jnp.zeros((0, 3)), "w": jnp.ones((2, 3))}, state,
                                    params)
        assert out["empty"].shape == (0, 3)
        new = np.asarray(optax.apply_updates(params, out)["w"], np.float64)
        keep = axis is not None
        np.testing.assert_allclose(np.linalg.norm(new, axis=0, keepdims=keep) if keep
                                   else np.linalg.norm(new), np.sqrt(2.0 if keep else 6.0),
                                   rtol=1e-6)


def test_non_finite_updates_stay_non_finite_in_their_block_only():
    params = {"a": jnp.ones((2, 2)), "b": jnp.ones((2, 2))}
    tx = oxs.project_to_init_norm()
    state = tx.init(params)
    for bad in (jnp.nan, jnp.inf):
        u = {"a": jnp.array([[bad, 0.0], [0.0, 0.0]]), "b": jnp.full((2, 2), 0.1)}
        out, _ = jax.jit(tx.update)(u, state, params)
        assert np.isnan(np.asarray(out["a"])).all()  # the whole block, not just the bad entry
        assert np.isfinite(np.asarray(out["b"])).all()
        np.testing.assert_allclose(_norm(optax.apply_updates(params, out)["b"]), 2.0, rtol=1e-6)


def test_update_without_params_is_an_error():
    tx = oxs.project_to_init_norm()
    state = tx.init({"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="project_to_init_norm: params must be passed"):
        tx.update({"a": jnp.ones(2)}, state)


def test_callable_mask_and_prefix_mask():
    params = {"hidden": {"k": jnp.ones((2, 3)), "k2": jnp.ones((3, 3))}, "out": jnp.ones((3,))}
    by_rank = lambda p: jax.tree.map(lambda x: x.ndim == 2, p)
    prefix = {"hidden": True, "out": False}
    for mask in (by_rank, prefix):
        tx = oxs.project_to_init_norm(mask)
        state = tx.init(params)
        u = jax.tree.map(jnp.ones_like, params)
        out, _ = tx.update(u, state, params)
        new = optax.apply_updates(params, out)
        np.testing.assert_allclose(_norm(new["hidden"]["k"]), np.sqrt(6), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(new["out"]), np.full(3, 2.0))


def test_state_checkpoints_with_orbax(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    params = _params(6)
    tx = oxs.nap(optax.adam(0.01), dict(LABELS))
    state = tx.init(params)
    u, state = tx.update(_grads(6, 1)[0], state, params)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(tmp_path / "state", state)
        ckptr.wait_until_finished()
        restored = ckptr.restore(tmp_path / "state", jax.tree.map(np.zeros_like, state))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(restored) == jax.tree.structure(state)


# ------------------------------------------------------------------------------------------
# Effective learning rates
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("axis", [None, -1])
def test_effective_lr_matches_numpy(kind, axis):
    params = _params(7)
    got = oxs.effective_learning_rate(0.01, params, dict(LABELS), kind, axis=axis)
    want = ref.effective_lr(0.01, params, LABELS, kind, axis)
    values = []
    for n in SHAPES:
        if LABELS[n] is False:
            assert isinstance(got.per_leaf[n], optax.MaskedNode)
            continue
        np.testing.assert_allclose(np.asarray(got.per_leaf[n]), want[n], rtol=1e-5)
    for block in ref.blocks(LABELS):
        values.append(np.ravel(want[block[0]]))
    values = np.concatenate(values)
    np.testing.assert_allclose(float(got.mean), values.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(got.min), values.min(), rtol=1e-5)
    np.testing.assert_allclose(float(got.max), values.max(), rtol=1e-5)


def test_effective_lr_accepts_traced_learning_rates():
    params = _params(8)
    schedule = optax.linear_schedule(1.0, 0.0, 10)
    f = jax.jit(lambda c, p: oxs.effective_learning_rate(schedule(c), p, dict(LABELS)).mean)
    want = ref.effective_lr(0.5, params, LABELS, "sgd")
    np.testing.assert_allclose(float(f(5, params)),
                               np.mean([want[b[0]] for b in ref.blocks(LABELS)]), rtol=1e-5)


def _scale_invariant_toy(dim: int = 6, seed: int = 0):
    """f(w) = g(w/‖w‖) with g(u) = a·u + ½ uᵀSu."""
    rng = np.random.default_rng(seed)
    a = jnp.asarray(rng.normal(size=dim), jnp.float32)
    s = rng.normal(size=(dim, dim))
    s = jnp.asarray(s + s.T, jnp.float32)
    g = lambda u: a @ u + 0.5 * u @ s @ u
    f = lambda w: g(w / jnp.linalg.norm(w))
    return f, g, jnp.asarray(rng.normal(size=dim), jnp.float32)


@pytest.mark.parametrize("radius", [0.5, 2.0, 8.0])
def test_effective_lr_is_the_measured_angular_step_sgd(radius):
    f, g, w = _scale_invariant_toy()
    w = radius * w / jnp.linalg.norm(w)
    u = w / radius
    lr = 1e-3 * radius ** 2  # keeps the angular step small for every radius
    tx = optax.sgd(lr)
    upd, _ = tx.update(jax.grad(f)(w), tx.init(w), w)
    w_new = w + upd
    du = np.asarray(w_new / jnp.linalg.norm(w_new) - u, np.float64)
    tangent = np.asarray(jax.grad(g)(u) - (jax.grad(g)(u) @ u) * u, np.float64)
    measured = np.linalg.norm(du) / np.linalg.norm(tangent)
    elr = float(oxs.effective_learning_rate(lr, {"w": w}, kind="sgd").mean)
    np.testing.assert_allclose(elr, lr / radius ** 2, rtol=1e-5)
    np.testing.assert_allclose(measured, elr, rtol=2e-2)
    np.testing.assert_allclose(du / np.linalg.norm(du), -tangent / np.linalg.norm(tangent),
                               atol=2e-2)


@pytest.mark.parametrize("radius", [0.5, 2.0, 8.0])
def test_effective_lr_is_the_measured_angular_step_adam(radius):
    f, _, w = _scale_invariant_toy(seed=1)
    w = radius * w / jnp.linalg.norm(w)
    u = w / radius
    lr = 1e-3 * radius
    tx = optax.adam(lr, eps=1e-12)
    grad = jax.grad(f)(w)
    upd, _ = tx.update(grad, tx.init(w), w)  # first Adam step: -lr · sign(grad)
    w_new = w + upd
    du = np.asarray(w_new / jnp.linalg.norm(w_new) - u, np.float64)
    d = np.sign(np.asarray(grad, np.float64))
    tangent = d - (d @ np.asarray(u, np.float64)) * np.asarray(u, np.float64)
    measured = np.linalg.norm(du) / np.linalg.norm(tangent)
    elr = float(oxs.effective_learning_rate(lr, {"w": w}, kind="adam").mean)
    np.testing.assert_allclose(elr, lr / radius, rtol=1e-5)
    np.testing.assert_allclose(measured, elr, rtol=2e-2)


def test_nap_keeps_the_effective_lr_constant_and_sgd_alone_lets_it_decay():
    # On a scale-invariant loss the gradient is orthogonal to w, so plain SGD grows ‖w‖ at every
    # step (‖w - ηg‖² = ‖w‖² + η²‖g‖²) and the effective learning rate decays; NaP pins it.
    f, _, w0 = _scale_invariant_toy(seed=2)
    lr = 0.5

    # One compiled measurement for all 41 (eagerly, each call compiled its norm's lax.cond).
    elr = jax.jit(lambda w: oxs.effective_learning_rate(lr, {"w": w}).mean)

    def trace(tx):
        step = jax.jit(lambda w, s: tx.update(jax.grad(f)(w), s, w))
        w, s, out = w0, tx.init(w0), []
        for _ in range(20):
            u, s = step(w, s)
            w = optax.apply_updates(w, u)
            out.append(float(elr(w)))
        return np.array(out)

    start = float(elr(w0))
    np.testing.assert_allclose(trace(oxs.nap(optax.sgd(lr))), start, rtol=1e-5)
    plain = trace(optax.sgd(lr))
    assert np.all(np.diff(plain) <= 0) and plain[-1] < 0.95 * start


# ------------------------------------------------------------------------------------------
# Flax masks
# ------------------------------------------------------------------------------------------


class _MLP(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(4, 8, use_bias=False, rngs=rngs)
        self.n1 = nnx.LayerNorm(8, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)
        self.l2 = nnx.Linear(8, 8, rngs=rngs)
        self.n2 = nnx.RMSNorm(8, rngs=rngs)
        self.block = nnx.Sequential(nnx.Linear(8, 6, use_bias=False, rngs=rngs),
                                    nnx.LayerNorm(6, rngs=rngs), jax.nn.relu)
        self.wrong = nnx.Linear(6, 6, use_bias=False, rngs=rngs)  # next norm has 3 features
        self.small_norm = nnx.LayerNorm(3, rngs=rngs)
        self.out = nnx.Linear(6, 3, rngs=rngs)

    def __call__(self, x):
        h = jax.nn.relu(self.n1(self.l1(x)))
        h = jax.nn.relu(self.n2(self.l2(h)))
        return self.out(self.block(h))


def test_nap_mask_selects_kernels_feeding_norms():
    model = _MLP(nnx.Rngs(0))
    mask = oxs.nap_mask(model)
    assert mask["l1"]["kernel"] is True
    assert mask["l2"]["kernel"] == "l2" and mask["l2"]["bias"] == "l2"  # joint with its bias
    assert mask["block"]["layers"][0]["kernel"] is True
    for path in (("n1", "scale"), ("n1", "bias"), ("n2", "scale"), ("out", "kernel"),
                 ("out", "bias"), ("wrong", "kernel"), ("small_norm", "scale")):
        assert mask[path[0]][path[1]] is False, path
    joint = oxs.nap_mask(model, scale_offset="joint")
    assert joint["n1"]["scale"] == joint["n1"]["bias"] == "n1:scale_offset"
    assert joint["n2"]["scale"] == "n2:scale_offset"
    assert joint["block"]["layers"][1]["scale"] == "block/layers/1:scale_offset"
    assert joint["small_norm"]["scale"] is False and joint["out"]["kernel"] is False
    assert (jax.tree.structure(mask)
            == jax.tree.structure(nnx.as_pure(nnx.state(model, nnx.Param))))


@pytest.mark.parametrize("scale_offset", ["exclude", "joint"])
def test_nap_mask_drives_an_nnx_optimizer(scale_offset):
    model = _MLP(nnx.Rngs(1))
    mask = oxs.nap_mask(model, scale_offset=scale_offset)
    before = nnx.as_pure(nnx.state(model, nnx.Param))
    opt = nnx.Optimizer(model, oxs.nap(optax.adam(0.05), mask), wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 4)), jnp.float32)
    loss = lambda m: jnp.mean(m(x) ** 2) + jnp.mean(m.l2.bias ** 2)

    @nnx.jit
    def step(m, o):
        o.update(m, nnx.grad(loss)(m))

    for _ in range(3):
        step(model, opt)
    after = nnx.as_pure(nnx.state(model, nnx.Param))
    np.testing.assert_allclose(_norm(after["l1"]["kernel"]), _norm(before["l1"]["kernel"]),
                               rtol=1e-5)
    joint = lambda s: np.hypot(_norm(s["l2"]["kernel"]), _norm(s["l2"]["bias"]))
    np.testing.assert_allclose(joint(after), joint(before), rtol=1e-5)
    assert abs(_norm(after["out"]["kernel"]) - _norm(before["out"]["kernel"])) > 1e-4
    n1 = lambda s: np.hypot(_norm(s["n1"]["scale"]), _norm(s["n1"]["bias"]))
    if scale_offset == "joint":
        np.testing.assert_allclose(n1(after), n1(before), rtol=1e-5)
    else:
        assert abs(n1(after) - n1(before)) > 1e-4


def test_nap_mask_on_a_linen_params_dict():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jax.nn.relu(nn.LayerNorm()(nn.Dense(8, use_bias=False)(x)))
            return nn.Dense(3)(x)

    variables = Net().init(jax.random.key(0), jnp.ones((1, 4)))
    mask = oxs.nap_mask(variables["params"])
    assert mask == {"Dense_0": {"kernel": True},
                    "LayerNorm_0": {"scale": False, "bias": False},
                    "Dense_1": {"kernel": False, "bias": False}}
    joint = oxs.nap_mask(variables["params"], scale_offset="joint")
    assert joint["LayerNorm_0"] == {"scale": "LayerNorm_0:scale_offset",
                                    "bias": "LayerNorm_0:scale_offset"}


# ------------------------------------------------------------------------------------------
# Sharding (8 fake CPU devices in a subprocess: the device count is fixed at jax import)
# ------------------------------------------------------------------------------------------

_SHARDED_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import optaxsched as oxs
    assert jax.device_count() == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
    rng = np.random.default_rng(0)
    host = {"k": rng.normal(size=(8, 16)).astype(np.float32),
            "b": rng.normal(size=(16,)).astype(np.float32),
            "out": rng.normal(size=(16, 4)).astype(np.float32)}
    specs = {"k": P("data", "model"), "b": P("model"), "out": P(None, "model")}
    shard = lambda t: {n: jax.device_put(v, NamedSharding(mesh, specs[n])) for n, v in t.items()}
    mask = {"k": "g", "b": "g", "out": False}
    results = {}
    for axis, every in ((None, 1), (-1, 2)):
        tx = oxs.nap(optax.adam(0.1), mask, axis=axis, every=every)
        step = jax.jit(lambda p, s, g: tx.update(g, s, p), donate_argnums=(1,))
        for name, params in (("sharded", shard(host)), ("single", dict(host))):
            state = jax.jit(tx.init)(params)
            for i in range(4):
                grads = {n: jnp.full(v.shape, i + 1.0, jnp.float32) * np.sign(v)
                         for n, v in host.items()}
                if name == "sharded":
                    grads = shard(grads)
                u, state = step(params, state, grads)
                params = optax.apply_updates(params, u)
            results[(axis, name)] = params
            if name == "sharded":
                for n in host:
                    assert u[n].sharding.is_equivalent_to(params[n].sharding, u[n].ndim), n
                    assert params[n].sharding.spec == specs[n], (n, params[n].sharding)
        for n in host:
            np.testing.assert_allclose(np.asarray(results[(axis, "sharded")][n]),
                                       np.asarray(results[(axis, "single")][n]), rtol=1e-5,
                                       atol=1e-6)
        joint = np.sqrt(np.sum(np.asarray(results[(axis, "sharded")]["k"]) ** 2, axis=0)
                        + np.asarray(results[(axis, "sharded")]["b"]) ** 2)
        want = np.sqrt(np.sum(host["k"] ** 2, axis=0) + host["b"] ** 2)
        if axis is None:
            joint, want = np.sqrt(np.sum(joint ** 2)), np.sqrt(np.sum(want ** 2))
        np.testing.assert_allclose(joint, want, rtol=1e-5)
    print("SHARDED-OK")
""")


def test_sharded_params_on_eight_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "SHARDED-OK" in proc.stdout


# ------------------------------------------------------------------------------------------
# Bad inputs (one per validated argument)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("every", [0, -1, 1.5, "2", None, True])
def test_bad_every(every):
    with pytest.raises(ValueError, match=r"project_to_init_norm: every must be an integer in"):
        oxs.project_to_init_norm(every=every)
    with pytest.raises(ValueError, match=r"nap: every must be an integer in \[1, "):
        oxs.nap(optax.sgd(0.1), every=every)


@pytest.mark.parametrize("axis", ["x", (), (0, 1.5), 1.0, True])
def test_bad_axis(axis):
    with pytest.raises(ValueError, match=r"project_to_init_norm: axis must be None, an integer"):
        oxs.project_to_init_norm(axis=axis)
    with pytest.raises(ValueError, match=r"effective_learning_rate: axis must be"):
        oxs.effective_learning_rate(0.1, {"a": jnp.ones((2, 2))}, axis=axis)


def test_axis_invalid_for_a_leaf_or_repeated():
    tx = oxs.project_to_init_norm(axis=2)
    with pytest.raises(ValueError, match=r"axis must be valid for every selected leaf.*\['a'\]"):
        tx.init({"a": jnp.ones((2, 2))})
    with pytest.raises(ValueError, match="axis must be a tuple of distinct axes"):
        oxs.project_to_init_norm(axis=(0, -2)).init({"a": jnp.ones((2, 2))})


def test_joint_block_with_mismatched_units():
    tx = oxs.project_to_init_norm({"k": "g", "b": "g"}, axis=-1)
    with pytest.raises(ValueError, match="same number of units"):
        tx.init({"k": jnp.ones((2, 3)), "b": jnp.ones((4,))})


@pytest.mark.parametrize("mask", [{"a": 1}, {"a": ""}, {"a": 0.5}])
def test_bad_mask_values(mask):
    with pytest.raises(ValueError, match="project_to_init_norm: mask must be a pytree whose"):
        oxs.project_to_init_norm(mask)
    with pytest.raises(ValueError, match="nap: mask must be"):
        oxs.nap(optax.sgd(0.1), mask)
    with pytest.raises(ValueError, match="effective_learning_rate: mask must be"):
        oxs.effective_learning_rate(0.1, {"a": jnp.ones(2)}, mask)


def test_mask_that_does_not_match_or_selects_nothing():
    with pytest.raises(ValueError, match="mask must be a pytree with the structure"):
        oxs.project_to_init_norm({"b": True}).init({"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="mask must be a pytree whose leaves"):
        oxs.project_to_init_norm(lambda p: {"a": 3}).init({"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="mask must select at least one parameter leaf"):
        oxs.project_to_init_norm({"a": False}).init({"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="effective_learning_rate: mask must select"):
        oxs.effective_learning_rate(0.1, {"a": jnp.ones(2)}, {"a": False})


@pytest.mark.parametrize("optimizer", [None, "adam", optax.adam])
def test_bad_optimizer(optimizer):
    with pytest.raises(ValueError, match="nap: optimizer must be an optax GradientTransformation"):
        oxs.nap(optimizer)


@pytest.mark.parametrize("kind", ["SGD", "lion", None])
def test_bad_kind(kind):
    with pytest.raises(ValueError, match="effective_learning_rate: kind must be one of 'sgd'"):
        oxs.effective_learning_rate(0.1, {"a": jnp.ones(2)}, kind=kind)


@pytest.mark.parametrize("lr", [-0.1, float("nan"), float("inf"), "0.1", None, True,
                                jnp.ones(2), np.ones((1,))])
def test_bad_learning_rate(lr):
    with pytest.raises(ValueError, match="effective_learning_rate: learning_rate must be"):
        oxs.effective_learning_rate(lr, {"a": jnp.ones(2)})


@pytest.mark.parametrize("scale_offset", ["both", None, True])
def test_bad_scale_offset(scale_offset):
    with pytest.raises(ValueError, match="nap_mask: scale_offset must be one of 'exclude'"):
        oxs.nap_mask(_MLP(nnx.Rngs(0)), scale_offset=scale_offset)


def test_bad_model_or_params():
    model = _MLP(nnx.Rngs(0))
    with pytest.raises(ValueError, match="nap_mask: model_or_params must be .*sorted by name"):
        oxs.nap_mask(nnx.state(model, nnx.Param))
    with pytest.raises(ValueError, match="nap_mask: model_or_params must be an nnx.Module"):
        oxs.nap_mask([jnp.ones(2)])

    class NoNorm(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(2, 2, rngs=rngs)
            self.b = nnx.Linear(2, 2, rngs=rngs)

    with pytest.raises(ValueError, match="followed by a normalisation layer"):
        oxs.nap_mask(NoNorm(nnx.Rngs(0)))
    with pytest.raises(ValueError, match="followed by a normalisation layer"):
        oxs.nap_mask({"Dense_0": {"kernel": jnp.ones((2, 2))}})


def test_nap_mask_never_pairs_a_residual_projection_with_the_next_blocks_norm():
    # Pre-norm transformer: ln1, attention(qkv, out), ln2, mlp(fc1, fc2). In definition order
    # attention's `out` is followed by ln2, but it feeds the residual stream, not ln2.
    class Attention(nnx.Module):
        def __init__(self, d, rngs):
            self.qkv = nnx.Linear(d, 3 * d, rngs=rngs)
            self.out = nnx.Linear(d, d, rngs=rngs)

    class Mlp(nnx.Module):
        def __init__(self, d, rngs):
            self.fc1 = nnx.Linear(d, 4 * d, rngs=rngs)
            self.fc2 = nnx.Linear(4 * d, d, rngs=rngs)

    class Block(nnx.Module):
        def __init__(self, d, rngs):
            self.ln1 = nnx.LayerNorm(d, rngs=rngs)
            self.attn = Attention(d, rngs)
            self.ln2 = nnx.LayerNorm(d, rngs=rngs)
            self.mlp = Mlp(d, rngs)

    class Gpt(nnx.Module):
        def __init__(self, d, rngs):
            self.blocks = nnx.List([Block(d, rngs), Block(d, rngs)])
            self.head = nnx.Linear(d, 5, rngs=rngs)

    with pytest.raises(ValueError, match="model_or_params must contain a projection layer"):
        oxs.nap_mask(Gpt(8, nnx.Rngs(0)))


# ------------------------------------------------------------------------------------------
# nap_mask's explicit forms: (kernel, norm) pairs and nnx filters
# ------------------------------------------------------------------------------------------


class _Mlp(nnx.Module):
    """``fc2(gelu(norm(fc1 x)))`` (NaP's norm before the nonlinearity) or ``fc2(gelu(fc1 x))``."""

    def __init__(self, d, rngs, *, inner_norm=True, order=("fc1", "norm", "fc2")):
        make = {"fc1": lambda: nnx.Linear(d, 4 * d, rngs=rngs),
                "norm": lambda: nnx.LayerNorm(4 * d, rngs=rngs) if inner_norm else None,
                "fc2": lambda: nnx.Linear(4 * d, d, rngs=rngs)}
        for name in order:
            setattr(self, name, make[name]())

    def __call__(self, x):
        h = self.fc1(x)
        return self.fc2(jax.nn.gelu(self.norm(h) if self.norm is not None else h))


class _PreNormBlock(nnx.Module):
    """A standard pre-norm transformer block: ``x + attn(ln1 x)``, then ``x + mlp(ln2 x)``."""

    def __init__(self, d, rngs, *, qk_norm=True, inner_norm=True,
                 order=("ln1", "attn", "ln2", "mlp"), mlp_order=("fc1", "norm", "fc2")):
        make = {"ln1": lambda: nnx.LayerNorm(d, rngs=rngs),
                "attn": lambda: nnx.MultiHeadAttention(2, d, normalize_qk=qk_norm, decode=False,
                                                       rngs=rngs),
                "ln2": lambda: nnx.LayerNorm(d, rngs=rngs),
                "mlp": lambda: _Mlp(d, rngs, inner_norm=inner_norm, order=mlp_order)}
        for name in order:
            setattr(self, name, make[name]())

    def __call__(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


_BLOCK_PAIRS = [("attn/query", "attn/query_ln"), ("attn/key", "attn/key_ln"),
                ("mlp/fc1", "mlp/norm")]
_BLOCK_FILTER = nnx.All(nnx.Param, nnx.Any(nnx.PathContains("query"), nnx.PathContains("key"),
                                           nnx.PathContains("fc1")))


def _selection(mask) -> dict[str, object]:
    pure = nnx.to_pure_dict(mask) if isinstance(mask, nnx.State) else mask
    return {"/".join(str(getattr(k, "key", k)) for k in path): value
            for path, value in jax.tree_util.tree_flatten_with_path(pure)[0] if value is not False}


def _scaled(model, path, c):
    """A copy of ``model`` with the parameters under ``path`` (a layer) multiplied by ``c``."""
    graphdef, state = nnx.split(model)
    pure = nnx.to_pure_dict(state)
    node = pure
    for key in path.split("/"):
        node = node[key]
    for field in node:
        node[field] = node[field] * c
    nnx.replace_by_pure_dict(state, pure)
    return nnx.merge(graphdef, state)


def test_nap_mask_covers_a_pre_norm_block_with_multi_head_attention():
    model = _PreNormBlock(8, nnx.Rngs(0))
    by_pairs = _selection(oxs.nap_mask(model, pairs=_BLOCK_PAIRS))
    want = {f"{layer}/{field}": layer for layer in ("attn/query", "attn/key", "mlp/fc1")
            for field in ("kernel", "bias")}  # each kernel joint with its bias
    assert by_pairs == want
    assert _selection(oxs.nap_mask(model, select=_BLOCK_FILTER)) == want
    # The automatic rule reads attention's known data flow (query -> query_ln, key -> key_ln),
    # not its definition order (query, key, value, query_ln, key_ln, out).
    assert _selection(oxs.nap_mask(model)) == want
    joint = _selection(oxs.nap_mask(model, pairs=_BLOCK_PAIRS, scale_offset="joint"))
    assert joint["attn/query_ln/scale"] == "attn/query_ln:scale_offset"
    assert joint["mlp/norm/scale"] == joint["mlp/norm/bias"] == "mlp/norm:scale_offset"
    assert "ln1/scale" not in joint and "attn/value/kernel" not in joint

    # The paper's definition, f(c·w) = f(w): scaling a selected block leaves the output
    # unchanged; scaling the kernels the masks leave out (value, out, fc2) changes it.
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 8)), jnp.float32)
    y = model(x)
    for layer in ("attn/query", "attn/key", "mlp/fc1"):
        np.testing.assert_allclose(_scaled(model, layer, 3.0)(x), y, rtol=2e-4, atol=2e-4)
    for layer in ("attn/value", "attn/out", "mlp/fc2"):
        assert float(jnp.max(jnp.abs(_scaled(model, layer, 3.0)(x) - y))) > 1e-2, layer


def test_nap_mask_on_a_pre_norm_block_drives_nap():
    model = _PreNormBlock(8, nnx.Rngs(1))
    mask = oxs.nap_mask(model, pairs=_BLOCK_PAIRS)
    before = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    opt = nnx.Optimizer(model, oxs.nap(optax.adam(0.05), mask), wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 8)), jnp.float32)

    # One compiled step (run eagerly, the attention block's gradient and NaP's update dispatched
    # and compiled some 250 small programs).
    @nnx.jit
    def step(model, opt):
        opt.update(model, nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model))

    for _ in range(2):
        step(model, opt)
    after = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    joint = lambda s, layer, sub: np.hypot(_norm(s[layer][sub]["kernel"]),
                                           _norm(s[layer][sub]["bias"]))
    for layer, sub in (("attn", "query"), ("attn", "key"), ("mlp", "fc1")):
        np.testing.assert_allclose(joint(after, layer, sub), joint(before, layer, sub),
                                   rtol=1e-5)
    for layer, sub in (("attn", "value"), ("attn", "out"), ("mlp", "fc2")):
        assert abs(joint(after, layer, sub) - joint(before, layer, sub)) > 1e-4, sub


def test_nap_mask_without_qk_or_inner_norms_finds_none_and_points_to_the_explicit_forms():
    # LayerNorm -> attention -> residual; LayerNorm -> MLP: no kernel feeds a norm on its own.
    model = _PreNormBlock(8, nnx.Rngs(0), qk_norm=False, inner_norm=False)
    with pytest.raises(ValueError, match=r"found none.*pairs=\[\(kernel, norm\).*select="):
        oxs.nap_mask(model)
    # A filter still says which kernels to project (nothing checks scale invariance then).
    chosen = _selection(oxs.nap_mask(model, select=nnx.All(nnx.PathContains("fc1"),
                                                           lambda path, x: path[-1] == "kernel")))
    assert chosen == {"mlp/fc1/kernel": True}


@pytest.mark.parametrize("order, mlp_order", [
    (("mlp", "ln2", "attn", "ln1"), ("fc1", "norm", "fc2")),
    (("ln1", "ln2", "mlp", "attn"), ("fc1", "norm", "fc2")),
    (("attn", "mlp", "ln1", "ln2"), ("fc2", "norm", "fc1")),
])
def test_nap_mask_does_not_depend_on_attribute_order(order, mlp_order):
    natural = _selection(oxs.nap_mask(_PreNormBlock(8, nnx.Rngs(0)), pairs=_BLOCK_PAIRS))
    model = _PreNormBlock(8, nnx.Rngs(0), order=order, mlp_order=mlp_order)
    assert _selection(oxs.nap_mask(model, pairs=_BLOCK_PAIRS)) == natural
    assert _selection(oxs.nap_mask(model, select=_BLOCK_FILTER)) == natural
    if mlp_order == ("fc1", "norm", "fc2"):
        # The automatic rule pairs siblings only: the order of a module's submodules among
        # themselves does not matter (within one module it does, see nap_mask's docstring).
        assert _selection(oxs.nap_mask(model)) == natural


def test_nap_mask_explicit_forms_on_a_linen_params_dict():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = x + nn.MultiHeadDotProductAttention(2, normalize_qk=True)(nn.LayerNorm()(x))
            h = jax.nn.relu(nn.LayerNorm(name="norm")(nn.Dense(16, name="fc1")(x)))
            return nn.Dense(3, name="head")(h)

    params = Net().init(jax.random.key(0), jnp.ones((1, 3, 8)))["params"]
    attn = "MultiHeadDotProductAttention_0"
    want = {f"{layer}/{field}": layer for layer in (f"{attn}/query", f"{attn}/key", "fc1")
            for field in ("kernel", "bias")}
    assert _selection(oxs.nap_mask(params)) == want
    pairs = [(f"{attn}/query", f"{attn}/query_ln"), ((attn, "key", "kernel"), (attn, "key_ln")),
             ("fc1", "norm")]
    assert _selection(oxs.nap_mask(params, pairs=pairs)) == want
    chosen = nnx.Any(nnx.PathContains("query"), nnx.PathContains("key"), nnx.PathContains("fc1"))
    assert _selection(oxs.nap_mask(params, select=chosen)) == want


@pytest.mark.parametrize("kwargs, message", [
    ({"pairs": "mlp/fc1"}, "pairs must be a non-empty sequence of (kernel, norm) pairs"),
    ({"pairs": []}, "pairs must be a non-empty sequence of (kernel, norm) pairs"),
    ({"pairs": [("mlp/fc1",)]}, "pairs must be a non-empty sequence of (kernel, norm) pairs"),
    ({"pairs": [(3.5, "mlp/norm")]}, "pairs must be a non-empty sequence of (kernel, norm) pairs"),
    ({"pairs": [("mlp/fc3", "mlp/norm")]}, "whose kernel is the path of a projection layer "
                                           "(here: 'attn/query', "),
    ({"pairs": [("mlp/fc1", "mlp/fc2")]}, "whose norm is the path of a normalisation layer "
                                          "(here: 'ln1', "),
    ({"pairs": [("mlp/fc1", "ln2")]}, "whose norm has the kernel's output width ('mlp/fc1' "
                                      "has 32 outputs, 'ln2' normalises 8)"),
    ({"pairs": [("mlp/fc1", "mlp/norm"), ("mlp/fc1/kernel", "mlp/norm")]},
     "pairs that name each kernel once"),
    ({"select": 3.5}, "select must be an nnx filter over the parameters"),
    ({"select": nnx.Linear}, "that selects parameters; it selects no parameter"),
    ({"select": lambda path: True}, "which raised TypeError"),
    ({"select": nnx.PathContains("fc1"), "scale_offset": "joint"},
     "scale_offset must be 'exclude' when only select is given"),
])
def test_nap_mask_bad_pairs_and_filters(kwargs, message):
    model = _PreNormBlock(8, nnx.Rngs(0))
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        oxs.nap_mask(model, **kwargs)
    assert str(info.value).startswith("nap_mask: ")
    name = "select" if "select" in kwargs and "scale_offset" not in kwargs else (
        "scale_offset" if "scale_offset" in kwargs else "pairs")
    assert f": {name} must be" in str(info.value)
    assert ", got " in str(info.value)  # the offending value is named


def test_effective_lr_of_no_arrays_or_of_complex_blocks_is_a_named_error():
    """An empty tree failed in jnp.concatenate ("Need at least one array to concatenate") and a
    complex block in jnp.isposinf; a complex leaf the mask leaves out is fine."""
    with pytest.raises(ValueError, match=r"effective_learning_rate: params must be a pytree "
                                         r"with at least one array, got \{\}"):
        oxs.effective_learning_rate(0.1, {})
    params = {"w": jnp.ones((2, 2)), "z": jnp.ones((2,), jnp.complex64)}
    with pytest.raises(TypeError, match=r"effective_learning_rate: params must hold real "
                                        r"floating-point arrays .* complex64 at \['z'\]"):
        oxs.effective_learning_rate(0.1, params)
    elr = oxs.effective_learning_rate(0.1, params, {"w": True, "z": False})
    assert float(elr.per_leaf["w"]) == pytest.approx(0.1 / 4.0)
