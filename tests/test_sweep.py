"""Tests of optaxsched.sweep: vmapped hyperparameter sweeps and the LR sensitivity."""

import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given

import optaxsched as oxs
from tests.reference import sweep_np

# ------------------------------------------------------------------------------------------------
# lr_sensitivity
# ------------------------------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False)
loss_or_divergence = st.one_of(finite, st.sampled_from([np.nan, np.inf, -np.inf]))


def test_lr_sensitivity_known_value():
    # capped: [3, 2, 4 (nan -> L0), 2.5] -> mean 2.875, min 2.
    assert oxs.lr_sensitivity([3.0, 2.0, np.nan, 2.5], 4.0) == pytest.approx(0.875)
    # a loss above L0 is capped: [4, 1] -> mean 2.5 - 1.
    assert oxs.lr_sensitivity(np.array([9.0, 1.0]), np.float32(4.0)) == pytest.approx(1.5)


@given(st.lists(loss_or_divergence, min_size=1, max_size=12), finite)
def test_lr_sensitivity_matches_numpy_reference(losses, initial):
    expected = sweep_np.lr_sensitivity(losses, initial)
    got = oxs.lr_sensitivity(np.asarray(losses, np.float64), initial)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-9)


@given(st.lists(loss_or_divergence, min_size=1, max_size=12), finite, st.randoms())
def test_lr_sensitivity_properties(losses, initial, rng):
    value = oxs.lr_sensitivity(losses, initial)
    capped = [initial if not np.isfinite(x) else min(x, initial) for x in losses]
    # Non-negative, at most the spread of the capped losses, invariant to the grid's order.
    assert value >= -1e-9
    assert value <= max(capped) - min(capped) + 1e-9
    shuffled = list(losses)
    rng.shuffle(shuffled)
    assert oxs.lr_sensitivity(shuffled, initial) == pytest.approx(value, abs=1e-9)
    # Divergence is never better than the initial loss: replacing a loss by NaN is replacing it
    # by L0.
    assert oxs.lr_sensitivity(losses + [np.nan], initial) == pytest.approx(
        oxs.lr_sensitivity(losses + [initial], initial), abs=1e-9)


@given(finite, st.integers(1, 10), finite)
def test_lr_sensitivity_zero_when_every_rate_reaches_the_same_loss(loss, k, initial):
    assert oxs.lr_sensitivity([loss] * k, initial) == pytest.approx(0.0, abs=1e-9)
    assert oxs.lr_sensitivity([np.nan] * k, initial) == 0.0


def test_lr_sensitivity_ranks_a_narrow_basin_above_a_wide_one():
    wide = [2.1, 2.0, 2.0, 2.05, 2.2]
    narrow = [3.9, 3.0, 2.0, np.nan, np.inf]
    assert oxs.lr_sensitivity(narrow, 4.0) > oxs.lr_sensitivity(wide, 4.0)


@pytest.mark.parametrize("losses, initial, argument", [
    ([], 1.0, "final_losses"),
    (np.zeros((2, 3)), 1.0, "final_losses"),
    (np.float32(1.0), 1.0, "final_losses"),
    ([1.0 + 1j, 2.0], 3.0, "final_losses"),
    ([True, False], 3.0, "final_losses"),
    (["a", "b"], 3.0, "final_losses"),
    ([1.0, 2.0], np.nan, "initial_loss"),
    ([1.0, 2.0], np.inf, "initial_loss"),
    ([1.0, 2.0], 1e39 * 1e300, "initial_loss"),
    ([1.0, 2.0], [1.0, 2.0], "initial_loss"),
    ([1.0, 2.0], 2.0 + 0j, "initial_loss"),
    ([1.0, 2.0], "3", "initial_loss"),
    ([1.0, 2.0], None, "initial_loss"),
])
def test_lr_sensitivity_bad_inputs_are_named_errors(losses, initial, argument):
    with pytest.raises(ValueError, match=f"lr_sensitivity: {argument} must be"):
        oxs.lr_sensitivity(losses, initial)


def test_lr_sensitivity_accepts_0d_initial_loss_and_float16():
    with np.errstate(over="ignore"):  # float16 overflow: a diverged run's inf
        losses = np.array([1.0, np.float16(65504.0) * np.float16(2), 2.0], np.float16)
    assert np.isinf(losses[1])
    assert oxs.lr_sensitivity(losses, jnp.asarray(3.0)) == pytest.approx((1 + 3 + 2) / 3 - 1)


# ------------------------------------------------------------------------------------------------
# vmap_hyperparams / lr_sweep: K runs in one program equal K separate runs.
# ------------------------------------------------------------------------------------------------

LRS = np.array([1e-3, 1e-2, 1e-1], np.float32)


def _params():
    rng = np.random.default_rng(0)
    return {"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=(4,)), jnp.float32)}


def _loss(p, x):
    return jnp.sum((jnp.tanh(x @ p["w"] + p["b"]) - 0.5) ** 2)


def _separate_runs(make_tx, lrs, steps=5):
    """Each learning rate trained on its own, one run after another."""
    finals = []
    for lr in lrs:
        tx = make_tx(float(lr))
        params = _params()
        state = tx.init(params)

        # One compiled step per run (eagerly, Stable-SPAM's steps compiled its lax.cond
        # branches afresh at every step: about 90 compilations for three runs).
        @jax.jit
        def step(params, state, x, tx=tx):
            grads = jax.grad(_loss)(params, x)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        for t in range(steps):
            params, state = step(params, state, jnp.full((2, 3), 0.1 * (t + 1)))
        finals.append(params)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *finals)


def _swept_run(tx, k, steps=5):
    params = oxs.stack_params(_params(), k)
    state = tx.init(params)

    @jax.jit
    def step(params, state, x):
        grads = jax.vmap(jax.grad(_loss), in_axes=(0, None))(params, x)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for t in range(steps):
        params, state = step(params, state, jnp.full((2, 3), 0.1 * (t + 1)))
    return params, state


@pytest.mark.parametrize("name, factory", [
    ("adamw", functools.partial(optax.adamw, weight_decay=0.1)),
    ("sgd", functools.partial(optax.sgd, momentum=0.9)),
    ("stable_spam", functools.partial(oxs.stable_spam, weight_decay=0.1)),
])
def test_vmap_hyperparams_equals_separate_runs(name, factory):
    tx = oxs.vmap_hyperparams(factory, learning_rate=LRS)
    swept, state = _swept_run(tx, len(LRS))
    expected = _separate_runs(lambda lr: factory(learning_rate=lr), LRS)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-5),
                 swept, expected)
    # The swept values are state, one per run.
    np.testing.assert_allclose(state.hyperparams["learning_rate"], LRS)


def test_vmap_hyperparams_sweeps_two_values_together():
    b1 = np.array([0.0, 0.5, 0.9])
    tx = oxs.vmap_hyperparams(optax.adam, learning_rate=LRS, b1=b1)
    swept, _ = _swept_run(tx, 3)
    runs = [_separate_runs(lambda lr, b=b: optax.adam(lr, b1=b), [lr])
            for lr, b in zip(LRS, b1, strict=True)]
    expected = jax.tree.map(lambda *xs: jnp.concatenate(xs), *runs)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-5),
                 swept, expected)


def test_lr_sweep_scales_a_unit_schedule():
    shape = oxs.wsd(1.0, 5, warmup_steps=1, decay_fraction=0.4)
    factory = functools.partial(optax.adamw, weight_decay=0.1)
    tx = oxs.lr_sweep(factory, LRS, schedule=shape)
    swept, _ = _swept_run(tx, len(LRS))
    expected = _separate_runs(
        lambda lr: factory(learning_rate=lambda c: lr * shape(c)), LRS)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-5),
                 swept, expected)


def test_lr_sweep_without_schedule_is_constant():
    tx = oxs.lr_sweep(optax.sgd, LRS)
    swept, _ = _swept_run(tx, len(LRS), steps=2)
    expected = _separate_runs(optax.sgd, LRS, steps=2)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), swept, expected)


def test_vmap_hyperparams_passes_extra_args():
    tx = oxs.vmap_hyperparams(optax.sgd, learning_rate=LRS)
    params = oxs.stack_params(_params(), 3)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params, value=jnp.zeros(3))
    np.testing.assert_allclose(updates["b"][:, 0], -LRS)


def test_stack_params_copies():
    stacked = oxs.stack_params({"w": jnp.arange(3.0)}, 4)
    assert stacked["w"].shape == (4, 3)
    np.testing.assert_array_equal(stacked["w"][2], jnp.arange(3.0))


@pytest.mark.parametrize("kwargs, argument", [
    ({}, "hyperparams"),
    ({"learning_rate": []}, "learning_rate"),
    ({"learning_rate": 0.1}, "learning_rate"),
    ({"learning_rate": [[0.1, 0.2]]}, "learning_rate"),
    ({"learning_rate": [0.1, np.nan]}, "learning_rate"),
    ({"learning_rate": [0.1, 1e39]}, "learning_rate"),  # finite in float64, not in float32
    ({"learning_rate": [0.1 + 1j]}, "learning_rate"),
    ({"learning_rate": ["0.1"]}, "learning_rate"),
    ({"learning_rate": optax.constant_schedule(0.1)}, "learning_rate"),
    ({"learning_rate": [0.1, 0.2], "b1": [0.9]}, "b1"),
    ({"learning_rate": [0.1], "not_an_argument": [1.0]}, "not_an_argument"),
])
def test_vmap_hyperparams_bad_values_are_named_errors(kwargs, argument):
    with pytest.raises(ValueError, match=f"vmap_hyperparams: {argument} must be"):
        oxs.vmap_hyperparams(optax.adam, **kwargs)


def test_vmap_hyperparams_refuses_unstacked_params():
    tx = oxs.vmap_hyperparams(optax.adam, learning_rate=LRS)
    with pytest.raises(ValueError, match="vmap_hyperparams: params must be .* leading axis of "
                                         "size 3"):
        tx.init(_params())


@pytest.mark.parametrize("lrs, schedule, argument", [
    ([1e-3, -1e-2], None, "learning_rates"),
    ([0.0], None, "learning_rates"),
    ([], None, "learning_rates"),
    ([1e-3], 0.5, "schedule"),
])
def test_lr_sweep_bad_arguments(lrs, schedule, argument):
    with pytest.raises(ValueError, match=f"lr_sweep: {argument} must be"):
        oxs.lr_sweep(optax.adam, lrs, schedule=schedule)


def test_lr_sweep_needs_a_learning_rate_argument():
    with pytest.raises(ValueError, match="lr_sweep: learning_rate must be an argument"):
        oxs.lr_sweep(lambda b1: optax.scale_by_adam(b1), [0.1])
    with pytest.raises(ValueError, match="lr_sweep: factory must be"):
        oxs.lr_sweep("adam", [0.1])


# ------------------------------------------------------------------------------------------------
# python -m examples.sweep --quick
# ------------------------------------------------------------------------------------------------


# The example sweep's compilation is most of this test's time (conftest.fast_compilation); what
# is checked is its runs and files, not XLA's optimisations.
@pytest.mark.usefixtures("fast_compilation")
def test_example_sweep_quick(tmp_path):
    import json

    from examples import sweep as sweep_example

    out = tmp_path / "sweep"
    assert sweep_example.main(["--quick", "--schedules", "wsd", "--optimizers", "adamw",
                               "--num-lrs", "3", "--min-lr", "1e-3", "--max-lr", "1.0",
                               "--out", str(out)]) == 0
    result = json.loads((out / "sweep.json").read_text())
    (pair,) = result["pairs"]
    assert pair["learning_rates"] == pytest.approx([1e-3, 10 ** -1.5, 1.0])
    losses = [np.nan if v is None else v for v in pair["final_val_loss"]]
    # The reported sensitivity is the library's on the reported losses.
    assert pair["lr_sensitivity"] == pytest.approx(
        oxs.lr_sensitivity(losses, result["initial_loss"]))
    # One program trained three different runs, each from the initial loss.
    assert len(set(np.round(losses, 5))) == 3
    assert np.all(np.asarray(pair["train_losses"])[:, 0] == pytest.approx(
        pair["train_losses"][0][0]))
    assert (out / "sweep.md").read_text().startswith("| schedule | optimizer |")
    assert (out / "sweep.png").stat().st_size > 0


@pytest.mark.parametrize("argv", [
    ["--schedules", "nope"], ["--optimizers", ""], ["--num-lrs", "0"],
    ["--min-lr", "1", "--max-lr", "0.1"], ["--steps", "0"],
])
def test_example_sweep_bad_flags_exit_2(argv, tmp_path, capsys):
    from examples import sweep as sweep_example

    with pytest.raises(SystemExit) as exit_info:
        sweep_example.main(["--quick", "--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_docstring_examples():
    import doctest

    from optaxsched import _sweep as sweep

    result = doctest.testmod(sweep, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
