"""Tests for the one state finder (optaxsched._find_state) that refinement and averaging use."""

from __future__ import annotations

import jax.numpy as jnp
import optax
import pytest

import optaxsched as oxs
from optaxsched._find_state import find_state, find_states

PARAMS = {"w": jnp.ones(2)}
HOW = "put it in the optimizer"


def test_finds_the_state_wherever_it_sits():
    inner = optax.chain(optax.sgd(0.1), oxs.average_params())
    for tx in (inner, optax.MultiSteps(inner, 2), oxs.nap(inner, {"w": True}),
               optax.inject_hyperparams(lambda learning_rate: inner)(learning_rate=0.1)):
        state = tx.init(PARAMS)
        found = find_state("f", state, oxs.AverageParamsState, HOW)
        assert isinstance(found, oxs.AverageParamsState)
    assert find_state("f", found, oxs.AverageParamsState, HOW) is found  # the state itself


def test_a_field_or_key_with_the_same_name_is_not_a_state():
    tree = {"AverageParamsState": jnp.zeros(1), "x": optax.chain(oxs.average_params()).init(PARAMS)}
    assert len(find_states(tree, oxs.AverageParamsState)) == 1


def test_exactly_one_or_a_named_error():
    with pytest.raises(ValueError, match=r"^f: opt_state must contain exactly one "
                                         r"AverageParamsState \(put it in the optimizer\), found 0"
                                         r" in a tuple\.$"):
        find_state("f", optax.adam(0.1).init(PARAMS), oxs.AverageParamsState, HOW)
    two = optax.chain(oxs.average_params(), optax.sgd(0.1), oxs.average_params()).init(PARAMS)
    with pytest.raises(ValueError, match=r"found 2 in a tuple \(0: \[0\], 1: \[2\]\)\.$"):
        find_state("f", two, oxs.AverageParamsState, HOW)


def test_choosable_states_are_chosen_by_which():
    tx = optax.chain(oxs.record_grad_norms(3), optax.sgd(0.1), oxs.record_grad_norms(4))
    state = tx.init(PARAMS)
    pick = lambda which: find_state("f", state, oxs.RecordGradNormsState, HOW, which,  # noqa: E731
                                    choosable=True)
    assert pick(0).grad_norm_l2.shape == (3,) and pick(1).grad_norm_l2.shape == (4,)
    with pytest.raises(ValueError, match=r"^f: opt_state contains 2 RecordGradNormsState "
                                         r"\(0: \[0\], 1: \[2\]\); pass which=<index>"):
        pick(None)
    with pytest.raises(ValueError, match=r"^f: which must be an integer in \[0, 1\]"):
        pick(2)
    with pytest.raises(ValueError, match=r"^f: opt_state must contain a RecordGradNormsState "
                                         r"\(put it in the optimizer\), found none in a tuple\.$"):
        find_state("f", optax.sgd(0.1).init(PARAMS), oxs.RecordGradNormsState, HOW, 0,
                   choosable=True)
