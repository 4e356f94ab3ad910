"""The shared validation helpers: one wording, the argument named, the value shown."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import optaxsched as oxs
from optaxsched import _checks


def test_fail_message_names_function_argument_and_value():
    expected = r"^wsd: total_steps must be a positive integer, got -3\.$"
    with pytest.raises(ValueError, match=expected):
        _checks.check_int("wsd", "total_steps", -3, minimum=1)


@pytest.mark.parametrize("value", [1000, 1e3, 1000.0, np.int64(1000), np.float32(1000.0)])
def test_check_int_accepts_integral_values(value):
    assert _checks.check_int("f", "n", value) == 1000


@pytest.mark.parametrize("value", [1000.5, "10", None, True, float("nan"), float("inf"), [3]])
def test_check_int_rejects_non_integers(value):
    with pytest.raises(ValueError, match="f: n must be a non-negative integer"):
        _checks.check_int("f", "n", value)


def test_check_int_bounds():
    assert _checks.check_int("f", "n", 0) == 0
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 5\], got 6"):
        _checks.check_int("f", "n", 6, minimum=1, maximum=5)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        _checks.check_int("f", "n", 1, minimum=2)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "1e-3", None, np.ones(3), True])
def test_check_float_rejects_non_finite_and_non_numbers(value):
    with pytest.raises(ValueError, match="f: lr must be"):
        _checks.check_float("f", "lr", value)


def test_check_float_accepts_numpy_and_jax_scalars():
    import jax.numpy as jnp

    assert _checks.check_float("f", "lr", np.float32(0.5)) == 0.5
    assert _checks.check_float("f", "lr", jnp.asarray(0.25)) == 0.25
    assert _checks.check_float("f", "lr", 3) == 3.0


def test_check_float_strict_and_closed_bounds():
    with pytest.raises(ValueError, match="lr must be a positive finite number, got 0.0"):
        _checks.check_float("f", "lr", 0.0, minimum=0.0, strict_min=True)
    assert _checks.check_float("f", "lr", 0.0, minimum=0.0) == 0.0
    with pytest.raises(ValueError, match=r"b must be in \[0, 1\), got 1.0"):
        _checks.check_float("f", "b", 1.0, minimum=0.0, maximum=1.0, strict_max=True)
    with pytest.raises(ValueError, match="x must be a finite number <= 2"):
        _checks.check_float("f", "x", 3.0, maximum=2.0)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_check_fraction_accepts_exactly_the_unit_interval(value):
    if value == value and 0.0 <= value <= 1.0:
        assert _checks.check_fraction("f", "frac", value) == value
    else:
        with pytest.raises(ValueError, match=r"frac must be in \[0, 1\]"):
            _checks.check_fraction("f", "frac", value)


def test_check_choice_lists_every_valid_name():
    with pytest.raises(ValueError, match=r"shape must be one of 'a', 'b', got 'c'"):
        _checks.check_choice("f", "shape", "c", ("a", "b"))
    assert _checks.check_choice("f", "shape", "b", ("a", "b")) == "b"


def test_check_order_and_one_of_two():
    _checks.check_order("f", "warmup_steps", 3, "total_steps", 3)
    with pytest.raises(ValueError, match=r"warmup_steps must be < total_steps \(3\), got 3"):
        _checks.check_order("f", "warmup_steps", 3, "total_steps", 3, strict=True)
    with pytest.raises(ValueError, match="give exactly one of a and b"):
        _checks.check_one_of_two("f", "a", 1, "b", 2)
    with pytest.raises(ValueError, match="give exactly one of a and b"):
        _checks.check_one_of_two("f", "a", None, "b", None)
    _checks.check_one_of_two("f", "a", None, "b", 2)


def test_check_sequence():
    assert _checks.check_sequence("f", "points", [1, 2]) == [1, 2]
    for bad in ("ab", 3, []):
        with pytest.raises(ValueError, match="points must be a sequence"):
            _checks.check_sequence("f", "points", bad)


def test_traced_values_pass_through_for_inject_hyperparams():
    import jax

    # optax.inject_hyperparams rebuilds a transform with tracers inside every update.
    def checked(value):
        out = _checks.check_float("f", "lr", value, minimum=0.0, strict_min=True)
        _checks.check_order("f", "lr", out, "max_lr", 1.0)
        return out * 2 + _checks.check_int("f", "n", value.astype("int32"))

    assert float(jax.jit(checked)(3.0)) == 9.0
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        checked(np.float32(-1.0))


@pytest.mark.parametrize("value", [np.int32(7), np.array(7), np.array(7, np.int64), np.array(7.0)])
def test_check_int_accepts_0d_arrays_as_inject_hyperparams_hands_them_back(value):
    import jax.numpy as jnp

    assert _checks.check_int("f", "every", value, minimum=1) == 7
    assert _checks.check_int("f", "every", jnp.asarray(7), minimum=1) == 7


@pytest.mark.parametrize("value", [1j, 1 + 0j, np.complex64(1), np.array(1j), "3", None, True,
                                   np.ones(2)])
def test_wrong_types_are_argument_type_errors(value):
    for check in (lambda v: _checks.check_int("f", "n", v),
                  lambda v: _checks.check_float("f", "n", v)):
        with pytest.raises(TypeError, match=r"^f: n must be .*, got .* \(\w+\)\.$") as info:
            check(value)
        assert isinstance(info.value, ValueError)  # callers catching ValueError still do


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_check_float_accepts_exactly_what_float32_holds(value):
    in_range = abs(value) <= float(np.finfo(np.float32).max)
    if in_range:
        assert _checks.check_float("f", "x", value) == value
        assert _checks.check_float("f", "x", value, dtype=np.float64) == value
    else:
        with pytest.raises(ValueError, match=r"x must be a finite number representable in "
                                             r"float32 \(magnitude at most 3\.402823e\+38\)"):
            _checks.check_float("f", "x", value)
        assert _checks.check_float("f", "x", value, dtype=np.float64) == value


def test_positive_values_below_the_smallest_normal_float32_are_refused():
    tiny = float(np.finfo(np.float32).tiny)
    assert _checks.check_float("f", "x", tiny, minimum=0.0, strict_min=True) == tiny
    for value in (1e-39, 1e-45, 5e-324):
        with pytest.raises(ValueError, match="smallest normal number"):
            _checks.check_float("f", "x", value, minimum=0.0, strict_min=True)
    assert _checks.check_float("f", "x", 1e-45, minimum=0.0) == 1e-45  # 0 is allowed anyway


def test_normal_refuses_nonzero_values_that_float32_flushes_to_zero():
    tiny = float(np.finfo(np.float32).tiny)
    for value in (0.0, -0.0, tiny, -tiny, 1.0, -3e38):
        assert _checks.check_float("f", "x", value, normal=True) == value
    for value in (1e-39, -1e-45, 5e-324, 1e-50):
        with pytest.raises(ValueError, match=r"^f: x must be a finite number representable in "
                                             r"float32: 0 or of magnitude at least its smallest "
                                             r"normal number, 1\.175494e-38 .*, got "):
            _checks.check_float("f", "x", value, normal=True)
        assert _checks.check_float("f", "x", value) == value  # additive: left alone
    assert _checks.check_float("f", "x", 1e-50, normal=True, dtype=np.float64) == 1e-50


def test_integers_beyond_2_to_53_are_refused():
    assert _checks.check_int("f", "n", 2**53) == 2**53
    for value in (2**53 + 1, 10**400, 1e300):
        with pytest.raises(ValueError, match=r"n must be .*at most 2\*\*53"):
            _checks.check_int("f", "n", value)


def test_sequences_refuse_0d_arrays_and_mappings():
    for bad in (np.array(5), np.float32(2.0), {1: 2}):
        with pytest.raises(TypeError, match="points must be a sequence"):
            _checks.check_sequence("f", "points", bad)
    assert list(_checks.check_sequence("f", "points", np.array([1, 2]))) == [1, 2]


def test_injected_integer_hyperparameters_work_for_nap_and_average_params():
    """optax.inject_hyperparams stores every= / start_step= as int32 arrays and passes them back
    to the factory (at init too): _checks.check_int must take them, as spikes' own check does."""
    import jax
    import jax.numpy as jnp
    import optax

    import optaxsched as oxs

    params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.1), params)
    for tx in (
        optax.inject_hyperparams(oxs.nap, static_args=("mask",))(
            optimizer=optax.sgd(0.1), mask={"w": True, "b": False}, every=2),
        optax.inject_hyperparams(oxs.average_params)(kind="ema", decay=0.9, every=2,
                                                    start_step=1),
    ):
        state = tx.init(params)
        assert int(state.hyperparams["every"]) == 2
        p = params
        for _ in range(4):
            updates, state = tx.update(grads, state, p)
            p = optax.apply_updates(p, updates)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves((p, state)))
    # And a bad injected value is still refused, naming the argument, when built.
    with pytest.raises(ValueError, match="every"):
        optax.inject_hyperparams(oxs.average_params)(every=0).init(params)


# The transforms that need real floating-point parameters: (name, factory).
_FLOAT_ONLY = [
    ("spam", lambda: oxs.spam(1e-3)),
    ("scale_by_spam", oxs.scale_by_spam),
    ("clip_spikes", oxs.clip_spikes),
    ("stable_spam", lambda: oxs.stable_spam(1e-3)),
    ("scale_by_stable_spam", oxs.scale_by_stable_spam),
    ("adaptive_spike_clip", oxs.adaptive_spike_clip),
    ("adaptive_grad_norm", oxs.adaptive_grad_norm),
    ("average_params", oxs.average_params),
    ("project_to_init_norm", oxs.project_to_init_norm),
    ("project_to_init_norm", lambda: oxs.nap(optax.adam(1e-3))),
    # Complex leaves lost their imaginary part (float32 dot products); integer ones had their
    # updates truncated to integers (0 for lr < 1).
    ("hypergradient", lambda: oxs.hypergradient(1e-2, 1e-3)),
    ("hypergradient", lambda: oxs.hypergradient(1e-2, 1e-3, base=optax.scale_by_adam())),
]


@pytest.mark.parametrize("name, make", _FLOAT_ONLY, ids=[f"{n}-{i}" for i, (n, _) in
                                                          enumerate(_FLOAT_ONLY)])
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.complex64, jnp.bool_])
def test_integer_or_complex_params_are_refused_at_init_naming_the_leaf(name, make, dtype):
    """Refused by init, naming the transform, the leaf and its dtype: they used to fail inside
    the traced update, in jnp.finfo or lax.clip, naming neither."""
    params = {"w": jnp.ones((2, 2)), "bad": jnp.ones((2, 2), dtype)}
    with pytest.raises(_checks.ArgumentTypeError) as info:
        make().init(params)
    message = str(info.value)
    assert message.startswith(f"{name}: params must hold real floating-point arrays")
    assert f"got dtype {jnp.dtype(dtype).name} at ['bad']" in message, message


def test_leaves_a_mask_leaves_out_may_be_of_any_dtype():
    params = {"w": jnp.ones((2, 2), jnp.bfloat16), "step": jnp.ones((), jnp.int32),
              "phase": jnp.ones((2,), jnp.complex64)}
    mask = {"w": True, "step": False, "phase": False}
    state = oxs.project_to_init_norm(mask).init(params)
    assert state.init_norm.shape == (1,)
    _checks.require_float_leaves("f", {"w": jnp.ones(2, jnp.float16), "x": 1.5})
    with pytest.raises(_checks.ArgumentTypeError, match=r"f: params .* int64 at \['x'\]|"
                                                        r"f: params .* int32 at \['x'\]"):
        _checks.require_float_leaves("f", {"x": 3})
