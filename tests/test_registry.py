"""The name registry: every name builds what the factory of that name builds."""

from __future__ import annotations

import typing

import jax.numpy as jnp
import numpy as np
import pytest

import optaxsched as oxs
from tests import _registry as reg


def test_names_are_the_literal_types_and_exported_factories():
    assert oxs.schedule_names() == typing.get_args(oxs.ScheduleName)
    assert oxs.optimizer_names() == typing.get_args(oxs.OptimizerName)
    for name in oxs.schedule_names() + oxs.optimizer_names():
        assert name in oxs.__all__ and callable(getattr(oxs, name))


@pytest.mark.parametrize("name", oxs.schedule_names())
def test_get_schedule_equals_the_factory(name):
    # The registry's small valid arguments for the factory of that name.
    case = next(c for c in reg.SCHEDULES.values() if c.factory == name)
    args, kwargs = case.make()
    counts = np.arange(0, 60)
    by_name = oxs.get_schedule(name, *args, **kwargs)
    direct = getattr(oxs, name)(*args, **kwargs)
    np.testing.assert_array_equal(np.asarray(by_name(counts)), np.asarray(direct(counts)))


@pytest.mark.parametrize("name", oxs.optimizer_names())
def test_get_optimizer_equals_the_factory(name):
    case = next(c for c in reg.TRANSFORMS.values() if c.factory == name)
    params = reg.make_params()
    grads = reg.make_grads(0)
    outs = []
    for tx in (oxs.get_optimizer(name, **case.kwargs), case.build()):
        state = tx.init(params)
        updates, state = tx.update(grads, state, params, **case.extra_args)
        outs.append(updates)
    for key in params:
        np.testing.assert_array_equal(np.asarray(outs[0][key]), np.asarray(outs[1][key]))


@pytest.mark.parametrize("getter, listed", [
    (oxs.get_schedule, oxs.schedule_names()),
    (oxs.get_optimizer, oxs.optimizer_names()),
])
def test_unknown_name_lists_the_choices(getter, listed):
    with pytest.raises(ValueError) as info:
        getter("cosine_wsd", 1e-3)
    message = str(info.value)
    assert f"{getter.__name__}: name must be one of" in message and "'cosine_wsd'" in message
    for name in listed:
        assert repr(name) in message


def test_factory_errors_pass_through():
    with pytest.raises(ValueError, match="wsd: peak_value"):
        oxs.get_schedule("wsd", peak_value=-1.0, total_steps=10)


@pytest.mark.parametrize("call, detail", [
    (lambda: oxs.get_schedule("wsd", peak_vlaue=1e-3, total_steps=10),
     "unknown keywords ['peak_vlaue']"),
    (lambda: oxs.get_schedule("wsd", 1e-3), "missing a required argument: 'total_steps'"),
    (lambda: oxs.get_optimizer("spam", 1e-3, lr=1e-3), "unknown keywords ['lr']"),
])
def test_arguments_a_factory_does_not_take_are_named_with_the_ones_it_does(call, detail):
    """A misspelt configuration key was Python's TypeError, naming only the key."""
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, TypeError) and detail in message, message
    assert "must be among (" in message and ("peak_value" in message or "b1" in message)


def test_deprecated_argument_names_still_pass_with_their_warning():
    """A renamed argument's old name is checked as its new one (it is not "unknown"), and the
    factory warns; both names at once is an error."""
    with pytest.warns(DeprecationWarning, match="max_value= is deprecated"):
        old = oxs.get_schedule("power", max_value=0.02, batch_size=1, tokens_per_step=1000)
    new = oxs.get_schedule("power", peak_value=0.02, batch_size=1, tokens_per_step=1000)
    assert float(old(10)) == float(new(10))
    with pytest.raises(ValueError, match="deprecated name"):
        oxs.get_schedule("power", max_value=0.02, peak_value=0.02, batch_size=1,
                         tokens_per_step=1000)


def test_get_schedule_works_under_jit():
    import jax
    schedule = oxs.get_schedule("linear_decay", 1.0, total_steps=10)
    assert float(jax.jit(schedule)(jnp.int32(5))) == pytest.approx(0.5)
