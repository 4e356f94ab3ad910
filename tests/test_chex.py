"""The test registry checked with chex, as the design names it for verified shapes and tracing.

For every transform and schedule of ``tests/_registry.py``:

* ``chex.assert_max_traces``: the jitted step is traced once, across steps and across changes
  of the hyperparameters that ``optax.inject_hyperparams`` injects (a new value is data, not a
  new program); a schedule is traced once for any count;
* ``chex.assert_trees_all_equal_shapes_and_dtypes``: the optimizer state keeps its structure,
  shapes and dtypes across updates;
* ``chex.variants``: the step gives the same result with and without ``jax.jit``.
"""

from __future__ import annotations

import contextlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized

from tests import _registry as reg

CASES = list(reg.TRANSFORMS.values())
IDS = [c.id for c in CASES]
SCHEDULES = list(reg.SCHEDULES.values())
STEPS = 3


@pytest.fixture(autouse=True)
def _fast_compilation():
    # assert_max_traces counts per function definition, across tests: start each test at 0.
    chex.clear_trace_counter()
    with reg.fast_compilation():
        yield


def _traced_once_step(tx, extra):
    """``jit(step)`` that fails if it is traced a second time."""

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params, **extra)
        return optax.apply_updates(params, updates), state

    return step


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_no_recompilation_across_steps_and_state_keeps_its_shapes(case):
    tx = reg.chained_tx(case.id)
    params = reg.make_params()
    state = initial = tx.init(params)
    step = _traced_once_step(tx, reg.extra_args(case))
    for i in range(STEPS):
        params, state = step(params, state, reg.make_grads(i))
        chex.assert_trees_all_equal_shapes_and_dtypes(state, initial)
    chex.assert_trees_all_equal_shapes_and_dtypes(params, reg.make_params())


INJECTED = [c for c in CASES if c.hyperparams]


@pytest.mark.parametrize("case", INJECTED, ids=[c.id for c in INJECTED])
def test_no_recompilation_when_an_injected_hyperparameter_changes(case):
    tx = case.chained(case.injected())
    params = reg.make_params()
    state = initial = tx.init(params)
    step = _traced_once_step(tx, reg.extra_args(case))
    for i, name in enumerate(case.hyperparams * 2):
        old = optax.tree.get(state, name)
        # A new value of the same dtype and shape: 3/4 of the old (or 1/2 for a probability-like
        # b1 / theta / gamma / decay, which must stay below 1), every step a different one.
        new = jnp.asarray(np.asarray(old) * (0.75 if np.asarray(old) > 1 else 0.5), old.dtype)
        state = optax.tree.set(state, **{name: new})
        chex.assert_trees_all_equal_shapes_and_dtypes(state, initial)
        params, state = step(params, state, reg.make_grads(i))
        chex.assert_trees_all_equal_shapes_and_dtypes(state, initial)
        assert float(optax.tree.get(state, name)) == pytest.approx(float(new))
    chex.assert_tree_all_finite(params)


def _schedule_ids():
    return [c.id for c in SCHEDULES]


@pytest.mark.parametrize("case", SCHEDULES, ids=_schedule_ids())
def test_schedule_is_traced_once_for_any_count(case):
    schedule = case.build()
    if case.stateful:
        # An optax StatefulSchedule: driven through inject_hyperparams with its extra argument.
        tx = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
        params = reg.make_params()
        state = initial = tx.init(params)
        step = _traced_once_step(tx, case.extra_args)
        for i in range(STEPS):
            params, state = step(params, state, reg.make_grads(i))
            chex.assert_trees_all_equal_shapes_and_dtypes(state, initial)
        return
    evaluate = jax.jit(chex.assert_max_traces(schedule, n=1))
    values = [evaluate(jnp.int32(count)) for count in (0, 1, 7, 40, 1000)]
    for value in values:
        chex.assert_shape(value, ())
        chex.assert_type(value, jnp.float32)
    direct = schedule(np.array([0, 1, 7, 40, 1000]))
    np.testing.assert_allclose(np.asarray(values), np.asarray(direct), rtol=1e-6)


class VariantsTest(chex.TestCase):
    """Each transform's chained step with and without ``jax.jit`` agrees with the jitted one."""

    def setUp(self):
        super().setUp()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(reg.fast_compilation())

    def tearDown(self):
        self._stack.close()
        super().tearDown()

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*[(c.id, c.id) for c in CASES])
    def test_step(self, case_id):
        case = reg.TRANSFORMS[case_id]
        tx = reg.chained_tx(case_id)
        extra = reg.extra_args(case)

        @self.variant
        def step(params, state, grads):
            updates, state = tx.update(grads, state, params, **extra)
            return optax.apply_updates(params, updates), state

        reference = reg.chained_step(case_id)
        params = expected = reg.make_params()
        state = expected_state = initial = tx.init(params)
        for i in range(STEPS):
            grads = reg.make_grads(i)
            params, state = step(params, state, grads)
            expected, expected_state, _ = reference(expected, expected_state, grads)
            chex.assert_trees_all_equal_shapes_and_dtypes(state, initial)
        chex.assert_trees_all_close(params, expected, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_equal_structs(state, expected_state)
