"""The optax and Flax compatibility matrix, driven by tests/_registry.py.

Every transform of the library, in the configurations the registry lists, is run

* in ``optax.chain`` (with an unknown extra argument, which ``GradientTransformationExtraArgs``
  must accept),
* wrapped by ``optax.inject_hyperparams`` with its learning rate and main thresholds injected
  (the result equals the plain transform, and changing an injected value between steps takes
  effect without recompiling),
* inside ``optax.MultiSteps`` (k = 2 or 3, alternating over the cases: the emitted update is the
  inner update of the mean gradient, nothing is emitted in between, the inner state advances once
  per real step),
* in ``optax.partition`` (one group; the other group is untouched by it),
* through ``flax.nnx.Optimizer(..., wrt=nnx.Param)`` on a tiny model (the same result as plain
  optax on the same arrays),

and in each the state keeps its structure, shapes, dtypes, weak types and shardings across steps
(``jax.lax.scan`` refuses a carry that changes type; stepwise runs compare ``jax.typeof`` and the
sharding of every leaf), and a second step does not recompile. Every schedule drives optax
optimizers through ``inject_hyperparams`` (the injected value is the schedule at the optax count)
and ``MultiSteps``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import optaxsched as oxs
from tests import _registry as reg

CASES = list(reg.TRANSFORMS.values())
IDS = [c.id for c in CASES]


@pytest.fixture(autouse=True)
def _fast_compilation():
    with reg.fast_compilation():
        yield


# ------------------------------------------------------------------------------------------------
# Helpers.
# ------------------------------------------------------------------------------------------------


def assert_close(actual, desired, rtol=1e-6, atol=1e-7, what=""):
    sa, sd = jax.tree.structure(actual), jax.tree.structure(desired)
    assert sa == sd, f"{what}: structures differ: {sa} vs {sd}"
    for a, d in zip(jax.tree.leaves(actual), jax.tree.leaves(desired), strict=True):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(d, np.float64),
                                   rtol=rtol, atol=atol, err_msg=what)


def assert_finite(tree, what=""):
    for leaf in jax.tree.leaves(tree):
        assert np.all(np.isfinite(np.asarray(leaf, np.float64))), f"{what}: non-finite values"


def scan_steps(tx, params, state, grads_seq, extra):
    """Runs ``tx`` over a stacked sequence of gradients with lax.scan (which also fails loudly if
    the state's shapes, dtypes or weak types change from one step to the next)."""
    def body(carry, grads):
        params, state = carry
        updates, state = tx.update(grads, state, params, **extra)
        return (optax.apply_updates(params, updates), state), updates
    (params, state), updates = jax.lax.scan(body, (params, state), grads_seq)
    return params, state, updates


def stacked_grads(n, start=0):
    return jax.tree.map(lambda *g: jnp.stack(g), *[reg.make_grads(start + i) for i in range(n)])


# ------------------------------------------------------------------------------------------------
# The registry is complete.
# ------------------------------------------------------------------------------------------------


def test_registry_covers_every_public_factory():
    public = reg.public_factories()
    registered = reg.registered_factories()
    missing = {kind: sorted(public[kind] - registered[kind]) for kind in public}
    assert not any(missing.values()), (
        f"public factories missing from tests/_registry.py (add a case with small valid "
        f"arguments): {missing}")
    stale = {kind: sorted(registered[kind] - set(oxs.__all__)) for kind in registered}
    assert not any(stale.values()), f"registry cases for names not in optaxsched.__all__: {stale}"


def test_registry_classifier_sees_known_factories():
    # The classifier can fail too: pin what it must find among names that exist today.
    public = reg.public_factories()
    assert {"record_grad_norms", "hypergradient", "project_to_init_norm", "nap",
            "average_params"} <= public["transform"]
    assert {"wsd", "linear_decay", "tabulated", "join", "refined_schedule",
            "token_schedule"} <= public["schedule"]
    assert not {"refine", "grad_norm_history", "nap_mask", "averaged_params"} & (
        public["transform"] | public["schedule"])


# ------------------------------------------------------------------------------------------------
# optax.chain: extra arguments, dtype/structure stability, no recompilation.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_chain_is_stable_and_compiles_once(case):
    tx = reg.chained_tx(case.id)
    params = reg.make_params()
    state0 = tx.init(params)
    step = reg.chained_step(case.id)
    p1, state1, updates = step(params, state0, reg.make_grads(0))
    reg.assert_same_types(state0, state1, f"{case.id}: step 1")
    assert jax.tree.map(lambda u: u.dtype, updates) == jax.tree.map(lambda p: p.dtype, params)
    assert_finite((p1, state1, updates), case.id)
    assert any(np.any(np.asarray(u)) for u in jax.tree.leaves(updates)), "no update at all"
    size = step._cache_size()
    with reg.count_compilations() as compiled:
        p2, state2, _ = step(p1, state1, reg.make_grads(1))
    assert not compiled, f"{case.id}: the second step recompiled: {compiled}"
    assert step._cache_size() == size
    reg.assert_same_types(state0, state2, f"{case.id}: step 2")
    assert_finite((p2, state2), case.id)


# ------------------------------------------------------------------------------------------------
# optax.inject_hyperparams.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inject_hyperparams_matches_plain_and_takes_new_values(case):
    params = reg.make_params()
    extra = reg.extra_args(case)
    injected = case.injected()
    state = injected.init(params)
    assert set(state.hyperparams) == set(case.hyperparams)
    for name in case.hyperparams:
        np.testing.assert_allclose(float(state.hyperparams[name]), case.kwargs[name], rtol=1e-6)
    # Halving every injected value between steps must take effect without recompiling: the
    # second step equals the plain transform built with the new values.
    new_values = {name: 0.5 * case.kwargs[name] for name in case.hyperparams}
    plain, changed = case.build(), case.build(**new_values)

    @jax.jit
    def reference(params, g0, g1):
        u0, s0 = plain.update(g0, plain.init(params), params, **extra)
        p1 = optax.apply_updates(params, u0)
        u1, s1 = changed.update(g1, s0, p1, **extra)
        unchanged = plain.update(g1, s0, p1, **extra)  # (updates, state) with the old values
        return (u0, s0), (u1, s1), unchanged

    step = reg.make_step(injected, extra)
    g0, g1 = reg.make_grads(0), reg.make_grads(1)
    (want_u0, want_s0), (want_u1, want_s1), unchanged = reference(params, g0, g1)
    if case.hyperparams:  # otherwise the check below could not tell old from new values
        assert not all(np.allclose(a, b, rtol=1e-4) for a, b in zip(
            jax.tree.leaves((want_u1, want_s1)), jax.tree.leaves(unchanged), strict=True)), (
            f"{case.id}: the new hyperparameter values change nothing; pick other values")
    p1, state1, u0 = step(params, state, g0)
    # Separate programs round differently; a projection's s·(w + u) - w amplifies that.
    tol = dict(rtol=2e-5, atol=2e-7)
    assert_close(u0, want_u0, **tol, what=f"{case.id}: updates")
    assert_close(state1.inner_state, want_s0, **tol, what=f"{case.id}: state")
    hyperparams = dict(state1.hyperparams)
    for name, value in new_values.items():
        hyperparams[name] = jnp.asarray(value, hyperparams[name].dtype)
    with reg.count_compilations() as compiled:
        _, state2, u1 = step(p1, state1._replace(hyperparams=hyperparams), g1)
    assert not compiled, f"{case.id}: the second step (new hyperparameters) recompiled"
    assert_close(u1, want_u1, **tol, what=f"{case.id}: updates after the change")
    assert_close(state2.inner_state, want_s1, **tol, what=f"{case.id}: state after it")


# ------------------------------------------------------------------------------------------------
# optax.MultiSteps (gradient accumulation).
# ------------------------------------------------------------------------------------------------

# k = 2 and k = 3 alternate over the cases (each k runs for half of them). Wrappers interact with
# a transform through its state's structure, which the secondary configurations of a factory
# share with its primary one: MultiSteps, partition and nnx run the primary configurations.
PRIMARY = [c for c in CASES if c.primary]
MULTI = [(case, 2 + i % 2) for i, case in enumerate(PRIMARY)]


@pytest.mark.parametrize(("case", "k"), MULTI, ids=[f"{c.id}-k{k}" for c, k in MULTI])
def test_multisteps_accumulates(case, k):
    inner = reg.chained_tx(case.id)
    multi = optax.MultiSteps(inner, every_k_schedule=k)
    extra = reg.extra_args(case)
    real_steps = 2

    @jax.jit
    def run(params, micro):
        state = multi.init(params)
        _, state, emitted = scan_steps(multi, params, state, micro, extra)
        return state, emitted

    micro = [reg.make_grads(i) for i in range(real_steps * k)]
    params = reg.make_params()
    state, emitted = run(params, jax.tree.map(lambda *g: jnp.stack(g), *micro))
    # The inner transform, run by hand on the mean gradient of each group of k micro-steps (with
    # the chain's shared step, compiled once for all test files).
    ref_state = inner.init(params)
    for r in range(real_steps):
        mean = jax.tree.map(lambda *g: sum(g) / k, *micro[r * k:(r + 1) * k])
        params, ref_state, ref_updates = reg.chained_step(case.id)(params, ref_state, mean)
        for name, u in emitted.items():
            u = np.asarray(u)[r * k:(r + 1) * k]
            assert not np.any(u[:-1]), f"{case.id}: an update before the k-th micro-step"
            np.testing.assert_allclose(u[-1], ref_updates[name], rtol=2e-5, atol=1e-6,
                                       err_msg=f"{case.id}: {name}, real step {r}")
    assert int(state.gradient_step) == real_steps
    assert_close(state.inner_opt_state, ref_state, rtol=2e-5, atol=1e-6,
                 what=f"{case.id}: inner state")
    inner_counts = reg.counters(state.inner_opt_state)
    assert inner_counts and all(c <= real_steps for c in inner_counts.values()), inner_counts


# ------------------------------------------------------------------------------------------------
# optax.partition (different transforms per parameter group).
# ------------------------------------------------------------------------------------------------

LABELS = {"w": "ours", "b": "other"}


@pytest.mark.parametrize("case", PRIMARY, ids=[c.id for c in PRIMARY])
def test_partition_applies_to_its_group_only(case):
    tx = optax.partition({"ours": reg.chained_tx(case.id), "other": optax.sgd(0.1)}, LABELS)
    alone = reg.chained_tx(case.id)
    extra = reg.extra_args(case)
    ours = [k for k in LABELS if LABELS[k] == "ours"]

    @jax.jit
    def run(params, grads):
        _, _, updates = scan_steps(tx, params, tx.init(params), grads, extra)
        sub = {k: params[k] for k in ours}
        _, _, alone_updates = scan_steps(alone, sub, alone.init(sub),
                                         {k: grads[k] for k in ours}, extra)
        return updates, alone_updates

    grads = stacked_grads(3)
    updates, alone_updates = run(reg.make_params(), grads)
    assert_close({k: updates[k] for k in ours}, alone_updates, rtol=1e-6, what=case.id)
    np.testing.assert_allclose(updates["b"], -0.1 * grads["b"], rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# flax.nnx.Optimizer.
# ------------------------------------------------------------------------------------------------


class TinyModel(nnx.Module):
    """Linear -> LayerNorm -> ReLU -> Linear, with a bias on the output layer only."""

    def __init__(self, rngs):
        self.hidden = nnx.Linear(4, 8, use_bias=False, rngs=rngs)
        self.norm = nnx.LayerNorm(8, use_scale=False, use_bias=False, rngs=rngs)
        self.out = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.norm(self.hidden(x))))


def _loss(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


@pytest.mark.parametrize("case", PRIMARY, ids=[c.id for c in PRIMARY])
def test_nnx_optimizer(case):
    extra = reg.extra_args(case)
    model = TinyModel(nnx.Rngs(0))
    tx = reg.chained_tx(case.id)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    graphdef, params = nnx.split(model, nnx.Param)
    params = nnx.as_pure(params)
    state = tx.init(params)
    rng = np.random.default_rng(0)
    batches = [(jnp.asarray(rng.normal(size=(5, 4)), jnp.float32),
                jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)) for _ in range(2)]

    @nnx.jit
    def train_step(model, optimizer, x, y, params, state):
        grads = nnx.grad(_loss)(model, x, y)
        optimizer.update(model, grads, **extra)
        # The same optimizer in plain optax on the model's arrays, for comparison.
        grads = jax.grad(lambda p: _loss(nnx.merge(graphdef, p), x, y))(params)
        updates, state = tx.update(grads, state, params, **extra)
        return optax.apply_updates(params, updates), state

    state0_types = reg.types(nnx.as_pure(optimizer.opt_state))
    params, state = train_step(model, optimizer, *batches[0], params, state)
    with reg.count_compilations() as compiled:
        params, state = train_step(model, optimizer, *batches[1], params, state)
    assert not compiled, f"{case.id}: the second nnx step recompiled"
    assert reg.types(nnx.as_pure(optimizer.opt_state)) == state0_types
    assert_close(nnx.as_pure(nnx.state(model, nnx.Param)), params, rtol=1e-5, atol=1e-7,
                 what=f"{case.id}: params")
    assert_close(nnx.as_pure(optimizer.opt_state), state, rtol=1e-5, atol=1e-7,
                 what=f"{case.id}: optimizer state")
    assert int(optimizer.step[...]) == 2


# ------------------------------------------------------------------------------------------------
# Schedules driving optax optimizers.
# ------------------------------------------------------------------------------------------------

SCHEDULE_CASES = list(reg.SCHEDULES.values())
STEPS = 4


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=[c.id for c in SCHEDULE_CASES])
def test_schedule_drives_inject_hyperparams_and_multisteps(case):
    schedule = case.build()
    extra = {**case.extra_args, **reg.UNKNOWN_EXTRA}
    # inject_hyperparams: the value used by update i (0-based) is the schedule at count i (for the
    # token schedule: at the tokens seen before update i), and it is the learning rate applied.
    injected = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
    # MultiSteps(k=2) around SGD with the schedule: the schedule advances once per real step, so
    # real step r applies -schedule(r) times the mean gradient of its two micro-steps.
    inner = injected if case.stateful else optax.sgd(schedule)
    multi = optax.MultiSteps(inner, every_k_schedule=2)
    params = jnp.zeros(3, jnp.float32)
    grads = jnp.asarray(np.random.default_rng(0).normal(size=(STEPS, 3)), jnp.float32)

    @jax.jit
    def run(params, state, grads):
        def body(carry, grads):
            params, state = carry
            updates, state = injected.update(grads, state, params, **extra)
            return (optax.apply_updates(params, updates), state), \
                (state.hyperparams["learning_rate"], updates)
        (_, state), (lrs, updates) = jax.lax.scan(body, (params, state), grads)
        _, _, emitted = scan_steps(multi, params, multi.init(params), grads, extra)
        if case.stateful:
            tokens = case.extra_args["tokens"]
            expected = schedule.schedule(jnp.arange(STEPS, dtype=jnp.float32) * tokens)
        else:
            expected = schedule(jnp.arange(STEPS, dtype=jnp.int32))
        return state, lrs, updates, expected, emitted

    state0 = injected.init(params)
    state1, lrs, updates, expected, emitted = run(params, state0, grads)
    expected, grads = np.asarray(expected, np.float64), np.asarray(grads, np.float64)
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)
    assert np.any(expected > 0)
    np.testing.assert_allclose(updates, -expected[:, None] * grads, rtol=1e-6)
    reg.assert_same_types(state0, state1, case.id)
    with reg.count_compilations() as compiled:
        run(params, state1, grads)
    assert not compiled, f"{case.id}: the second run recompiled"
    emitted = np.asarray(emitted).reshape(STEPS // 2, 2, 3)
    assert not np.any(emitted[:, 0])
    means = grads.reshape(STEPS // 2, 2, 3).mean(1)
    np.testing.assert_allclose(emitted[:, 1], -expected[:STEPS // 2, None] * means, rtol=2e-6)


# ------------------------------------------------------------------------------------------------
# Wrappers of the library around optax wrappers.
# ------------------------------------------------------------------------------------------------


def test_reset_every_keeps_hyperparameters_injected_by_hand():
    # reset_every documents inject_hyperparams inside it ("schedules inside
    # optax.inject_hyperparams keep their position"). A numeric hyperparameter changed by hand
    # between steps (a manual LR drop, a plateau rule) is state too: a momentum reset must not
    # silently restore its initial value.
    tx = oxs.reset_every(optax.inject_hyperparams(optax.adam)(learning_rate=1e-2), 2)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    inner = state.inner_state
    state = state._replace(inner_state=inner._replace(
        hyperparams={**inner.hyperparams, "learning_rate": jnp.asarray(1e-4, jnp.float32)}))
    step = jax.jit(tx.update)
    for count in range(3):  # the reset happens at count 1 (k = 2)
        _, state = step({"w": jnp.ones(3)}, state, params)
        lr = float(state.inner_state.hyperparams["learning_rate"])
        assert lr == pytest.approx(1e-4), f"learning rate {lr} after the update at count {count}"


# ------------------------------------------------------------------------------------------------
# optax.tree.map_params (e.g. to build sharding specs for a state from the parameters' specs).
# ------------------------------------------------------------------------------------------------


# Per-leaf scalar statistics stored in a tree like the parameters would be taken for parameter
# copies by map_params, so a parameter's sharding spec would be given to a scalar; NaP's target
# norms and Stable-SPAM's statistics are flat vectors for that reason. Transforms that still
# fail are listed here (none).
MAP_PARAMS_KNOWN_FAILURES: set[str] = set()


@pytest.mark.parametrize("case", [
    pytest.param(c, marks=pytest.mark.xfail(
        reason="per-leaf scalars in a parameter-shaped tree", strict=False))
    if c.id in MAP_PARAMS_KNOWN_FAILURES else c for c in CASES], ids=IDS)
def test_map_params_maps_exactly_the_parameter_copies(case):
    tx = reg.chained_tx(case.id)
    params = reg.make_params()
    state = tx.init(params)
    # Identity: the state comes back unchanged (map_params initialises with a placeholder that
    # has no leaves: nap's init must accept it).
    same = optax.tree.map_params(tx, lambda v: v, state)
    assert jax.tree.structure(same) == jax.tree.structure(state)
    jax.tree.map(np.testing.assert_array_equal, same, state)
    # A marker on parameter copies, another on everything else: every marked leaf has the shape
    # of the parameter it shadows, and no small per-parameter state (NaP's target norms, the
    # recorder's buffers) is taken for a parameter copy.
    marked = optax.tree.map_params(tx, lambda v: jnp.full(jnp.shape(v), 7.0), state,
                                   transform_non_params=lambda v: jax.tree.map(
                                       lambda x: jnp.full(jnp.shape(x), -1.0), v))
    shapes = set(reg.PARAM_SHAPES.values())
    for path, leaf in jax.tree_util.tree_flatten_with_path(marked)[0]:
        if float(np.ravel(leaf)[0]) == 7.0:
            assert tuple(leaf.shape) in shapes, (case.id, jax.tree_util.keystr(path))
        else:
            assert reg.field_name(path) not in ("mu", "nu", "prev_direction", "average"), (
                case.id, jax.tree_util.keystr(path))


# ------------------------------------------------------------------------------------------------
# Full-tree masks inside optax.partition (the group's other subtrees are MaskedNode()).
# ------------------------------------------------------------------------------------------------

NESTED = {"w": jnp.ones((2, 3)), "b": jnp.ones(3), "v": {"k": jnp.full((3, 3), 2.0)}}


@pytest.mark.parametrize("labels", [{"w": "nap", "b": "sgd", "v": "sgd"},
                                    {"w": "sgd", "b": "nap", "v": "nap"},
                                    {"w": "nap", "b": "nap", "v": {"k": "sgd"}}])
@pytest.mark.parametrize("which", ["nap", "project_to_init_norm"])
def test_full_tree_mask_inside_partition(labels, which):
    mask = {"w": True, "b": False, "v": {"k": "joint"}}  # written for the whole tree
    if which == "nap":
        ours = oxs.nap(optax.sgd(0.5), mask)
    else:
        ours = optax.chain(optax.sgd(0.5), oxs.project_to_init_norm(mask))
    tx = optax.partition({"nap": ours, "sgd": optax.sgd(0.5)}, labels)
    state = tx.init(NESTED)
    grads = jax.tree.map(jnp.ones_like, NESTED)
    updates, state = jax.jit(tx.update)(grads, state, NESTED)
    new = optax.apply_updates(NESTED, updates)
    for name, init_norm in (("w", np.sqrt(6.0)), ("k", 6.0)):
        leaf = new["w"] if name == "w" else new["v"]["k"]
        group = labels["w"] if name == "w" else (labels["v"] if isinstance(labels["v"], str)
                                                 else labels["v"]["k"])
        norm = float(jnp.linalg.norm(leaf))
        if group == "nap":  # projected back to its initial norm
            np.testing.assert_allclose(norm, init_norm, rtol=1e-6)
        else:  # plain SGD: moved off it
            assert abs(norm - init_norm) > 0.1
    np.testing.assert_allclose(new["b"], 0.5 * np.ones(3))  # never projected
